package hippocampus

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
)

// EdgeKind is the type of an engram graph edge; the numbers are the wire
// enum's.
type EdgeKind uint8

// Edge kinds.
const (
	EdgeSharedEntity       EdgeKind = 1
	EdgeSharedTopic        EdgeKind = 2
	EdgeCitedIn            EdgeKind = 3
	EdgeRecallCoOccurrence EdgeKind = 4
	EdgeConversationalRepl EdgeKind = 5
	EdgeTaskOutcome        EdgeKind = 6
)

// Co-occurrence edges grow by coOccurrenceStep per co-consumption up to
// coOccurrenceCap.
const (
	coOccurrenceStep = 0.1
	coOccurrenceCap  = 1.5
	maxLinkWeight    = 10
)

func (k EdgeKind) valid() bool { return k >= EdgeSharedEntity && k <= EdgeTaskOutcome }

// DefaultWeight is the weight an edge of kind k gets unless told otherwise.
func (k EdgeKind) DefaultWeight() float32 {
	switch k {
	case EdgeConversationalRepl:
		return 1.0
	case EdgeCitedIn:
		return 0.9
	case EdgeTaskOutcome:
		return 0.8
	case EdgeRecallCoOccurrence:
		return 0.7
	case EdgeSharedEntity:
		return 0.6
	case EdgeSharedTopic:
		return 0.3
	}
	return 0
}

func (k EdgeKind) String() string {
	switch k {
	case EdgeSharedEntity:
		return "shared-entity"
	case EdgeSharedTopic:
		return "shared-topic"
	case EdgeCitedIn:
		return "cited-in"
	case EdgeRecallCoOccurrence:
		return "recall-co-occurrence"
	case EdgeConversationalRepl:
		return "conversational-reply"
	case EdgeTaskOutcome:
		return "task-outcome"
	}
	return fmt.Sprintf("edge-kind(%d)", uint8(k))
}

// Edge is one outbound edge of a node.
type Edge struct {
	To     uint32
	Kind   EdgeKind
	Weight float32
}

// Graph is a persona's engram graph: typed weighted directed edges between
// engram slots, at most one per (from, to, kind). Neighbors come back in
// insertion order. It is safe for concurrent use.
type Graph struct {
	mu    sync.RWMutex
	out   [][]Edge
	in    [][]uint32 // the source of each inbound edge, one entry per edge
	edges int
}

// NewGraph returns an empty graph.
func NewGraph() *Graph { return &Graph{} }

func (g *Graph) grow(n uint32) {
	for uint32(len(g.out)) <= n {
		g.out = append(g.out, nil)
		g.in = append(g.in, nil)
	}
}

// AddEdge adds the edge from→to of kind with weight w, or updates it when
// it exists: a RecallCoOccurrence edge then grows by 0.1 up to 1.5, any
// other kind takes w. It returns the edge's weight afterwards and whether
// it was created.
func (g *Graph) AddEdge(from, to uint32, kind EdgeKind, w float32) (float32, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i := g.find(from, to, kind); i >= 0 {
		e := &g.out[from][i]
		if kind == EdgeRecallCoOccurrence {
			e.Weight = min(e.Weight+coOccurrenceStep, coOccurrenceCap)
		} else {
			e.Weight = w
		}
		return e.Weight, false
	}
	g.insert(from, to, kind, w)
	return w, true
}

// SetEdge makes the edge from→to of kind weigh exactly w (replays and
// imports use it).
func (g *Graph) SetEdge(from, to uint32, kind EdgeKind, w float32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i := g.find(from, to, kind); i >= 0 {
		g.out[from][i].Weight = w
		return
	}
	g.insert(from, to, kind, w)
}

// EdgeWeight returns the weight of from→to of kind.
func (g *Graph) EdgeWeight(from, to uint32, kind EdgeKind) (float32, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if i := g.find(from, to, kind); i >= 0 {
		return g.out[from][i].Weight, true
	}
	return 0, false
}

func (g *Graph) find(from, to uint32, kind EdgeKind) int {
	if int(from) >= len(g.out) {
		return -1
	}
	for i, e := range g.out[from] {
		if e.To == to && e.Kind == kind {
			return i
		}
	}
	return -1
}

func (g *Graph) insert(from, to uint32, kind EdgeKind, w float32) {
	g.grow(max(from, to))
	g.out[from] = append(g.out[from], Edge{To: to, Kind: kind, Weight: w})
	g.in[to] = append(g.in[to], from)
	g.edges++
}

// Neighbors returns a copy of n's outbound edges in insertion order.
func (g *Graph) Neighbors(n uint32) []Edge {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if int(n) >= len(g.out) {
		return nil
	}
	return slices.Clone(g.out[n])
}

// InDegree is the number of edges into n.
func (g *Graph) InDegree(n uint32) int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if int(n) >= len(g.in) {
		return 0
	}
	return len(g.in[n])
}

// OutDegree is the number of edges out of n.
func (g *Graph) OutDegree(n uint32) int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if int(n) >= len(g.out) {
		return 0
	}
	return len(g.out[n])
}

// EdgeCount is the number of edges.
func (g *Graph) EdgeCount() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.edges
}

// EvictEngram removes every edge out of and into n and returns how many it
// removed; evicting again removes nothing.
func (g *Graph) EvictEngram(n uint32) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if int(n) >= len(g.out) {
		return 0
	}
	removed := 0
	for _, e := range g.out[n] {
		if e.To != n {
			g.in[e.To] = removeOne(g.in[e.To], n)
		}
		removed++
	}
	g.out[n] = nil
	for _, src := range g.in[n] {
		if src == n {
			continue
		}
		before := len(g.out[src])
		g.out[src] = slices.DeleteFunc(g.out[src], func(e Edge) bool { return e.To == n })
		removed += before - len(g.out[src])
	}
	g.in[n] = nil
	g.edges -= removed
	return removed
}

func removeOne(s []uint32, v uint32) []uint32 {
	if i := slices.Index(s, v); i >= 0 {
		return slices.Delete(s, i, i+1)
	}
	return s
}

// eachEdge calls fn for every edge in source order, then insertion order.
func (g *Graph) eachEdge(fn func(from uint32, e Edge)) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for from, es := range g.out {
		for _, e := range es {
			fn(uint32(from), e)
		}
	}
}

// SpreadParams are the constrained spreading activation's knobs.
type SpreadParams struct {
	// Alpha is the fraction of its activation a node passes on (0.5).
	Alpha float64
	// Pulses is the number of propagation steps D (3).
	Pulses int
	// Threshold is the activation θ a node needs to fire (1e-3).
	Threshold float64
	// MaxFanOut is the out-degree F above which a node does not fire (64).
	MaxFanOut int
	// Budget is the number of edge relaxations allowed in all (20000).
	Budget int
}

// Seed is a node that starts with activation Weight.
type Seed struct {
	Node   uint32
	Weight float64
}

// spreadScratch is reusable working memory for Spread: dense activation
// arrays indexed by node, with epoch marks so only touched nodes are reset.
type spreadScratch struct {
	total, cur, next          []float64
	markTotal                 []uint32
	epoch                     uint32
	touched, curList, nextLst []uint32
	order                     []activeNode
}

type activeNode struct {
	node uint32
	act  float64
}

func newSpreadScratch() *spreadScratch { return &spreadScratch{} }

func (s *spreadScratch) reset(n int) {
	if len(s.total) < n {
		size := n + n/4 + 64
		s.total = make([]float64, size)
		s.cur = make([]float64, size)
		s.next = make([]float64, size)
		s.markTotal = make([]uint32, size)
		s.epoch = 0
	}
	s.epoch++
	if s.epoch == 0 {
		clear(s.markTotal)
		s.epoch = 1
	}
	for _, n := range s.curList {
		s.cur[n] = 0
	}
	s.touched, s.curList, s.nextLst = s.touched[:0], s.curList[:0], s.nextLst[:0]
}

// SpreadResult is the accumulated activation G of every node reached. It
// reads the scratch it was computed in, and is valid until its next use.
type SpreadResult struct {
	s *spreadScratch
	// Nodes are the nodes reached, seeds first, then each pulse's new
	// nodes in id order.
	Nodes []uint32
	// Sum is ΣG, accumulated in a deterministic order.
	Sum float64
	// Exhausted reports that the budget ran out.
	Exhausted bool
	// Relaxations is the number of edge relaxations done.
	Relaxations int
}

// G is node n's accumulated activation Σ_p I^(p) (zero when not reached).
func (r SpreadResult) G(n uint32) float64 {
	if r.s == nil || int(n) >= len(r.s.markTotal) || r.s.markTotal[n] != r.s.epoch {
		return 0
	}
	return r.s.total[n]
}

// Map returns G as a map (for tests and diagnostics).
func (r SpreadResult) Map() map[uint32]float64 {
	m := make(map[uint32]float64, len(r.Nodes))
	for _, n := range r.Nodes {
		m[n] = r.G(n)
	}
	return m
}

// Spread runs constrained spreading activation from seeds: for each pulse
// p < D, every node with activation ≥ θ and out-degree ≤ F passes
// α·I·w(e)/Σw(out) along each out-edge, nodes best-first with ties broken
// by node id, until the relaxation budget runs out. Activation does not
// stay where it was: pulse p+1 is only what pulse p passed on. G includes
// the seeds' own activation (pulse 0).
func (g *Graph) Spread(seeds []Seed, p SpreadParams, s *spreadScratch) SpreadResult {
	g.mu.RLock()
	defer g.mu.RUnlock()
	n := len(g.out)
	for _, sd := range seeds {
		n = max(n, int(sd.Node)+1)
	}
	s.reset(n)
	res := SpreadResult{s: s}
	addTotal := func(node uint32, a float64) {
		if s.markTotal[node] != s.epoch {
			s.markTotal[node] = s.epoch
			s.total[node] = 0
			s.touched = append(s.touched, node)
		}
		s.total[node] += a
	}
	for _, sd := range seeds {
		if sd.Weight <= 0 || math.IsNaN(sd.Weight) {
			continue
		}
		if s.cur[sd.Node] == 0 {
			s.curList = append(s.curList, sd.Node)
		}
		s.cur[sd.Node] += sd.Weight
		addTotal(sd.Node, sd.Weight)
	}
	budget := p.Budget
	for pulse := 0; pulse < p.Pulses && len(s.curList) > 0 && !res.Exhausted; pulse++ {
		s.order = s.order[:0]
		for _, node := range s.curList {
			if a := s.cur[node]; a >= p.Threshold && a > 0 {
				s.order = append(s.order, activeNode{node, a})
			}
		}
		slices.SortFunc(s.order, func(x, y activeNode) int {
			if x.act != y.act {
				if x.act > y.act {
					return -1
				}
				return 1
			}
			return cmp.Compare(x.node, y.node)
		})
		s.nextLst = s.nextLst[:0]
	fire:
		for _, an := range s.order {
			if int(an.node) >= len(g.out) {
				continue
			}
			out := g.out[an.node]
			if len(out) == 0 || len(out) > p.MaxFanOut {
				continue
			}
			var sumW float64
			for _, e := range out {
				sumW += float64(e.Weight)
			}
			if sumW <= 0 {
				continue
			}
			for _, e := range out {
				if budget <= 0 {
					res.Exhausted = true
					break fire
				}
				budget--
				res.Relaxations++
				v := p.Alpha * an.act * float64(e.Weight) / sumW
				if v <= 0 {
					continue
				}
				if s.next[e.To] == 0 {
					s.nextLst = append(s.nextLst, e.To)
				}
				s.next[e.To] += v
			}
		}
		for _, node := range s.curList {
			s.cur[node] = 0
		}
		// The next pulse, in id order, so the totals are summed
		// deterministically.
		slices.Sort(s.nextLst)
		s.cur, s.next = s.next, s.cur
		s.curList, s.nextLst = s.nextLst, s.curList[:0]
		for _, node := range s.curList {
			addTotal(node, s.cur[node])
		}
	}
	for _, node := range s.touched {
		res.Sum += s.total[node]
	}
	res.Nodes = s.touched
	return res
}
