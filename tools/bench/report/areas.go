package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/continuum-mesh/continuum/pkg/mesh"
	"github.com/continuum-mesh/continuum/services/genome"
	"github.com/continuum-mesh/continuum/services/hippocampus"
	"github.com/continuum-mesh/continuum/tools/bench/auditbench"
	"github.com/continuum-mesh/continuum/tools/bench/events"
	"github.com/continuum-mesh/continuum/tools/bench/meshbench"
	"github.com/continuum-mesh/continuum/tools/bench/paging"
	"github.com/continuum-mesh/continuum/tools/bench/recall"
	"github.com/continuum-mesh/continuum/tools/bench/recallgen"
	"github.com/continuum-mesh/continuum/tools/bench/routerbench"
)

func runRouter(ctx context.Context, s Sizes, _ string) ([]Row, any, error) {
	o := s.Router
	res, err := routerbench.Measure(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	cmd := fmt.Sprintf("go run ./tools/bench router --qps %d --duration %s --inproc %d", o.QPS, o.Duration, o.Inproc)
	paced := fmt.Sprintf("paced %d QPS over loopback", o.QPS)
	return []Row{
		{
			Area: "router", Figure: fmt.Sprintf("in-process dispatch p99 (`debug/get-log-level` through Dispatch, every interceptor; node at --gc-percent %d)", res.GCPercent),
			Goal: "≤ 50 µs", Ours: fmt.Sprintf("%s (p50 %s)", us(res.InprocP99us), us(res.InprocP50us)),
			Met: met(res.InprocP99us <= 50), Command: cmd, Value: res.InprocP99us, Unit: "µs",
		},
		{
			Area: "router", Figure: "overhead over a direct gRPC call, p50, " + paced,
			Goal: "≤ +300 µs", Ours: fmt.Sprintf("%s via Dispatch (%s)", us(res.DispatchP50us), plusUs(res.OverheadP50us)),
			Anchor: fmt.Sprintf("%s direct; Dapr sidecar adds 1.68 ms (published)", us(res.DirectP50us)),
			Ratio:  times(res.DispatchP50us, res.DirectP50us), Met: met(res.OverheadP50us <= 300), Command: cmd,
			Value: res.DispatchP50us, AnchorValue: res.DirectP50us, Unit: "µs",
		},
		{
			Area: "router", Figure: "overhead over a direct gRPC call, p99, " + paced,
			Goal: "≤ +1 ms", Ours: fmt.Sprintf("%s via Dispatch (%s)", us(res.DispatchP99us), plusUs(res.OverheadP99us)),
			Anchor: us(res.DirectP99us) + " direct",
			Ratio:  times(res.DispatchP99us, res.DirectP99us), Met: met(res.OverheadP99us <= 1000), Command: cmd,
			Value: res.DispatchP99us, AnchorValue: res.DirectP99us, Unit: "µs",
		},
	}, res, nil
}

func runEvents(_ context.Context, s Sizes, dir string) ([]Row, any, error) {
	path := filepath.Join(dir, "events.md")
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	res, err := events.Measure(s.EventsArgs, f)
	if err != nil {
		return nil, nil, err
	}
	cmd := "go run ./tools/eventsbench " + strings.Join(s.EventsArgs, " ")
	var rows []Row
	var missing []string
	ack := func(name string, size int) *events.AckRow {
		i := slices.IndexFunc(res.Ack, func(r events.AckRow) bool { return r.Case == name && r.Bytes == size })
		if i < 0 {
			missing = append(missing, fmt.Sprintf("ack %q %d B", name, size))
			return nil
		}
		return &res.Ack[i]
	}
	for _, c := range []struct{ figure, ours, anchor, anchorName string }{
		{"publish-ack p50, plain topic, 16 B, sequential", "ours plain (no class)", "NATS JetStream memory", "JetStream memory"},
		{"publish-ack p50, durable (acked after fdatasync), 16 B, sequential", "ours durable (fsync per group commit)", "NATS JetStream file (sync always)", "JetStream file, sync always"},
	} {
		o, a := ack(c.ours, 16), ack(c.anchor, 16)
		if o == nil || a == nil {
			continue
		}
		rows = append(rows, Row{
			Area: "events", Figure: c.figure, Ours: fmt.Sprintf("%s (p99 %s)", us(o.P50us), us(o.P99us)),
			Anchor: fmt.Sprintf("%s %s (p99 %s)", c.anchorName, us(a.P50us), us(a.P99us)), Ratio: times(o.P50us, a.P50us), Met: MetNone,
			Command: cmd + " -only ack", Value: o.P50us, AnchorValue: a.P50us, Unit: "µs",
		})
	}
	rate := func(name string) float64 {
		i := slices.IndexFunc(res.Durable, func(r events.RateRow) bool { return r.Case == name })
		if i < 0 {
			missing = append(missing, "durable "+name)
			return 0
		}
		return res.Durable[i].MsgsPerS
	}
	if len(res.Durable) > 0 {
		stream, unary, js, jsAsync := rate("ours stream"), rate("ours unary"), rate("NATS JetStream file"), rate("NATS JetStream file async")
		rows = append(rows, Row{
			Area: "events", Figure: "durable publish throughput, 1 KB, one pipelined publisher (PublishStream, group commit)",
			Ours:   fmt.Sprintf("%s msg/s (%s with concurrent unary Publish)", count(stream), count(unary)),
			Anchor: fmt.Sprintf("JetStream file, sync always, async publish %s msg/s (%s with concurrent publishers); Dapr bulk publish 13.6k/s (published)", count(jsAsync), count(js)),
			Ratio:  times(stream, jsAsync), Met: MetNone, Command: cmd + " -only durable",
			Value: stream, AnchorValue: jsAsync, Unit: "msg/s",
		})
	}
	for _, lr := range res.Latency {
		if lr.Case != "ours plain, PublishStream" {
			continue
		}
		i := slices.IndexFunc(res.Latency, func(r events.LatencyRow) bool { return r.Case == "NATS core" && r.Bytes == lr.Bytes })
		if i < 0 {
			missing = append(missing, fmt.Sprintf("latency NATS core %d B", lr.Bytes))
			continue
		}
		nt := res.Latency[i]
		fig := fmt.Sprintf("publish→deliver at %d msg/s, %s, plain topic, PublishStream", lr.Rate, size(lr.Bytes))
		rows = append(rows,
			Row{
				Area: "events", Figure: fig + ", p50", Ours: us(lr.P50us), Anchor: "NATS core " + us(nt.P50us),
				Ratio: times(lr.P50us, nt.P50us), Met: MetNone, Command: cmd + " -only latency", Value: lr.P50us, AnchorValue: nt.P50us, Unit: "µs",
			},
			Row{
				Area: "events", Figure: fig + ", p99", Goal: "≤ 2 ms", Ours: us(lr.P99us), Anchor: "NATS core " + us(nt.P99us),
				Ratio: times(lr.P99us, nt.P99us), Met: met(lr.P99us <= 2000), Command: cmd + " -only latency", Value: lr.P99us, AnchorValue: nt.P99us, Unit: "µs",
			})
	}
	for _, fr := range res.Fanout {
		goal := "—"
		if fr.Bytes >= 1024 {
			goal = "≥ 0.5× NATS"
		}
		for _, v := range []struct {
			name string
			rate float64
		}{
			{"default subscribers (one decoded message per delivery)", fr.OursA},
			{"batched subscribers counting raw frames (max_batch 64, like the NATS subscriber)", fr.OursC},
		} {
			r := Row{
				Area: "events", Figure: fmt.Sprintf("fan-out 1→%d, %s, %s", fr.Subscribers, size(fr.Bytes), v.name), Goal: goal,
				Ours: count(v.rate) + " msg/s", Anchor: "NATS " + count(fr.NATS) + " msg/s", Ratio: times(v.rate, fr.NATS),
				Met: MetNone, Command: cmd + " -only fanout", Value: v.rate, AnchorValue: fr.NATS, Unit: "msg/s",
			}
			if goal != "—" {
				r.Met = met(fr.NATS > 0 && v.rate/fr.NATS >= 0.5)
			}
			rows = append(rows, r)
		}
	}
	if len(missing) > 0 {
		return rows, res, fmt.Errorf("events results lack %s", strings.Join(missing, ", "))
	}
	return rows, res, nil
}

func runAudit(ctx context.Context, s Sizes, _ string) ([]Row, any, error) {
	o := s.Audit
	res, err := auditbench.Measure(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	cmd := fmt.Sprintf("go run ./tools/bench audit --appends %d --appenders %d --anchor-appends %d --verify-for %s",
		o.Appends, o.Appenders, o.AnchorAppends, o.VerifyFor)
	anchor := fmt.Sprintf("one writer, fdatasync per entry %s/s; Tessera ~2.9k/s on one node (published)", count(res.FsyncEach.PerS))
	hash := fmt.Sprintf("SHA-256 of the log's bytes, one core: %s entries/s", count(res.SHA256.PerS))
	return []Row{
		{
			Area: "audit", Figure: fmt.Sprintf("durable appends/s (ack after fdatasync), in process, %d appenders", res.Appenders), Goal: "≥ 20k/s",
			Ours: fmt.Sprintf("%s/s (%.0f CPU-µs each)", count(res.Inproc.PerS), res.Inproc.CPUusPer), Anchor: anchor,
			Ratio: times(res.Inproc.PerS, res.FsyncEach.PerS), Met: met(res.Inproc.PerS >= 20000), Command: cmd,
			Value: res.Inproc.PerS, AnchorValue: res.FsyncEach.PerS, Unit: "appends/s",
		},
		{
			Area: "audit", Figure: fmt.Sprintf("durable appends/s over loopback gRPC (unary Append), %d callers", res.Appenders), Goal: "≥ 20k/s",
			Ours: fmt.Sprintf("%s/s (%.0f CPU-µs each, client and server)", count(res.GRPC.PerS), res.GRPC.CPUusPer), Anchor: anchor,
			Ratio: times(res.GRPC.PerS, res.FsyncEach.PerS), Met: met(res.GRPC.PerS >= 20000), Command: cmd,
			Value: res.GRPC.PerS, AnchorValue: res.FsyncEach.PerS, Unit: "appends/s",
		},
		{
			Area: "audit", Figure: fmt.Sprintf("durable appends/s over loopback gRPC, pipelined: %d AppendStream streams of %d-entry requests", res.Streams, res.Batch), Goal: "≥ 20k/s",
			Ours: fmt.Sprintf("%s/s (%.0f CPU-µs each, client and server)", count(res.GRPCStream.PerS), res.GRPCStream.CPUusPer), Anchor: anchor,
			Ratio: times(res.GRPCStream.PerS, res.FsyncEach.PerS), Met: met(res.GRPCStream.PerS >= 20000), Command: cmd,
			Value: res.GRPCStream.PerS, AnchorValue: res.FsyncEach.PerS, Unit: "appends/s",
		},
		{
			Area: "audit", Figure: fmt.Sprintf("verification, AuditService.Verify, %s-entry log, every core", count(float64(res.LogEntries))), Goal: "≥ 200k entries/s",
			Ours: fmt.Sprintf("%s entries/s (%.1f CPU-µs each)", count(res.Verify.PerS), res.Verify.CPUusPer), Anchor: hash,
			Ratio: times(res.Verify.PerS, res.SHA256.PerS), Met: met(res.Verify.PerS >= 200000), Command: cmd,
			Value: res.Verify.PerS, AnchorValue: res.SHA256.PerS, Unit: "entries/s",
		},
		{
			Area: "audit", Figure: "verification of the same file offline (`continuum audit verify FILE`), every core", Goal: "≥ 200k entries/s",
			Ours: fmt.Sprintf("%s entries/s (%.1f CPU-µs each)", count(res.VerifyFile.PerS), res.VerifyFile.CPUusPer), Anchor: hash,
			Ratio: times(res.VerifyFile.PerS, res.SHA256.PerS), Met: met(res.VerifyFile.PerS >= 200000), Command: cmd,
			Value: res.VerifyFile.PerS, AnchorValue: res.SHA256.PerS, Unit: "entries/s",
		},
	}, res, nil
}

func runGenome(_ context.Context, s Sizes, _ string) ([]Row, any, error) {
	spec := s.Paging.Defaults()
	res, err := paging.Report(spec, genome.PolicyWTinyLFU, s.PagingKinds, nil)
	if err != nil {
		return nil, nil, err
	}
	cmd := fmt.Sprintf("go run ./tools/bench paging report --capacity %d --requests %d --keys %d --seed %d", spec.Capacity, spec.Requests, spec.Keys, spec.Seed)
	var rows []Row
	for _, r := range res {
		if r.LRUHitRatio == nil || r.BeladyHitRatio == nil || r.OfBelady == nil {
			return rows, res, fmt.Errorf("paging %s: no baselines", r.Trace)
		}
		lru, bel, of := *r.LRUHitRatio, *r.BeladyHitRatio, *r.OfBelady
		goal, ok := "≥ LRU", r.HitRatio >= lru
		if r.Trace == "zipf" || r.Trace == "personas" {
			goal, ok = "≥ 85% of Belady, ≥ LRU", ok && of >= 0.85
		}
		rows = append(rows, Row{
			Area: "genome", Figure: fmt.Sprintf("hit ratio, %s trace, Fast tier %d pages (%s requests, %s keys)", r.Trace, spec.Capacity, count(float64(spec.Requests)), count(float64(spec.Keys))),
			Goal: goal, Ours: fmt.Sprintf("%.4f", r.HitRatio), Anchor: fmt.Sprintf("Belady (MIN) %.4f, LRU %.4f", bel, lru),
			Ratio: fmt.Sprintf("%.1f%% of Belady, %+.4f vs LRU", 100*of, r.HitRatio-lru), Met: met(ok),
			Command: cmd + " --kinds " + r.Trace, Value: r.HitRatio, AnchorValue: bel, Unit: "hit ratio",
		})
	}
	return rows, res, nil
}

// recallRun is one trace's replay by every scorer.
type recallRun struct {
	Seed    uint64                    `json:"seed"`
	Ceiling float64                   `json:"bayes_ceiling_hit_at_8"`
	Results map[string]*recall.Result `json:"results"`
}

func runHippocampus(ctx context.Context, s Sizes, _ string) ([]Row, any, error) {
	var rows []Row
	var runs []recallRun
	for _, seed := range s.RecallSeeds {
		o := s.Recall
		o.Seed = seed
		var buf bytes.Buffer
		_, ceil, err := recallgen.Generate(o, &buf)
		if err != nil {
			return rows, runs, err
		}
		turns, err := recall.ReadTrace(&buf)
		if err != nil {
			return rows, runs, err
		}
		run := recallRun{Seed: seed, Results: map[string]*recall.Result{}}
		if ceil != nil {
			run.Ceiling = ceil.HitAt(8)
		}
		for _, sc := range hippocampus.Scorers {
			r, err := recall.Replay(ctx, turns, recall.Options{K: 8, Scorer: sc})
			if err != nil {
				return rows, runs, fmt.Errorf("seed %d, scorer %s: %w", seed, sc, err)
			}
			run.Results[sc] = r
		}
		runs = append(runs, run)
		ours := run.Results[hippocampus.ScorerOurs]
		best, bestName := 0.0, ""
		for _, sc := range hippocampus.Scorers {
			if r := run.Results[sc]; sc != hippocampus.ScorerOurs && r.HitAtK > best {
				best, bestName = r.HitAtK, sc
			}
		}
		gen := fmt.Sprintf("go run ./tools/bench recall-gen --seed %d", seed)
		if o.Personas != recallgen.DefaultOptions().Personas {
			gen += fmt.Sprintf(" --personas %d", o.Personas)
		}
		if o.Days != recallgen.DefaultOptions().Days {
			gen += fmt.Sprintf(" --days %g", o.Days)
		}
		cmd := gen + fmt.Sprintf(" --out trace%d.jsonl && go run ./tools/bench recall --trace trace%d.jsonl --scorer SCORER", seed, seed)
		var others []string
		for _, sc := range hippocampus.Scorers {
			if sc != hippocampus.ScorerOurs {
				others = append(others, fmt.Sprintf("%s %.3f", sc, run.Results[sc].HitAtK))
			}
		}
		gain := 0.0
		if best > 0 {
			gain = ours.HitAtK/best - 1
		}
		trace := fmt.Sprintf("held-out trace seed %d (%d turns, %d needs)", seed, ours.Turns, ours.Needs)
		rows = append(rows,
			Row{
				Area: "hippocampus", Figure: "hit@8, " + trace, Goal: "≥ best baseline +20%",
				Ours:   fmt.Sprintf("%.3f", ours.HitAtK),
				Anchor: fmt.Sprintf("best baseline %s %.3f (%s); Bayes ceiling %.3f", bestName, best, strings.Join(others, ", "), run.Ceiling),
				Ratio:  fmt.Sprintf("%+.1f%% vs %s", 100*gain, bestName), Met: met(gain >= 0.2), Command: cmd,
				Value: ours.HitAtK, AnchorValue: best, Unit: "hit@8",
			},
			Row{
				Area: "hippocampus", Figure: "timeliness (hits / (hits + late misses)), " + trace, Goal: "≥ 0.95",
				Ours: fmt.Sprintf("%.3f (strict, expired slices as misses: %.3f)", ours.Timeliness, ours.FreshTimeliness),
				Met:  met(ours.Timeliness >= 0.95), Command: strings.Replace(cmd, "SCORER", hippocampus.ScorerOurs, 1),
				Value: ours.Timeliness, Unit: "ratio",
			})
	}
	return rows, runs, nil
}

// meshRun is one size's measurements.
type meshRun struct {
	Local  *meshbench.Report `json:"local,omitempty"`
	LAN    *meshbench.Report `json:"lan,omitempty"`
	Errors []string          `json:"errors,omitempty"`
}

func runMesh(ctx context.Context, s Sizes, _ string) ([]Row, any, error) {
	var rows []Row
	runs := map[int]*meshRun{}
	var errs []error
	measure := func(n, runCount int, profile string) *meshbench.Report {
		o := meshbench.Options{Nodes: n, Runs: runCount, Profile: profile}
		res, err := meshbench.Measure(ctx, o)
		if err != nil {
			err = fmt.Errorf("%s profile: %w", profile, err)
			errs = append(errs, err)
			runs[n].Errors = append(runs[n].Errors, err.Error())
			return nil
		}
		rep := res.Report(o)
		return &rep
	}
	for _, n := range s.MeshNodes {
		runs[n] = &meshRun{}
		runs[n].Local = measure(n, s.MeshRuns, mesh.ProfileLocal)
		if slices.Contains(s.MeshAnchorNodes, n) && s.MeshAnchorRuns > 0 {
			runs[n].LAN = measure(n, s.MeshAnchorRuns, mesh.ProfileLAN)
		}
		loc, lan := runs[n].Local, runs[n].LAN
		cmd := fmt.Sprintf("go run ./tools/meshbench --nodes %d --runs %d", n, s.MeshRuns)
		if loc == nil {
			rows = append(rows, Row{Area: "mesh", Figure: fmt.Sprintf("gossip, %d in-process members", n), Ours: strings.Join(runs[n].Errors, "; "), Met: MetFail, Command: cmd})
			continue
		}
		var anchorConv, anchorDet, ratioConv, ratioDet string
		var lanConv, lanDet float64
		if lan != nil {
			lanConv, lanDet = lan.Converge.MedianMs, lan.DetectAll.MedianMs
			anchorConv = fmt.Sprintf("memberlist LAN defaults %s (%d run)", ms(lanConv), lan.Runs)
			anchorDet = fmt.Sprintf("memberlist LAN defaults %s (%d run)", ms(lanDet), lan.Runs)
			ratioConv, ratioDet = times(loc.Converge.MedianMs, lanConv), times(loc.DetectAll.MedianMs, lanDet)
		}
		runsNote := fmt.Sprintf("median of %d", loc.Runs)
		rows = append(rows,
			Row{
				Area: "mesh", Figure: fmt.Sprintf("gossip convergence, %d in-process members (local profile)", n), Goal: "—",
				Ours:   fmt.Sprintf("%s (%s, max %s)", ms(loc.Converge.MedianMs), runsNote, ms(loc.Converge.MaxMs)),
				Anchor: anchorConv, Ratio: ratioConv, Met: MetNone, Command: cmd,
				Value: loc.Converge.MedianMs, AnchorValue: lanConv, Unit: "ms",
			},
			Row{
				Area: "mesh", Figure: fmt.Sprintf("failure detection, crash → every survivor sees DEAD, %d members (local profile)", n), Goal: "≤ 6 s",
				Ours:   fmt.Sprintf("%s (%s, max %s)", ms(loc.DetectAll.MedianMs), runsNote, ms(loc.DetectAll.MaxMs)),
				Anchor: anchorDet, Ratio: ratioDet, Met: met(loc.DetectAll.MaxMs <= 6000), Command: cmd,
				Value: loc.DetectAll.MedianMs, AnchorValue: lanDet, Unit: "ms",
			})
	}
	return rows, runs, errors.Join(errs...)
}

func met(ok bool) string {
	if ok {
		return MetYes
	}
	return MetNo
}

// us formats microseconds.
func us(v float64) string {
	if v >= 1000 || v <= -1000 {
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func plusUs(v float64) string {
	if v >= 0 {
		return "+" + us(v)
	}
	return us(v)
}

// ms formats milliseconds.
func ms(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// times is a/b as a ratio.
func times(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// count formats a count or rate compactly.
func count(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.2fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func size(b int) string {
	if b >= 1024 && b%1024 == 0 {
		return fmt.Sprintf("%d KB", b/1024)
	}
	return fmt.Sprintf("%d B", b)
}
