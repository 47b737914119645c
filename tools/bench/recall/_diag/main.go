// Temporary diagnostics (not part of the deliverable).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/continuum-mesh/continuum/pkg/region"
	"github.com/continuum-mesh/continuum/services/hippocampus"
	"github.com/continuum-mesh/continuum/tools/bench/recall"
)

func idx(id string) int { n, _ := strconv.Atoi(id[strings.Index(id, "-")+1:]); return n }

func main() {
	f, _ := os.Open(os.Args[1])
	turns, _ := recall.ReadTrace(f)
	start := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	clock := region.NewManualClock(start)
	svc, _ := hippocampus.New(hippocampus.Config{K: 8}, hippocampus.Deps{Clock: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx := context.Background()
	lastIdx := map[string]int{}
	missLag, itemLag, pools := map[int]int{}, map[int]int{}, map[string]int{}
	n := 0
	for _, t := range turns {
		at := start.Add(time.Duration(t.T * float64(time.Second)))
		svc.Runner().AdvanceTo(ctx, at)
		if t.Needs != nil {
			need := *t.Needs
			sl := svc.PeekLocal(t.Persona, t.Channel)
			hit := false
			if sl != nil {
				for _, it := range sl.Items {
					hit = hit || it.ID == need
				}
			}
			if t.Kind == "same-thread" && !hit && sl != nil {
				n++
				missLag[lastIdx[t.Persona]-idx(need)]++
				for _, it := range sl.Items {
					l := lastIdx[t.Persona] - idx(it.ID)
					if l > 15 {
						l = 99
						pools[fmt.Sprint("old pool ", it.Pool)]++
					}
					itemLag[l]++
				}
			}
			svc.Consume(ctx, t.Persona, t.Channel, []string{need})
		}
		svc.Remember(ctx, t.Persona, t.Channel, hippocampus.EngramInput{ID: t.Engram, Topics: t.Topics, Entities: t.Entities, Importance: uint32(t.Importance), At: at})
		lastIdx[t.Persona] = idx(t.Engram)
	}
	pr := func(name string, m map[int]int) {
		var ks []int
		for k := range m {
			ks = append(ks, k)
		}
		sort.Ints(ks)
		fmt.Print(name, ": ")
		for _, k := range ks {
			fmt.Printf("%d:%d ", k, m[k])
		}
		fmt.Println()
	}
	fmt.Println("same-thread misses with a slice", n, pools)
	pr("miss lags", missLag)
	pr("item lags (99 = older than 15)", itemLag)
}
