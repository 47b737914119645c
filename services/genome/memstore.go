package genome

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// MemoryStore is a TierStore in process memory, for the Fast and Warm
// roles. Its pages are lost when the process ends.
type MemoryStore struct {
	role     Role
	capacity uint64

	mu    sync.Mutex
	used  uint64
	pages map[PageRef]*memPage
	clock uint64
}

type memPage struct {
	data   []byte
	meta   PageMeta
	access time.Time
	seq    uint64
}

// NewMemoryStore returns an empty memory store of capacity bytes.
func NewMemoryStore(role Role, capacity uint64) *MemoryStore {
	return &MemoryStore{role: role, capacity: capacity, pages: map[PageRef]*memPage{}}
}

// Role implements TierStore.
func (s *MemoryStore) Role() Role { return s.role }

// Capacity implements TierStore.
func (s *MemoryStore) Capacity() Capacity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Capacity{Total: s.capacity, Used: s.used}
}

// Read implements TierStore.
func (s *MemoryStore) Read(_ context.Context, key PageRef) (PageData, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pages[key]
	if !ok {
		return nil, fmt.Errorf("%s tier: %s: %w", s.role, key, ErrPageNotStored)
	}
	return memData(p.data), nil
}

// Write implements TierStore. A reader over another memory page hands its
// bytes over without a copy.
func (s *MemoryStore) Write(ctx context.Context, key PageRef, meta PageMeta, size uint64, r io.Reader) error {
	if err := s.reserve(key, size); err != nil {
		return err
	}
	var data []byte
	if b, ok := r.(byteser); ok && uint64(len(b.Bytes())) >= size {
		data = b.Bytes()[:size:size]
	} else {
		data = make([]byte, size)
		if _, err := io.ReadFull(r, data); err != nil {
			s.unreserve(size)
			return fmt.Errorf("%s tier: write %s: %w", s.role, key, err)
		}
	}
	if err := ctx.Err(); err != nil {
		s.unreserve(size)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.pages[key]; ok {
		s.used -= uint64(len(old.data))
	}
	s.clock++
	s.pages[key] = &memPage{data: data, meta: meta, seq: s.clock}
	return nil
}

// reserve claims size bytes before the copy, so two concurrent writes
// cannot both fit in the room for one. A replaced page's bytes count as
// free.
func (s *MemoryStore) reserve(key PageRef, size uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	used := s.used
	if old, ok := s.pages[key]; ok {
		used -= uint64(len(old.data))
	}
	if size > s.capacity || used > s.capacity-size {
		return fmt.Errorf("%s tier: write %s (%d bytes, %d of %d used): %w", s.role, key, size, s.used, s.capacity, ErrTierFull)
	}
	s.used += size
	return nil
}

func (s *MemoryStore) unreserve(size uint64) {
	s.mu.Lock()
	s.used -= size
	s.mu.Unlock()
}

// Evict implements TierStore.
func (s *MemoryStore) Evict(_ context.Context, key PageRef) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pages[key]; ok {
		s.used -= uint64(len(p.data))
		delete(s.pages, key)
	}
	return nil
}

// ObserveAccess implements TierStore.
func (s *MemoryStore) ObserveAccess(key PageRef, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pages[key]; ok {
		p.access = at
		s.clock++
		p.seq = s.clock
	}
}

// List implements TierStore.
func (s *MemoryStore) List(context.Context) ([]StoredPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type seqPage struct {
		StoredPage
		seq uint64
	}
	all := make([]seqPage, 0, len(s.pages))
	for k, p := range s.pages {
		all = append(all, seqPage{StoredPage{Key: k, Size: uint64(len(p.data)), Meta: p.meta, LastAccess: p.access}, p.seq})
	}
	out := make([]StoredPage, len(all))
	sortBy(all, func(a seqPage) uint64 { return a.seq })
	for i, p := range all {
		out[i] = p.StoredPage
	}
	return out, nil
}

// Close implements TierStore.
func (s *MemoryStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pages = map[PageRef]*memPage{}
	s.used = 0
	return nil
}
