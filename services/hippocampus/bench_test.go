package hippocampus_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/continuum-mesh/continuum/pkg/region"
	"github.com/continuum-mesh/continuum/services/hippocampus"
	"github.com/continuum-mesh/continuum/tools/bench/recall"
	"github.com/continuum-mesh/continuum/tools/bench/recallgen"
)

var benchEpoch = time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)

// loaded is a service holding one persona of n engrams from the trace
// generator's model (sessions, Zipf topics and entities, consumed needs),
// with no tick run yet.
type loaded struct {
	svc      *hippocampus.Service
	clock    *region.ManualClock
	persona  string
	channels []string
	mu       sync.Mutex
	ticks    []time.Duration
}

var loadCache sync.Map // n -> *loaded

func load(b *testing.B, n int) *loaded {
	b.Helper()
	if v, ok := loadCache.Load(n); ok {
		return v.(*loaded)
	}
	o := recallgen.DefaultOptions()
	o.Personas, o.Turns, o.Ceiling = 1, n, false
	var buf bytes.Buffer
	if _, _, err := recallgen.Generate(o, &buf); err != nil {
		b.Fatal(err)
	}
	turns, err := recall.ReadTrace(&buf)
	if err != nil {
		b.Fatal(err)
	}
	l := &loaded{clock: region.NewManualClock(benchEpoch)}
	l.svc, err = hippocampus.New(hippocampus.Config{}, hippocampus.Deps{
		Clock:  l.clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnTick: func(t region.Telemetry) {
			l.mu.Lock()
			l.ticks = append(l.ticks, t.Duration)
			l.mu.Unlock()
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, t := range turns {
		l.clock.Set(benchEpoch.Add(time.Duration(t.T * float64(time.Second))))
		if t.Needs != nil {
			if _, err := l.svc.Consume(ctx, t.Persona, t.Channel, []string{*t.Needs}); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := l.svc.Remember(ctx, t.Persona, t.Channel, hippocampus.EngramInput{
			ID: t.Engram, Topics: t.Topics, Entities: t.Entities, Importance: uint32(t.Importance),
		}); err != nil {
			b.Fatal(err)
		}
		l.persona = t.Persona
		if !slices.Contains(l.channels, t.Channel) {
			l.channels = append(l.channels, t.Channel)
		}
	}
	loadCache.Store(n, l)
	return l
}

// BenchmarkTick measures one tick (predict and publish for one persona's
// channel) at 10,000 and 100,000 engrams per persona, through the runner,
// and reports the percentiles of the ticks' wall time (p50-µs, p99-µs) and
// of their thread CPU time (cpu-p50-µs, cpu-p99-µs: what the tick itself
// cost, without the time a busy machine kept it descheduled).
func BenchmarkTick(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("engrams=%d", n), func(b *testing.B) {
			l := load(b, n)
			ctx := context.Background()
			l.mu.Lock()
			l.ticks = l.ticks[:0]
			l.mu.Unlock()
			// AdvanceTo ticks on this goroutine: lock it to its thread so
			// the thread's CPU time is the tick's, whatever the scheduler
			// does on a busy machine.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				ch := l.channels[i%len(l.channels)]
				c0 := threadCPU()
				l.svc.Runner().Kick(hippocampus.RegionID, region.Target{Persona: l.persona, Channel: ch}, 0)
				if _, err := l.svc.Runner().AdvanceTo(ctx, l.clock.Now().Add(time.Second)); err != nil {
					b.Fatal(err)
				}
				cpu = append(cpu, time.Duration(threadCPU()-c0))
			}
			b.StopTimer()
			slices.Sort(cpu)
			if cpu[len(cpu)-1] > 0 {
				b.ReportMetric(float64(cpu[len(cpu)/2].Microseconds()), "cpu-p50-µs")
				b.ReportMetric(float64(cpu[min(len(cpu)-1, len(cpu)*99/100)].Microseconds()), "cpu-p99-µs")
			}
			l.mu.Lock()
			d := slices.Clone(l.ticks)
			l.mu.Unlock()
			slices.Sort(d)
			if len(d) > 0 {
				b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(d[min(len(d)-1, len(d)*99/100)].Microseconds()), "p99-µs")
			}
		})
	}
}

// BenchmarkPeekLocal is the in-process hot path a request handler uses:
// find the (persona, channel) buffer and load its slice.
func BenchmarkPeekLocal(b *testing.B) {
	l := load(b, 10_000)
	ch := l.channels[0]
	l.svc.Runner().Kick(hippocampus.RegionID, region.Target{Persona: l.persona, Channel: ch}, 0)
	if _, err := l.svc.Runner().AdvanceTo(context.Background(), l.clock.Now().Add(time.Second)); err != nil {
		b.Fatal(err)
	}
	if l.svc.PeekLocal(l.persona, ch).Len() == 0 {
		b.Fatal("nothing staged")
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			n += l.svc.PeekLocal(l.persona, ch).Len()
		}
		_ = n
	})
}

// TestPeekLocalDoesNotAllocate guards the hot path.
func TestPeekLocalDoesNotAllocate(t *testing.T) {
	clock := region.NewManualClock(benchEpoch)
	svc, err := hippocampus.New(hippocampus.Config{}, hippocampus.Deps{Clock: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	for i := range 20 {
		if _, _, err := svc.Remember(ctx, "maya", "chat", hippocampus.EngramInput{ID: fmt.Sprint("e", i), Topics: []string{"t"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Runner().AdvanceTo(ctx, benchEpoch.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	n := 0
	if allocs := testing.AllocsPerRun(1000, func() { n += svc.PeekLocal("maya", "chat").Len() }); allocs != 0 {
		t.Fatalf("PeekLocal allocates %v times per call", allocs)
	}
	if n == 0 {
		t.Fatal("nothing staged")
	}
}

// BenchmarkRememberDurable is a durable Remember (journal fsync) with
// several writers sharing fsyncs.
func BenchmarkRememberDurable(b *testing.B) {
	svc, err := hippocampus.New(hippocampus.Config{DataDir: b.TempDir()}, hippocampus.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	var next sync.Mutex
	i := 0
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			next.Lock()
			i++
			id := fmt.Sprint("e", i)
			next.Unlock()
			if _, _, err := svc.Remember(ctx, fmt.Sprint("p", i%16), "chat", hippocampus.EngramInput{ID: id, Content: "benchmark", Topics: []string{"t"}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
