package region

import (
	"sync/atomic"
	"time"
)

// Slice is one immutable generation of a ready buffer. Nothing may modify a
// published Slice or its Items: readers hold it without locks.
type Slice[T any] struct {
	// Generation strictly increases with every publication or eviction.
	Generation  uint64
	PublishedAt time.Time
	ExpiresAt   time.Time
	Items       []T
	// Evicted marks the empty slice EvictStale leaves behind.
	Evicted bool
}

// Len is the number of items; zero for a nil slice.
func (s *Slice[T]) Len() int {
	if s == nil {
		return 0
	}
	return len(s.Items)
}

// Age is how long ago the slice was published.
func (s *Slice[T]) Age(now time.Time) time.Duration {
	if s == nil {
		return 0
	}
	return now.Sub(s.PublishedAt)
}

// Expired reports whether the slice is past its expiry at now.
func (s *Slice[T]) Expired(now time.Time) bool {
	return s != nil && !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt)
}

// ReadyBuffer holds the latest Slice a region published for one target.
// Peek is a single atomic load: it never blocks and never allocates, and a
// reader never sees a torn slice. Publish replaces the slice atomically.
// The zero value is an empty buffer, safe for use by many goroutines.
type ReadyBuffer[T any] struct {
	cur atomic.Pointer[Slice[T]]
}

// Peek returns the current slice, or nil when nothing was ever published.
func (b *ReadyBuffer[T]) Peek() *Slice[T] { return b.cur.Load() }

// Publish makes items the current slice, with the next generation, and
// returns it. The buffer takes ownership of items: the caller must not
// modify them afterwards.
func (b *ReadyBuffer[T]) Publish(items []T, publishedAt, expiresAt time.Time) *Slice[T] {
	next := &Slice[T]{PublishedAt: publishedAt, ExpiresAt: expiresAt, Items: items}
	for {
		old := b.cur.Load()
		next.Generation = nextGeneration(old)
		if b.cur.CompareAndSwap(old, next) {
			return next
		}
	}
}

// EvictStale replaces the current slice by an empty one when it is older
// than maxAge at now, and returns how many items it removed.
func (b *ReadyBuffer[T]) EvictStale(now time.Time, maxAge time.Duration) int {
	for {
		old := b.cur.Load()
		if old == nil || len(old.Items) == 0 || now.Sub(old.PublishedAt) <= maxAge {
			return 0
		}
		next := &Slice[T]{
			Generation:  old.Generation + 1,
			PublishedAt: old.PublishedAt,
			ExpiresAt:   old.ExpiresAt,
			Evicted:     true,
		}
		if b.cur.CompareAndSwap(old, next) {
			return len(old.Items)
		}
	}
}

// Remove publishes a copy of the current slice without the items drop
// reports true for (same times, next generation) and returns how many it
// removed. Nothing is published when nothing matches.
func (b *ReadyBuffer[T]) Remove(drop func(T) bool) int {
	for {
		old := b.cur.Load()
		if old == nil {
			return 0
		}
		n := 0
		for _, it := range old.Items {
			if drop(it) {
				n++
			}
		}
		if n == 0 {
			return 0
		}
		items := make([]T, 0, len(old.Items)-n)
		for _, it := range old.Items {
			if !drop(it) {
				items = append(items, it)
			}
		}
		next := &Slice[T]{
			Generation:  old.Generation + 1,
			PublishedAt: old.PublishedAt,
			ExpiresAt:   old.ExpiresAt,
			Items:       items,
			Evicted:     old.Evicted,
		}
		if b.cur.CompareAndSwap(old, next) {
			return n
		}
	}
}

func nextGeneration[T any](old *Slice[T]) uint64 {
	if old == nil {
		return 1
	}
	return old.Generation + 1
}
