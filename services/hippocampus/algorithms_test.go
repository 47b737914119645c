package hippocampus

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const tol = 5e-7

var epoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func secs(s float64) int64 { return epoch.Add(time.Duration(s * float64(time.Second))).UnixNano() }

func history(now int64, ages ...float64) accessHistory {
	var a accessHistory
	for i := len(ages) - 1; i >= 0; i-- { // oldest first
		a.add(now - int64(ages[i]*float64(time.Second)))
	}
	return a
}

// TestBaseLevelKnownAnswers reproduces HIPPOCAMPUS.md §4.
func TestBaseLevelKnownAnswers(t *testing.T) {
	t.Parallel()
	now := secs(1e6)
	tests := []struct {
		name string
		ages []float64
		want float64
	}{
		{"ages 10, 100, 1000 s", []float64{10, 100, 1000}, -0.803296},
		{"one hour", []float64{3600}, -4.094345},
		{"one day", []float64{86400}, -5.683371},
		{"ages under a second count as one second", []float64{0.2}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := history(now, tt.ages...)
			if got := baseLevel(&a, now, 0.5); math.Abs(got-tt.want) > tol {
				t.Errorf("B = %.6f, want %.6f", got, tt.want)
			}
		})
	}
	t.Run("one access, a hundred times older", func(t *testing.T) {
		t.Parallel()
		for _, age := range []float64{5, 60, 7200} {
			a := history(now, age)
			b1 := baseLevel(&a, now, 0.5)
			later := now + int64(99*age*float64(time.Second))
			b100 := baseLevel(&a, later, 0.5)
			if d := b100 - b1; math.Abs(d-(-2.302585)) > tol {
				t.Errorf("age %v: B(100t) - B(t) = %.6f, want -2.302585", age, d)
			}
		}
	})
}

// TestBaseLevelPetrov checks the hybrid approximation against the exact sum
// for a long evenly spread history, and that it is exact up to three
// accesses.
func TestBaseLevelPetrov(t *testing.T) {
	t.Parallel()
	now := secs(1e7)
	var ages []float64
	exact := 0.0
	for i := 1; i <= 200; i++ {
		age := float64(i) * 500
		ages = append(ages, age)
		exact += 1 / math.Sqrt(age)
	}
	a := history(now, ages...)
	got := baseLevel(&a, now, 0.5)
	// Compare the sums the logarithms are of.
	if rel := math.Abs(math.Exp(got)-exact) / exact; rel > 0.02 {
		t.Errorf("approximate B = %.4f, exact %.4f (sums differ by %.1f%%)", got, math.Log(exact), 100*rel)
	}
	if a.n != 200 || a.last[0] != now-int64(500*time.Second) {
		t.Errorf("history kept n=%d last=%v", a.n, a.last)
	}
	// Out-of-order accesses keep the exact times sorted.
	var b accessHistory
	for _, s := range []float64{50, 10, 30, 20, 40} {
		b.add(secs(s))
	}
	if diff := cmp.Diff([3]int64{secs(50), secs(40), secs(30)}, b.last); diff != "" || b.first != secs(10) {
		t.Errorf("out-of-order history (-want +got):\n%s first=%v", diff, b.first)
	}
}

// TestChannelBiasKnownAnswer reproduces HIPPOCAMPUS.md §2: N_0 = 30,
// N_1 = 10, an engram with 3 events all in c0.
func TestChannelBiasKnownAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		nc, nic float64
		want    float64
	}{
		{"c0", 30, 3, 0.235964},
		{"c1", 10, 0, -1.386294},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := channelBias(tt.nc, 40, 2, tt.nic, 3, 1); math.Abs(got-tt.want) > tol {
				t.Errorf("S = %.6f, want %.6f", got, tt.want)
			}
		})
	}
}

// TestChannelBiasThroughPersona builds the same counts through Remember
// and Consume records, and checks the scorer's inputs.
func TestChannelBiasThroughPersona(t *testing.T) {
	t.Parallel()
	p := newPersona("p")
	at := secs(0)
	remember := func(id, ch string) {
		p.applyRemember(&rememberRec{id: id, channel: ch, importance: 5, at: at}, 1)
	}
	remember("x", "c0")
	p.applyConsume(&consumeRec{channel: "c0", at: at, ids: []string{"x", "x"}}, 1)
	for i := range 27 {
		remember("a"+itoa(i), "c0")
	}
	for i := range 10 {
		remember("b"+itoa(i), "c1")
	}
	c0, c1 := p.chanIdx["c0"], p.chanIdx["c1"]
	x := &p.engrams[p.byID["x"]]
	if p.chans[c0].events != 30 || p.chans[c1].events != 10 || x.eventsIn(c0) != 3 {
		t.Fatalf("counts N0=%d N1=%d n_x,c0=%d", p.chans[c0].events, p.chans[c1].events, x.eventsIn(c0))
	}
	for _, tc := range []struct {
		ch   uint16
		want float64
	}{{c0, 0.235964}, {c1, -1.386294}} {
		got := channelBias(float64(p.chans[tc.ch].events), float64(p.events), float64(len(p.chans)), float64(x.eventsIn(tc.ch)), 3, 1)
		if math.Abs(got-tc.want) > tol {
			t.Errorf("channel %d: S = %.6f, want %.6f", tc.ch, got, tc.want)
		}
	}
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

// TestSpreadKnownAnswer reproduces HIPPOCAMPUS.md §3: chain a–b–c, unit
// weights, seed a = 1, α = 0.5, D = 3, θ = 0.
func TestSpreadKnownAnswer(t *testing.T) {
	t.Parallel()
	const a, b, c = 0, 1, 2
	chain := func() *Graph {
		g := NewGraph()
		for _, e := range [][2]uint32{{a, b}, {b, a}, {b, c}, {c, b}} {
			g.AddEdge(e[0], e[1], EdgeSharedTopic, 1)
		}
		return g
	}
	tests := []struct {
		name string
		fan  int
		want map[uint32]float64
	}{
		{"unbounded fan-out", 64, map[uint32]float64{a: 1.125, b: 0.625, c: 0.125}},
		{"fan-out 1 stops b", 1, map[uint32]float64{a: 1, b: 0.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := chain().Spread([]Seed{{Node: a, Weight: 1}},
				SpreadParams{Alpha: 0.5, Pulses: 3, Threshold: 0, MaxFanOut: tt.fan, Budget: 20000}, newSpreadScratch())
			if diff := cmp.Diff(tt.want, res.Map(), cmpopts.EquateApprox(0, 1e-12)); diff != "" {
				t.Errorf("G (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("budget", func(t *testing.T) {
		t.Parallel()
		res := chain().Spread([]Seed{{Node: a, Weight: 1}},
			SpreadParams{Alpha: 0.5, Pulses: 3, MaxFanOut: 64, Budget: 2}, newSpreadScratch())
		if !res.Exhausted || res.Relaxations != 2 {
			t.Errorf("budget 2: exhausted=%v relaxations=%d", res.Exhausted, res.Relaxations)
		}
	})
}

// TestSpreadCostIndependentOfSize: the work of a spread is bounded by the
// budget and the neighbourhood, not by the graph's size.
func TestSpreadCostIndependentOfSize(t *testing.T) {
	t.Parallel()
	relax := func(n int) int {
		g := NewGraph()
		for i := 1; i < n; i++ { // a long chain
			g.AddEdge(uint32(i-1), uint32(i), EdgeConversationalRepl, 1)
			g.AddEdge(uint32(i), uint32(i-1), EdgeConversationalRepl, 1)
		}
		return g.Spread([]Seed{{Node: uint32(n / 2), Weight: 1}}, DefaultModel().Spread, newSpreadScratch()).Relaxations
	}
	if small, large := relax(100), relax(100000); small != large {
		t.Errorf("relaxations %d at 100 nodes, %d at 100000", small, large)
	}
}

// TestStrengths checks the feature and graph strengths' clamps.
func TestStrengths(t *testing.T) {
	t.Parallel()
	if got := featureStrength(99, 9); math.Abs(got-math.Log(10)) > 1e-12 {
		t.Errorf("S_ji = %v, want ln 10", got)
	}
	if got := featureStrength(5, 9); got != 0 {
		t.Errorf("S_ji for a fan above N = %v, want 0", got)
	}
	if got := graphStrength(100, 0.5, 1); math.Abs(got-math.Log(50)) > 1e-12 {
		t.Errorf("S^G = %v, want ln 50", got)
	}
	if got := graphStrength(100, 0.001, 1); got != 0 {
		t.Errorf("S^G below uniform = %v, want 0", got)
	}
	if got := stableSalience(1, math.Log(10.0/5), 4, secs(0), secs(7200)); math.Abs(got-(math.Log(2)+math.Log(4)+2*math.Log(0.995))) > 1e-12 {
		t.Errorf("sigma = %v", got)
	}
	// The stable key ranks like sigma at any time.
	ka := stableKey(1, 0, 1, secs(0))
	kb := stableKey(1, math.Log(2), 1, secs(-3600*100))
	for _, now := range []int64{secs(10), secs(1e6)} {
		sa := stableSalience(1, 0, 1, secs(0), now)
		sb := stableSalience(1, math.Log(2), 1, secs(-3600*100), now)
		if (ka > kb) != (sa > sb) || math.Abs((sa-sb)-(ka-kb)) > 1e-6 {
			t.Errorf("key order differs from sigma order at %v", now)
		}
	}
}
