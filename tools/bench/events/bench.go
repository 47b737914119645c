// Package events benchmarks the events service against an embedded NATS
// server, in one run, on the same payloads, both over TCP loopback:
//
//   - publish-ack latency, sequential: ours plain (a topic without a class)
//     and durable (a durable class, fsync before the ack), NATS JetStream
//     memory and file storage (fsync on every write, sync_interval: always)
//     and a core NATS publish+flush round trip;
//   - durable publish throughput with concurrent publishers (group commit
//     against JetStream's per-write fsync);
//   - publish→deliver latency p50/p99 at a fixed rate (10k msg/s);
//   - fan-out throughput 1→1 and 1→10 at 16 B and 1 KB.
//
// Our side runs the events service behind the real pkg/rpc server (auth,
// logging at error level, OpenTelemetry stats handler, recovery) and gRPC
// clients; NATS runs in-process with logging off. Run prints a Markdown
// report and, last, its figures as one line of JSON (Result); Measure
// returns them to the bench report (go run ./tools/bench report).
package events

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/continuum-mesh/continuum/pkg/node"
	"github.com/continuum-mesh/continuum/tools/bench/cputime"
)

// Result holds the figures of a run, in microseconds and messages per
// second; its JSON is the last line Run prints.
type Result struct {
	Ack     []AckRow     `json:"ack,omitempty"`
	Durable []RateRow    `json:"durable,omitempty"`
	Latency []LatencyRow `json:"latency,omitempty"`
	Fanout  []FanoutRow  `json:"fanout,omitempty"`
}

// AckRow is one sequential publish-ack latency case.
type AckRow struct {
	Case   string  `json:"case"`
	Bytes  int     `json:"bytes"`
	P50us  float64 `json:"p50_us"`
	P99us  float64 `json:"p99_us"`
	MeanUs float64 `json:"mean_us"`
}

// RateRow is one durable throughput case.
type RateRow struct {
	Case     string  `json:"case"`
	MsgsPerS float64 `json:"msgs_per_s"`
}

// LatencyRow is one publish→deliver case at a fixed rate (the median of the
// rounds by p99).
type LatencyRow struct {
	Case     string  `json:"case"`
	Bytes    int     `json:"bytes"`
	Rate     int     `json:"rate"`
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
}

// FanoutRow is one fan-out case (the median of the rounds by rate): ours
// with decoded single deliveries (A), decoded batches (B) and raw-frame
// batches (C), and NATS.
type FanoutRow struct {
	Subscribers int     `json:"subscribers"`
	Bytes       int     `json:"bytes"`
	OursA       float64 `json:"ours_a_msgs_per_s"`
	OursB       float64 `json:"ours_b_msgs_per_s"`
	OursC       float64 `json:"ours_c_msgs_per_s"`
	NATS        float64 `json:"nats_msgs_per_s"`
}

// Run runs the benchmarks with command-line args and writes the report to
// out, then the Result as one line of JSON.
func Run(args []string, out io.Writer) error {
	res, err := Measure(args, out)
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(b))
	return err
}

// Measure runs the benchmarks with command-line args, writes the Markdown
// report to out and returns the figures.
func Measure(args []string, out io.Writer) (*Result, error) {
	res := &Result{}
	return res, measure(args, out, res)
}

func measure(args []string, out io.Writer, res *Result) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	fs.SetOutput(out)
	acks := fs.Int("acks", 2000, "sequential publishes per publish-ack latency case")
	concurrent := fs.Int("concurrent", 32, "publishers in the durable throughput case")
	durableN := fs.Int("durable-n", 20000, "messages in the durable throughput case")
	rate := fs.Int("rate", 10000, "messages per second in the publish→deliver latency case")
	latFor := fs.Duration("latency-for", 3*time.Second, "how long the latency case publishes")
	fanN := fs.Int("n", 100000, "messages per fan-out case")
	sizes := fs.String("sizes", "16,1024", "payload sizes in bytes")
	fanouts := fs.String("fanouts", "1,10", "subscriber counts")
	batch := fs.Int("batch", 64, "max_batch of the batched fan-out subscribers")
	pubBatch := fs.Int("pub-batch", 64, "publishes per PublishStream request in the throughput cases (ours)")
	workers := fs.Int("publishers", 0, "ours in the fan-out case: 0 publishes through one PublishStream, N>0 with N concurrent unary Publish calls")
	rounds := fs.Int("rounds", 3, "runs of each latency and fan-out case, alternating ours and NATS; the median run is reported")
	only := fs.String("only", "", "comma-separated cases to run: ack,durable,latency,fanout (default all)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := fs.String("memprofile", "", "write an allocation profile of the whole run to this file (go tool pprof -sample_index=alloc_space)")
	gcPercent := fs.Int("gc-percent", node.DefaultGCPercent, "collector target of the process (both servers run in it), as the continuum binary's --gc-percent; GOGC in the environment wins")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The events service runs with the collector settings the binary
	// gives a node; the embedded NATS server shares the process and so
	// the setting. The process gets its own back afterwards.
	tuned, restore := node.TuneRuntime(*gcPercent, nil)
	defer restore()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		defer func() {
			f, err := os.Create(*memProfile)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "eventsbench: -memprofile:", err)
			}
		}()
	}
	sz, err := ints(*sizes)
	if err != nil {
		return fmt.Errorf("-sizes: %w", err)
	}
	fo, err := ints(*fanouts)
	if err != nil {
		return fmt.Errorf("-fanouts: %w", err)
	}
	want := func(c string) bool { return *only == "" || slices.Contains(strings.Split(*only, ","), c) }

	dir, err := os.MkdirTemp("", "eventsbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ours, err := startOurs(ctx, dir+"/ours")
	if err != nil {
		return err
	}
	defer ours.close()
	ours.pubBatch = *pubBatch
	nt, err := startNATS(dir + "/nats")
	if err != nil {
		return err
	}
	defer nt.close()

	fmt.Fprintf(out, "# events vs NATS (%s, %s/%s, GOMAXPROCS=%d, %d CPUs, gc-percent %d)\n\n",
		time.Now().UTC().Format(time.RFC3339), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU(), tuned.GCPercent)
	fmt.Fprintf(out, "command: go run ./tools/eventsbench %s\n\n", strings.Join(args, " "))

	if want("ack") {
		fmt.Fprintf(out, "## Publish-ack latency (sequential, one publisher, %d publishes each)\n\n", *acks)
		fmt.Fprintln(out, "| case | payload | p50 | p99 | mean |")
		fmt.Fprintln(out, "| --- | --- | --- | --- | --- |")
		for _, size := range sz {
			for _, c := range []struct {
				name string
				fn   func(size, n int) (latencies, error)
			}{
				{"ours plain (no class)", ours.ackLatency(ctx, "bench:plain")},
				{"ours durable (fsync per group commit)", ours.ackLatency(ctx, "benchd:ack")},
				{"NATS core publish+flush (round trip, no ack)", nt.flushLatency},
				{"NATS JetStream memory", nt.jsAckLatency("mem.ack")},
				{"NATS JetStream file (sync always)", nt.jsAckLatency("file.ack")},
			} {
				l, err := c.fn(size, *acks)
				if err != nil {
					return fmt.Errorf("%s: %w", c.name, err)
				}
				fmt.Fprintf(out, "| %s | %d B | %s | %s | %s |\n", c.name, size, us(l.pct(50)), us(l.pct(99)), us(l.mean()))
				res.Ack = append(res.Ack, AckRow{Case: c.name, Bytes: size, P50us: usf(l.pct(50)), P99us: usf(l.pct(99)), MeanUs: usf(l.mean())})
			}
		}
		fmt.Fprintln(out)
	}

	if want("durable") {
		fmt.Fprintf(out, "## Durable publish throughput (%d concurrent publishers, %d messages of 1 KB)\n\n", *concurrent, *durableN)
		fmt.Fprintln(out, "| case | msgs/s | ack p50 | ack p99 |")
		fmt.Fprintln(out, "| --- | --- | --- | --- |")
		r, err := ours.durableThroughput(ctx, "benchd:tp", 1024, *durableN, *concurrent)
		if err != nil {
			return fmt.Errorf("ours durable throughput: %w", err)
		}
		fmt.Fprintf(out, "| ours durable, %d concurrent unary Publish (group commit) | %.0f | %s | %s |\n", *concurrent, r.rate, us(r.lat.pct(50)), us(r.lat.pct(99)))
		res.Durable = append(res.Durable, RateRow{Case: "ours unary", MsgsPerS: r.rate})
		r, err = ours.streamThroughput(ctx, "benchd:tps", 1024, *durableN)
		if err != nil {
			return fmt.Errorf("ours durable stream throughput: %w", err)
		}
		fmt.Fprintf(out, "| ours durable, one PublishStream (%d per request, pipelined, group commit) | %.0f | | |\n", *pubBatch, r.rate)
		res.Durable = append(res.Durable, RateRow{Case: "ours stream", MsgsPerS: r.rate})
		r, err = nt.jsThroughput("file.tp", 1024, *durableN, *concurrent)
		if err != nil {
			return fmt.Errorf("NATS durable throughput: %w", err)
		}
		fmt.Fprintf(out, "| NATS JetStream file (sync always), %d concurrent publishers | %.0f | %s | %s |\n", *concurrent, r.rate, us(r.lat.pct(50)), us(r.lat.pct(99)))
		res.Durable = append(res.Durable, RateRow{Case: "NATS JetStream file", MsgsPerS: r.rate})
		r, err = nt.jsAsyncThroughput("file.tpa", 1024, *durableN)
		if err != nil {
			return fmt.Errorf("NATS durable async throughput: %w", err)
		}
		fmt.Fprintf(out, "| NATS JetStream file (sync always), async publish (pipelined) | %.0f | | |\n\n", r.rate)
		res.Durable = append(res.Durable, RateRow{Case: "NATS JetStream file async", MsgsPerS: r.rate})
	}

	if want("latency") {
		fmt.Fprintf(out, "## Publish→deliver latency at %d msg/s for %s (one subscriber)\n\n", *rate, *latFor)
		fmt.Fprintln(out, "| case | payload | sent | received | p50 | p99 | p99.9 | max | CPU/msg |")
		fmt.Fprintln(out, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
		for _, size := range sz {
			cases := []struct {
				name string
				fn   func(size, rate int, d time.Duration) (rateResult, error)
			}{
				{"ours plain, unary Publish", ours.deliverLatency(ctx, "lat:plain", false)},
				{"ours plain, PublishStream", ours.deliverLatency(ctx, "lat:plains", true)},
				{"ours durable, PublishStream", ours.deliverLatency(ctx, "benchd:lat", true)},
				{"NATS core", nt.deliverLatency},
			}
			results := make([][]rateResult, len(cases))
			for r := 0; r < *rounds; r++ {
				for i, c := range cases {
					res, err := measured(func() (rateResult, error) { return c.fn(size, *rate, *latFor) })
					if err != nil {
						return fmt.Errorf("%s: %w", c.name, err)
					}
					results[i] = append(results[i], res)
				}
			}
			for i, c := range cases {
				runs := results[i]
				slices.SortFunc(runs, func(a, b rateResult) int { return int(a.lat.pct(99) - b.lat.pct(99)) })
				r := runs[len(runs)/2]
				fmt.Fprintf(out, "| %s | %d B | %d | %d | %s | %s | %s | %s | %s |\n", c.name, size, r.sent, len(r.lat),
					us(r.lat.pct(50)), us(r.lat.pct(99)), us(r.lat.pct(99.9)), us(r.lat.max()), us(r.perMsg()))
				res.Latency = append(res.Latency, LatencyRow{
					Case: c.name, Bytes: size, Rate: *rate, Sent: r.sent, Received: len(r.lat),
					P50us: usf(r.lat.pct(50)), P99us: usf(r.lat.pct(99)),
				})
			}
		}
		fmt.Fprintln(out)
	}

	if want("fanout") {
		fmt.Fprintf(out, "## Fan-out throughput (%d messages, publisher as fast as acks allow)\n\n", *fanN)
		fmt.Fprintf(out, "Ours: one PublishStream publisher, %d publishes per request; NATS: one connection publishing asynchronously. A = subscribers decode every delivery, one message each (the default); "+
			"B = subscribers decode, max_batch=%d; C = subscribers count raw frames without decoding, max_batch=%d (what the NATS "+
			"subscriber does: it gets bytes). Msgs/s is messages published per second until every subscriber had all of them. "+
			"CPU/msg is this process's CPU time (publisher, server and subscribers together) per message published.\n\n", *pubBatch, *batch, *batch)
		fmt.Fprintln(out, "| fan-out | payload | A msgs/s | B msgs/s | C msgs/s | C deliveries/s | NATS msgs/s | NATS deliveries/s | A / NATS | B / NATS | C / NATS | CPU/msg A | CPU/msg C | CPU/msg NATS | NATS CPU / C CPU |")
		fmt.Fprintln(out, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
		for _, n := range fo {
			for _, size := range sz {
				var as, bs, cs, ts []rateResult
				for r := 0; r < *rounds; r++ {
					for _, c := range []struct {
						dst *[]rateResult
						fn  func() (rateResult, error)
					}{
						{&as, func() (rateResult, error) { return ours.fanout(ctx, size, *fanN, n, *workers, false, 0) }},
						{&bs, func() (rateResult, error) { return ours.fanout(ctx, size, *fanN, n, *workers, false, *batch) }},
						{&cs, func() (rateResult, error) { return ours.fanout(ctx, size, *fanN, n, *workers, true, *batch) }},
						{&ts, func() (rateResult, error) { return nt.fanout(size, *fanN, n) }},
					} {
						res, err := measured(c.fn)
						if err != nil {
							return fmt.Errorf("fan-out 1→%d %d B: %w", n, size, err)
						}
						if res.dropped > 0 {
							return fmt.Errorf("fan-out 1→%d %d B: %d deliveries dropped; raise the queue", n, size, res.dropped)
						}
						*c.dst = append(*c.dst, res)
					}
				}
				a, b, c, t := mid(as), mid(bs), mid(cs), mid(ts)
				fmt.Fprintf(out, "| 1→%d | %d B | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %s | %s | %s | %.2f |\n", n, size,
					a.rate, b.rate, c.rate, c.rate*float64(n), t.rate, t.rate*float64(n),
					a.rate/t.rate, b.rate/t.rate, c.rate/t.rate, us(a.perMsg()), us(c.perMsg()), us(t.perMsg()),
					float64(t.perMsg())/float64(c.perMsg()))
				res.Fanout = append(res.Fanout, FanoutRow{Subscribers: n, Bytes: size, OursA: a.rate, OursB: b.rate, OursC: c.rate, NATS: t.rate})
			}
		}
		fmt.Fprintln(out)
	}
	return nil
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, errors.New("want positive integers separated by commas")
		}
		out = append(out, n)
	}
	return out, nil
}

// latencies is a sample of durations.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func (l latencies) mean() time.Duration {
	if len(l) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	return sum / time.Duration(len(l))
}

func (l latencies) max() time.Duration {
	if len(l) == 0 {
		return 0
	}
	return slices.Max(l)
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", usf(d)) }

func usf(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// rateResult is the outcome of a throughput or paced case.
type rateResult struct {
	rate    float64 // messages per second
	sent    int
	lat     latencies
	dropped uint64
	cpu     time.Duration // process CPU time the case used
}

// perMsg is CPU time per message published.
func (r rateResult) perMsg() time.Duration {
	if r.sent == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.sent)
}

// measured runs fn and records the process CPU time it used.
func measured(fn func() (rateResult, error)) (rateResult, error) {
	c0 := cputime.Process()
	r, err := fn()
	r.cpu = cputime.Process() - c0
	return r, err
}

// mid returns the run with the median rate.
func mid(runs []rateResult) rateResult {
	runs = slices.Clone(runs)
	slices.SortFunc(runs, func(a, b rateResult) int { return cmpFloat(a.rate, b.rate) })
	return runs[len(runs)/2]
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pace calls send for message i at start + i/rate until d has passed, and
// returns how many it sent. It sleeps only when more than a millisecond
// ahead, so bursts stay short and the average rate is exact.
func pace(rate int, d time.Duration, send func(i int)) int {
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	n := int(d / interval)
	for i := 0; i < n; i++ {
		if ahead := time.Until(start.Add(time.Duration(i) * interval)); ahead > time.Millisecond {
			time.Sleep(ahead)
		}
		send(i)
	}
	return n
}

// padding returns n bytes of filler.
func padding(n int) string { return strings.Repeat("x", n) }
