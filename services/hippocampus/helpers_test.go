package hippocampus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/continuum-mesh/continuum/pkg/region"
)

// testService is a service on a manual clock, closed when the test ends.
type testService struct {
	*Service
	clock *region.ManualClock
	t     testing.TB
}

func newTestService(t testing.TB, cfg Config, deps Deps) *testService {
	t.Helper()
	clock := region.NewManualClock(epoch)
	if deps.Clock == nil {
		deps.Clock = clock
	} else if mc, ok := deps.Clock.(*region.ManualClock); ok {
		clock = mc
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &testService{Service: s, clock: clock, t: t}
}

// advance moves simulated time forward, running the ticks that come due.
func (ts *testService) advance(d time.Duration) {
	ts.t.Helper()
	if _, err := ts.Runner().AdvanceTo(context.Background(), ts.clock.Now().Add(d)); err != nil {
		ts.t.Fatal(err)
	}
}

func (ts *testService) remember(persona, channel, id string, in EngramInput) string {
	ts.t.Helper()
	in.ID = id
	got, _, err := ts.Remember(context.Background(), persona, channel, in)
	if err != nil {
		ts.t.Fatalf("remember %s: %v", id, err)
	}
	return got
}

func (ts *testService) consume(persona, channel string, ids ...string) ConsumeResult {
	ts.t.Helper()
	res, err := ts.Consume(context.Background(), persona, channel, ids)
	if err != nil {
		ts.t.Fatalf("consume %v: %v", ids, err)
	}
	return res
}

// conversation remembers n engrams in channel, a minute apart, sharing a
// few topics and entities, and consumes every third earlier one.
func (ts *testService) conversation(persona, channel string, n int) []string {
	ts.t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%s-%03d", persona, channel, i)
		ts.remember(persona, channel, id, EngramInput{
			Content:    "turn " + id,
			Topics:     []string{fmt.Sprintf("topic-%d", i%5)},
			Entities:   []string{fmt.Sprintf("entity-%d", i%7), fmt.Sprintf("entity-%d", i%3+10)},
			Importance: uint32(1 + i%10),
		})
		ids = append(ids, id)
		if i > 3 && i%3 == 0 {
			ts.consume(persona, channel, ids[i-3])
		}
		ts.advance(time.Minute)
	}
	return ids
}

func itemIDs(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func regionClock() *region.ManualClock { return region.NewManualClock(epoch) }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// waitUntil polls cond until it holds or a deadline passes.
func waitUntil(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatal("condition not reached before the deadline")
		case <-poll.C:
		}
	}
}

// maintainForTest runs the maintenance loop (checkpoints) until ctx ends.
func (s *Service) maintainForTest(ctx context.Context) error {
	s.maintain(ctx)
	return nil
}

// crashForTest stops the service the way a crash would: no checkpoint, the
// journal's file closed as it is. Everything acknowledged is on disk.
func (s *Service) crashForTest() {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.stopLife()
		s.bg.Wait()
		s.hub.close()
		if j := s.mem.j; j != nil {
			j.mu.Lock()
			_ = j.f.Close()
			j.err = errStore
			j.mu.Unlock()
		}
	})
}
