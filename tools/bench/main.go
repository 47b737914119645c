// Command bench runs the mesh's benchmarks and replayers:
//
//	go run ./tools/bench report [--short]   (make bench: every headline figure beside its anchor)
//	go run ./tools/bench router [--qps 1000 --duration 10s]
//	go run ./tools/bench jitter [--duration 2s]
//	go run ./tools/bench audit [--appends 50000 --appenders 64]
//	go run ./tools/bench paging --trace FILE --capacity N
//	go run ./tools/bench recall --trace FILE [--k 8]
//	go run ./tools/bench recall-gen --seed 1 --out trace.jsonl
//
// Each subcommand prints human-readable lines and, last, one line of JSON.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/continuum-mesh/continuum/tools/bench/auditbench"
	"github.com/continuum-mesh/continuum/tools/bench/jitter"
	"github.com/continuum-mesh/continuum/tools/bench/paging"
	"github.com/continuum-mesh/continuum/tools/bench/recall"
	"github.com/continuum-mesh/continuum/tools/bench/recallgen"
	"github.com/continuum-mesh/continuum/tools/bench/report"
	"github.com/continuum-mesh/continuum/tools/bench/routerbench"
)

type subcommand struct {
	run  func(args []string, out io.Writer) error
	help string
}

func subcommands() map[string]subcommand {
	return map[string]subcommand{
		"report":     {report.Run, "every headline figure beside its anchor, one table (dist/bench/report.md and .json)"},
		"router":     {routerbench.Run, "in-process dispatch latency and router overhead over a direct gRPC call"},
		"jitter":     {jitter.Run, "the machine's own floor: how often a busy thread loses the CPU, and the p99 of fixed µs-long loops"},
		"audit":      {auditbench.Run, "durable appends/s in process and over gRPC, verification entries/s, beside fsync and SHA-256 anchors"},
		"paging":     {paging.Run, "genome trace replayer, generators and hit-ratio report"},
		"recall":     {recall.Run, "hippocampus replayer: hit@K, timeliness, tick latency"},
		"recall-gen": {recallgen.Run, "deterministic synthetic recall trace generator"},
	}
}

func main() {
	subs := subcommands()
	if len(os.Args) < 2 || subs[os.Args[1]].run == nil {
		fmt.Fprintln(os.Stderr, "usage: go run ./tools/bench <subcommand> [flags]")
		names := make([]string, 0, len(subs))
		for n := range subs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, subs[n].help)
		}
		os.Exit(2)
	}
	if err := subs[os.Args[1]].run(os.Args[2:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
