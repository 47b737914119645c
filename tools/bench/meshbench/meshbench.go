// Package meshbench measures the gossip layer of pkg/mesh on loopback: how
// long N in-process members take to converge after joining, how long the
// survivors take to declare a crashed member DEAD, and how long a graceful
// leave takes to reach everyone as LEFT. tools/meshbench is its command;
// the bench report (go run ./tools/bench report) calls Measure directly.
package meshbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/continuum-mesh/continuum/pkg/mesh"
)

// Options are a measurement's settings.
type Options struct {
	// Nodes is how many members to start (at least 2).
	Nodes int
	// Runs is how many times to repeat; each run starts a fresh mesh.
	Runs int
	// Profile is the failure-detection profile, "local" or "lan".
	Profile string
	// Log receives the members' logs; nil discards them.
	Log *slog.Logger
}

// Results holds one duration per run for each measure.
type Results struct {
	Converge    []time.Duration // all joined -> every node sees N ALIVE
	DetectFirst []time.Duration // crash -> first survivor sees DEAD
	DetectAll   []time.Duration // crash -> every survivor sees DEAD
	LeaveAll    []time.Duration // Leave called -> every other node sees LEFT
	LeaveCall   []time.Duration // how long Leave itself takes
}

// budget bounds each wait, so a broken mesh fails instead of hanging.
const budget = 60 * time.Second

// Measure runs o.Runs fresh meshes of o.Nodes members and times each.
func Measure(ctx context.Context, o Options) (*Results, error) {
	if o.Nodes < 2 || o.Runs < 1 {
		return nil, errors.New("meshbench: nodes must be at least 2 and runs at least 1")
	}
	if o.Profile == "" {
		o.Profile = mesh.ProfileLocal
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	res := &Results{}
	for run := 0; run < o.Runs; run++ {
		if err := measureOnce(ctx, o, run, res); err != nil {
			return nil, fmt.Errorf("%d nodes, run %d: %w", o.Nodes, run+1, err)
		}
	}
	return res, nil
}

func measureOnce(ctx context.Context, o Options, run int, res *Results) error {
	nodes := make([]*mesh.Mesh, 0, o.Nodes)
	defer func() {
		for _, n := range nodes {
			_ = n.Close()
		}
	}()
	seed := ""
	for i := 0; i < o.Nodes; i++ {
		cfg := mesh.Config{
			Node:       fmt.Sprintf("bench-%d-%02d", run, i),
			GossipAddr: "127.0.0.1:0",
			GRPCAddr:   "127.0.0.1:1",
			Services:   []string{"mesh"},
			Profile:    o.Profile,
		}
		if i > 0 {
			cfg.Join = []string{seed}
		}
		n, err := mesh.New(cfg, mesh.Deps{Logger: o.Log})
		if err != nil {
			return err
		}
		if i == 0 {
			seed = n.Self().GossipAddr
		}
		nodes = append(nodes, n)
	}

	// Convergence: everyone but the seed joins the seed at once.
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	jctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	for i, n := range nodes[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.Start(jctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	d, err := waitAll(ctx, nodes, start, func(n *mesh.Mesh) bool { return len(n.Members()) == o.Nodes })
	if err != nil {
		return fmt.Errorf("convergence: %w", err)
	}
	res.Converge = append(res.Converge, d)

	// Failure detection: the last node crashes.
	victim := nodes[len(nodes)-1]
	name := victim.Self().Name
	survivors := nodes[:len(nodes)-1]
	start = time.Now()
	if err := victim.Shutdown(); err != nil {
		return err
	}
	isDead := func(n *mesh.Mesh) bool { m, _ := n.Member(name); return m.State == mesh.Dead }
	first, err := waitAny(ctx, survivors, start, isDead)
	if err != nil {
		return fmt.Errorf("detection: %w", err)
	}
	all, err := waitAll(ctx, survivors, start, isDead)
	if err != nil {
		return fmt.Errorf("detection: %w", err)
	}
	res.DetectFirst = append(res.DetectFirst, first)
	res.DetectAll = append(res.DetectAll, all)

	// Graceful leave: the next-to-last node leaves.
	if len(survivors) >= 2 {
		leaver := survivors[len(survivors)-1]
		lname := leaver.Self().Name
		rest := survivors[:len(survivors)-1]
		start = time.Now()
		left := make(chan error, 1)
		go func() {
			err := leaver.Leave(10 * time.Second)
			res.LeaveCall = append(res.LeaveCall, time.Since(start))
			left <- err
		}()
		d, err := waitAll(ctx, rest, start, func(n *mesh.Mesh) bool { m, _ := n.Member(lname); return m.State == mesh.Left })
		if lerr := <-left; lerr != nil {
			return fmt.Errorf("leave: %w", lerr)
		}
		if err != nil {
			return fmt.Errorf("leave: %w", err)
		}
		res.LeaveAll = append(res.LeaveAll, d)
	}
	return nil
}

// waitAll returns when cond holds on every node, measured from start.
func waitAll(ctx context.Context, nodes []*mesh.Mesh, start time.Time, cond func(*mesh.Mesh) bool) (time.Duration, error) {
	return wait(ctx, nodes, start, func() bool {
		for _, n := range nodes {
			if !cond(n) {
				return false
			}
		}
		return true
	})
}

// waitAny returns when cond holds on some node, measured from start.
func waitAny(ctx context.Context, nodes []*mesh.Mesh, start time.Time, cond func(*mesh.Mesh) bool) (time.Duration, error) {
	return wait(ctx, nodes, start, func() bool {
		return slices.ContainsFunc(nodes, cond)
	})
}

// wait re-checks done on every membership change of any node (through
// Watch, so the figure is not rounded to a polling interval).
func wait(ctx context.Context, nodes []*mesh.Mesh, start time.Time, done func() bool) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	changed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for _, n := range nodes {
		ch, stop := n.Watch()
		defer stop()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case _, ok := <-ch:
					if !ok {
						return
					}
					select {
					case changed <- struct{}{}:
					default:
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	defer wg.Wait()
	defer cancel()
	for {
		if done() {
			return time.Since(start), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Summary is min, median and max of one measure, in milliseconds.
type Summary struct {
	MinMs    float64 `json:"min_ms"`
	MedianMs float64 `json:"median_ms"`
	MaxMs    float64 `json:"max_ms"`
}

func summarize(ds []time.Duration) *Summary {
	if len(ds) == 0 {
		return nil
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return &Summary{MinMs: ms(s[0]), MedianMs: ms(s[len(s)/2]), MaxMs: ms(s[len(s)-1])}
}

// Report is the JSON form of a measurement: the last line meshbench prints.
type Report struct {
	Nodes       int      `json:"nodes"`
	Runs        int      `json:"runs"`
	Profile     string   `json:"profile"`
	Converge    *Summary `json:"converge"`
	DetectFirst *Summary `json:"detect_first"`
	DetectAll   *Summary `json:"detect_all"`
	LeaveAll    *Summary `json:"leave_all,omitempty"`
	LeaveCall   *Summary `json:"leave_call,omitempty"`
}

// Report summarizes r, measured with o.
func (r *Results) Report(o Options) Report {
	if o.Profile == "" {
		o.Profile = mesh.ProfileLocal
	}
	return Report{
		Nodes: o.Nodes, Runs: o.Runs, Profile: o.Profile,
		Converge: summarize(r.Converge), DetectFirst: summarize(r.DetectFirst), DetectAll: summarize(r.DetectAll),
		LeaveAll: summarize(r.LeaveAll), LeaveCall: summarize(r.LeaveCall),
	}
}

// Print writes the table and, last, the Report as one line of JSON.
func (r *Results) Print(out io.Writer, o Options) error {
	rep := r.Report(o)
	fmt.Fprintf(out, "meshbench: %d nodes, profile %s, %d runs (min / median / max)\n", rep.Nodes, rep.Profile, rep.Runs)
	row := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			return
		}
		s := slices.Clone(ds)
		slices.Sort(s)
		fmt.Fprintf(out, "  %-36s %8s / %8s / %8s\n", name, round(s[0]), round(s[len(s)/2]), round(s[len(s)-1]))
	}
	row("convergence (all see all ALIVE)", r.Converge)
	row("crash -> first survivor sees DEAD", r.DetectFirst)
	row("crash -> all survivors see DEAD", r.DetectAll)
	row("leave -> all others see LEFT", r.LeaveAll)
	row("Leave() call returns", r.LeaveCall)
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(b))
	return err
}

func round(d time.Duration) string {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
