package recallgen

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestFenwick(t *testing.T) {
	t.Parallel()
	var f fenwick
	weights := []float64{3, 0, 5, 1, 7, 2, 2, 9, 4, 1, 6}
	for i, w := range weights {
		f.add(i, w)
	}
	f.add(2, 1) // weights[2] = 6
	weights[2] = 6
	total := 0.0
	for _, w := range weights {
		total += w
	}
	if f.total() != total {
		t.Fatalf("total = %v, want %v", f.total(), total)
	}
	// Every x in [0, total) falls in the position whose range covers it.
	cum := 0.0
	for i, w := range weights {
		for _, frac := range []float64{0, 0.5, 0.999} {
			if w == 0 {
				continue
			}
			x := cum + frac*w
			if got := f.find(x); got != i {
				t.Errorf("find(%v) = %d, want %d", x, got, i)
			}
		}
		cum += w
	}
}

func TestPickRecent(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	var rs rankSums
	const n, draws = 10, 200000
	counts := make([]float64, n)
	for range draws {
		counts[pickRecent(r, &rs, n)]++
	}
	z := 0.0
	for rank := 1; rank <= n; rank++ {
		z += 1 / math.Sqrt(float64(rank))
	}
	for i, c := range counts {
		want := 1 / math.Sqrt(float64(n-i)) / z
		if got := c / draws; math.Abs(got-want) > 0.005 {
			t.Errorf("index %d drawn %.4f of the time, want %.4f", i, got, want)
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	o.Personas, o.Days = 2, 4
	var a, b bytes.Buffer
	na, ca, err := Generate(o, &a)
	if err != nil {
		t.Fatal(err)
	}
	nb, cb, _ := Generate(o, &b)
	if na != nb || a.String() != b.String() || ca.HitAt(8) != cb.HitAt(8) {
		t.Fatal("the same seed gave two traces")
	}
	o.Seed = 2
	var c bytes.Buffer
	if _, _, err := Generate(o, &c); err != nil || c.String() == a.String() {
		t.Fatal("another seed gave the same trace")
	}
	// Time-ordered, well-formed, needs point backwards within a persona.
	seen := map[string]string{}
	last := -1.0
	needs := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(a.String()), "\n") {
		var turn Turn
		if err := json.Unmarshal([]byte(line), &turn); err != nil {
			t.Fatal(err)
		}
		if turn.T < last {
			t.Fatalf("turn at %v after %v", turn.T, last)
		}
		last = turn.T
		if turn.Needs != nil {
			if seen[*turn.Needs] != turn.Persona {
				t.Fatalf("%s needs %s, not an earlier engram of %s", turn.Engram, *turn.Needs, turn.Persona)
			}
			needs[turn.Kind]++
		}
		if turn.Importance < 1 || turn.Importance > 10 || len(turn.Topics) == 0 || len(turn.Entities) == 0 {
			t.Fatalf("malformed turn %s", line)
		}
		seen[turn.Engram] = turn.Persona
	}
	for _, k := range Kinds {
		if needs[k] == 0 {
			t.Errorf("no need of kind %s", k)
		}
	}
	if h := ca.HitAt(8); h <= 0 || h >= 1 {
		t.Errorf("ceiling hit@8 = %v", h)
	}
}
