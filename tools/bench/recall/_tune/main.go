// Temporary tuning harness (not part of the deliverable).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/continuum-mesh/continuum/services/hippocampus"
	"github.com/continuum-mesh/continuum/tools/bench/recall"
)

func main() {
	trace := flag.String("trace", "/tmp/trace1.jsonl", "")
	grid := flag.String("grid", "wg", "")
	flag.Parse()
	f, _ := os.Open(*trace)
	turns, err := recall.ReadTrace(f)
	if err != nil {
		panic(err)
	}
	type run struct {
		name string
		m    hippocampus.Model
		full int
	}
	var runs []run
	base := hippocampus.DefaultModel()
	for _, spec := range strings.Split(*grid, ";") {
		m := base
		full := 0
		name := spec
		for _, kv := range strings.Split(spec, ",") {
			if kv == "" || kv == "base" {
				continue
			}
			var k string
			var v float64
			parts := strings.SplitN(kv, "=", 2)
			k = parts[0]
			fmt.Sscan(parts[1], &v)
			switch k {
			case "wg":
				m.WGraph = v
			case "wctx":
				m.WContext = v
			case "wc":
				m.WChannel = v
			case "limp":
				m.LambdaImp = v
			case "la":
				m.LambdaA = v
			case "p0":
				m.P0 = v
			case "pmin":
				m.PMin = v
			case "alpha":
				m.Spread.Alpha = v
			case "d":
				m.D = v
			case "wlag":
				m.WLag = v
			case "full":
				full = int(v)
			case "fan":
				m.Spread.MaxFanOut = int(v)
			case "pulses":
				m.Spread.Pulses = int(v)
			}
		}
		runs = append(runs, run{name, m, full})
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	out := make([]string, len(runs))
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			res, err := recall.Replay(context.Background(), turns, recall.Options{K: 8, Scorer: "ours", Model: r.m, Tweak: func(c *hippocampus.Config) {
				c.FullScanLimit = r.full
				if r.full == 300 {
					c.CandidatesPerSource = 8
				}
			}})
			if err != nil {
				out[i] = err.Error()
				return
			}
			var ks []string
			for _, k := range []string{"same-thread", "shared-entity", "landmark", "re-recall", "same-channel", "random"} {
				ks = append(ks, fmt.Sprintf("%.3f", res.Kinds[k].HitAtK))
			}
			out[i] = fmt.Sprintf("%-40s hit@8 %.4f  time %.3f  [%s]", r.name, res.HitAtK, res.Timeliness, strings.Join(ks, " "))
		}()
	}
	wg.Wait()
	for _, l := range out {
		fmt.Println(l)
	}
}
