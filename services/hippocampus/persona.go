package hippocampus

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/google/btree"

	"github.com/continuum-mesh/continuum/pkg/region"
)

// personaState is where a persona is in its life on this member.
type personaState uint8

const (
	// stateActive: this member serves the persona.
	stateActive personaState = iota
	// stateMovingOut: a hand-off is streaming it away; requests answer
	// PERSONA_MOVING so nothing acknowledged is left behind.
	stateMovingOut
	// stateGone: handed away or destroyed; the object is detached.
	stateGone
)

// persona is one persona's memory: engrams, graph, features and channels.
// mu guards the data; ticks and recalls read under RLock, writes (remember,
// consume, link, forget, import) take the write lock and append their
// journal record inside it, so the journal's order is the apply order.
type persona struct {
	name string

	mu sync.RWMutex
	// st is the personaState; written under mu, read without it (so a
	// peek never waits behind a writer).
	st       atomic.Uint32
	handedTo atomic.Pointer[string] // set with stateGone after a hand-off
	engrams  []engram
	byID     map[string]uint32
	graph    *Graph
	feats    featureIndex
	chans    []channelStat
	chanIdx  map[string]uint16
	events   uint64 // N: events in every channel
	head     uint32 // most recently accessed slot+1
	tail     uint32
	stable   *btree.BTreeG[stableEntry]
	tombs    map[string]int64 // forgotten id -> when
	lsn      uint64           // last journal record applied
	snapLSN  uint64           // what the snapshot file on disk covers

	// live is the engram count, readable without the lock.
	live atomic.Int64

	// The region's side: one target per channel with a ready buffer.
	// targets is copy-on-write so Peek reads it with one atomic load.
	tmu     sync.Mutex
	targets atomic.Pointer[map[string]*target]
	phase   atomic.Uint32 // region.SleepPhase
	// lagCounts counts consumptions by how many turns back in its channel
	// the engram was: the lag correction's evidence, shared by the
	// persona's channels (guarded by mu).
	lagCounts [lagWindow]float64
	// routes is the associative pool's learned need model (routes.go).
	routes routeModel
	// arcP keeps each channel's learned pool split across restarts and
	// hand-offs for channels whose target does not exist yet.
	arcP map[string]float64
}

func newPersona(name string) *persona {
	p := &persona{
		name:    name,
		byID:    map[string]uint32{},
		graph:   NewGraph(),
		chanIdx: map[string]uint16{},
		stable:  newStableIndex(),
		tombs:   map[string]int64{},
		arcP:    map[string]float64{},
	}
	empty := map[string]*target{}
	p.targets.Store(&empty)
	return p
}

func (p *persona) state() personaState { return personaState(p.st.Load()) }

// setState changes the state; the caller holds mu.
func (p *persona) setState(s personaState) { p.st.Store(uint32(s)) }

// handedOff is the member the persona was handed to, or "".
func (p *persona) handedOff() string {
	if h := p.handedTo.Load(); h != nil {
		return *h
	}
	return ""
}

// target returns the channel's target, or nil.
func (p *persona) target(channel string) *target {
	return (*p.targets.Load())[channel]
}

// ensureTarget returns the channel's target, creating it (copy-on-write)
// with the stable share p0 or the share learned before; ok is false when
// the persona has reached max targets.
func (p *persona) ensureTarget(channel string, p0 float64, maxTargets int) (*target, bool) {
	if t := p.target(channel); t != nil {
		return t, true
	}
	p.tmu.Lock()
	defer p.tmu.Unlock()
	cur := *p.targets.Load()
	if t := cur[channel]; t != nil {
		return t, true
	}
	if len(cur) >= maxTargets {
		return nil, false
	}
	share := p0
	p.mu.RLock()
	if v, ok := p.arcP[channel]; ok {
		share = v
	}
	p.mu.RUnlock()
	t := &target{persona: p, channel: channel, p: share}
	next := make(map[string]*target, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[channel] = t
	p.targets.Store(&next)
	return t, true
}

// eachTarget calls fn for every target.
func (p *persona) eachTarget(fn func(*target)) {
	for _, t := range *p.targets.Load() {
		fn(t)
	}
}

func (p *persona) sleepPhase() region.SleepPhase { return region.SleepPhase(p.phase.Load()) }

// channelSlot returns the slot of a channel, creating it.
func (p *persona) channelSlot(name string) uint16 {
	if c, ok := p.chanIdx[name]; ok {
		return c
	}
	c := uint16(len(p.chans))
	p.chans = append(p.chans, channelStat{name: name})
	p.chanIdx[name] = c
	return c
}

// --- recency list: most recently accessed first ---

func (p *persona) unlink(s uint32) {
	e := &p.engrams[s]
	if e.prev != 0 {
		p.engrams[e.prev-1].next = e.next
	} else if p.head == s+1 {
		p.head = e.next
	}
	if e.next != 0 {
		p.engrams[e.next-1].prev = e.prev
	} else if p.tail == s+1 {
		p.tail = e.prev
	}
	e.prev, e.next = 0, 0
}

func (p *persona) pushFront(s uint32) {
	e := &p.engrams[s]
	e.prev = 0
	e.next = p.head
	if p.head != 0 {
		p.engrams[p.head-1].prev = s + 1
	}
	p.head = s + 1
	if p.tail == 0 {
		p.tail = s + 1
	}
}

func (p *persona) touch(s uint32) {
	if p.head == s+1 {
		return
	}
	p.unlink(s)
	p.pushFront(s)
}

// --- applying records: the only code that changes a persona's data, shared
// by the live path and the journal replay so both give the same state ---

// applyRemember adds an engram and its edges and returns its slot.
func (p *persona) applyRemember(r *rememberRec, lambdaA float64) uint32 {
	ch := p.channelSlot(r.channel)
	slot := uint32(len(p.engrams))
	p.engrams = append(p.engrams, engram{
		id:         r.id,
		content:    r.content,
		importance: r.importance,
		lnImp:      lnImportance(r.importance),
		channel:    ch,
		seq:        p.chans[ch].count,
		replyTo:    r.replyTo,
		at:         r.at,
	})
	p.chans[ch].count++
	e := &p.engrams[slot]
	e.entities = p.addFeatures(featEntity, r.entities, slot)
	e.topics = p.addFeatures(featTopic, r.topics, slot)
	e.terms = p.addFeatures(featTerm, contentTerms(r.content), slot)
	e.acc.add(r.at)
	e.addEvent(ch)
	e.stableKey = stableKey(lambdaA, e.lnImp, e.acc.n, e.acc.lastAt())
	p.byID[r.id] = slot
	p.live.Add(1)
	p.routes.addEngram(e.importance, slot)
	c := &p.chans[ch]
	c.events++
	p.events++
	c.recent = append(c.recent, slot)
	if len(c.recent) > recentPerChannel {
		c.recent = append(c.recent[:0], c.recent[len(c.recent)-recentPerChannel:]...)
	}
	c.lastAt = max(c.lastAt, r.at)
	p.pushFront(slot)
	p.stable.ReplaceOrInsert(stableEntry{key: e.stableKey, slot: slot})
	for _, ed := range r.edges {
		p.applyEdge(ed)
	}
	return slot
}

func (p *persona) addFeatures(kind featureKind, names []string, slot uint32) []uint32 {
	if len(names) == 0 {
		return nil
	}
	ids := make([]uint32, 0, len(names))
	for _, n := range names {
		id := p.feats.intern(kind, n)
		f := &p.feats.list[id]
		if len(f.postings) > 0 && f.postings[len(f.postings)-1] == slot {
			continue // a repeated name
		}
		f.postings = append(f.postings, slot)
		f.fan++
		ids = append(ids, id)
	}
	return ids
}

// applyConsume records accesses and the derived edges.
func (p *persona) applyConsume(r *consumeRec, lambdaA float64) {
	ch := p.channelSlot(r.channel)
	c := &p.chans[ch]
	for _, id := range r.ids {
		s, ok := p.byID[id]
		if !ok {
			continue
		}
		e := &p.engrams[s]
		p.stable.Delete(stableEntry{key: e.stableKey, slot: s})
		e.acc.add(r.at)
		e.addEvent(ch)
		e.stableKey = stableKey(lambdaA, e.lnImp, e.acc.n, e.acc.lastAt())
		p.stable.ReplaceOrInsert(stableEntry{key: e.stableKey, slot: s})
		c.events++
		p.events++
		p.touch(s)
	}
	for _, ed := range r.edges {
		p.applyEdge(ed)
	}
}

// applyEdge sets an edge between two live engrams.
func (p *persona) applyEdge(ed edgeRec) {
	from, ok1 := p.byID[ed.from]
	to, ok2 := p.byID[ed.to]
	if !ok1 || !ok2 || from == to || !ed.kind.valid() {
		return
	}
	p.graph.SetEdge(from, to, ed.kind, ed.weight)
}

// applyForget deletes an engram, its edges and its counts, and leaves a
// tombstone. It reports whether the engram was there.
func (p *persona) applyForget(r *forgetRec) bool {
	p.tombs[r.id] = r.at
	s, ok := p.byID[r.id]
	if !ok {
		return false
	}
	e := &p.engrams[s]
	for _, ids := range [][]uint32{e.entities, e.topics, e.terms} {
		for _, f := range ids {
			p.feats.list[f].fan--
		}
	}
	for _, cc := range e.chans {
		p.chans[cc.ch].events -= uint64(cc.n)
		p.events -= uint64(cc.n)
	}
	c := &p.chans[e.channel]
	for i, x := range c.recent {
		if x == s {
			c.recent = append(c.recent[:i], c.recent[i+1:]...)
			break
		}
	}
	c.pendingCites = removeValue(c.pendingCites, s)
	p.unlink(s)
	p.stable.Delete(stableEntry{key: e.stableKey, slot: s})
	p.graph.EvictEngram(s)
	p.routes.dropEngram(e.importance)
	delete(p.byID, r.id)
	*e = engram{}
	p.live.Add(-1)
	return true
}

func removeValue(s []uint32, v uint32) []uint32 {
	out := s[:0]
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// pruneTombstones drops tombstones older than before.
func (p *persona) pruneTombstones(before int64) {
	for id, at := range p.tombs {
		if at < before {
			delete(p.tombs, id)
		}
	}
}

// clearData empties the persona (destroyed).
func (p *persona) clearData() {
	p.engrams = nil
	p.byID = map[string]uint32{}
	p.graph = NewGraph()
	p.feats = featureIndex{}
	p.chans = nil
	p.chanIdx = map[string]uint16{}
	p.events = 0
	p.head, p.tail = 0, 0
	p.stable = newStableIndex()
	p.routes = routeModel{}
	p.live.Store(0)
}

// recentInChannel returns up to n of the channel's last remembered live
// engrams, most recent first.
func (p *persona) recentInChannel(ch uint16, n int, out []uint32) []uint32 {
	c := &p.chans[ch]
	for i := len(c.recent) - 1; i >= 0 && len(out) < n; i-- {
		if p.engrams[c.recent[i]].live() {
			out = append(out, c.recent[i])
		}
	}
	return out
}

// lagOf is how many engrams were remembered in the engram's channel after
// it, when ch is that channel; ok is false otherwise.
func (p *persona) lagOf(slot uint32, ch uint16) (int, bool) {
	e := &p.engrams[slot]
	if e.channel != ch {
		return 0, false
	}
	return int(p.chans[ch].count - 1 - e.seq), true
}

// lagWindow is how many of a channel's latest engrams the lag correction
// covers.
const lagWindow = 16

// lagBias is the lag correction, ln((c_l + 1)/(mean c + 1)) for each lag l,
// or nil before any consumption of a recent engram. The caller holds mu.
func (p *persona) lagBias() *[lagWindow]float64 {
	var total float64
	for _, c := range p.lagCounts {
		total += c
	}
	if total == 0 {
		return nil
	}
	mean := total / lagWindow
	var b [lagWindow]float64
	for i, c := range p.lagCounts {
		b[i] = math.Log((c + 1) / (mean + 1))
	}
	return &b
}
