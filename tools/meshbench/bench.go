package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/continuum-mesh/continuum/pkg/mesh"
)

type options struct {
	nodes   int
	runs    int
	profile string
	log     *slog.Logger
}

// results holds one duration per run for each measure.
type results struct {
	converge    []time.Duration // all joined -> every node sees N ALIVE
	detectFirst []time.Duration // crash -> first survivor sees DEAD
	detectAll   []time.Duration // crash -> every survivor sees DEAD
	leaveAll    []time.Duration // Leave called -> every other node sees LEFT
	leaveCall   []time.Duration // how long Leave itself takes
}

// budget bounds each wait, so a broken mesh fails instead of hanging.
const budget = 60 * time.Second

func measure(ctx context.Context, o options) (*results, error) {
	res := &results{}
	for run := 0; run < o.runs; run++ {
		if err := measureOnce(ctx, o, run, res); err != nil {
			return nil, fmt.Errorf("run %d: %w", run+1, err)
		}
	}
	return res, nil
}

func measureOnce(ctx context.Context, o options, run int, res *results) error {
	nodes := make([]*mesh.Mesh, 0, o.nodes)
	defer func() {
		for _, n := range nodes {
			_ = n.Close()
		}
	}()
	seed := ""
	for i := 0; i < o.nodes; i++ {
		cfg := mesh.Config{
			Node:       fmt.Sprintf("bench-%d-%02d", run, i),
			GossipAddr: "127.0.0.1:0",
			GRPCAddr:   "127.0.0.1:1",
			Services:   []string{"mesh"},
			Profile:    o.profile,
		}
		if i > 0 {
			cfg.Join = []string{seed}
		}
		n, err := mesh.New(cfg, mesh.Deps{Logger: o.log})
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
	d, err := waitAll(ctx, nodes, start, func(n *mesh.Mesh) bool { return len(n.Members()) == o.nodes })
	if err != nil {
		return fmt.Errorf("convergence: %w", err)
	}
	res.converge = append(res.converge, d)

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
	res.detectFirst = append(res.detectFirst, first)
	res.detectAll = append(res.detectAll, all)

	// Graceful leave: the next-to-last node leaves.
	if len(survivors) >= 2 {
		leaver := survivors[len(survivors)-1]
		lname := leaver.Self().Name
		rest := survivors[:len(survivors)-1]
		start = time.Now()
		left := make(chan error, 1)
		go func() {
			err := leaver.Leave(10 * time.Second)
			res.leaveCall = append(res.leaveCall, time.Since(start))
			left <- err
		}()
		d, err := waitAll(ctx, rest, start, func(n *mesh.Mesh) bool { m, _ := n.Member(lname); return m.State == mesh.Left })
		if lerr := <-left; lerr != nil {
			return fmt.Errorf("leave: %w", lerr)
		}
		if err != nil {
			return fmt.Errorf("leave: %w", err)
		}
		res.leaveAll = append(res.leaveAll, d)
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

func (r *results) print(out io.Writer, o options) {
	fmt.Fprintf(out, "meshbench: %d nodes, profile %s, %d runs (min / median / max)\n", o.nodes, o.profile, o.runs)
	row := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			return
		}
		s := slices.Clone(ds)
		slices.Sort(s)
		fmt.Fprintf(out, "  %-36s %8s / %8s / %8s\n", name, round(s[0]), round(s[len(s)/2]), round(s[len(s)-1]))
	}
	row("convergence (all see all ALIVE)", r.converge)
	row("crash -> first survivor sees DEAD", r.detectFirst)
	row("crash -> all survivors see DEAD", r.detectAll)
	row("leave -> all others see LEFT", r.leaveAll)
	row("Leave() call returns", r.leaveCall)
}

func round(d time.Duration) string {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
