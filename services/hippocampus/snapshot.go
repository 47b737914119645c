package hippocampus

import (
	"cmp"
	"encoding/binary"
	"hash/crc32"
	"math"
	"slices"
)

// snapshotMagic starts every snapshot; its last byte is the format version.
const snapshotMagic = "HPS\x01"

// encodeSnapshot renders the persona's whole state: live engrams with their
// access histories, the features they use, channels with their learned
// pool split, edges, and tombstones. The caller holds p.mu (read).
func (p *persona) encodeSnapshot(dst []byte) []byte {
	e := encoder{b: append(dst, snapshotMagic...)}
	e.str(p.name)
	e.uvarint(p.lsn)

	e.uvarint(uint64(len(p.chans)))
	for _, c := range p.chans {
		e.str(c.name)
		share := math.NaN()
		if t := p.target(c.name); t != nil {
			t.mu.Lock()
			share = t.p
			t.mu.Unlock()
		} else if v, ok := p.arcP[c.name]; ok {
			share = v
		}
		e.f64(share)
	}

	// Compact slots and features: only live engrams and the entity and
	// topic features they use are written (content words are re-derived).
	slots := make([]uint32, len(p.engrams))
	featOut := make(map[uint32]uint32)
	var feats []uint32
	n := uint32(0)
	for s := range p.engrams {
		en := &p.engrams[s]
		if !en.live() {
			continue
		}
		slots[s] = n
		n++
		for _, ids := range [][]uint32{en.entities, en.topics} {
			for _, f := range ids {
				if _, ok := featOut[f]; !ok {
					featOut[f] = uint32(len(feats))
					feats = append(feats, f)
				}
			}
		}
	}
	e.uvarint(uint64(len(feats)))
	for _, f := range feats {
		e.u8(uint8(p.feats.list[f].kind))
		e.str(p.feats.list[f].name)
	}
	e.uvarint(uint64(n))
	for s := range p.engrams {
		en := &p.engrams[s]
		if !en.live() {
			continue
		}
		e.str(en.id)
		e.str(en.content)
		e.str(en.replyTo)
		for _, ids := range [][]uint32{en.entities, en.topics} {
			e.uvarint(uint64(len(ids)))
			for _, f := range ids {
				e.uvarint(uint64(featOut[f]))
			}
		}
		e.u8(en.importance)
		e.uvarint(uint64(en.channel))
		e.varint(en.at)
		e.uvarint(uint64(en.acc.n))
		e.varint(en.acc.first)
		k := min(int(en.acc.n), exactAccesses)
		for j := range k {
			e.varint(en.acc.last[j])
		}
		e.uvarint(uint64(len(en.chans)))
		for _, c := range en.chans {
			e.uvarint(uint64(c.ch))
			e.uvarint(uint64(c.n))
		}
	}

	var edges []snapEdge
	p.graph.eachEdge(func(from uint32, ed Edge) {
		if int(from) < len(p.engrams) && int(ed.To) < len(p.engrams) && p.engrams[from].live() && p.engrams[ed.To].live() {
			edges = append(edges, snapEdge{from: slots[from], to: slots[ed.To], kind: ed.Kind, weight: ed.Weight})
		}
	})
	e.uvarint(uint64(len(edges)))
	for _, ed := range edges {
		e.uvarint(uint64(ed.from))
		e.uvarint(uint64(ed.to))
		e.u8(uint8(ed.kind))
		e.f32(ed.weight)
	}

	ids := make([]string, 0, len(p.tombs))
	for id := range p.tombs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	e.uvarint(uint64(len(ids)))
	for _, id := range ids {
		e.str(id)
		e.varint(p.tombs[id])
	}
	return binary.LittleEndian.AppendUint32(e.b, crc32.Checksum(e.b[len(dst):], castagnoli))
}

// snapshot is a decoded persona snapshot, before it is merged into a
// persona.
type snapshot struct {
	persona  string
	lsn      uint64
	channels []snapChannel
	features []featureKey
	engrams  []snapEngram
	edges    []snapEdge
	tombs    []snapTomb
}

type snapChannel struct {
	name  string
	share float64 // NaN when unknown
}

type snapEngram struct {
	id, content, replyTo string
	entities, topics     []uint32
	importance           uint8
	channel              uint32
	at                   int64
	acc                  accessHistory
	chans                []chanCount
}

type snapEdge struct {
	from, to uint32
	kind     EdgeKind
	weight   float32
}

type snapTomb struct {
	id string
	at int64
}

// decodeSnapshot parses and checks a snapshot.
func decodeSnapshot(b []byte) (*snapshot, error) {
	if len(b) < len(snapshotMagic)+4 || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return nil, &SnapshotError{Msg: "not a persona snapshot (or an unknown version)"}
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, &SnapshotError{Msg: "checksum mismatch"}
	}
	d := decoder{b: body[len(snapshotMagic):]}
	s := &snapshot{persona: d.str(maxNameLen), lsn: d.uvarint()}
	if d.err == nil && validName(s.persona) != nil {
		d.fail("invalid persona name")
	}

	nc := d.count(math.MaxUint16, 9)
	names := map[string]bool{}
	for range nc {
		c := snapChannel{name: d.str(maxNameLen), share: d.f64()}
		if d.err == nil && (validName(c.name) != nil || names[c.name]) {
			d.fail("invalid or repeated channel %q", c.name)
		}
		names[c.name] = true
		s.channels = append(s.channels, c)
	}

	nf := d.count(math.MaxInt32, 2)
	seen := map[featureKey]bool{}
	for range nf {
		k := featureKey{kind: featureKind(d.u8()), name: d.str(maxFeatureLen)}
		if d.err == nil && (k.kind != featEntity && k.kind != featTopic || k.name == "" || seen[k]) {
			d.fail("invalid or repeated feature %q", k.name)
		}
		seen[k] = true
		s.features = append(s.features, k)
	}

	ne := d.count(math.MaxInt32, 10)
	ids := map[string]bool{}
	for range ne {
		en := snapEngram{id: d.str(maxIDLen), content: d.str(maxContentLen), replyTo: d.str(maxIDLen)}
		en.entities = d.featureRefs(nf, featEntity, s.features)
		en.topics = d.featureRefs(nf, featTopic, s.features)
		en.importance = d.u8()
		en.channel = uint32(d.uvarint())
		en.at = d.varint()
		en.acc.n = uint32(min(d.uvarint(), math.MaxUint32))
		en.acc.first = d.varint()
		for j := range min(int(en.acc.n), exactAccesses) {
			en.acc.last[j] = d.varint()
		}
		nch := d.count(nc, 2)
		for range nch {
			en.chans = append(en.chans, chanCount{ch: uint16(min(d.uvarint(), math.MaxUint16)), n: uint32(min(d.uvarint(), math.MaxUint32))})
		}
		if d.err == nil {
			switch {
			case validID(en.id) != nil || ids[en.id]:
				d.fail("invalid or repeated engram id %q", en.id)
			case en.importance < 1 || en.importance > 10:
				d.fail("engram %q: importance %d", en.id, en.importance)
			case int(en.channel) >= nc:
				d.fail("engram %q: channel %d out of range", en.id, en.channel)
			case en.acc.n == 0:
				d.fail("engram %q: no accesses", en.id)
			}
			for _, c := range en.chans {
				if int(c.ch) >= nc || c.n == 0 {
					d.fail("engram %q: bad channel count", en.id)
				}
			}
		}
		ids[en.id] = true
		s.engrams = append(s.engrams, en)
	}

	ned := d.count(math.MaxInt32, 7)
	for range ned {
		ed := snapEdge{from: uint32(min(d.uvarint(), math.MaxUint32)), to: uint32(min(d.uvarint(), math.MaxUint32)), kind: EdgeKind(d.u8()), weight: d.f32()}
		if d.err == nil && (int(ed.from) >= ne || int(ed.to) >= ne || ed.from == ed.to || !validEdge(ed.kind, ed.weight)) {
			d.fail("invalid edge %d->%d", ed.from, ed.to)
		}
		s.edges = append(s.edges, ed)
	}

	nt := d.count(math.MaxInt32, 2)
	for range nt {
		t := snapTomb{id: d.str(maxIDLen), at: d.varint()}
		if d.err == nil && validID(t.id) != nil {
			d.fail("invalid tombstone id")
		}
		s.tombs = append(s.tombs, t)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

func (d *decoder) featureRefs(nf int, kind featureKind, feats []featureKey) []uint32 {
	n := d.count(maxFeatures, 1)
	if n == 0 {
		return nil
	}
	out := make([]uint32, 0, n)
	for range n {
		f := d.uvarint()
		if d.err != nil {
			return nil
		}
		if f >= uint64(nf) || feats[f].kind != kind {
			d.fail("feature reference %d out of range", f)
			return nil
		}
		out = append(out, uint32(f))
	}
	return out
}

// mergeSnapshot merges a decoded snapshot into the persona (which may be
// empty): engrams by id, keeping the richer access history; edges keeping
// the heavier weight; forgotten ids stay forgotten on both sides. Merging
// the same snapshot twice changes nothing. The caller holds p.mu.
func (p *persona) mergeSnapshot(s *snapshot, lambdaA float64) {
	chMap := make([]uint16, len(s.channels))
	for i, c := range s.channels {
		chMap[i] = p.channelSlot(c.name)
		if !math.IsNaN(c.share) && c.share >= 0 && c.share < 1 {
			if _, ok := p.arcP[c.name]; !ok && p.target(c.name) == nil {
				p.arcP[c.name] = c.share
			}
		}
	}
	featMap := make([]uint32, len(s.features))
	for i, f := range s.features {
		featMap[i] = p.feats.intern(f.kind, f.name)
	}
	for _, t := range s.tombs {
		if slot, ok := p.byID[t.id]; ok && p.engrams[slot].at <= t.at {
			p.applyForget(&forgetRec{id: t.id, at: t.at})
		}
		p.tombs[t.id] = max(p.tombs[t.id], t.at)
	}

	const skipped = math.MaxUint32
	slotMap := make([]uint32, len(s.engrams))
	for i := range s.engrams {
		se := &s.engrams[i]
		if at, ok := p.tombs[se.id]; ok && at >= se.at {
			slotMap[i] = skipped
			continue
		}
		if slot, ok := p.byID[se.id]; ok {
			p.mergeAccess(slot, se, chMap, lambdaA)
			slotMap[i] = slot
			continue
		}
		slotMap[i] = p.insertSnapEngram(se, chMap, featMap, lambdaA)
	}
	for _, ed := range s.edges {
		from, to := slotMap[ed.from], slotMap[ed.to]
		if from == skipped || to == skipped || from == to {
			continue
		}
		if w, ok := p.graph.EdgeWeight(from, to, ed.kind); ok && w >= ed.weight {
			continue
		}
		p.graph.SetEdge(from, to, ed.kind, ed.weight)
	}
	p.rebuildRecency()
}

func (p *persona) insertSnapEngram(se *snapEngram, chMap []uint16, featMap []uint32, lambdaA float64) uint32 {
	slot := uint32(len(p.engrams))
	ch := chMap[se.channel]
	p.engrams = append(p.engrams, engram{
		id:         se.id,
		content:    se.content,
		importance: se.importance,
		lnImp:      lnImportance(se.importance),
		channel:    ch,
		seq:        p.chans[ch].count,
		replyTo:    se.replyTo,
		at:         se.at,
		acc:        se.acc,
	})
	p.chans[ch].count++
	e := &p.engrams[slot]
	e.entities = p.linkFeatures(se.entities, featMap, slot)
	e.topics = p.linkFeatures(se.topics, featMap, slot)
	e.terms = p.addFeatures(featTerm, contentTerms(se.content), slot)
	for _, c := range se.chans {
		local := chMap[c.ch]
		e.chans = append(e.chans, chanCount{ch: local, n: c.n})
		p.chans[local].events += uint64(c.n)
		p.events += uint64(c.n)
	}
	e.stableKey = stableKey(lambdaA, e.lnImp, e.acc.n, e.acc.lastAt())
	p.byID[se.id] = slot
	p.live.Add(1)
	p.routes.addEngram(e.importance, slot)
	c := &p.chans[ch]
	c.recent = append(c.recent, slot)
	if len(c.recent) > recentPerChannel {
		c.recent = append(c.recent[:0], c.recent[len(c.recent)-recentPerChannel:]...)
	}
	c.lastAt = max(c.lastAt, se.at)
	p.stable.ReplaceOrInsert(stableEntry{key: e.stableKey, slot: slot})
	return slot
}

func (p *persona) linkFeatures(refs []uint32, featMap []uint32, slot uint32) []uint32 {
	if len(refs) == 0 {
		return nil
	}
	out := make([]uint32, 0, len(refs))
	for _, r := range refs {
		id := featMap[r]
		if slices.Contains(out, id) {
			continue
		}
		f := &p.feats.list[id]
		f.postings = append(f.postings, slot)
		f.fan++
		out = append(out, id)
	}
	return out
}

// mergeAccess keeps the richer of two access histories of one engram and
// the larger count per channel.
func (p *persona) mergeAccess(slot uint32, se *snapEngram, chMap []uint16, lambdaA float64) {
	e := &p.engrams[slot]
	if se.acc.n > e.acc.n || se.acc.n == e.acc.n && se.acc.lastAt() > e.acc.lastAt() {
		p.stable.Delete(stableEntry{key: e.stableKey, slot: slot})
		e.acc = se.acc
		e.stableKey = stableKey(lambdaA, e.lnImp, e.acc.n, e.acc.lastAt())
		p.stable.ReplaceOrInsert(stableEntry{key: e.stableKey, slot: slot})
	}
	for _, c := range se.chans {
		local := chMap[c.ch]
		if have := e.eventsIn(local); c.n > have {
			delta := c.n - have
			if have == 0 {
				e.chans = append(e.chans, chanCount{ch: local, n: c.n})
			} else {
				for i := range e.chans {
					if e.chans[i].ch == local {
						e.chans[i].n = c.n
					}
				}
			}
			p.chans[local].events += uint64(delta)
			p.events += uint64(delta)
		}
	}
}

// rebuildRecency orders the recency list by last access.
func (p *persona) rebuildRecency() {
	slots := make([]uint32, 0, len(p.byID))
	for s := range p.engrams {
		p.engrams[s].prev, p.engrams[s].next = 0, 0
		if p.engrams[s].live() {
			slots = append(slots, uint32(s))
		}
	}
	slices.SortFunc(slots, func(a, b uint32) int {
		if c := cmp.Compare(p.engrams[a].acc.lastAt(), p.engrams[b].acc.lastAt()); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	p.head, p.tail = 0, 0
	for _, s := range slots {
		p.pushFront(s)
	}
}
