// Temporary diagnostics (not part of the deliverable).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
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
	svc, _ := hippocampus.New(hippocampus.Config{K: 8}, hippocampus.Deps{Clock: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx := context.Background()
	lastTurn := map[string]time.Time{}
	cat := map[string]int{}
	for _, t := range turns {
		at := start.Add(time.Duration(t.T * float64(time.Second)))
		svc.Runner().AdvanceTo(ctx, at)
		key := t.Persona + "/" + t.Channel
		if t.Needs != nil {
			need := *t.Needs
			sl := svc.PeekLocal(t.Persona, t.Channel)
			in := false
			if sl != nil {
				for _, it := range sl.Items {
					if it.ID == need {
						in = true
					}
				}
			}
			hit := in && !sl.Expired(at)
			if !hit && svc.WouldStage(t.Persona, t.Channel, need) {
				gap := at.Sub(lastTurn[key])
				switch {
				case sl == nil:
					cat["no slice"]++
				case sl.Expired(at) && in:
					cat["expired, but in the stale slice"]++
				case sl.Expired(at):
					cat["expired, not in it"]++
				default:
					cat[fmt.Sprintf("fresh slice, gap since channel's last turn > 5min: %v", gap > 5*time.Minute)]++
				}
			}
			svc.Consume(ctx, t.Persona, t.Channel, []string{need})
		}
		svc.Remember(ctx, t.Persona, t.Channel, hippocampus.EngramInput{ID: t.Engram, Topics: t.Topics, Entities: t.Entities, Importance: uint32(t.Importance), At: at})
		lastTurn[key] = at
	}
	fmt.Println(cat)
}
