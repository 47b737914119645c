package hippocampus

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestRankSumKnownAnswers(t *testing.T) {
	t.Parallel()
	table := rankTable(0.5)
	// 1 + 1/√2 + 1/√3 + 1/2.
	if got := rankSum(table, 4, 0.5); math.Abs(got-2.784457050376173) > 1e-12 {
		t.Errorf("Σ_{r≤4} r^-0.5 = %.12f, want 2.784457050376", got)
	}
	if got := rankProb(table, 1, 3, 0.5); math.Abs(got-0.437741) > 1e-6 {
		t.Errorf("rank 1 of 3 = %.6f, want 0.437741", got)
	}
	for _, d := range []float64{0.5, 0.8, 1} {
		table := rankTable(d)
		for _, n := range []int{1025, 5000, 100000} {
			exact := 0.0
			for r := 1; r <= n; r++ {
				exact += math.Pow(float64(r), -d)
			}
			if got := rankSum(table, n, d); math.Abs(got-exact)/exact > 1e-7 {
				t.Errorf("d %g n %d: tail %.9f, exact %.9f", d, n, got, exact)
			}
		}
	}
	if rankProb(table, 0, 3, 0.5) != 0 || rankProb(table, 4, 3, 0.5) != 0 {
		t.Error("a rank outside 1..n has a probability")
	}
}

// TestRouteKnownAnswers checks each route's probability on a hand-made
// persona: three engrams with entity X in one episode, then, two hours
// later, a fourth with X.
func TestRouteKnownAnswers(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, Config{}, Deps{})
	for i, id := range []string{"a", "b", "c"} {
		ts.remember("p", "chat", id, EngramInput{Content: id, Entities: []string{"X"}, Importance: uint32(5 + i)})
		ts.advance(time.Minute)
	}
	ts.advance(2 * time.Hour)
	ts.remember("p", "chat", "d", EngramInput{Content: "d", Entities: []string{"X"}, Importance: 5})
	ts.advance(time.Minute)

	p := ts.mem.get("p")
	p.mu.RLock()
	defer p.mu.RUnlock()
	ch := p.chanIdx["chat"]
	window := int64(ts.cfg.ReplyWindow)
	var ep episode
	probs := func(id string) [numRoutes]float64 {
		var pr [numRoutes]float64
		routeProbs(p, &ep, p.byID[id], &pr)
		return pr
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-6 {
			t.Errorf("%s = %.6f, want %.6f", what, got, want)
		}
	}

	// In the second episode, one turn in: d is lag 0, a..c are earlier.
	buildEpisode(p, ch, true, ts.clock.Now().UnixNano(), window, 0.5, ts.mem.pred.table, &ep)
	if ep.pos != 1 || ep.bucket() != 1 || len(ep.ents) != 1 || ep.ents[0].w != 1 {
		t.Fatalf("episode pos %d, context %v; want 1 turn in, X alone", ep.pos, ep.ents)
	}
	near("lag(d)", probs("d")[routeLag], 1)
	near("entity(c)", probs("c")[routeEntity], 1/(1+1/math.Sqrt2+1/math.Sqrt(3)))
	near("entity(a)", probs("a")[routeEntity], (1/math.Sqrt(3))/(1+1/math.Sqrt2+1/math.Sqrt(3)))
	near("channel(c)", probs("c")[routeChannel], 1/(1+1/math.Sqrt2+1/math.Sqrt(3)))
	near("entity(d)", probs("d")[routeEntity], 0) // d is in the episode
	near("uniform(a)", probs("a")[routeUniform], 0.25)
	near("reuse(a)", probs("a")[routeReuse], 0) // never consumed
	// Levels 5 (a, d), 6 (b), 7 (c); nothing learned: θ uniform over them.
	near("importance(a)", probs("a")[routeImportance], 1.0/3/2)
	near("importance(c)", probs("c")[routeImportance], 1.0/3)

	// Two hours later the episode is over: the next turn starts a new one,
	// d is earlier too, and the last episode's X is the context.
	ep = episode{}
	buildEpisode(p, ch, true, ts.clock.Now().Add(2*time.Hour).UnixNano(), window, 0.5, ts.mem.pred.table, &ep)
	if ep.pos != 0 || len(ep.ents) != 1 {
		t.Fatalf("between episodes: pos %d, context %v", ep.pos, ep.ents)
	}
	near("entity(d) between", probs("d")[routeEntity], 1/2.784457050376173)
	near("lag(d) between", probs("d")[routeLag], 0)
}

// TestRouteLearningConverges replays consumptions drawn from a known
// mixture — 70% the turn three back (lag 2), 30% any earlier engram — and
// checks that incremental EM recovers the lag route's weight and its lag,
// and that ticks then stage the lag-2 turn first.
func TestRouteLearningConverges(t *testing.T) {
	t.Parallel()
	ts := newTestService(t, Config{}, Deps{})
	r := rand.New(rand.NewPCG(7, 1))
	var ids []string
	for i := range 400 {
		if i >= 4 {
			need := ids[len(ids)-3]
			if r.Float64() >= 0.7 {
				need = ids[r.IntN(len(ids))]
			}
			ts.consume("p", "chat", need)
		}
		id := fmt.Sprintf("e%03d", i)
		ts.remember("p", "chat", id, EngramInput{Content: id, Importance: 5})
		ids = append(ids, id)
		ts.advance(time.Minute)
	}
	p := ts.mem.get("p")
	p.mu.RLock()
	rm := p.routes
	p.mu.RUnlock()
	w := rm.weights(episodeBuckets - 1)
	if math.Abs(w[routeLag]-0.7) > 0.06 {
		t.Errorf("π_lag = %.3f, want 0.70 ± 0.06 (weights %v)", w[routeLag], w)
	}
	var total float64
	for _, c := range rm.lag {
		total += c + 1
	}
	if share := (rm.lag[2] + 1) / total; share < 0.9 {
		t.Errorf("lag 2 holds %.3f of the lag route, want ≥ 0.9 (%v)", share, rm.lag)
	}
	sl := ts.PeekLocal("p", "chat")
	if sl == nil || len(sl.Items) == 0 {
		t.Fatal("nothing staged")
	}
	want := ids[len(ids)-3]
	best := sl.Items[0]
	for _, it := range sl.Items {
		if it.Pool == PoolAssociative && (best.Pool != PoolAssociative || it.Score > best.Score) {
			best = it
		}
	}
	if best.ID != want {
		t.Errorf("best associative item %s, want the lag-2 turn %s (staged %v)", best.ID, want, itemIDs(sl.Items))
	}
}
