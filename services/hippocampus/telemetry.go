package hippocampus

import (
	"sync"
	"sync/atomic"

	"github.com/continuum-mesh/continuum/pkg/region"
)

// telemetryBuffer is how many ticks a subscriber may fall behind before it
// loses ticks.
const telemetryBuffer = 256

// telemetryHub fans tick telemetry out to Telemetry streams. Publishing
// never blocks the runner: a subscriber that falls behind loses ticks and
// is told how many.
type telemetryHub struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
	done   chan struct{}
}

type subscriber struct {
	persona string
	ch      chan region.Telemetry
	dropped atomic.Uint64
}

func newTelemetryHub() *telemetryHub {
	return &telemetryHub{subs: map[*subscriber]struct{}{}, done: make(chan struct{})}
}

// subscribe registers a subscriber (persona "" is every persona).
func (h *telemetryHub) subscribe(persona string) (*subscriber, func()) {
	sub := &subscriber{persona: persona, ch: make(chan region.Telemetry, telemetryBuffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.subs[sub] = struct{}{}
	}
	return sub, func() {
		h.mu.Lock()
		delete(h.subs, sub)
		h.mu.Unlock()
	}
}

func (h *telemetryHub) publish(t region.Telemetry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		if sub.persona != "" && sub.persona != t.Persona {
			continue
		}
		select {
		case sub.ch <- t:
		default:
			sub.dropped.Add(1)
		}
	}
}

// close ends every stream.
func (h *telemetryHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
		clear(h.subs)
	}
}
