package hippocampus

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/continuum-mesh/continuum/pkg/region"
)

// memory holds the personas this member serves and performs every change
// to them: under the persona's lock it derives what a change implies (edges),
// journals it, and applies it; then it waits for the journal's fsync before
// the change is acknowledged.
type memory struct {
	cfg    *Config
	log    *slog.Logger
	clock  region.Clock
	pred   *predictor
	dir    string   // <DataDir>/hippocampus; "" keeps nothing on disk
	j      *journal // nil without a DataDir
	fileMu sync.Mutex

	personas personaIndex
}

func newMemory(cfg *Config, log *slog.Logger, clock region.Clock) *memory {
	m := &memory{cfg: cfg, log: log, clock: clock, pred: &predictor{cfg: cfg, kind: scorerByName(cfg.Scorer), table: rankTable(cfg.Model.D)}}
	m.personas.seed = maphash.MakeSeed()
	if cfg.DataDir != "" {
		m.dir = filepath.Join(cfg.DataDir, "hippocampus")
	}
	return m
}

func (m *memory) now() int64 { return m.clock.Now().UnixNano() }

// get returns a persona this member holds, or nil.
func (m *memory) get(name string) *persona { return m.personas.get(name) }

// getOrCreate returns the persona, creating an empty one.
func (m *memory) getOrCreate(name string) *persona {
	if p := m.personas.get(name); p != nil {
		return p
	}
	return m.personas.add(name)
}

// detach removes p from the index (if it is still the one there).
func (m *memory) detach(p *persona) { m.personas.remove(p) }

// each calls fn for every persona held.
func (m *memory) each(fn func(*persona) bool) { m.personas.each(fn) }

// personaShards spreads the persona index so that adding a persona copies
// only a small map.
const personaShards = 64

// personaIndex maps names to personas for the hot path: a lookup is a hash,
// one atomic load and a plain map read (no lock, no allocation); adding or
// removing a persona copies its shard's map (copy-on-write).
type personaIndex struct {
	seed   maphash.Seed // set by newMemory
	shards [personaShards]struct {
		mu sync.Mutex
		m  atomic.Pointer[map[string]*persona]
	}
}

func (ix *personaIndex) shard(name string) int {
	return int(maphash.String(ix.seed, name) % personaShards)
}

func (ix *personaIndex) get(name string) *persona {
	if m := ix.shards[ix.shard(name)].m.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

func (ix *personaIndex) add(name string) *persona {
	sh := &ix.shards[ix.shard(name)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var cur map[string]*persona
	if m := sh.m.Load(); m != nil {
		cur = *m
	}
	if p := cur[name]; p != nil {
		return p
	}
	next := make(map[string]*persona, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	p := newPersona(name)
	next[name] = p
	sh.m.Store(&next)
	return p
}

func (ix *personaIndex) remove(p *persona) {
	sh := &ix.shards[ix.shard(p.name)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m := sh.m.Load()
	if m == nil || (*m)[p.name] != p {
		return
	}
	next := make(map[string]*persona, len(*m))
	for k, v := range *m {
		if k != p.name {
			next[k] = v
		}
	}
	sh.m.Store(&next)
}

func (ix *personaIndex) each(fn func(*persona) bool) {
	for i := range ix.shards {
		m := ix.shards[i].m.Load()
		if m == nil {
			continue
		}
		for _, p := range *m {
			if !fn(p) {
				return
			}
		}
	}
}

// usable reports why a locked persona cannot take a change.
func usable(p *persona) error {
	switch p.state() {
	case stateActive:
		return nil
	case stateMovingOut:
		return &MovingError{Persona: p.name}
	}
	if h := p.handedOff(); h != "" {
		return &NotOwnedError{Persona: p.name, Owner: h}
	}
	return &MovingError{Persona: p.name}
}

// journalLocked appends r when there is a journal. The caller holds p.mu.
func (m *memory) journalLocked(p *persona, r *record) (uint64, error) {
	if m.j == nil {
		return 0, nil
	}
	r.persona = p.name
	lsn, err := m.j.append(r)
	if err != nil {
		return 0, err
	}
	return lsn, nil
}

// durable waits for lsn to be on disk.
func (m *memory) durable(lsn uint64) error {
	if m.j == nil || lsn == 0 {
		return nil
	}
	return m.j.wait(lsn)
}

// remember stores an engram. entities and topics are normalised.
func (m *memory) remember(p *persona, channel string, in *EngramInput, entities, topics []string) (string, bool, error) {
	now := m.now()
	at := now
	if !in.At.IsZero() {
		at = min(in.At.UnixNano(), now)
	}
	p.mu.Lock()
	if err := usable(p); err != nil {
		p.mu.Unlock()
		return "", false, err
	}
	id := in.ID
	if id != "" {
		if _, ok := p.byID[id]; ok {
			p.mu.Unlock()
			return id, true, nil
		}
	} else {
		for {
			id = newEngramID()
			if _, dup := p.byID[id]; !dup {
				break
			}
		}
	}
	if int(p.live.Load()) >= m.cfg.MaxEngramsPerPersona {
		p.mu.Unlock()
		return "", false, &LimitError{Reason: ReasonPersonaFull, Msg: fmt.Sprintf("persona %q holds %d engrams, the limit", p.name, m.cfg.MaxEngramsPerPersona)}
	}
	if err := m.checkChannelRoom(p, channel); err != nil {
		p.mu.Unlock()
		return "", false, err
	}
	if in.ReplyTo != "" {
		if _, ok := p.byID[in.ReplyTo]; !ok {
			p.mu.Unlock()
			return "", false, &EngramUnknownError{Persona: p.name, ID: in.ReplyTo}
		}
	}
	r := &record{kind: recRemember, rem: rememberRec{
		id: id, content: in.Content, channel: channel, replyTo: in.ReplyTo,
		entities: entities, topics: topics, importance: importanceOf(in.Importance), at: at,
	}}
	r.rem.edges = m.deriveRemember(p, &r.rem, now)
	lsn, err := m.journalLocked(p, r)
	if err != nil {
		p.mu.Unlock()
		return "", false, err
	}
	delete(p.tombs, id)
	p.applyRemember(&r.rem, m.cfg.Model.LambdaA)
	if c, ok := p.chanIdx[channel]; ok {
		p.chans[c].pendingCites = nil
	}
	p.lsn = max(p.lsn, lsn)
	p.mu.Unlock()
	return id, false, m.durable(lsn)
}

func (m *memory) checkChannelRoom(p *persona, channel string) error {
	if _, ok := p.chanIdx[channel]; !ok && len(p.chans) >= m.cfg.MaxChannelsPerPersona {
		return &LimitError{Reason: ReasonChannelsFull, Msg: fmt.Sprintf("persona %q has %d channels, the limit", p.name, len(p.chans))}
	}
	return nil
}

// edgeSet collects derived edges once each.
type edgeSet struct {
	edges []edgeRec
	seen  map[[2]string]EdgeKind
}

func (es *edgeSet) add(from, to string, kind EdgeKind, w float32) {
	if from == to {
		return
	}
	if es.seen == nil {
		es.seen = map[[2]string]EdgeKind{}
	}
	key := [2]string{from, to}
	if k, ok := es.seen[key]; ok && k == kind {
		return
	}
	es.seen[key] = kind
	es.edges = append(es.edges, edgeRec{from: from, to: to, kind: kind, weight: w})
}

func (es *edgeSet) both(a, b string, kind EdgeKind, w float32) {
	es.add(a, b, kind, w)
	es.add(b, a, kind, w)
}

// deriveRemember finds the edges a new engram gets: SharedEntity and
// SharedTopic edges to the most recent engrams with each of its entities and
// topics, a ConversationalReply edge to the engram it replies to (or the
// channel's previous engram when recent), and CitedIn edges to what the
// channel's last request consumed. Edges go both ways. The caller holds
// p.mu.
func (m *memory) deriveRemember(p *persona, r *rememberRec, now int64) []edgeRec {
	var es edgeSet
	limit := m.cfg.DeriveLimit
	for _, f := range []struct {
		kind  featureKind
		names []string
		edge  EdgeKind
	}{{featEntity, r.entities, EdgeSharedEntity}, {featTopic, r.topics, EdgeSharedTopic}} {
		for _, name := range f.names {
			fid, ok := p.feats.lookup(f.kind, name)
			if !ok {
				continue
			}
			post := p.feats.list[fid].postings
			taken := 0
			for i := len(post) - 1; i >= 0 && taken < limit && len(post)-i <= 8*limit; i-- {
				old := &p.engrams[post[i]]
				if !old.live() {
					continue
				}
				es.both(r.id, old.id, f.edge, f.edge.DefaultWeight())
				taken++
			}
		}
	}
	window := int64(m.cfg.ReplyWindow)
	if r.replyTo != "" {
		es.both(r.id, r.replyTo, EdgeConversationalRepl, EdgeConversationalRepl.DefaultWeight())
	} else if c, ok := p.chanIdx[r.channel]; ok {
		st := &p.chans[c]
		if prev := p.recentInChannel(c, 1, nil); len(prev) == 1 && r.at-st.lastAt <= window && st.lastAt-r.at <= window {
			es.both(r.id, p.engrams[prev[0]].id, EdgeConversationalRepl, EdgeConversationalRepl.DefaultWeight())
		}
	}
	if c, ok := p.chanIdx[r.channel]; ok {
		st := &p.chans[c]
		if now-st.pendingAt <= window {
			for _, s := range st.pendingCites {
				if p.engrams[s].live() {
					es.both(p.engrams[s].id, r.id, EdgeCitedIn, EdgeCitedIn.DefaultWeight())
				}
			}
		}
	}
	return es.edges
}

// ConsumeResult is what a consumption recorded.
type ConsumeResult struct {
	Consumed int
	Hits     int
}

// maxCoConsumed bounds the engrams of one request that get pairwise
// co-occurrence edges.
const maxCoConsumed = 16

// consume records that a request in channel used ids: accesses, channel
// events, the derived edges, and each engram's hit or miss against the
// channel's ready buffer (which also adapts the pool split). Unknown ids
// fail the whole call and record nothing.
func (m *memory) consume(p *persona, channel string, ids []string, hook func(t *target, slots []uint32, now int64) int) (ConsumeResult, error) {
	now := m.now()
	p.mu.Lock()
	if err := usable(p); err != nil {
		p.mu.Unlock()
		return ConsumeResult{}, err
	}
	slots := make([]uint32, 0, len(ids))
	uniq := make([]string, 0, len(ids))
	for _, id := range ids {
		s, ok := p.byID[id]
		if !ok {
			p.mu.Unlock()
			return ConsumeResult{}, &EngramUnknownError{Persona: p.name, ID: id}
		}
		if !slices.Contains(slots, s) {
			slots = append(slots, s)
			uniq = append(uniq, id)
		}
	}
	if err := m.checkChannelRoom(p, channel); err != nil {
		p.mu.Unlock()
		return ConsumeResult{}, err
	}
	r := &record{kind: recConsume, con: consumeRec{channel: channel, at: now, ids: uniq}}
	r.con.edges = m.deriveConsume(p, channel, slots, now)
	lsn, err := m.journalLocked(p, r)
	if err != nil {
		p.mu.Unlock()
		return ConsumeResult{}, err
	}
	hits := 0
	if hook != nil {
		if t := p.target(channel); t != nil {
			hits = hook(t, slots, now)
		}
	}
	p.applyConsume(&r.con, m.cfg.Model.LambdaA)
	c := &p.chans[p.chanIdx[channel]]
	c.pendingCites = append(c.pendingCites[:0], slots[:min(len(slots), maxCoConsumed)]...)
	c.pendingAt = now
	p.lsn = max(p.lsn, lsn)
	p.mu.Unlock()
	return ConsumeResult{Consumed: len(slots), Hits: hits}, m.durable(lsn)
}

// deriveConsume finds a consumption's edges: RecallCoOccurrence between
// engrams used together (this request's, and the channel's previous
// request's within the reply window), growing by 0.1 per co-consumption;
// CitedIn between each consumed engram and the channel's latest engram
// (the turn the request answered).
func (m *memory) deriveConsume(p *persona, channel string, slots []uint32, now int64) []edgeRec {
	var es edgeSet
	co := slots[:min(len(slots), maxCoConsumed)]
	window := int64(m.cfg.ReplyWindow)
	var prev []uint32
	c, known := p.chanIdx[channel]
	if known && now-p.chans[c].pendingAt <= window {
		prev = p.chans[c].pendingCites
	}
	coWeight := func(a, b uint32) float32 {
		if w, ok := p.graph.EdgeWeight(a, b, EdgeRecallCoOccurrence); ok {
			return min(w+coOccurrenceStep, coOccurrenceCap)
		}
		return EdgeRecallCoOccurrence.DefaultWeight()
	}
	pair := func(a, b uint32) {
		if a == b || !p.engrams[a].live() || !p.engrams[b].live() {
			return
		}
		es.add(p.engrams[a].id, p.engrams[b].id, EdgeRecallCoOccurrence, coWeight(a, b))
		es.add(p.engrams[b].id, p.engrams[a].id, EdgeRecallCoOccurrence, coWeight(b, a))
	}
	for i, a := range co {
		for _, b := range co[i+1:] {
			pair(a, b)
		}
		for _, b := range prev {
			if !slices.Contains(co, b) {
				pair(a, b)
			}
		}
	}
	if known {
		if latest := p.recentInChannel(c, 1, nil); len(latest) == 1 && now-p.chans[c].lastAt <= window {
			for _, s := range co {
				es.both(p.engrams[s].id, p.engrams[latest[0]].id, EdgeCitedIn, EdgeCitedIn.DefaultWeight())
			}
		}
	}
	return es.edges
}

// link adds or updates an edge named by the caller.
func (m *memory) link(p *persona, from, to string, kind EdgeKind, weight float64) (float32, error) {
	p.mu.Lock()
	if err := usable(p); err != nil {
		p.mu.Unlock()
		return 0, err
	}
	fs, ok := p.byID[from]
	if !ok {
		p.mu.Unlock()
		return 0, &EngramUnknownError{Persona: p.name, ID: from}
	}
	ts, ok := p.byID[to]
	if !ok {
		p.mu.Unlock()
		return 0, &EngramUnknownError{Persona: p.name, ID: to}
	}
	w := float32(weight)
	if weight == 0 {
		w = kind.DefaultWeight()
	}
	if kind == EdgeRecallCoOccurrence {
		if old, ok := p.graph.EdgeWeight(fs, ts, kind); ok {
			w = min(old+coOccurrenceStep, coOccurrenceCap)
		}
	}
	r := &record{kind: recLink, link: edgeRec{from: from, to: to, kind: kind, weight: w}}
	lsn, err := m.journalLocked(p, r)
	if err != nil {
		p.mu.Unlock()
		return 0, err
	}
	p.applyEdge(r.link)
	p.lsn = max(p.lsn, lsn)
	p.mu.Unlock()
	return w, m.durable(lsn)
}

// forget deletes an engram; it reports whether it was there.
func (m *memory) forget(p *persona, id string) (bool, error) {
	p.mu.Lock()
	if err := usable(p); err != nil {
		p.mu.Unlock()
		return false, err
	}
	slot, ok := p.byID[id]
	if !ok {
		p.mu.Unlock()
		return false, nil
	}
	r := &record{kind: recForget, forget: forgetRec{id: id, at: m.now()}}
	lsn, err := m.journalLocked(p, r)
	if err != nil {
		p.mu.Unlock()
		return false, err
	}
	p.applyForget(&r.forget)
	p.lsn = max(p.lsn, lsn)
	p.mu.Unlock()
	// No buffer may show a forgotten engram again.
	p.eachTarget(func(t *target) { t.forgetSlot(slot) })
	return true, m.durable(lsn)
}

// drop removes a persona from this member for good (handed away or
// destroyed): journaled, then its snapshot file deleted.
func (m *memory) drop(p *persona, handedTo string) error {
	p.mu.Lock()
	r := &record{kind: recDrop}
	lsn, err := m.journalLocked(p, r)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	p.setState(stateGone)
	if handedTo != "" {
		p.handedTo.Store(&handedTo)
	}
	p.clearData()
	p.lsn = max(p.lsn, lsn)
	p.mu.Unlock()
	if err := m.durable(lsn); err != nil {
		return err
	}
	m.fileMu.Lock()
	defer m.fileMu.Unlock()
	m.detach(p)
	if m.dir != "" {
		if err := removeFile(snapshotPath(filepath.Join(m.dir, personaDir), p.name)); err != nil {
			return fmt.Errorf("%w: remove snapshot of %q: %w", errStore, p.name, err)
		}
	}
	return nil
}

// exportSnapshot encodes a persona's state.
func (m *memory) exportSnapshot(p *persona) []byte {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.encodeSnapshot(nil)
}

// importSnapshot merges a received snapshot into the persona of that name
// (created if needed) and makes the result durable as the persona's
// snapshot file before returning.
func (m *memory) importSnapshot(s *snapshot) (engrams, edges int, err error) {
	m.fileMu.Lock()
	defer m.fileMu.Unlock()
	for {
		p := m.getOrCreate(s.persona)
		p.mu.Lock()
		if p.state() == stateGone {
			p.mu.Unlock()
			m.detach(p)
			continue
		}
		if p.state() == stateMovingOut {
			p.mu.Unlock()
			return 0, 0, &MovingError{Persona: p.name}
		}
		p.mergeSnapshot(s, m.cfg.Model.LambdaA)
		if m.j != nil {
			p.lsn = m.j.reserve()
			data := p.encodeSnapshot(nil)
			if err := writeFileAtomic(snapshotPath(filepath.Join(m.dir, personaDir), p.name), data); err != nil {
				p.mu.Unlock()
				return 0, 0, fmt.Errorf("%w: write snapshot of %q: %w", errStore, p.name, err)
			}
			p.snapLSN = p.lsn
		}
		engrams, edges = int(p.live.Load()), p.graph.EdgeCount()
		p.mu.Unlock()
		return engrams, edges, nil
	}
}

// open loads the store (snapshots, then the journal) and starts a new
// journal segment. Without a DataDir it does nothing.
func (m *memory) open() error {
	if m.dir == "" {
		return nil
	}
	pdir := filepath.Join(m.dir, personaDir)
	if err := os.MkdirAll(pdir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", pdir, err)
	}
	snaps, err := loadSnapshots(pdir)
	if err != nil {
		return err
	}
	var maxLSN uint64
	for _, s := range snaps {
		p := m.getOrCreate(s.persona)
		p.mergeSnapshot(s, m.cfg.Model.LambdaA)
		p.lsn, p.snapLSN = s.lsn, s.lsn
		maxLSN = max(maxLSN, s.lsn)
	}
	walMax, err := replayJournal(filepath.Join(m.dir, walDir), m.log, func(r *record) error {
		return m.replay(r, pdir)
	})
	if err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	m.j, err = openJournal(filepath.Join(m.dir, walDir), max(maxLSN, walMax)+1)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	return nil
}

// replay applies one journal record during recovery.
func (m *memory) replay(r *record, pdir string) error {
	p := m.get(r.persona)
	if r.kind == recDrop {
		if p != nil && r.lsn > p.snapLSN {
			m.detach(p)
			return removeFile(snapshotPath(pdir, r.persona))
		}
		return nil
	}
	if p == nil {
		p = m.getOrCreate(r.persona)
	}
	if r.lsn <= p.snapLSN {
		return nil
	}
	la := m.cfg.Model.LambdaA
	switch r.kind {
	case recRemember:
		if _, dup := p.byID[r.rem.id]; !dup {
			delete(p.tombs, r.rem.id)
			p.applyRemember(&r.rem, la)
		}
	case recConsume:
		p.applyConsume(&r.con, la)
	case recLink:
		p.applyEdge(r.link)
	case recForget:
		p.applyForget(&r.forget)
	}
	p.lsn = max(p.lsn, r.lsn)
	return nil
}

// checkpoint rotates the journal, writes the snapshot of every persona that
// changed since its last one, and deletes the journal segments and snapshot
// files nothing needs any more.
func (m *memory) checkpoint() error {
	if m.j == nil {
		return nil
	}
	m.fileMu.Lock()
	defer m.fileMu.Unlock()
	wdir := filepath.Join(m.dir, walDir)
	pdir := filepath.Join(m.dir, personaDir)
	before, err := segments(wdir)
	if err != nil {
		return err
	}
	if err := m.j.rotate(); err != nil {
		return err
	}
	keep := map[string]bool{}
	var firstErr error
	m.each(func(p *persona) bool {
		path := snapshotPath(pdir, p.name)
		p.mu.RLock()
		gone := p.state() == stateGone
		dirty := !gone && p.lsn > p.snapLSN
		var data []byte
		lsn := p.lsn
		if dirty {
			data = p.encodeSnapshot(nil)
		}
		hasFile := p.snapLSN > 0
		p.mu.RUnlock()
		if gone {
			return true
		}
		if dirty {
			if err := writeFileAtomic(path, data); err != nil {
				firstErr = fmt.Errorf("%w: write snapshot of %q: %w", errStore, p.name, err)
				return false
			}
			p.mu.Lock()
			p.snapLSN = max(p.snapLSN, lsn)
			p.mu.Unlock()
			hasFile = true
		}
		if hasFile {
			keep[filepath.Base(path)] = true
		}
		return true
	})
	if firstErr != nil {
		return firstErr
	}
	for _, seg := range before {
		if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	ents, err := os.ReadDir(pdir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), snapExt) && !keep[e.Name()] {
			if err := os.Remove(filepath.Join(pdir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return syncDir(pdir)
}

// needsCheckpoint reports whether the journal grew past the threshold.
func (m *memory) needsCheckpoint() bool {
	return m.j != nil && m.j.sinceRotation() >= m.cfg.CheckpointBytes
}

// close checkpoints (so a restart reads snapshots, not a long journal) and
// closes the journal.
func (m *memory) close() error {
	if m.j == nil {
		return nil
	}
	err := m.checkpoint()
	if cerr := m.j.close(); err == nil {
		err = cerr
	}
	return err
}

// pruneTombstones drops tombstones older than the TTL.
func (m *memory) pruneTombstones() {
	before := m.clock.Now().Add(-m.cfg.TombstoneTTL).UnixNano()
	m.each(func(p *persona) bool {
		p.mu.Lock()
		p.pruneTombstones(before)
		p.mu.Unlock()
		return true
	})
}

// stats sums a persona's (or every persona's) counts.
func (m *memory) personaCounts(p *persona) (engrams, edges uint64) {
	return uint64(p.live.Load()), uint64(p.graph.EdgeCount())
}
