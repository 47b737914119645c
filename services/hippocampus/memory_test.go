package hippocampus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type edgeView struct {
	From, To string
	Kind     EdgeKind
	Weight   float32
}

func edgesOf(s *Service, persona string) []edgeView {
	p := s.mem.get(persona)
	if p == nil {
		return nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []edgeView
	p.graph.eachEdge(func(from uint32, e Edge) {
		out = append(out, edgeView{p.engrams[from].id, p.engrams[e.To].id, e.Kind, e.Weight})
	})
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.From != b.From {
			return a.From < b.From
		}
		if a.To != b.To {
			return a.To < b.To
		}
		return a.Kind < b.Kind
	})
	return out
}

func TestDerivedEdges(t *testing.T) {
	t.Parallel()
	s := newTestService(t, Config{}, Deps{})
	s.remember("maya", "chat", "a", EngramInput{Content: "a", Entities: []string{"Ada Lovelace"}, Topics: []string{"engines"}})
	s.clock.Advance(time.Minute)
	// Same entity spelled differently, same channel within the reply window.
	s.remember("maya", "chat", "b", EngramInput{Content: "b", Entities: []string{"ada  LOVELACE"}})
	s.clock.Advance(time.Minute)
	s.remember("maya", "mail", "c", EngramInput{Content: "c", Topics: []string{"Engines"}, ReplyTo: "a"})
	s.clock.Advance(time.Hour)
	// Too late to reply to b.
	s.remember("maya", "chat", "d", EngramInput{Content: "d"})

	want := []edgeView{
		{"a", "b", EdgeSharedEntity, 0.6},
		{"a", "b", EdgeConversationalRepl, 1},
		{"a", "c", EdgeSharedTopic, 0.3},
		{"a", "c", EdgeConversationalRepl, 1},
		{"b", "a", EdgeSharedEntity, 0.6},
		{"b", "a", EdgeConversationalRepl, 1},
		{"c", "a", EdgeSharedTopic, 0.3},
		{"c", "a", EdgeConversationalRepl, 1},
	}
	if diff := cmp.Diff(want, edgesOf(s.Service, "maya")); diff != "" {
		t.Fatalf("edges after Remember (-want +got):\n%s", diff)
	}

	// A request in chat uses a and c together: co-occurrence both ways,
	// and both are cited by the turn it answered (d) and by the next one.
	s.consume("maya", "chat", "a", "c")
	s.clock.Advance(time.Minute)
	s.remember("maya", "chat", "e", EngramInput{Content: "e"})
	s.consume("maya", "chat", "a", "c")
	got := edgesOf(s.Service, "maya")
	weight := func(from, to string, k EdgeKind) float32 {
		for _, e := range got {
			if e.From == from && e.To == to && e.Kind == k {
				return e.Weight
			}
		}
		return 0
	}
	for _, c := range []struct {
		from, to string
		kind     EdgeKind
		want     float32
	}{
		{"a", "c", EdgeRecallCoOccurrence, 0.8},
		{"c", "a", EdgeRecallCoOccurrence, 0.8},
		{"a", "d", EdgeCitedIn, 0.9},
		{"d", "c", EdgeCitedIn, 0.9},
		{"a", "e", EdgeCitedIn, 0.9},
		{"e", "c", EdgeCitedIn, 0.9},
	} {
		if w := weight(c.from, c.to, c.kind); w != c.want {
			t.Errorf("%s -> %s %v = %v, want %v", c.from, c.to, c.kind, w, c.want)
		}
	}
	if w, err := s.Link(context.Background(), "maya", "b", "d", EdgeTaskOutcome, 0); err != nil || w != float64(float32(0.8)) {
		t.Errorf("Link default weight = %v, %v", w, err)
	}
}

// TestPersonaIsolation: two personas with the very same engram ids never
// see each other's engrams, whatever the call.
func TestPersonaIsolation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestService(t, Config{}, Deps{})
	for _, persona := range []string{"maya", "ada"} {
		for i := range 12 {
			s.remember(persona, "chat", fmt.Sprintf("shared-%02d", i), EngramInput{Content: persona + " secret", Entities: []string{"x"}})
			s.clock.Advance(time.Minute)
		}
	}
	s.remember("maya", "chat", "maya-only", EngramInput{Content: "maya secret", Entities: []string{"x"}})
	s.advance(5 * time.Second)

	var unknown *EngramUnknownError
	if _, err := s.Consume(ctx, "ada", "chat", []string{"maya-only"}); !errors.As(err, &unknown) {
		t.Errorf("consume another persona's engram = %v", err)
	}
	if ok, err := s.Forget(ctx, "ada", "maya-only"); ok || err != nil {
		t.Errorf("forget another persona's engram = %v, %v", ok, err)
	}
	if _, err := s.Link(ctx, "ada", "shared-01", "maya-only", EdgeCitedIn, 0); !errors.As(err, &unknown) {
		t.Errorf("link to another persona's engram = %v", err)
	}
	for _, persona := range []string{"maya", "ada"} {
		res, _ := s.Peek(ctx, persona, "chat", false)
		rec, err := s.Recall(ctx, persona, "chat", "secret x", 64)
		if err != nil {
			t.Fatal(err)
		}
		items := append(res.Items, rec.Items...)
		if len(items) == 0 {
			t.Fatalf("%s: nothing staged or recalled", persona)
		}
		ids := make([]string, len(items))
		for i, it := range items {
			ids[i] = it.ID
		}
		for i, c := range s.Contents(persona, ids) {
			if c != persona+" secret" && !(persona == "maya" && c == "maya secret") {
				t.Errorf("%s saw %s with content %q", persona, ids[i], c)
			}
		}
		if persona == "ada" && slices.Contains(ids, "maya-only") {
			t.Error("ada saw maya-only")
		}
	}
	if st, _ := s.Stats(ctx, "ada"); st.Engrams != 12 {
		t.Errorf("ada has %d engrams, want 12", st.Engrams)
	}
}

// personaState is a persona's durable state, for comparing across a
// restart.
type personaView struct {
	Engrams map[string]string // id -> content, importance, history, channels
	Edges   []edgeView
	Tombs   []string
}

func viewOf(s *Service, persona string) personaView {
	p := s.mem.get(persona)
	v := personaView{Engrams: map[string]string{}, Edges: edgesOf(s, persona)}
	if p == nil {
		return v
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, e := range p.engrams {
		if !e.live() {
			continue
		}
		var chans []string
		for _, c := range e.chans {
			chans = append(chans, fmt.Sprintf("%s:%d", p.chans[c.ch].name, c.n))
		}
		sort.Strings(chans)
		var feats []string
		for _, f := range append(append([]uint32{}, e.entities...), e.topics...) {
			feats = append(feats, p.feats.list[f].name)
		}
		v.Engrams[e.id] = fmt.Sprintf("%q imp=%d at=%d n=%d first=%d last=%v chans=%v feats=%v ch=%s",
			e.content, e.importance, e.at, e.acc.n, e.acc.first, e.acc.last, chans, feats, p.chans[e.channel].name)
	}
	for id := range p.tombs {
		v.Tombs = append(v.Tombs, id)
	}
	sort.Strings(v.Tombs)
	return v
}

// workload writes a mix of everything the journal records.
func workload(t *testing.T, s *testService, persona string) {
	t.Helper()
	ids := s.conversation(persona, "chat", 30)
	s.conversation(persona, "mail", 8)
	ctx := context.Background()
	if _, err := s.Link(ctx, persona, ids[0], ids[20], EdgeTaskOutcome, 2.5); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Link(ctx, persona, ids[1], ids[2], EdgeRecallCoOccurrence, 0); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Forget(ctx, persona, ids[5]); !ok || err != nil {
		t.Fatalf("forget: %v %v", ok, err)
	}
	s.consume(persona, "mail", ids[7], ids[9])
}

// TestRestartWithoutLoss: everything acknowledged survives a clean restart,
// a crash (no Close: the journal is replayed), a crash after checkpoints,
// and a crash that tore the journal's last record.
func TestRestartWithoutLoss(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		clean      bool
		checkpoint int64
		tear       bool
	}{
		{"clean restart", true, 0, false},
		{"crash", false, 0, false},
		{"crash after checkpoints", false, 4 << 10, false},
		{"crash with a torn tail", false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := Config{DataDir: dir, CheckpointBytes: tt.checkpoint}
			clock := regionClock()
			s1, err := New(cfg, Deps{Clock: clock, Logger: discard()})
			if err != nil {
				t.Fatal(err)
			}
			ts := &testService{Service: s1, clock: clock, t: t}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			if tt.checkpoint > 0 {
				wg.Add(1)
				go func() { defer wg.Done(); _ = s1.maintainForTest(ctx) }()
			}
			workload(t, ts, "maya")
			workload(t, ts, "ada")
			if tt.checkpoint > 0 {
				waitUntil(t, func() bool {
					segs, _ := segments(filepath.Join(dir, "hippocampus", walDir))
					snaps, _ := os.ReadDir(filepath.Join(dir, "hippocampus", personaDir))
					return len(snaps) > 0 && len(segs) >= 1
				})
			}
			cancel()
			wg.Wait()
			want := map[string]personaView{"maya": viewOf(s1, "maya"), "ada": viewOf(s1, "ada")}
			if len(want["maya"].Engrams) != 37 {
				t.Fatalf("maya has %d engrams before the restart", len(want["maya"].Engrams))
			}
			if tt.clean {
				if err := s1.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				s1.crashForTest()
			}
			if tt.tear {
				segs, _ := segments(filepath.Join(dir, "hippocampus", walDir))
				last := segs[len(segs)-1].path
				f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write([]byte{200, 0, 0, 0, 1, 2, 3}); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			s2 := newTestService(t, cfg, Deps{Clock: clock})
			for persona, v := range want {
				if diff := cmp.Diff(v, viewOf(s2.Service, persona)); diff != "" {
					t.Errorf("%s after restart (-before +after):\n%s", persona, diff)
				}
			}
			// The restarted service keeps working and stays durable.
			s2.remember("maya", "chat", "after-restart", EngramInput{Content: "x"})
			if _, _, err := s2.Remember(context.Background(), "maya", "chat", EngramInput{ID: "after-restart", Content: "x"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestJournalFailureIsNotAcknowledged: once the journal cannot write, a
// write is refused with a store error, never acknowledged.
func TestJournalFailureIsNotAcknowledged(t *testing.T) {
	t.Parallel()
	clock := regionClock()
	svc, err := New(Config{DataDir: t.TempDir()}, Deps{Clock: clock, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() }) // fails: the journal is broken
	s := &testService{Service: svc, clock: clock, t: t}
	s.remember("maya", "chat", "a", EngramInput{Content: "a"})
	// Break the journal's file under it.
	s.mem.j.mu.Lock()
	_ = s.mem.j.f.Close()
	s.mem.j.mu.Unlock()
	_, _, err = s.Remember(context.Background(), "maya", "chat", EngramInput{ID: "b", Content: "b"})
	if !errors.Is(err, errStore) {
		t.Fatalf("Remember with a broken journal = %v, want a store error", err)
	}
	if _, _, err := s.Remember(context.Background(), "maya", "chat", EngramInput{ID: "c", Content: "c"}); !errors.Is(err, errStore) {
		t.Fatalf("the journal recovered by itself: %v", err)
	}
}

// TestGroupCommit: concurrent writers to a durable store all get
// acknowledged.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	s := newTestService(t, Config{DataDir: t.TempDir()}, Deps{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				if _, _, err := s.Remember(context.Background(), fmt.Sprintf("p%d", w), "chat", EngramInput{ID: fmt.Sprintf("e%d", i), Content: "x"}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	st, _ := s.Stats(context.Background(), "")
	if st.Engrams != 200 || st.Personas != 8 {
		t.Errorf("stats after concurrent writes: %+v", st)
	}
}

// TestPersonaIndexConcurrent adds, reads and removes personas from many
// goroutines (meaningful under -race): every persona added once is found
// and removal takes only the persona it names.
func TestPersonaIndexConcurrent(t *testing.T) {
	t.Parallel()
	m := newMemory(&Config{}, discard(), regionClock())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				if w == 0 { // churn on names the others never use
					m.detach(m.getOrCreate(fmt.Sprintf("q%d", i%20)))
					continue
				}
				name := fmt.Sprintf("p%d", i%150)
				m.getOrCreate(name)
				if got := m.get(name); got == nil || got.name != name {
					t.Errorf("get(%s) = %v", name, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	seen := 0
	m.each(func(p *persona) bool {
		if m.get(p.name) != p {
			t.Errorf("each yielded %s, which get does not find", p.name)
		}
		seen++
		return true
	})
	if seen != 150 {
		t.Errorf("%d personas, want the 150 never removed", seen)
	}
	live := m.getOrCreate("p1")
	m.detach(newPersona("p1")) // not the one in the index: nothing happens
	if m.get("p1") != live {
		t.Error("detaching a stale object removed the live one")
	}
}
