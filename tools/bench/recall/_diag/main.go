// Temporary diagnostics (not part of the deliverable).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/continuum-mesh/continuum/pkg/region"
	"github.com/continuum-mesh/continuum/services/hippocampus"
	"github.com/continuum-mesh/continuum/tools/bench/recall"
)

func main() {
	f, _ := os.Open(os.Args[1])
	turns, _ := recall.ReadTrace(f)
	start := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	clock := region.NewManualClock(start)
	type slow struct {
		d    time.Duration
		at   time.Time
		ch   string
		n, i int
	}
	var slows []slow
	turn := 0
	svc, _ := hippocampus.New(hippocampus.Config{}, hippocampus.Deps{Clock: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnTick: func(t region.Telemetry) {
			if t.Duration > 20*time.Millisecond {
				slows = append(slows, slow{t.Duration, t.Start, t.Channel, turn, 0})
			}
		}})
	ctx := context.Background()
	for i, t := range turns {
		turn = i
		at := start.Add(time.Duration(t.T * float64(time.Second)))
		svc.Runner().AdvanceTo(ctx, at)
		if t.Needs != nil {
			sl := svc.PeekLocal(t.Persona, t.Channel)
			hit := false
			if sl != nil {
				for _, it := range sl.Items {
					hit = hit || it.ID == *t.Needs
				}
			}
			if !hit {
				svc.WouldStage(t.Persona, t.Channel, *t.Needs)
			}
			svc.Consume(ctx, t.Persona, t.Channel, []string{*t.Needs})
		}
		svc.Remember(ctx, t.Persona, t.Channel, hippocampus.EngramInput{ID: t.Engram, Topics: t.Topics, Entities: t.Entities, Importance: uint32(t.Importance), At: at})
	}
	sort.Slice(slows, func(i, j int) bool { return slows[i].d > slows[j].d })
	for _, s := range slows[:min(len(slows), 15)] {
		fmt.Println(s.d, s.ch, "after turn", s.n)
	}
	fmt.Println(len(slows), "ticks over 20ms")
}
