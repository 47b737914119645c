// Package jitter measures what the machine itself does to a short
// operation's tail latency, with no mesh code involved: how often a busy
// thread loses the CPU and for how long (the gaps a tight clock-reading
// loop sees), and the p50/p99 of a fixed, allocation-free CPU loop sized
// to take a few microseconds. A latency goal in the tens of microseconds
// can be judged only against that floor: on a VM whose vCPU stalls for
// 40 µs a thousand times a second, an 8 µs operation has about a 1% chance
// of meeting a stall, so its p99 is a stall whatever the code does.
package jitter

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"
)

// Gaps is what the clock-reading loop saw.
type Gaps struct {
	// PerSecond is the rate of gaps of at least MinUs.
	PerSecond float64 `json:"per_second"`
	MinUs     float64 `json:"min_us"`
	// MedianUs and P99Us describe the gaps' lengths.
	MedianUs float64 `json:"median_us"`
	P99Us    float64 `json:"p99_us"`
	// StolenPct is the share of the run the gaps took.
	StolenPct float64 `json:"stolen_pct"`
}

// Loop is one fixed CPU loop's latency distribution.
type Loop struct {
	Iterations int     `json:"iterations"`
	P50us      float64 `json:"p50_us"`
	P99us      float64 `json:"p99_us"`
	P999us     float64 `json:"p999_us"`
}

// Result is one run.
type Result struct {
	Gaps  Gaps   `json:"gaps"`
	Loops []Loop `json:"loops"`
}

// Run parses flags, measures and prints the figures and, last, the Result
// as one line of JSON.
func Run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench jitter", flag.ContinueOnError)
	d := fs.Duration("duration", 2*time.Second, "how long the clock-reading loop runs")
	minGap := fs.Duration("min-gap", 10*time.Microsecond, "shortest gap counted as the thread losing the CPU")
	calls := fs.Int("calls", 20000, "timed runs of each fixed loop")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res := Result{Gaps: gaps(*d, *minGap)}
	g := res.Gaps
	fmt.Fprintf(out, "gaps ≥ %.0f µs: %.0f per second, median %.1f µs, p99 %.1f µs, %.2f%% of the time\n",
		g.MinUs, g.PerSecond, g.MedianUs, g.P99Us, g.StolenPct)
	perIter := calibrate()
	for _, us := range []float64{2, 4, 6, 8, 12, 16} {
		l := loop(int(us*1000/perIter), *calls)
		res.Loops = append(res.Loops, l)
		fmt.Fprintf(out, "fixed loop of %2.0f µs: p50 %5.1f µs  p99 %5.1f µs  p99.9 %6.1f µs\n", us, l.P50us, l.P99us, l.P999us)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, string(b))
	return err
}

// gaps reads the clock in a tight loop for d and records every interval
// of at least min between two reads: time the thread did not run.
func gaps(d, min time.Duration) Gaps {
	var seen []time.Duration
	var stolen time.Duration
	start := time.Now()
	last := start
	for {
		now := time.Now()
		if g := now.Sub(last); g >= min {
			seen = append(seen, g)
			stolen += g
		}
		last = now
		if now.Sub(start) >= d {
			break
		}
	}
	el := time.Since(start)
	out := Gaps{MinUs: us(min), PerSecond: float64(len(seen)) / el.Seconds(), StolenPct: 100 * stolen.Seconds() / el.Seconds()}
	if len(seen) > 0 {
		slices.Sort(seen)
		out.MedianUs = us(seen[len(seen)/2])
		out.P99Us = us(seen[len(seen)*99/100])
	}
	return out
}

// spin is the fixed work: integer arithmetic, no memory traffic.
func spin(n int) uint64 {
	x := uint64(n)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

// calibrate returns nanoseconds per spin iteration (the median of a few
// trials, so a stall during one does not skew it).
func calibrate() float64 {
	var t []float64
	for range 7 {
		t0 := time.Now()
		runtime.KeepAlive(spin(1_000_000))
		t = append(t, float64(time.Since(t0).Nanoseconds())/1e6)
	}
	slices.Sort(t)
	return t[len(t)/2]
}

func loop(iters, calls int) Loop {
	lat := make([]time.Duration, calls)
	for i := range lat {
		t0 := time.Now()
		runtime.KeepAlive(spin(iters))
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	return Loop{Iterations: iters, P50us: us(lat[calls/2]), P99us: us(lat[calls*99/100]), P999us: us(lat[calls*999/1000])}
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
