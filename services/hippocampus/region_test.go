package hippocampus

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/continuum-mesh/continuum/pkg/region"
)

// scoresNow returns every candidate's (assoc, stable) scores for
// (persona, channel) at the service's current time.
func scoresNow(t *testing.T, s *Service, persona, channel string) map[string][2]float64 {
	t.Helper()
	p := s.mem.get(persona)
	if p == nil {
		t.Fatalf("persona %q unknown", persona)
	}
	sc := getScratch()
	defer putScratch(sc)
	p.mu.RLock()
	defer p.mu.RUnlock()
	s.mem.pred.predict(p, predictArgs{channel: channel, now: s.mem.now(), share: 0.25, k: 8, budgetScale: 1}, sc)
	out := map[string][2]float64{}
	for _, c := range sc.cands {
		out[p.engrams[c.slot].id] = [2]float64{c.assoc, c.stable}
	}
	return out
}

func poolCount(items []Item, pool Pool) int {
	n := 0
	for _, it := range items {
		if it.Pool == pool {
			n++
		}
	}
	return n
}

// TestTwoPoolKnownAnswer reproduces HIPPOCAMPUS.md §1: K = 8, p = 0.25
// gives 2 stable slots; one miss found only in the stable ghost makes it 3.
// A miss found only in the associative ghost takes one back; hits and
// misses in neither ghost never move p.
func TestTwoPoolKnownAnswer(t *testing.T) {
	t.Parallel()
	// HIPPOCAMPUS.md's split: the stable pool may grow to 1 − 1/K.
	m := DefaultModel()
	m.P0, m.PMax = 0.125, 1
	s := newTestService(t, Config{Model: m}, Deps{})
	s.conversation("maya", "chat", 60)
	p := s.mem.get("maya")
	tg := p.target("chat")
	tg.mu.Lock()
	tg.p = 0.25
	tg.mu.Unlock()
	s.Runner().Kick(RegionID, region.Target{Persona: "maya", Channel: "chat"}, 0)
	s.advance(time.Second)

	sl := tg.buf.Peek()
	if got := poolCount(sl.Items, PoolStable); got != 2 || len(sl.Items) != 8 {
		t.Fatalf("p = 0.25: %d stable of %d items, want 2 of 8", got, len(sl.Items))
	}
	share := func() float64 {
		v, _ := s.StableShare("maya", "chat")
		return v
	}
	pick := func(in, notIn []uint32) string {
		for _, slot := range in {
			if !slices.Contains(notIn, slot) && !slices.ContainsFunc(tg.buf.Peek().Items, func(it Item) bool { return it.Slot == slot }) {
				return p.engrams[slot].id
			}
		}
		t.Fatal("no ghost-only engram to miss")
		return ""
	}
	tg.mu.Lock()
	stableOnly := pick(tg.stableGhost, tg.assocGhost)
	tg.mu.Unlock()
	s.consume("maya", "chat", stableOnly)
	if got := share(); got != 0.375 {
		t.Fatalf("after a stable-ghost miss p = %v, want 0.375", got)
	}
	s.Runner().Kick(RegionID, region.Target{Persona: "maya", Channel: "chat"}, 0)
	s.advance(time.Second)
	if got := poolCount(tg.buf.Peek().Items, PoolStable); got != 3 {
		t.Fatalf("p = 0.375: %d stable slots, want 3", got)
	}

	// A hit does not move p.
	hit := tg.buf.Peek().Items[0].ID
	if res := s.consume("maya", "chat", hit); res.Hits != 1 || share() != 0.375 {
		t.Fatalf("a hit: hits %d, p %v; want 1, 0.375", res.Hits, share())
	}
	// A miss in the associative ghost only takes a slot back.
	s.Runner().Kick(RegionID, region.Target{Persona: "maya", Channel: "chat"}, 0)
	s.advance(time.Second)
	tg.mu.Lock()
	assocOnly := pick(tg.assocGhost, tg.stableGhost)
	tg.mu.Unlock()
	s.consume("maya", "chat", assocOnly)
	if got := share(); got != 0.25 {
		t.Fatalf("after an associative-ghost miss p = %v, want 0.25", got)
	}
	// p stays within [p_min, 1 - 1/K].
	if got := stableSlots(1, 8); got != 8 {
		t.Errorf("stableSlots(1, 8) = %d", got)
	}
	tg.mu.Lock()
	tg.p = 1 - 1.0/8
	tg.stableGhost = []uint32{p.byID[assocOnly]}
	tg.assocGhost = nil
	tg.mu.Unlock()
	s.consume("maya", "chat", assocOnly)
	if got := share(); got != 1-1.0/8 {
		t.Errorf("p grew past 1 - 1/K: %v", got)
	}
}

// TestTickInvariance: scores at a time depend on the history and the
// time only, not on how often the region ticked.
func TestTickInvariance(t *testing.T) {
	t.Parallel()
	run := func(tick bool) map[string][2]float64 {
		s := newTestService(t, Config{}, Deps{})
		for i := range 40 {
			id := fmt.Sprintf("e%02d", i)
			s.remember("maya", []string{"chat", "mail"}[i%2], id, EngramInput{
				Topics: []string{fmt.Sprintf("t%d", i%4)}, Entities: []string{fmt.Sprintf("n%d", i%6)}, Importance: uint32(i%10 + 1),
			})
			if i%5 == 4 {
				s.consume("maya", "chat", fmt.Sprintf("e%02d", i-3))
			}
			if tick {
				// Peek often: the cadence goes to its floor.
				s.PeekLocal("maya", "chat")
				s.PeekLocal("maya", "mail")
				s.advance(3 * time.Minute)
			} else {
				s.clock.Advance(3 * time.Minute)
			}
		}
		return scoresNow(t, s.Service, "maya", "chat")
	}
	busy, idle := run(true), run(false)
	if len(busy) != 40 {
		t.Fatalf("%d candidates, want 40", len(busy))
	}
	if diff := cmp.Diff(idle, busy); diff != "" {
		t.Errorf("scores depend on ticking (-no ticks +ticks):\n%s", diff)
	}
}

// TestNoSelfReinforcement: publishing and peeking are not accesses; only a
// consumption changes an engram's salience.
func TestNoSelfReinforcement(t *testing.T) {
	t.Parallel()
	s := newTestService(t, Config{}, Deps{})
	s.conversation("maya", "chat", 30)
	before := scoresNow(t, s.Service, "maya", "chat")
	tg := s.mem.get("maya").target("chat")
	for range 50 {
		s.reg.Tick(context.Background(), region.RegionContext{Target: region.Target{Persona: "maya", Channel: "chat"}, Now: s.clock.Now(), Interval: time.Minute})
		if _, err := s.Peek(context.Background(), "maya", "chat", false); err != nil {
			t.Fatal(err)
		}
		s.PeekLocal("maya", "chat")
	}
	if diff := cmp.Diff(before, scoresNow(t, s.Service, "maya", "chat")); diff != "" {
		t.Fatalf("ticks and peeks changed scores (-before +after):\n%s", diff)
	}
	staged := tg.buf.Peek().Items
	last := staged[len(staged)-1].ID
	s.consume("maya", "chat", last)
	after := scoresNow(t, s.Service, "maya", "chat")
	if after[last][0] <= before[last][0] || after[last][1] <= before[last][1] {
		t.Errorf("a consumption did not raise %s: %v -> %v", last, before[last], after[last])
	}
}

// TestDeterminism: the same operations at the same simulated times publish
// the same slices.
func TestDeterminism(t *testing.T) {
	t.Parallel()
	run := func() []string {
		var mu sync.Mutex
		var log []string
		s := newTestService(t, Config{}, Deps{OnTick: func(tel region.Telemetry) {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, fmt.Sprintf("%s %s/%s gen %d pub %d", tel.Start.Format(time.RFC3339), tel.Persona, tel.Channel, tel.Generation, tel.Published))
		}})
		for _, persona := range []string{"maya", "ada"} {
			s.conversation(persona, "chat", 25)
			s.conversation(persona, "mail", 10)
		}
		for _, persona := range []string{"maya", "ada"} {
			for _, ch := range []string{"chat", "mail"} {
				sl := s.PeekLocal(persona, ch)
				for _, it := range sl.Items {
					log = append(log, fmt.Sprintf("%s/%s %s %.12f %d", persona, ch, it.ID, it.Score, it.Pool))
				}
			}
		}
		return log
	}
	a, b := run(), run()
	if len(a) < 50 {
		t.Fatalf("only %d log lines", len(a))
	}
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("two identical runs differ:\n%s", diff)
	}
}

// TestPeekNeverBlocks: while a tick is stuck inside a slow predictor
// (holding the persona's read lock) and a Remember waits for the write
// lock, peeks still answer at once.
func TestPeekNeverBlocks(t *testing.T) {
	t.Parallel()
	for _, withRing := range []bool{false, true} {
		t.Run(fmt.Sprintf("ring=%v", withRing), func(t *testing.T) {
			t.Parallel()
			deps := Deps{}
			if withRing {
				deps.Ring = newFakeRing("solo")
			}
			s := newTestService(t, Config{}, deps)
			s.conversation("maya", "chat", 20)
			ctx := context.Background()

			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			s.reg.beforePredict = func() {
				once.Do(func() { close(entered) })
				<-release
			}
			s.Runner().Kick(RegionID, region.Target{Persona: "maya", Channel: "chat"}, 0)
			ticking := make(chan struct{})
			go func() {
				defer close(ticking)
				if _, err := s.Runner().AdvanceTo(ctx, s.clock.Now()); err != nil {
					t.Error(err)
				}
			}()
			<-entered
			writing := make(chan struct{})
			go func() {
				defer close(writing)
				if _, _, err := s.Remember(ctx, "maya", "chat", EngramInput{ID: "late", Content: "x"}); err != nil {
					t.Error(err)
				}
			}()

			var wg sync.WaitGroup
			done := make(chan struct{})
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 200 {
						if sl := s.PeekLocal("maya", "chat"); sl == nil || len(sl.Items) == 0 {
							t.Error("PeekLocal found nothing staged")
							return
						}
						if res, err := s.Peek(ctx, "maya", "chat", false); err != nil || len(res.Items) == 0 {
							t.Errorf("Peek = %+v, %v", res.EmptyReason, err)
							return
						}
					}
				}()
			}
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("peeks blocked behind a slow tick")
			}
			select {
			case <-ticking:
				t.Fatal("the tick finished before it was released; the test proved nothing")
			default:
			}
			close(release)
			<-ticking
			<-writing
		})
	}
}

// TestGovernorCadence: requests make a channel tick faster; silence makes
// it slower, then puts it to sleep; a request wakes it one second later; an
// ingest kicks a tick one second later.
func TestGovernorCadence(t *testing.T) {
	t.Parallel()
	s := newTestService(t, Config{}, Deps{})
	tgt := region.Target{Persona: "maya", Channel: "chat"}
	s.remember("maya", "chat", "a", EngramInput{Content: "a"})
	st, _ := s.Runner().State(RegionID, tgt)
	if want := s.clock.Now().Add(time.Second); !st.Due.Equal(want) {
		t.Fatalf("after an ingest the tick is due %v, want %v", st.Due, want)
	}
	s.advance(time.Second)
	st, _ = s.Runner().State(RegionID, tgt)
	if st.Interval != 60*time.Second {
		t.Fatalf("interval after the first tick = %v, want 60s (hold)", st.Interval)
	}
	// A request before the next tick: faster.
	s.PeekLocal("maya", "chat")
	s.advance(60 * time.Second)
	if st, _ = s.Runner().State(RegionID, tgt); st.Interval != 30*time.Second {
		t.Fatalf("interval after a request = %v, want 30s", st.Interval)
	}
	// Two ticks without requests: slower.
	s.advance(30 * time.Second)
	s.advance(30 * time.Second)
	if st, _ = s.Runner().State(RegionID, tgt); st.Interval != 60*time.Second {
		t.Fatalf("interval after two quiet ticks = %v, want 60s", st.Interval)
	}
	// Thirty minutes without requests: asleep at the first tick after them
	// (ticks are 2, 4, 8, then 10 minutes apart by then), and it stays
	// asleep.
	s.advance(45 * time.Minute)
	if st, _ = s.Runner().State(RegionID, tgt); !st.Asleep {
		t.Fatalf("not asleep after 30 quiet minutes: %+v", st)
	}
	ticks := st.Ticks
	s.advance(5 * time.Hour)
	if st, _ = s.Runner().State(RegionID, tgt); st.Ticks != ticks {
		t.Fatalf("%d ticks while asleep", st.Ticks-ticks)
	}
	// A peek answers from the old slice's state and wakes it in a second.
	res, err := s.Peek(context.Background(), "maya", "chat", false)
	if err != nil || res.EmptyReason != EmptyAsleep {
		t.Fatalf("peek while asleep = %q, %v; want %q", res.EmptyReason, err, EmptyAsleep)
	}
	st, _ = s.Runner().State(RegionID, tgt)
	if want := s.clock.Now().Add(time.Second); st.Asleep || !st.Due.Equal(want) {
		t.Fatalf("after the waking peek: %+v, want due %v", st, want)
	}
	s.advance(time.Second)
	if res, _ := s.Peek(context.Background(), "maya", "chat", false); len(res.Items) != 1 {
		t.Errorf("after waking, peek = %+v", res)
	}
}

// TestPeekEmptyReasons covers every empty answer.
func TestPeekEmptyReasons(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestService(t, Config{}, Deps{})
	check := func(channel, want string, stale bool) {
		t.Helper()
		res, err := s.Peek(ctx, "maya", channel, stale)
		if err != nil || res.EmptyReason != want {
			t.Fatalf("peek %s = %q (%d items), %v; want %q", channel, res.EmptyReason, len(res.Items), err, want)
		}
	}
	check("chat", EmptyNoEngrams, false)
	s.remember("maya", "chat", "a", EngramInput{Content: "a"})
	check("chat", EmptyNeverTicked, false)
	check("mail", EmptyNeverTicked, false) // a channel never seen gets a target
	s.advance(time.Second)
	check("chat", "", false)
	// Expired: the slice lives max(2·interval, 120 s); keep the target
	// awake with requests but stop its ticks by moving the clock only.
	s.clock.Advance(10 * time.Minute)
	check("chat", EmptyExpired, false)
	res, err := s.Peek(ctx, "maya", "chat", true)
	if err != nil || !res.Stale || len(res.Items) != 1 {
		t.Fatalf("allow_stale peek = %+v, %v", res, err)
	}
}

// TestForgetLeavesNoTrace: a forgotten engram leaves every buffer at once,
// and its edges go with it.
func TestForgetLeavesNoTrace(t *testing.T) {
	t.Parallel()
	s := newTestService(t, Config{}, Deps{})
	ids := s.conversation("maya", "chat", 12)
	staged := s.PeekLocal("maya", "chat").Items
	victim := staged[0].ID
	p := s.mem.get("maya")
	slot := p.byID[victim]
	if p.graph.InDegree(slot)+p.graph.OutDegree(slot) == 0 {
		t.Fatalf("%s has no edges to lose", victim)
	}
	ok, err := s.Forget(context.Background(), "maya", victim)
	if err != nil || !ok {
		t.Fatalf("Forget = %v, %v", ok, err)
	}
	if slices.Contains(itemIDs(s.PeekLocal("maya", "chat").Items), victim) {
		t.Error("the forgotten engram is still staged")
	}
	if p.graph.InDegree(slot)+p.graph.OutDegree(slot) != 0 {
		t.Error("the forgotten engram kept edges")
	}
	if ok, err := s.Forget(context.Background(), "maya", victim); ok || err != nil {
		t.Errorf("second Forget = %v, %v; want false, nil", ok, err)
	}
	if _, err := s.Consume(context.Background(), "maya", "chat", []string{victim}); err == nil {
		t.Error("consuming a forgotten engram succeeded")
	}
	s.advance(2 * time.Minute)
	for _, it := range s.PeekLocal("maya", "chat").Items {
		if it.ID == victim {
			t.Error("a tick staged a forgotten engram")
		}
	}
	_ = ids
}
