package paging

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/continuum-mesh/continuum/services/genome"
	"github.com/continuum-mesh/continuum/tools/bench/paging/gen"
)

// runReport generates every trace kind, replays each through the manager
// and prints a Markdown table beside LRU and Belady, then the rows as JSON.
func runReport(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("paging report", flag.ContinueOnError)
	fs.SetOutput(out)
	var base gen.Spec
	fs.IntVar(&base.Requests, "requests", 0, "accesses per trace (default 1000000)")
	fs.IntVar(&base.Keys, "keys", 0, "key universe (default 100000)")
	fs.IntVar(&base.Capacity, "capacity", 0, "Fast tier capacity in pages (default 2000)")
	fs.Uint64Var(&base.Seed, "seed", 0, "random seed (default 1)")
	policy := fs.String("policy", genome.PolicyWTinyLFU, "Fast tier policy")
	kinds := fs.String("kinds", strings.Join(gen.Kinds(), ","), "trace kinds to run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base = base.Defaults()
	fmt.Fprintf(out, "capacity %d pages, %d requests per trace, %d keys, Fast policy %s\n\n", base.Capacity, base.Requests, base.Keys, *policy)
	fmt.Fprintln(out, "| trace | manager | LRU | Belady (MIN) | manager / Belady | manager − LRU | Belady with bypass | manager / bypass |")
	fmt.Fprintln(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	rows, err := Report(base, *policy, strings.Split(*kinds, ","), func(r ReportRow) {
		fmt.Fprintf(out, "| %s | %.4f | %.4f | %.4f | %.1f%% | %+.4f | %.4f | %.1f%% |\n", r.Trace, r.HitRatio, *r.LRUHitRatio,
			*r.BeladyHitRatio, 100**r.OfBelady, r.HitRatio-*r.LRUHitRatio, *r.BypassHitRatio, 100*r.HitRatio / *r.BypassHitRatio)
	})
	if err != nil {
		return err
	}
	b, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, string(b))
	return nil
}

// ReportRow is one trace of the report: the replay beside its baselines.
type ReportRow struct {
	Trace string `json:"trace"`
	Result
}

// Report generates a trace of each kind from base, replays it through the
// manager with the Fast tier policy, computes LRU and Belady on it, and
// returns the rows (calling each, when not nil, as a row is done).
func Report(base gen.Spec, policy string, kinds []string, each func(ReportRow)) ([]ReportRow, error) {
	base = base.Defaults()
	var rows []ReportRow
	for _, kind := range kinds {
		spec := base
		spec.Kind = strings.TrimSpace(kind)
		var buf bytes.Buffer
		if err := gen.Write(&buf, spec); err != nil {
			return nil, err
		}
		tr, err := ReadTrace(&buf)
		if err != nil {
			return nil, err
		}
		res, err := Compare(tr, spec.Capacity, policy, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Kind, err)
		}
		row := ReportRow{Trace: spec.Kind, Result: res}
		rows = append(rows, row)
		if each != nil {
			each(row)
		}
	}
	return rows, nil
}
