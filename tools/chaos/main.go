// Command chaos proves the mesh under faults and load (issue 8): it runs a
// mesh of real `continuum` processes on loopback (or drives the compose
// deployment with --compose), keeps a mixed load on it, injects faults on
// a seeded schedule (kill -9, SIGSTOP past failure detection, graceful
// restart, cut off from the network), stops by itself, and checks the
// mesh's promises. The last line of stdout is the verdict as JSON:
//
//	{"invariants": {"<name>": {"ok": true|false, ...counts}}, "seed": N, ...}
//
// Exit status: 0 when every invariant holds, 1 when one fails, 2 when the
// harness could not run. docs/RELIABILITY.md has what it checks and what
// it found.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/continuum-mesh/continuum/pkg/wait"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	duration  time.Duration
	seed      uint64
	nodes     int
	compose   bool
	binary    string
	keep      bool
	verbose   bool
	profile   string
	goal      time.Duration
	tolerance float64
	dir       string
	noFaults  bool
	known     string
}

// Report is the verdict line.
type Report struct {
	Invariants map[string]any `json:"invariants"`
	Seed       uint64         `json:"seed"`
	Duration   string         `json:"duration"`
	Mode       string         `json:"mode"`
	Nodes      []string       `json:"nodes"`
	Faults     []FaultRecord  `json:"faults"`
	Load       map[string]int `json:"load"`
	Known      []string       `json:"known,omitempty"`
	Dir        string         `json:"dir,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.DurationVar(&o.duration, "duration", 2*time.Minute, "how long faults and load run")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the fault schedule and the load")
	fs.IntVar(&o.nodes, "nodes", 3, "nodes to run (process mode; at least 3)")
	fs.BoolVar(&o.compose, "compose", false, "drive the compose mesh (docker-compose.yml) instead of local processes")
	fs.StringVar(&o.binary, "binary", "", "the continuum binary (default: go build ./cmd/continuum into the run directory)")
	fs.BoolVar(&o.keep, "keep", false, "keep the run directory (data and node logs) even when every invariant holds")
	fs.BoolVar(&o.verbose, "verbose", false, "log at debug level")
	fs.StringVar(&o.profile, "mesh-profile", "local", "failure-detection profile of the nodes (process mode)")
	fs.DurationVar(&o.goal, "detect-goal", 6*time.Second, "failure-detection goal per fault")
	fs.Float64Var(&o.tolerance, "tolerance", 0.10, "how far above baseline goroutines and heap may end")
	fs.StringVar(&o.dir, "dir", "", "run directory (default: a new temporary directory)")
	fs.BoolVar(&o.noFaults, "no-faults", false, "the load alone, without faults: a control run for the figures")
	fs.StringVar(&o.known, "known", "", "comma-separated invariants that fail for a known, documented reason: still reported ok:false, but they do not fail the exit status")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.nodes < 3 {
		fmt.Fprintln(stderr, "chaos: --nodes must be at least 3")
		return 2
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	rep, err := chaos(ctx, o, log)
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	b, err := json.Marshal(rep)
	if err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
		return 2
	}
	code := 0
	known := strings.Split(o.known, ",")
	for name, inv := range rep.Invariants {
		if ok, _ := okOf(inv); !ok {
			if slices.Contains(known, name) {
				fmt.Fprintf(stderr, "chaos: invariant %s fails: known (--known), not failing the run\n", name)
				continue
			}
			fmt.Fprintf(stderr, "chaos: invariant %s fails\n", name)
			code = 1
		}
	}
	fmt.Fprintln(stdout, string(b))
	return code
}

func okOf(v any) (bool, bool) {
	b, err := json.Marshal(v)
	if err != nil {
		return false, false
	}
	var m struct {
		OK *bool `json:"ok"`
	}
	if json.Unmarshal(b, &m) != nil || m.OK == nil {
		return false, false
	}
	return *m.OK, true
}

func chaos(ctx context.Context, o options, log *slog.Logger) (_ *Report, err error) {
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "continuum-chaos-*"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	log.Info("run directory (data, node logs)", "dir", dir)
	var c Cluster
	mode := "process"
	if o.compose {
		mode = "compose"
		c, err = newComposeCluster(ctx, composeOptions{Dir: dir, Log: log})
	} else {
		c, err = newProcCluster(ctx, procOptions{Nodes: o.nodes, Binary: o.binary, Dir: dir, Profile: o.profile, Log: log})
	}
	if err != nil {
		return nil, err
	}
	allOK := false
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if cerr := c.Close(cctx); cerr != nil {
			log.Warn("stopping the mesh", "error", cerr)
		}
		cancel()
		if allOK && !o.keep && o.dir == "" {
			_ = os.RemoveAll(dir)
		} else {
			log.Info("run directory kept", "dir", dir)
		}
	}()
	nodes := c.Nodes()
	obs, err := newObserver(c, log)
	if err != nil {
		return nil, err
	}
	defer obs.close()
	obsCtx, stopObs := context.WithCancel(ctx)
	var obsWG sync.WaitGroup
	obsWG.Add(1)
	go func() { defer obsWG.Done(); obs.run(obsCtx, 100*time.Millisecond) }()
	defer func() { stopObs(); obsWG.Wait() }()
	if err := obs.waitWhole(ctx, nodes, 90*time.Second); err != nil {
		return nil, err
	}
	log.Info("mesh is whole", "nodes", nodes)

	l, err := newLoad(c, o.seed, log)
	if err != nil {
		return nil, err
	}
	defer l.close()
	if err := l.setup(ctx); err != nil {
		return nil, err
	}
	if err := l.seedEngrams(ctx); err != nil {
		return nil, err
	}
	l.newSubs()

	// Warm-up: the same load without faults, so pools, classes and caches
	// exist before the baseline is taken at rest.
	warm := min(5*time.Second, o.duration/6)
	log.Info("warm-up", "for", warm)
	whole := func(ctx context.Context) error { return obs.waitWhole(ctx, nodes, 30*time.Second) }
	if err := phase(ctx, l, warm, nil, whole, nil); err != nil {
		return nil, err
	}
	wait.Sleep(ctx, 2*time.Second)
	base, err := obs.runtime(ctx, nodes)
	if err != nil {
		return nil, err
	}
	log.Info("baseline", "runtime", base)
	// What the mesh's own event streams hold in memory at the baseline,
	// counted after the sample (the replays allocate).
	baseRetained := countAllRetained(ctx, obs, l.streams, log)

	// A pause or cut must outlast failure detection: ~1.5 s with the
	// local profile, ~6 s with lan (compose's).
	holdMin, holdMax := 3*time.Second, 6*time.Second
	if o.compose || o.profile == "lan" {
		holdMin, holdMax = 8*time.Second, 12*time.Second
	}
	sched := Schedule(ScheduleConfig{
		Seed: o.seed, Duration: o.duration, Nodes: nodes,
		Warmup: 3 * time.Second, Cooldown: 5 * time.Second,
		HoldMin: holdMin, HoldMax: holdMax,
		GapMin: 3 * time.Second, GapMax: 6 * time.Second,
	})
	if o.noFaults {
		sched = nil
	}
	for _, f := range sched {
		log.Info("scheduled", "fault", f.String())
	}
	runStart := time.Now()
	var faults []FaultRecord
	if err := phase(ctx, l, o.duration, sched, whole, func(r FaultRecord) { faults = append(faults, r) }); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	log.Info("load stopped; waiting for the mesh to be whole")
	if err := obs.waitWhole(ctx, nodes, 60*time.Second); err != nil {
		log.Error("mesh not whole after the run", "error", err)
	}
	// Catch up: subscribers resume and drain, then stop.
	subCtx, stopSubs := context.WithCancel(ctx)
	var subWG sync.WaitGroup
	startSubs(subCtx, l, &subWG)
	l.waitDelivered(ctx, 30*time.Second)
	stopSubs()
	subWG.Wait()

	audit := l.auditLogs(ctx, 30*time.Second)
	data := l.checkData(ctx, 30*time.Second)
	stopObs()
	obsWG.Wait()
	trans := obs.transitions()

	l.mu.Lock()
	acked := map[string][]uint64{}
	for k, v := range l.acked {
		acked[k] = append([]uint64(nil), v...)
	}
	refusals := map[string][]string{}
	for k, v := range l.refusals {
		refusals[k] = append([]string(nil), v...)
	}
	dispatches := append([]Dispatch(nil), l.dispatches...)
	loadCounts := map[string]int{}
	for k, v := range l.ops {
		loadCounts[k] = v
	}
	l.mu.Unlock()
	loadCounts["plain-delivered"] = int(l.plainGot.Load())
	dataRes := CheckData(data)
	dataRes.EngramsForgotten, dataRes.ForgetsUnacked = l.forgotten, l.forgetsUnacked
	var subLogs []SubscriberLog
	for _, s := range l.subs {
		subLogs = append(subLogs, s.log())
	}
	l.close()

	// The leak check last, once every harness stream is closed; nodes get
	// time to let go of what the load held.
	final := waitRuntime(ctx, obs, nodes, base, o.tolerance, 20*time.Second)
	// Then what retention grew by; its measure fills classes of its own,
	// so it comes after the final sample.
	endRetained := countAllRetained(ctx, obs, l.streams, log)
	grown := retainedGrowth(ctx, obs, l.streams, baseRetained, endRetained)

	runtimeRes := CheckRuntime(base, final, grown, o.tolerance)
	for _, f := range faults {
		if (f.Kind == FaultKill || f.Kind == FaultRestart) && !slices.Contains(runtimeRes.Restarted, f.Node) {
			runtimeRes.Restarted = append(runtimeRes.Restarted, f.Node)
		}
	}
	faults, det, sus := CheckDetection(faults, trans, nodes, runStart, o.goal, 2*time.Second, obs.answered)
	inv := map[string]any{
		"durable_delivery":     CheckDurable(acked, subLogs),
		"audit_refusals":       CheckAudit(refusals, audit),
		"acknowledged_data":    dataRes,
		"no_routing_to_dead":   CheckRouting(trans, dispatches),
		"runtime_back_to_base": runtimeRes,
		"failure_detection":    det,
		"false_suspicions":     sus,
	}
	allOK = true
	for _, v := range inv {
		if ok, _ := okOf(v); !ok {
			allOK = false
		}
	}
	rep := &Report{Invariants: inv, Seed: o.seed, Duration: o.duration.String(), Mode: mode, Nodes: nodes, Faults: faults, Load: loadCounts}
	if o.known != "" {
		rep.Known = strings.Split(o.known, ",")
	}
	if !allOK || o.keep {
		rep.Dir = dir
	}
	sort.Slice(rep.Faults, func(i, j int) bool { return rep.Faults[i].Start.Before(rep.Faults[j].Start) })
	return rep, nil
}

func startSubs(ctx context.Context, l *load, wg *sync.WaitGroup) []chan struct{} {
	var readies []chan struct{}
	for _, s := range l.subs {
		ready := make(chan struct{})
		readies = append(readies, ready)
		wg.Add(1)
		go func() { defer wg.Done(); s.run(ctx, ready) }()
	}
	for _, n := range l.streams {
		wg.Add(1)
		go func() { defer wg.Done(); l.plainSub(ctx, n) }()
	}
	return readies
}

// phase runs the load (subscribers included) for d, injecting the
// scheduled faults; it returns when d has passed and every fault is over.
func phase(ctx context.Context, l *load, d time.Duration, sched []Fault, whole func(context.Context) error, record func(FaultRecord)) error {
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	readies := startSubs(pctx, l, &wg)
	for _, r := range readies {
		select {
		case <-r:
		case <-time.After(30 * time.Second):
			stop()
			wg.Wait()
			return errors.New("durable subscribers did not start within 30s")
		case <-ctx.Done():
			stop()
			wg.Wait()
			return ctx.Err()
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); l.run(pctx) }()
	start := time.Now()
	for _, f := range sched {
		if !wait.Sleep(ctx, time.Until(start.Add(f.At))) {
			break
		}
		// A fault hits a whole mesh: after the last one, the node must be
		// back and known ALIVE by everyone, or the next fault would
		// measure the last one's recovery.
		if err := whole(ctx); err != nil {
			l.log.Error("mesh not whole before the next fault; injecting anyway", "fault", f.String(), "error", err)
		}
		if late := time.Since(start.Add(f.At)); late > time.Second {
			l.log.Info("fault later than scheduled: waited for the mesh to be whole", "late", late.Round(time.Millisecond))
		}
		if time.Since(start) > d {
			l.log.Warn("no time left for the fault; skipped", "fault", f.String())
			break
		}
		l.log.Info("fault", "fault", f.String())
		rec := inject(ctx, l.c, f)
		if rec.Err != "" {
			l.log.Error("fault failed", "fault", f.String(), "error", rec.Err)
		}
		record(rec)
	}
	wait.Sleep(ctx, time.Until(start.Add(d)))
	stop()
	wg.Wait()
	return nil
}

// waitRuntime samples until every node is back within tolerance of its
// baseline or within passes, and returns the last sample.
func waitRuntime(ctx context.Context, obs *observer, nodes []string, base map[string]RuntimeSample, tol float64, within time.Duration) map[string]RuntimeSample {
	deadline := time.Now().Add(within)
	var last map[string]RuntimeSample
	for {
		s, err := obs.runtime(ctx, nodes)
		if err == nil {
			last = s
			if CheckRuntime(base, s, nil, tol).OK {
				return s
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last
		}
		wait.Sleep(ctx, time.Second)
	}
}

// countAllRetained counts, per node, what the mesh's own event streams
// hold in memory (see retained.go). A node that cannot be counted is
// left out (and gets no allowance).
func countAllRetained(ctx context.Context, obs *observer, nodes []string, log *slog.Logger) map[string]map[string]streamCount {
	out := map[string]map[string]streamCount{}
	for _, n := range nodes {
		c, err := countRetained(ctx, obs.conns[n])
		if err != nil {
			log.Warn("counting retained events", "node", n, "error", err)
			continue
		}
		out[n] = c
	}
	return out
}
