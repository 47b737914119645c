package genome

import (
	"slices"
	"sync"
	"sync/atomic"
)

// pageEntry is one page held in some working set. Fields marked "mu" are
// guarded by the manager's lock; view is what the lock-free hit path
// reads, replaced (never mutated) under the lock.
type pageEntry struct {
	ref  PageRef
	hash uint64
	size uint64
	off  uint64 // the page's first byte in its artifact
	fit  int    // position of the fastest tier big enough for the page

	view atomic.Pointer[entryView]

	// mu
	pos     int // tier position; the home tier for pages resident there
	gen     uint64
	holders []PersonaID // holders[charged] pays for the page in its tier
	charged PersonaID
	pins    []PersonaID
	owners  []PersonaID
	loading bool
	ready   chan struct{}
	loadErr error
	removed bool
	lastUse uint64

	// tier lists (mu)
	tierCharge   PersonaID // the persona the tier counts the page for
	seg          segment
	busy         bool
	prev, next   *pageEntry
	sprev, snext *pageEntry // in the tier's list of the persona's pages
}

// entryView is an immutable snapshot of what a page-in hit needs.
type entryView struct {
	role    Role
	pos     int
	gen     uint64
	loading bool
	pinned  bool
	holders []PersonaID
	owners  []PersonaID
}

// publish replaces the entry's view after a change (under mu).
func (e *pageEntry) publish(role Role) {
	e.view.Store(&entryView{
		role: role, pos: e.pos, gen: e.gen, loading: e.loading, pinned: len(e.pins) > 0,
		holders: slices.Clone(e.holders), owners: slices.Clone(e.owners),
	})
}

// hitFor reports whether persona p can take this page without the lock:
// the page sits in the fastest tier big enough for it, is in p's working
// set, is not moving, and no other persona owns it.
func (v *entryView) hitFor(p PersonaID, fit int) bool {
	if v.loading || v.pos != fit {
		return false
	}
	for _, o := range v.owners {
		if o != p {
			return false
		}
	}
	for _, h := range v.holders {
		if h == p {
			return true
		}
	}
	return false
}

func (e *pageEntry) holds(p PersonaID) bool { return slices.Contains(e.holders, p) }

func (e *pageEntry) pinnedBy(p PersonaID) bool { return slices.Contains(e.pins, p) }

// pageTable maps refs to entries in shards, so hits on different pages do
// not share a lock.
type pageTable struct {
	shards [tableShards]tableShard
	count  atomic.Int64
}

const tableShards = 64

type tableShard struct {
	mu sync.RWMutex
	m  map[PageRef]*pageEntry
	_  [40]byte // keep shards on separate cache lines
}

func newPageTable() *pageTable {
	t := &pageTable{}
	for i := range t.shards {
		t.shards[i].m = map[PageRef]*pageEntry{}
	}
	return t
}

func (t *pageTable) shard(h uint64) *tableShard { return &t.shards[h%tableShards] }

func (t *pageTable) get(ref PageRef, h uint64) *pageEntry {
	s := t.shard(h)
	s.mu.RLock()
	e := s.m[ref]
	s.mu.RUnlock()
	return e
}

func (t *pageTable) put(e *pageEntry) {
	s := t.shard(e.hash)
	s.mu.Lock()
	s.m[e.ref] = e
	s.mu.Unlock()
	t.count.Add(1)
}

func (t *pageTable) delete(e *pageEntry) {
	s := t.shard(e.hash)
	s.mu.Lock()
	if s.m[e.ref] == e {
		delete(s.m, e.ref)
		t.count.Add(-1)
	}
	s.mu.Unlock()
}

// readBuffer records hits for the policy without the manager's lock:
// a hit claims a slot with one atomic add; the buffer is drained into the
// tier lists and the sketch under the lock, when it fills (if the lock is
// free) or before any other operation. When it is full and the lock is
// busy the record is dropped: recency bookkeeping is lossy by design, as
// in Caffeine, and a drop costs only a slightly staler order.
type readBuffer struct {
	n     atomic.Uint32
	slots [readBufferSize]atomic.Pointer[pageEntry]
	_     [32]byte
}

const (
	readStripes    = 16
	readBufferSize = 64
)

// add records e; it reports whether the buffer is full.
func (b *readBuffer) add(e *pageEntry) bool {
	i := b.n.Add(1) - 1
	if i >= readBufferSize {
		return true
	}
	b.slots[i].Store(e)
	return i == readBufferSize-1
}

// drain hands each recorded entry to fn and empties the buffer.
func (b *readBuffer) drain(fn func(*pageEntry)) {
	n := min(b.n.Load(), readBufferSize)
	for i := range n {
		if e := b.slots[i].Swap(nil); e != nil {
			fn(e)
		}
	}
	b.n.Store(0)
}
