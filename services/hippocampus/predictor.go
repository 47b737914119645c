package hippocampus

import (
	"container/heap"
	"math"
	"slices"
	"time"
)

// Pool is the part of the ready buffer an item was selected for.
type Pool uint8

// Pools; the numbers are the wire enum's.
const (
	PoolNone        Pool = 0
	PoolStable      Pool = 1
	PoolAssociative Pool = 2
)

// Item is one staged engram in a ready buffer.
type Item struct {
	// Slot is the engram's slot in its persona (stable while it lives).
	Slot uint32
	// ID is the engram id.
	ID string
	// Score is the activation it was ranked by.
	Score float64
	Pool  Pool
}

// scorerKind selects the ranking.
type scorerKind int

const (
	scoreOurs scorerKind = iota
	scoreRecency
	scoreGenerativeAgents
	scoreACTR
)

func scorerByName(name string) scorerKind {
	switch name {
	case ScorerOurs:
		return scoreOurs
	case ScorerRecency:
		return scoreRecency
	case ScorerGenerativeAgents:
		return scoreGenerativeAgents
	case ScorerACTR:
		return scoreACTR
	}
	return -1
}

// selection is what one prediction chose.
type selection struct {
	items       []Item
	stableGhost []uint32 // the next K the stable pool would have published
	assocGhost  []uint32 // the next K the associative pool would have published
	exhausted   bool     // the spreading budget ran out
	candidates  int
}

// cand is a scored candidate.
type cand struct {
	slot   uint32
	assoc  float64 // A_i, or the baseline's score
	stable float64 // σ_i + W_c·S_{c,i}
}

// source is a context feature with its normalised weight W_j.
type source struct {
	feat uint32
	w    float64
}

// scratch is a prediction's reusable working memory.
type scratch struct {
	spread  *spreadScratch
	mark    []uint32
	epoch   uint32
	cands   []cand
	sources []source
	seeds   []Seed
	slots   []uint32
	rank    rankHeap
	ep      episode
}

// spareScratch keeps a few scratches for recalls and shadow predictions.
// Not a sync.Pool: every GC empties a Pool, and re-allocating a scratch
// sized for 100k engrams (megabytes) after each GC feeds the next one, whose
// mark assists then land on the region's ticks.
var spareScratch = make(chan *scratch, 8)

func getScratch() *scratch {
	select {
	case sc := <-spareScratch:
		return sc
	default:
		return &scratch{spread: newSpreadScratch()}
	}
}

func putScratch(sc *scratch) {
	select {
	case spareScratch <- sc:
	default:
	}
}

// add marks slot as a candidate once per prediction.
func (sc *scratch) add(slot uint32) {
	if sc.mark[slot] == sc.epoch {
		return
	}
	sc.mark[slot] = sc.epoch
	sc.slots = append(sc.slots, slot)
}

func (sc *scratch) reset(n int) {
	if len(sc.mark) < n {
		sc.mark = make([]uint32, n+n/4+64)
		sc.epoch = 0
	}
	sc.epoch++
	if sc.epoch == 0 { // wrapped: old marks could collide
		clear(sc.mark)
		sc.epoch = 1
	}
	sc.slots = sc.slots[:0]
	sc.cands = sc.cands[:0]
	sc.sources = sc.sources[:0]
	sc.seeds = sc.seeds[:0]
}

// predictor is what a prediction needs besides the persona.
type predictor struct {
	cfg  *Config
	kind scorerKind
	// table is the rank-sum table of the routes' recency power law.
	table []float64
}

// routes reports whether ours ranks by the learned route mixture.
func (pr *predictor) routes() bool { return pr.kind == scoreOurs && pr.cfg.Model.Routes }

// predictArgs are one prediction's inputs.
type predictArgs struct {
	channel string
	now     int64
	share   float64 // the stable pool's share p
	k       int
	// budgetScale scales the spreading budget and the candidate sources
	// (1 normally; less under pressure).
	budgetScale float64
}

// predict ranks the persona's engrams for the channel at now and selects K
// with the two-pool budget (ours) or by the baseline's score. The caller
// holds p.mu for reading.
func (pr *predictor) predict(p *persona, a predictArgs, sc *scratch) selection {
	n := int(p.live.Load())
	if n == 0 || a.k <= 0 {
		return selection{}
	}
	sc.reset(len(p.engrams))
	m := &pr.cfg.Model
	ch, chKnown := p.chanIdx[a.channel]

	// Seeds: the channel's last engrams, most recent first.
	if chKnown {
		recent := p.recentInChannel(ch, len(m.SeedWeights), sc.slots[:0])
		for i, s := range recent {
			sc.seeds = append(sc.seeds, Seed{Node: s, Weight: m.SeedWeights[i]})
		}
		sc.slots = sc.slots[:0]
	}
	pr.contextSources(p, sc)
	if pr.routes() {
		buildEpisode(p, ch, chKnown, a.now, int64(pr.cfg.ReplyWindow), m.D, pr.table, &sc.ep)
	}

	var sp SpreadResult
	if pr.kind == scoreOurs && len(sc.seeds) > 0 && m.Spread.Pulses > 0 {
		params := m.Spread
		params.Budget = max(1, int(float64(params.Budget)*a.budgetScale))
		sp = p.graph.Spread(sc.seeds, params, sc.spread)
	}

	pr.candidates(p, a, sc, sp, ch, chKnown)
	var lag *[lagWindow]float64
	if pr.kind == scoreOurs {
		lag = p.lagBias()
	}
	pr.score(p, a, sc, sp, ch, chKnown, n, lag)

	sel := selection{exhausted: sp.Exhausted, candidates: len(sc.cands)}
	if pr.kind == scoreOurs {
		pr.selectTwoPools(p, a, sc, &sel)
	} else {
		for _, i := range sc.rank.top(sc.cands, a.k, byAssoc, nil) {
			c := sc.cands[i]
			sel.items = append(sel.items, Item{Slot: c.slot, ID: p.engrams[c.slot].id, Score: c.assoc})
		}
	}
	return sel
}

// contextSources spreads the seeds' weights over their entities and topics
// (each seed's weight split evenly among its features) and normalises the
// total to 1.
func (pr *predictor) contextSources(p *persona, sc *scratch) {
	for _, sd := range sc.seeds {
		e := &p.engrams[sd.Node]
		nf := len(e.entities) + len(e.topics)
		if nf == 0 {
			continue
		}
		w := sd.Weight / float64(nf)
		for _, ids := range [][]uint32{e.entities, e.topics} {
			for _, f := range ids {
				found := false
				for i := range sc.sources {
					if sc.sources[i].feat == f {
						sc.sources[i].w += w
						found = true
						break
					}
				}
				if !found {
					sc.sources = append(sc.sources, source{feat: f, w: w})
				}
			}
		}
	}
	var total float64
	for _, s := range sc.sources {
		total += s.w
	}
	for i := range sc.sources {
		sc.sources[i].w /= total
	}
}

// candidates gathers what to score: every engram up to the full-scan
// limit; above it, the spreading frontier, the most recently used, the most
// salient (stable index), the channel's recent engrams and each context
// feature's most recent postings, so the cost does not grow with the
// persona.
func (pr *predictor) candidates(p *persona, a predictArgs, sc *scratch, sp SpreadResult, ch uint16, chKnown bool) {
	if int(p.live.Load()) <= pr.cfg.FullScanLimit {
		for s := range p.engrams {
			if p.engrams[s].live() {
				sc.add(uint32(s))
			}
		}
		return
	}
	per := max(8, int(float64(pr.cfg.CandidatesPerSource)*a.budgetScale))
	for _, n := range sp.Nodes {
		if int(n) < len(p.engrams) && p.engrams[n].live() {
			sc.add(n)
		}
	}
	for s, i := p.head, 0; s != 0 && i < per; s, i = p.engrams[s-1].next, i+1 {
		sc.add(s - 1)
	}
	i := 0
	p.stable.Ascend(func(e stableEntry) bool {
		sc.add(e.slot)
		i++
		return i < per
	})
	if chKnown {
		for _, s := range p.chans[ch].recent {
			if p.engrams[s].live() {
				sc.add(s)
			}
		}
	}
	perFeature := max(8, per/max(1, len(sc.sources)))
	for _, src := range sc.sources {
		addPostings(p, sc, p.feats.list[src.feat].postings, perFeature)
	}
	if !pr.routes() {
		return
	}
	// The routes' own sources: the context features' engrams before the
	// episode, and the engrams of rare importance levels.
	ep := &sc.ep
	perFeature = max(8, per/max(1, len(ep.ents)+len(ep.tops)))
	for _, srcs := range [2][]source{ep.ents, ep.tops} {
		for _, src := range srcs {
			post := p.feats.list[src.feat].postings
			end, _ := slices.BinarySearch(post, ep.startSlot)
			addPostings(p, sc, post[:end], perFeature)
		}
	}
	for v, n := range p.routes.impLive {
		if n > 0 && n <= per/4 {
			addPostings(p, sc, p.routes.impSlots[v], n)
		}
	}
}

// addPostings adds up to n of the live slots at the end of post, newest
// first, reading at most 4n entries.
func addPostings(p *persona, sc *scratch, post []uint32, n int) {
	taken := 0
	for j := len(post) - 1; j >= 0 && taken < n && len(post)-j <= 4*n; j-- {
		if p.engrams[post[j]].live() {
			sc.add(post[j])
			taken++
		}
	}
}

// score computes each candidate's scores.
func (pr *predictor) score(p *persona, a predictArgs, sc *scratch, sp SpreadResult, ch uint16, chKnown bool, n int, lag *[lagWindow]float64) {
	m := &pr.cfg.Model
	var nc float64
	channels := float64(len(p.chans))
	if chKnown {
		nc = float64(p.chans[ch].events)
	} else {
		channels++
	}
	total := float64(p.events)
	for _, s := range sc.slots {
		e := &p.engrams[s]
		c := cand{slot: s}
		switch pr.kind {
		case scoreRecency:
			c.assoc = float64(e.acc.lastAt()) / float64(time.Second)
		case scoreACTR:
			c.assoc = baseLevel(&e.acc, a.now, m.D) + contextStrength(p, e, sc.sources, n)
		case scoreGenerativeAgents:
			// Raw recency and importance; relevance and the normalisation
			// come in normaliseGenerativeAgents.
			hours := float64(a.now-e.acc.lastAt()) / float64(time.Hour)
			c.assoc = math.Pow(0.995, max(hours, 0))
			c.stable = float64(e.importance) / 10
		default:
			var nic, ni float64
			if chKnown {
				nic = float64(e.eventsIn(ch))
			}
			for _, cc := range e.chans {
				ni += float64(cc.n)
			}
			cb := channelBias(nc, total, channels, nic, ni, m.ChannelPrior)
			c.stable = stableSalience(m.LambdaA, e.lnImp, e.acc.n, e.acc.lastAt(), a.now) + m.WChannel*cb
			if m.Routes {
				c.assoc = sc.ep.activation(p, s)
				break
			}
			sg := graphStrength(n, sp.G(s), sp.Sum)
			c.assoc = baseLevel(&e.acc, a.now, m.D) + m.LambdaImp*e.lnImp + m.WChannel*cb +
				m.WContext*contextStrength(p, e, sc.sources, n) + m.WGraph*sg
			if lag != nil && chKnown {
				if l, ok := p.lagOf(s, ch); ok && l < lagWindow {
					c.assoc += m.WLag * lag[l]
				}
			}
		}
		sc.cands = append(sc.cands, c)
	}
	if pr.kind == scoreGenerativeAgents {
		normaliseGenerativeAgents(p, sc)
	}
}

// contextStrength is Σ_j W_j·S_{j,i} over the context features engram e
// has.
func contextStrength(p *persona, e *engram, srcs []source, n int) float64 {
	if len(srcs) == 0 {
		return 0
	}
	var sum float64
	for _, ids := range [2][]uint32{e.entities, e.topics} {
		for _, f := range ids {
			for _, s := range srcs {
				if s.feat == f {
					sum += s.w * featureStrength(n, p.feats.list[f].fan)
					break
				}
			}
		}
	}
	return sum
}

// normaliseGenerativeAgents finishes the Generative Agents score (Park et
// al. 2023): recency, importance and relevance, each min-max normalised
// over the candidates, summed with equal weights. Relevance is the cosine
// of the candidate's features with the context's (the model-free stand-in
// for embedding similarity).
func normaliseGenerativeAgents(p *persona, sc *scratch) {
	rel := make([]float64, len(sc.cands))
	nq := float64(len(sc.sources))
	for i, c := range sc.cands {
		e := &p.engrams[c.slot]
		nf := float64(len(e.entities) + len(e.topics))
		if nq == 0 || nf == 0 {
			continue
		}
		shared := 0.0
		for _, ids := range [2][]uint32{e.entities, e.topics} {
			for _, f := range ids {
				for _, s := range sc.sources {
					if s.feat == f {
						shared++
						break
					}
				}
			}
		}
		rel[i] = shared / math.Sqrt(nq*nf)
	}
	recency := func(i int) float64 { return sc.cands[i].assoc }
	importance := func(i int) float64 { return sc.cands[i].stable }
	relevance := func(i int) float64 { return rel[i] }
	var parts [3][]float64
	for j, f := range []func(int) float64{recency, importance, relevance} {
		lo, hi := math.Inf(1), math.Inf(-1)
		for i := range sc.cands {
			lo, hi = min(lo, f(i)), max(hi, f(i))
		}
		parts[j] = make([]float64, len(sc.cands))
		for i := range sc.cands {
			if hi > lo {
				parts[j][i] = (f(i) - lo) / (hi - lo)
			}
		}
	}
	for i := range sc.cands {
		sc.cands[i].assoc = parts[0][i] + parts[1][i] + parts[2][i]
		sc.cands[i].stable = 0
	}
}

// selectTwoPools fills round(p·K) slots from the stable ranking and the
// rest from the associative ranking, disjoint, and keeps as ghosts the next
// K each ranking would have published.
func (pr *predictor) selectTwoPools(p *persona, a predictArgs, sc *scratch, sel *selection) {
	k := a.k
	s := stableSlots(a.share, k)
	stable := sc.rank.top(sc.cands, s+k, byStable, nil)
	picked := make(map[uint32]bool, k)
	for i, ci := range stable {
		c := sc.cands[ci]
		if i < s {
			sel.items = append(sel.items, Item{Slot: c.slot, ID: p.engrams[c.slot].id, Score: c.stable, Pool: PoolStable})
			picked[c.slot] = true
			continue
		}
		sel.stableGhost = append(sel.stableGhost, c.slot)
	}
	assoc := sc.rank.top(sc.cands, 2*k+s, byAssoc, nil)
	na := 0
	for _, ci := range assoc {
		c := sc.cands[ci]
		if picked[c.slot] {
			continue
		}
		if na < k-s {
			sel.items = append(sel.items, Item{Slot: c.slot, ID: p.engrams[c.slot].id, Score: c.assoc, Pool: PoolAssociative})
			na++
			continue
		}
		if len(sel.assocGhost) < k {
			sel.assocGhost = append(sel.assocGhost, c.slot)
		}
	}
	// The stable ghost excludes what the associative pool published.
	sel.stableGhost = slices.DeleteFunc(sel.stableGhost, func(x uint32) bool {
		for _, it := range sel.items {
			if it.Slot == x {
				return true
			}
		}
		return false
	})
}

// stableSlots is round(p·K), within 0..K.
func stableSlots(share float64, k int) int {
	return min(max(int(math.Round(share*float64(k))), 0), k)
}

// rankKey picks the score a ranking uses.
type rankKey uint8

const (
	byAssoc rankKey = iota
	byStable
)

func (c *cand) key(k rankKey) float64 {
	if k == byStable {
		return c.stable
	}
	return c.assoc
}

// better orders candidates: higher score first, then the newer slot, so
// rankings are deterministic.
func better(a, b *cand, k rankKey) bool {
	ka, kb := a.key(k), b.key(k)
	if ka != kb {
		return ka > kb || math.IsNaN(kb)
	}
	return a.slot > b.slot
}

// rankHeap selects the top n candidates with a bounded min-heap.
type rankHeap struct {
	idx   []int
	cands []cand
	k     rankKey
}

func (h *rankHeap) Len() int           { return len(h.idx) }
func (h *rankHeap) Less(i, j int) bool { return better(&h.cands[h.idx[j]], &h.cands[h.idx[i]], h.k) }
func (h *rankHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *rankHeap) Push(x any)         { h.idx = append(h.idx, x.(int)) }
func (h *rankHeap) Pop() any {
	v := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return v
}

// top returns the indices of the best n candidates, best first, appended
// to out.
func (h *rankHeap) top(cands []cand, n int, k rankKey, out []int) []int {
	if n <= 0 {
		return out
	}
	h.cands, h.k, h.idx = cands, k, h.idx[:0]
	for i := range cands {
		if len(h.idx) < n {
			heap.Push(h, i)
			continue
		}
		if better(&cands[i], &cands[h.idx[0]], k) {
			h.idx[0] = i
			heap.Fix(h, 0)
		}
	}
	start := len(out)
	for h.Len() > 0 {
		out = append(out, heap.Pop(h).(int))
	}
	slices.Reverse(out[start:])
	h.cands = nil
	return out
}
