package hippocampus

import (
	"math"
	"slices"
)

// Retrieval routes: the associative pool's learned need model.
//
// A need reaches an engram along one of a few retrieval routes, each a
// normalised distribution over the persona's engrams built from what the
// memory itself records:
//
//	lag         a turn of the current episode, by how many turns back it is
//	            (a learned distribution over lags, renormalised over the
//	            lags the episode has)
//	entity      an earlier engram sharing an entity of the episode, by its
//	            recency rank among that entity's engrams: rank^(−d)
//	topic       the same for topics
//	channel     an earlier engram of the channel, by recency rank: rank^(−d)
//	reuse       an engram consumed before, in proportion to its consumptions
//	importance  an engram of a given importance level (a learned
//	            distribution over levels, uniform within a level)
//	uniform     any engram
//
// An episode is the channel's run of turns with no gap over the reply
// window (30 min); between episodes (the channel quiet for longer) the next
// turn starts a new one, and the last episode's features are the context.
// The rank decay d is ACT-R's d (0.5): Anderson and Schooler's power law
// of need against recency, read as a rank within a cue's engrams.
//
// The activation of the associative pool is the log of the mixture
//
//	A_i = ln Σ_r π_{b,r} · P_r(i)
//
// with mixture weights π per episode position bucket b (0, 1, 2, 3+ turns
// into the episode). π, the lag distribution and the importance levels are
// learned online by incremental EM (Neal and Hinton 1998) from Consume
// alone: each consumed engram splits one unit of evidence among the routes
// in proportion to π_r·P_r(i) (its responsibilities), and the totals, with a
// prior of one pseudo-count each, are the parameters. Publishing and peeking
// teach nothing, so a prediction cannot reinforce itself; nothing here sees
// a trace's labels.

// route is one retrieval route.
type route uint8

const (
	routeLag route = iota
	routeEntity
	routeTopic
	routeChannel
	routeReuse
	routeImportance
	routeUniform
	numRoutes
)

// episodeBuckets are the episode positions the mixture weights depend on:
// 0, 1, 2 and 3 or more turns into the episode.
const episodeBuckets = 4

// routeModel is what a persona learned about how its needs arise (guarded
// by persona.mu). The zero value is the prior: every parameter starts at
// one pseudo-count.
type routeModel struct {
	mix [episodeBuckets][numRoutes]float64 // responsibilities per route
	lag [lagWindow]float64                 // lag-route responsibilities per lag
	imp [11]float64                        // importance-route responsibilities per level
	// learned counts the consumptions learned from.
	learned float64

	// impLive counts live engrams per importance level and impSlots lists
	// them in insertion order (forgotten slots are skipped when read).
	impLive  [11]int
	impSlots [11][]uint32
}

// addEngram and dropEngram keep the importance index.
func (rm *routeModel) addEngram(imp uint8, slot uint32) {
	v := min(int(imp), 10)
	rm.impLive[v]++
	rm.impSlots[v] = append(rm.impSlots[v], slot)
}

func (rm *routeModel) dropEngram(imp uint8) {
	v := min(int(imp), 10)
	if rm.impLive[v] > 0 {
		rm.impLive[v]--
	}
}

// weights are the normalised mixture weights of a bucket.
func (rm *routeModel) weights(bucket int) [numRoutes]float64 {
	var w [numRoutes]float64
	var total float64
	for r := range numRoutes {
		w[r] = rm.mix[bucket][r] + 1
		total += w[r]
	}
	for r := range w {
		w[r] /= total
	}
	return w
}

// episode is a prediction's context in one channel.
type episode struct {
	ch    uint16
	known bool
	// startSeq is the channel seq of the episode's first engram, and
	// startSlot its slot: engrams before them are earlier episodes'. When
	// the episode has no engram yet both are past the last.
	startSeq  uint32
	startSlot uint32
	count     uint32 // the channel's engram count
	pos       int    // engrams in the episode
	// ents and tops are the context features (the episode's, or the last
	// episode's between episodes), each weighted by its share of mentions.
	ents, tops []source
	// Derived once per prediction.
	mix     [numRoutes]float64
	lagNorm float64
	impNorm float64
	reuse   float64 // consumptions in the persona
	live    int
	decay   float64
	table   []float64 // rankTable(decay)
}

// bucket is the episode position bucket.
func (ep *episode) bucket() int { return min(ep.pos, episodeBuckets-1) }

// buildEpisode finds the channel's current episode at now and the context
// features. The caller holds p.mu; ep's slices are reused.
func buildEpisode(p *persona, ch uint16, chKnown bool, now, window int64, d float64, table []float64, ep *episode) {
	*ep = episode{ch: ch, known: chKnown, ents: ep.ents[:0], tops: ep.tops[:0], decay: d, table: table}
	ep.live = int(p.live.Load())
	ep.reuse = float64(p.events) - float64(ep.live)
	ep.startSlot = uint32(len(p.engrams))
	if !chKnown {
		ep.finish(p)
		return
	}
	c := &p.chans[ch]
	ep.count, ep.startSeq = c.count, c.count
	first, last := -1, -1
	for i := len(c.recent) - 1; i >= 0; i-- {
		e := &p.engrams[c.recent[i]]
		if !e.live() {
			continue
		}
		if last < 0 {
			last = i
		} else if p.engrams[c.recent[first]].at-e.at > window {
			break
		}
		first = i
	}
	if last >= 0 {
		newest := &p.engrams[c.recent[last]]
		between := now-newest.at > window
		for _, s := range c.recent[first : last+1] {
			e := &p.engrams[s]
			if !e.live() {
				continue
			}
			if !between {
				ep.pos++
				if ep.pos == 1 {
					ep.startSeq, ep.startSlot = e.seq, s
				}
			}
			ep.ents = addMentions(ep.ents, e.entities)
			ep.tops = addMentions(ep.tops, e.topics)
		}
	}
	ep.finish(p)
}

func addMentions(srcs []source, feats []uint32) []source {
	for _, f := range feats {
		i := slices.IndexFunc(srcs, func(s source) bool { return s.feat == f })
		if i < 0 {
			srcs = append(srcs, source{feat: f, w: 1})
			continue
		}
		srcs[i].w++
	}
	return srcs
}

func normalise(srcs []source) {
	var total float64
	for _, s := range srcs {
		total += s.w
	}
	for i := range srcs {
		srcs[i].w /= total
	}
}

// finish derives the per-prediction constants.
func (ep *episode) finish(p *persona) {
	normalise(ep.ents)
	normalise(ep.tops)
	rm := &p.routes
	ep.mix = rm.weights(ep.bucket())
	for l := range min(ep.pos, lagWindow) {
		ep.lagNorm += rm.lag[l] + 1
	}
	for v := range rm.impLive {
		if rm.impLive[v] > 0 {
			ep.impNorm += rm.imp[v] + 1
		}
	}
}

// routeProbs fills P_r(slot) for every route.
func routeProbs(p *persona, ep *episode, slot uint32, out *[numRoutes]float64) {
	*out = [numRoutes]float64{}
	e := &p.engrams[slot]
	rm := &p.routes
	if ep.known && e.channel == ep.ch {
		if e.seq >= ep.startSeq {
			if l := int(ep.count - 1 - e.seq); l < min(ep.pos, lagWindow) && ep.lagNorm > 0 {
				out[routeLag] = (rm.lag[l] + 1) / ep.lagNorm
			}
		} else {
			out[routeChannel] = rankProb(ep.table, int(ep.startSeq-e.seq), int(ep.startSeq), ep.decay)
		}
	}
	if slot < ep.startSlot {
		out[routeEntity] = featureRoute(p, ep, e.entities, ep.ents, slot)
		out[routeTopic] = featureRoute(p, ep, e.topics, ep.tops, slot)
	}
	if ep.reuse > 0 && e.acc.n > 1 {
		out[routeReuse] = float64(e.acc.n-1) / ep.reuse
	}
	if v := min(int(e.importance), 10); ep.impNorm > 0 && rm.impLive[v] > 0 {
		out[routeImportance] = (rm.imp[v] + 1) / ep.impNorm / float64(rm.impLive[v])
	}
	if ep.live > 0 {
		out[routeUniform] = 1 / float64(ep.live)
	}
}

// featureRoute is Σ_j w_j · rank_j(i)^(−d) / Σ_{r ≤ n_j} r^(−d) over the
// context features j engram i has, the rank counted among j's engrams
// before the episode (forgotten ones included: an approximation).
func featureRoute(p *persona, ep *episode, feats []uint32, ctx []source, slot uint32) float64 {
	var sum float64
	for _, f := range feats {
		for _, src := range ctx {
			if src.feat != f {
				continue
			}
			post := p.feats.list[f].postings
			end, _ := slices.BinarySearch(post, ep.startSlot)
			if idx, ok := slices.BinarySearch(post[:end], slot); ok {
				sum += src.w * rankProb(ep.table, end-idx, end, ep.decay)
			}
			break
		}
	}
	return sum
}

// activation is ln Σ_r π_r·P_r(i).
func (ep *episode) activation(p *persona, slot uint32) float64 {
	var pr [numRoutes]float64
	routeProbs(p, ep, slot, &pr)
	var sum float64
	for r, q := range pr {
		sum += ep.mix[r] * q
	}
	return math.Log(sum)
}

// learn is one incremental EM step for a consumed engram: its
// responsibilities are added to the bucket's route totals, the lag's and the
// importance level's. The caller holds p.mu for writing and computed ep
// before the consumption was applied.
func (rm *routeModel) learn(p *persona, ep *episode, slot uint32) {
	var pr [numRoutes]float64
	routeProbs(p, ep, slot, &pr)
	var total float64
	for r, q := range pr {
		pr[r] = ep.mix[r] * q
		total += pr[r]
	}
	if total <= 0 || math.IsNaN(total) {
		return
	}
	b := ep.bucket()
	for r := range pr {
		rm.mix[b][r] += pr[r] / total
	}
	e := &p.engrams[slot]
	if g := pr[routeLag] / total; g > 0 {
		rm.lag[ep.count-1-e.seq] += g
	}
	if g := pr[routeImportance] / total; g > 0 {
		rm.imp[min(int(e.importance), 10)] += g
	}
	rm.learned++
}

// rankSumsExact is how many partial sums Σ_{r=1..n} r^(−d) a rank table
// holds; larger n continue with the Euler–Maclaurin tail.
const rankSumsExact = 1024

// rankTable builds the partial sums for d (read-only once built: the
// predictor keeps one).
func rankTable(d float64) []float64 {
	t := make([]float64, rankSumsExact+1)
	for r := 1; r <= rankSumsExact; r++ {
		t[r] = t[r-1] + math.Pow(float64(r), -d)
	}
	return t
}

// rankSum is Σ_{r=1..n} r^(−d), with t = rankTable(d).
func rankSum(t []float64, n int, d float64) float64 {
	if n <= rankSumsExact {
		return t[max(n, 0)]
	}
	m, x := float64(rankSumsExact), float64(n)
	var integral float64
	if d == 1 {
		integral = math.Log(x / m)
	} else {
		integral = (math.Pow(x, 1-d) - math.Pow(m, 1-d)) / (1 - d)
	}
	return t[rankSumsExact] + integral + (math.Pow(x, -d)-math.Pow(m, -d))/2
}

// rankProb is rank^(−d) / Σ_{r ≤ n} r^(−d): the power-law recency
// distribution over n ranked engrams (rank 1 the most recent).
func rankProb(t []float64, rank, n int, d float64) float64 {
	if rank < 1 || rank > n {
		return 0
	}
	if d == 0.5 {
		return 1 / math.Sqrt(float64(rank)) / rankSum(t, n, d)
	}
	return math.Pow(float64(rank), -d) / rankSum(t, n, d)
}
