package hippocampus

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/continuum-mesh/continuum/pkg/region"
)

// RegionID is the hippocampus region's id in the runner and telemetry.
const RegionID = "hippocampus"

// target is one (persona, channel): its ready buffer, the demand the
// governor reads, and the pool split it learns.
type target struct {
	persona *persona
	channel string
	buf     region.ReadyBuffer[Item]

	// Lock-free parts, touched by request handlers.
	requests atomic.Int64 // since the last tick
	asleep   atomic.Bool

	mu          sync.Mutex
	p           float64 // the stable pool's share
	stableGhost []uint32
	assocGhost  []uint32
	pending     []uint32 // missed slots since the last tick
	consumed    []uint32 // unique staged slots consumed since the last tick
	misses      int
	quiet       int
	lastRequest int64

	// Totals for Stats (reqTotal: requests counted by ticks so far).
	hits, missTotal, late, published, ticks, reqTotal atomic.Uint64
}

// forgetSlot removes a forgotten engram from the buffer and the learning
// state.
func (t *target) forgetSlot(slot uint32) {
	t.buf.Remove(func(it Item) bool { return it.Slot == slot })
	t.mu.Lock()
	drop := func(x uint32) bool { return x == slot }
	t.stableGhost = slices.DeleteFunc(t.stableGhost, drop)
	t.assocGhost = slices.DeleteFunc(t.assocGhost, drop)
	t.pending = slices.DeleteFunc(t.pending, drop)
	t.consumed = slices.DeleteFunc(t.consumed, drop)
	t.mu.Unlock()
}

// hippocampusRegion is the region: each tick predicts what the next turn of
// one (persona, channel) will need and publishes it into the target's ready
// buffer. It never runs on a request path; requests only peek.
type hippocampusRegion struct {
	mem    *memory
	runner *region.Runner
	gov    *region.Governor
	k      int
	ours   bool
	// beforePredict, when set, runs inside a tick while it holds the
	// persona's read lock (tests make the predictor slow with it).
	beforePredict func()
	// scratch is the ticks' working memory: the runner ticks one target at
	// a time, and keeping it here (not in a sync.Pool, which every GC
	// empties) spares a tick re-allocating megabytes at 100k engrams.
	scratch *scratch
}

var _ region.Region = (*hippocampusRegion)(nil)

func (r *hippocampusRegion) ID() string { return RegionID }

// Profile: the persona graphs are held in memory (moderate), ticks are
// plain CPU work, and the region yields to memory and CPU pressure.
func (r *hippocampusRegion) Profile() region.PressureProfile {
	return region.PressureProfile{
		Memory:     region.MemoryModerate,
		Compute:    region.ComputeCPU,
		RespondsTo: []region.PressureSource{region.SourceMemory, region.SourceCPU},
	}
}

// Tick predicts and publishes for one (persona, channel).
func (r *hippocampusRegion) Tick(_ context.Context, rc region.RegionContext) region.TickOutcome {
	p := r.mem.get(rc.Persona)
	if p == nil {
		return region.TickOutcome{Retire: true}
	}
	t := p.target(rc.Channel)
	if t == nil {
		return region.TickOutcome{Retire: true}
	}
	switch p.state() {
	case stateGone:
		return region.TickOutcome{Retire: true}
	case stateMovingOut:
		return region.TickOutcome{Cadence: region.Hold}
	}
	t.asleep.Store(false)
	now := rc.Now.UnixNano()
	reqs := int(t.requests.Swap(0))
	t.reqTotal.Add(uint64(reqs))

	t.mu.Lock()
	share := t.p
	pending := t.pending
	t.pending = nil
	consumed := len(t.consumed)
	t.consumed = t.consumed[:0]
	misses := t.misses
	t.misses = 0
	if t.lastRequest == 0 {
		t.lastRequest = now
	}
	if reqs > 0 {
		t.quiet = 0
		t.lastRequest = now
	} else {
		t.quiet++
	}
	quiet, since := t.quiet, time.Duration(now-t.lastRequest)
	t.mu.Unlock()

	scale := 1.0
	if rc.Pressure >= region.PressureHigh {
		scale = 0.5
	}
	if r.scratch == nil {
		r.scratch = &scratch{spread: newSpreadScratch()}
	}
	sc := r.scratch
	p.mu.RLock()
	if r.beforePredict != nil {
		r.beforePredict()
	}
	sel := r.mem.pred.predict(p, predictArgs{channel: rc.Channel, now: now, share: share, k: r.k, budgetScale: scale}, sc)
	p.mu.RUnlock()

	old := t.buf.Peek()
	fresh := 0
	for _, it := range sel.items {
		if old == nil || !slices.ContainsFunc(old.Items, func(o Item) bool { return o.Slot == it.Slot }) {
			fresh++
		}
	}
	late := 0
	for _, s := range pending {
		if slices.ContainsFunc(sel.items, func(it Item) bool { return it.Slot == s }) {
			late++
		}
	}
	expires := rc.Now.Add(max(2*rc.Interval, r.mem.cfg.MinExpiry))
	gen := t.buf.Publish(sel.items, rc.Now, expires).Generation
	t.mu.Lock()
	t.stableGhost, t.assocGhost = sel.stableGhost, sel.assocGhost
	t.mu.Unlock()

	hint := r.gov.Hint(region.Demand{Requests: reqs, LateMisses: late, QuietTicks: quiet, SinceRequest: since})
	switch p.sleepPhase() {
	case region.PhaseSleep:
		hint = region.Sleep
	case region.PhaseIdle:
		if hint == region.Hold {
			hint = region.Slower
		}
	}
	if hint == region.Sleep {
		t.asleep.Store(true)
	}
	observed := region.PressureNominal
	if sel.exhausted {
		observed = region.PressureModerate
	}
	t.ticks.Add(1)
	t.published.Add(uint64(fresh))
	t.late.Add(uint64(late))
	out := region.TickOutcome{
		Published:    fresh,
		Consumed:     consumed,
		Requests:     reqs,
		BufferMisses: misses,
		LateMisses:   late,
		Pressure:     observed,
		Cadence:      hint,
		Generation:   gen,
	}
	return out
}

// OnSignal handles lifecycle and sleep-phase signals; pressure reaches the
// governor through the runner and needs nothing more here (ticks read it
// from their RegionContext). Persona creation and destruction are done by
// the service before the signal reaches the region.
func (r *hippocampusRegion) OnSignal(_ context.Context, s region.Signal) error {
	switch s.Kind {
	case region.SignalSleepPhase:
		p := r.mem.get(s.Persona)
		if p == nil {
			return &region.SignalError{Region: RegionID, Signal: s, Why: "persona-unknown"}
		}
		p.phase.Store(uint32(s.Phase))
		if s.Phase == region.PhaseActive {
			p.eachTarget(func(t *target) {
				r.runner.Wake(RegionID, region.Target{Persona: p.name, Channel: t.channel})
			})
		}
	case region.SignalPersonaDestroyed:
		r.runner.RemovePersona(RegionID, s.Persona)
	case region.SignalPersonaCreated, region.SignalPressure:
	default:
		return &region.SignalError{Region: RegionID, Signal: s, Why: "unknown-signal"}
	}
	return nil
}

// request counts a request (peek, consumption, recall) for the governor
// and wakes a sleeping target one second later. It never waits for a tick.
func (r *hippocampusRegion) request(t *target) {
	t.requests.Add(1)
	if t.asleep.Load() && t.asleep.CompareAndSwap(true, false) {
		r.runner.Wake(RegionID, region.Target{Persona: t.persona.name, Channel: t.channel})
	}
}

// ensureTarget returns the channel's target, creating it and scheduling
// its first tick (after the wake delay) when it is new.
func (r *hippocampusRegion) ensureTarget(p *persona, channel string) (*target, bool) {
	if t := p.target(channel); t != nil {
		return t, true
	}
	t, ok := p.ensureTarget(channel, r.mem.cfg.Model.P0, r.mem.cfg.MaxChannelsPerPersona)
	if ok {
		r.runner.Wake(RegionID, region.Target{Persona: p.name, Channel: channel})
	}
	return t, ok
}

// kick schedules the debounced tick after an ingest.
func (r *hippocampusRegion) kick(p *persona, channel string) {
	if _, ok := p.ensureTarget(channel, r.mem.cfg.Model.P0, r.mem.cfg.MaxChannelsPerPersona); ok {
		r.runner.Kick(RegionID, region.Target{Persona: p.name, Channel: channel}, r.gov.Config().KickDelay)
	}
}

// consumeHook counts each consumed engram as a hit or a miss against the
// buffer as it is at the request, and adapts the pool split like ARC: a
// miss found only in the stable ghost grows the stable pool by 1/K, one
// found only in the associative ghost shrinks it; hits never move it. It
// runs under the persona's lock, before the consumption is applied.
func (r *hippocampusRegion) consumeHook(t *target, slots []uint32, now int64) int {
	r.request(t)
	s := t.buf.Peek()
	valid := s != nil && !s.Expired(time.Unix(0, now))
	k := float64(r.k)
	pmin, pmax := r.mem.cfg.Model.PMin, r.mem.cfg.Model.PMax
	hits := 0
	t.mu.Lock()
	defer t.mu.Unlock()
	ch, chKnown := t.persona.chanIdx[t.channel]
	// The route mixture learns from every consumption, hit or miss, in the
	// context a tick at this instant would have seen.
	var ep *episode
	if r.ours && r.mem.pred.routes() {
		ep = &episode{}
		buildEpisode(t.persona, ch, chKnown, now, int64(r.mem.cfg.ReplyWindow), r.mem.cfg.Model.D, r.mem.pred.table, ep)
	}
	for _, slot := range slots {
		if ep != nil {
			t.persona.routes.learn(t.persona, ep, slot)
		}
		if chKnown {
			if lag, ok := t.persona.lagOf(slot, ch); ok && lag < lagWindow {
				t.persona.lagCounts[lag]++
			}
		}
		if valid && slices.ContainsFunc(s.Items, func(it Item) bool { return it.Slot == slot }) {
			hits++
			if !slices.Contains(t.consumed, slot) {
				t.consumed = append(t.consumed, slot)
			}
			continue
		}
		t.misses++
		t.pending = append(t.pending, slot)
		if !r.ours {
			continue
		}
		inStable, inAssoc := slices.Contains(t.stableGhost, slot), slices.Contains(t.assocGhost, slot)
		switch {
		case inStable && !inAssoc:
			t.p = min(1-1/k, pmax, t.p+1/k)
		case inAssoc && !inStable:
			t.p = max(pmin, t.p-1/k)
		}
	}
	t.hits.Add(uint64(hits))
	t.missTotal.Add(uint64(len(slots) - hits))
	return hits
}
