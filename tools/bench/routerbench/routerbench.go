// Package routerbench measures what the router costs: the latency of a
// command dispatched in process, and the router's overhead over a direct
// gRPC call to the same method, paced at a fixed rate over loopback.
package routerbench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/node"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// Result is what one run measured, in microseconds.
type Result struct {
	InprocP50us     float64 `json:"inproc_dispatch_p50_us"`
	InprocP99us     float64 `json:"inproc_dispatch_p99_us"`
	DirectP50us     float64 `json:"direct_p50_us"`
	DirectP99us     float64 `json:"direct_p99_us"`
	DispatchP50us   float64 `json:"dispatch_p50_us"`
	DispatchP99us   float64 `json:"dispatch_p99_us"`
	OverheadP50us   float64 `json:"overhead_p50_us"`
	OverheadP99us   float64 `json:"overhead_p99_us"`
	QPS             int     `json:"qps"`
	CallsPerVariant int     `json:"calls_per_variant"`
	// GCPercent is the collector target the node ran with.
	GCPercent int `json:"gc_percent"`
	// WarmupCalls is how many in-process dispatches ran untimed first,
	// until the heap reached its steady size (see warmUp).
	WarmupCalls int `json:"warmup_calls"`
}

// Options are a measurement's settings.
type Options struct {
	// QPS is the paced request rate of the overhead comparison.
	QPS int
	// Duration sets the calls of each paced variant, QPS × Duration; the
	// variants alternate on one schedule, so the comparison takes twice
	// Duration.
	Duration time.Duration
	// Inproc is how many in-process dispatches to time (after a warm-up
	// to the steady state: see warmUp).
	Inproc int
	// GCPercent is the collector target to run the node with, as the
	// continuum binary's --gc-percent; zero is node.DefaultGCPercent, the
	// binary's default. GOGC in the environment wins, as in the binary.
	GCPercent int
}

// Run parses flags, starts a single node, measures, prints the figures and,
// last, the Result as one line of JSON.
func Run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench router", flag.ContinueOnError)
	var o Options
	fs.IntVar(&o.QPS, "qps", 1000, "paced request rate for the overhead comparison")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "calls of each paced variant: qps × duration (the variants alternate, so the run takes twice this)")
	fs.IntVar(&o.Inproc, "inproc", 20000, "in-process dispatches to time")
	fs.IntVar(&o.GCPercent, "gc-percent", node.DefaultGCPercent, "collector target for the node, as the binary's --gc-percent (GOGC in the environment wins)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := Measure(context.Background(), o)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "in-process dispatch: p50 %.1f µs  p99 %.1f µs (%d calls after %d of warm-up, gc-percent %d)\n", res.InprocP50us, res.InprocP99us, o.Inproc, res.WarmupCalls, res.GCPercent)
	fmt.Fprintf(out, "direct gRPC at %d QPS: p50 %.1f µs  p99 %.1f µs\n", res.QPS, res.DirectP50us, res.DirectP99us)
	fmt.Fprintf(out, "via router at %d QPS: p50 %.1f µs  p99 %.1f µs\n", res.QPS, res.DispatchP50us, res.DispatchP99us)
	fmt.Fprintf(out, "router overhead: p50 %.1f µs  p99 %.1f µs\n", res.OverheadP50us, res.OverheadP99us)
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(b))
	return err
}

// Measure starts a single node on 127.0.0.1:0 and measures it.
func Measure(ctx context.Context, o Options) (res Result, err error) {
	if o.QPS <= 0 || o.Duration <= 0 || o.Inproc <= 0 {
		return Result{}, errors.New("bench router: qps, duration and inproc must be positive")
	}
	dir, err := os.MkdirTemp("", "routerbench")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	token := "bench-admin-token"
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - principal: admin\n    token: "+token+"\n    admin: true\n"), 0o600); err != nil {
		return Result{}, err
	}
	if o.GCPercent == 0 {
		o.GCPercent = node.DefaultGCPercent
	}
	// The node runs with the collector settings the binary gives it, set
	// before it starts as the binary sets them; the process gets its own
	// back afterwards.
	tuned, restore := node.TuneRuntime(o.GCPercent, nil)
	defer restore()
	n, err := node.New(node.Config{
		Node: "bench", Services: []string{"router"}, Listen: "127.0.0.1:0", DataDir: dir, TokensFile: tokens,
		MeshProfile: "local",
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		if rerr := <-done; rerr != nil && err == nil {
			err = fmt.Errorf("node: %w", rerr)
		}
	}()

	res = Result{QPS: o.QPS, GCPercent: tuned.GCPercent}
	// In process: the router called through the node's in-process
	// connection, on behalf of the admin, every interceptor included.
	local := routerv1.NewRouterServiceClient(n.Channel())
	admin := auth.Principal{Name: "admin", Kind: auth.KindToken}
	req := &routerv1.DispatchRequest{Uri: "debug/get-log-level"}
	dispatch := func() error {
		_, err := local.Dispatch(auth.OnBehalfOf(ctx, admin), req)
		return err
	}
	if res.WarmupCalls, err = warmUp(dispatch); err != nil {
		return Result{}, fmt.Errorf("in-process dispatch: %w", err)
	}
	lat := make([]time.Duration, 0, o.Inproc)
	for i := 0; i < o.Inproc; i++ {
		t0 := time.Now()
		if err := dispatch(); err != nil {
			return Result{}, fmt.Errorf("in-process dispatch: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	res.InprocP50us, res.InprocP99us = pct(lat, 50), pct(lat, 99)

	// Over loopback: a direct call versus the same method through Dispatch.
	cc, err := grpc.NewClient(n.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return Result{}, err
	}
	defer cc.Close()
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	direct := func() error {
		_, err := debugv1.NewDebugServiceClient(cc).GetLogLevel(actx, &debugv1.GetLogLevelRequest{})
		return err
	}
	viaRouter := func() error {
		_, err := routerv1.NewRouterServiceClient(cc).Dispatch(actx, req)
		return err
	}
	// The two variants alternate call by call on one schedule, so both see
	// the same machine load: QPS in all for twice Duration, QPS × Duration
	// calls each.
	lats, err := paced([]func() error{direct, viaRouter}, o.QPS, 2*o.Duration)
	if err != nil {
		return Result{}, err
	}
	d, r := lats[0], lats[1]
	res.CallsPerVariant = len(d)
	res.DirectP50us, res.DirectP99us = pct(d, 50), pct(d, 99)
	res.DispatchP50us, res.DispatchP99us = pct(r, 50), pct(r, 99)
	res.OverheadP50us = res.DispatchP50us - res.DirectP50us
	res.OverheadP99us = res.DispatchP99us - res.DirectP99us
	return res, nil
}

// warmUp calls f until the process is in its steady state, and returns
// how many calls that took: for at least minWarmup after the node started
// serving, and on until the collector has finished warmCycles cycles, so
// the heap has grown to the size it keeps. Those calls measure the
// process's start, not a dispatch: in its first second the node joins its
// mesh and starts its services beside the calls, and a young heap grows
// into memory the process has never touched, whose first touch is slow
// on a VM (tens of µs a page). Runs timed from the start showed two modes
// on this machine (p50 7.3 µs or 9.4–12.1 µs); from the steady state only
// the first. It gives up waiting after maxWarmup.
func warmUp(f func() error) (int, error) {
	const warmCycles, minWarmup, maxWarmup = 3, time.Second, 5 * time.Second
	cycles := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(cycles)
	start, began := cycles[0].Value.Uint64(), time.Now()
	n := 0
	for ; ; n++ {
		if err := f(); err != nil {
			return n, err
		}
		if n < 1000 || n%100 != 0 {
			continue
		}
		metrics.Read(cycles)
		if (cycles[0].Value.Uint64()-start >= warmCycles && time.Since(began) > minWarmup) || time.Since(began) > maxWarmup {
			return n + 1, nil
		}
	}
}

// paced calls fs in turn (call i is fs[i%len(fs)]) at qps for d, open
// loop (the schedule does not wait for a slow call, so queueing shows in the
// latencies), and returns each function's call latencies measured from
// their scheduled starts.
func paced(fs []func() error, qps int, d time.Duration) ([][]time.Duration, error) {
	interval := time.Second / time.Duration(qps)
	total := int(d / interval)
	lat := make([]time.Duration, total)
	errs := make(chan error, 1)
	sem := make(chan struct{}, 256)
	start := time.Now()
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if err := fs[i%len(fs)](); err != nil {
				select {
				case errs <- fmt.Errorf("variant %d: %w", i%len(fs), err):
				default:
				}
			}
			lat[i] = time.Since(due)
		}()
	}
	for i := 0; i < cap(sem); i++ {
		sem <- struct{}{}
	}
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	out := make([][]time.Duration, len(fs))
	for i, l := range lat {
		out[i%len(fs)] = append(out[i%len(fs)], l)
	}
	return out, nil
}

func pct(d []time.Duration, p float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s)-1) * p / 100)
	return float64(s[i].Nanoseconds()) / 1000
}
