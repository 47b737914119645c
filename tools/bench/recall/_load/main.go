// Temporary diagnostics (not part of the deliverable).
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/continuum-mesh/continuum/pkg/region"
	"github.com/continuum-mesh/continuum/services/hippocampus"
	"github.com/continuum-mesh/continuum/tools/bench/recall"
	"github.com/continuum-mesh/continuum/tools/bench/recallgen"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	o := recallgen.DefaultOptions()
	o.Personas, o.Turns = 1, n
	var buf bytes.Buffer
	recallgen.Generate(o, &buf)
	turns, _ := recall.ReadTrace(&buf)
	start := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	clock := region.NewManualClock(start)
	svc, _ := hippocampus.New(hippocampus.Config{}, hippocampus.Deps{Clock: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f, _ := os.Create("/tmp/load.prof")
	pprof.StartCPUProfile(f)
	ctx := context.Background()
	t0 := time.Now()
	for i, t := range turns {
		clock.Set(start.Add(time.Duration(t.T * float64(time.Second))))
		if t.Needs != nil {
			svc.Consume(ctx, t.Persona, t.Channel, []string{*t.Needs})
		}
		svc.Remember(ctx, t.Persona, t.Channel, hippocampus.EngramInput{ID: t.Engram, Topics: t.Topics, Entities: t.Entities, Importance: uint32(t.Importance)})
		if i%5000 == 0 {
			fmt.Println(i, time.Since(t0))
		}
	}
	fmt.Println("loaded", time.Since(t0))
	pprof.StopCPUProfile()
	f2, _ := os.Create("/tmp/tick.prof")
	pprof.StartCPUProfile(f2)
	for _, ch := range []string{"chat", "email", "voice"} {
		for i := 0; i < 3; i++ {
			t1 := time.Now()
			svc.Runner().Kick(hippocampus.RegionID, region.Target{Persona: "p1", Channel: ch}, 0)
			svc.Runner().AdvanceTo(ctx, clock.Now().Add(time.Second))
			fmt.Println("tick", ch, time.Since(t1))
		}
	}
	pprof.StopCPUProfile()
}
