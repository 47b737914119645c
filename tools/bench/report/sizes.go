package report

import (
	"time"

	"github.com/continuum-mesh/continuum/tools/bench/auditbench"
	"github.com/continuum-mesh/continuum/tools/bench/paging/gen"
	"github.com/continuum-mesh/continuum/tools/bench/recallgen"
	"github.com/continuum-mesh/continuum/tools/bench/routerbench"
)

// Modes.
const (
	ModeFull  = "full"
	ModeShort = "short"
	ModeTiny  = "tiny"
)

// Sizes are how much work each area does.
type Sizes struct {
	Mode   string
	Router routerbench.Options
	// EventsArgs are tools/eventsbench's flags.
	EventsArgs []string
	Audit      auditbench.Options
	// Paging is the trace spec of every paging kind; PagingKinds the kinds.
	Paging      gen.Spec
	PagingKinds []string
	// Recall is the generator's options; RecallSeeds the traces replayed
	// (held out from tuning: seed 1 was the development trace).
	Recall      recallgen.Options
	RecallSeeds []uint64
	// MeshNodes are the mesh sizes and MeshRuns the runs of the local
	// profile at each; MeshAnchorNodes are the sizes the lan profile (the
	// memberlist defaults) runs at as the anchor, MeshAnchorRuns times.
	MeshNodes       []int
	MeshRuns        int
	MeshAnchorNodes []int
	MeshAnchorRuns  int
}

// Full is `make bench`: about 10 minutes on two cores.
func Full() Sizes {
	rc := recallgen.DefaultOptions()
	return Sizes{
		Mode:        ModeFull,
		Router:      routerbench.Options{QPS: 1000, Duration: 10 * time.Second, Inproc: 20000},
		EventsArgs:  []string{"-n", "50000", "-rounds", "3", "-fanouts", "10"},
		Audit:       auditbench.Defaults(),
		Paging:      gen.Spec{Capacity: 2000}.Defaults(),
		PagingKinds: gen.Kinds(),
		Recall:      rc,
		RecallSeeds: []uint64{2, 3},
		MeshNodes:   []int{3, 10, 30}, MeshRuns: 5, MeshAnchorNodes: []int{3, 10, 30}, MeshAnchorRuns: 1,
	}
}

// Short is `make bench-short`: the same figures at small sizes, in under
// 3 minutes; its numbers are noisier and its traces smaller.
func Short() Sizes {
	rc := recallgen.DefaultOptions()
	rc.Days = 10
	return Sizes{
		Mode:   ModeShort,
		Router: routerbench.Options{QPS: 1000, Duration: 3 * time.Second, Inproc: 5000},
		EventsArgs: []string{
			"-n", "5000", "-rounds", "1", "-fanouts", "10", "-acks", "300", "-durable-n", "3000",
			"-latency-for", "1s",
		},
		Audit:       auditbench.Options{Appends: 10_000, Appenders: 64, AnchorAppends: 500, VerifyFor: time.Second},
		Paging:      gen.Spec{Requests: 200_000, Keys: 20_000, Capacity: 400}.Defaults(),
		PagingKinds: gen.Kinds(),
		Recall:      rc,
		RecallSeeds: []uint64{2},
		MeshNodes:   []int{3, 10, 30}, MeshRuns: 1, MeshAnchorNodes: []int{3}, MeshAnchorRuns: 1,
	}
}

// Tiny is the unit test's: every code path once, in seconds.
func Tiny() Sizes {
	rc := recallgen.DefaultOptions()
	rc.Personas, rc.Days = 1, 1
	return Sizes{
		Mode:   ModeTiny,
		Router: routerbench.Options{QPS: 200, Duration: 200 * time.Millisecond, Inproc: 100},
		EventsArgs: []string{
			"-n", "200", "-rounds", "1", "-fanouts", "10", "-acks", "20", "-durable-n", "100",
			"-latency-for", "100ms", "-rate", "1000",
		},
		Audit:       auditbench.Options{Appends: 300, Appenders: 8, AnchorAppends: 20, VerifyFor: 10 * time.Millisecond},
		Paging:      gen.Spec{Requests: 5_000, Keys: 1_000, Capacity: 50}.Defaults(),
		PagingKinds: []string{"zipf", "personas", "recency"},
		Recall:      rc,
		RecallSeeds: []uint64{2},
		MeshNodes:   []int{3}, MeshRuns: 1,
	}
}
