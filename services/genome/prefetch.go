package genome

import (
	"context"
	"fmt"

	"github.com/continuum-mesh/continuum/pkg/auth"
)

// Prefetches are page-ins queued for Run: the caller does not wait, and
// the next page-in of the page is a hit. A page already queued for the
// persona is not queued twice.

const maxPrefetchRefs = 1024

type prefetchKey struct {
	persona PersonaID
	ref     PageRef
}

type prefetchItem struct {
	prefetchKey
	caller string
}

type prefetcher struct {
	queue   chan prefetchItem
	pending map[prefetchKey]struct{} // Service.mu
}

func newPrefetcher(n int) *prefetcher {
	return &prefetcher{queue: make(chan prefetchItem, n), pending: map[prefetchKey]struct{}{}}
}

// PrefetchResult says what became of each page of a prefetch.
type PrefetchResult struct {
	Accepted        int
	AlreadyResident int
	Rejected        int
}

// Prefetch queues page-ins to run in the background. Every page is
// validated and access-checked first; one refusal refuses them all.
func (s *Service) Prefetch(ctx context.Context, p PersonaID, refs []PageRef) (PrefetchResult, error) {
	const op = "prefetch"
	if len(refs) > maxPrefetchRefs {
		return PrefetchResult{}, fmt.Errorf("%s: %w: at most %d pages at once", op, ErrPageRefInvalid, maxPrefetchRefs)
	}
	for _, ref := range refs {
		if err := ref.Validate(); err != nil {
			return PrefetchResult{}, opErr(op, p, ref, err)
		}
	}
	caller := auth.Caller(ctx).Name
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return PrefetchResult{}, ErrClosed
	}
	s.drainReads()
	fits := make([]int, len(refs))
	for i, ref := range refs {
		_, _, _, n, err := s.resolve("prefetch", p, ref, caller)
		if err != nil {
			return PrefetchResult{}, opErr(op, p, ref, err)
		}
		fits[i] = s.fitPos(n)
	}
	var res PrefetchResult
	for i, ref := range refs {
		if e := s.table.get(ref, ref.hash()); e != nil && !e.loading && e.pos >= 0 && e.pos <= fits[i] && e.holds(p) {
			res.AlreadyResident++
			continue
		}
		k := prefetchKey{persona: p, ref: ref}
		if _, ok := s.prefetch.pending[k]; ok {
			res.Accepted++
			continue
		}
		select {
		case s.prefetch.queue <- prefetchItem{prefetchKey: k, caller: caller}:
			s.prefetch.pending[k] = struct{}{}
			res.Accepted++
		default:
			res.Rejected++
		}
	}
	return res, nil
}

// runPrefetches pages in queued prefetches until ctx ends.
func (s *Service) runPrefetches(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-s.prefetch.queue:
			s.mu.Lock()
			delete(s.prefetch.pending, it.prefetchKey)
			s.mu.Unlock()
			if _, err := s.pageIn(ctx, it.persona, it.ref, it.ref.hash(), true, it.caller); err != nil && ctx.Err() == nil {
				s.log.Warn("genome: prefetch failed", "persona_id", it.persona.String(), "page", it.ref.String(), "error", err)
			}
		}
	}
}
