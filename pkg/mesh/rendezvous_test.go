package mesh

import (
	"fmt"
	"slices"
	"testing"
)

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("persona-%d", i)
	}
	return out
}

func TestRendezvousDeterministic(t *testing.T) {
	t.Parallel()
	if got := Rendezvous("k", nil); got != "" {
		t.Errorf("no candidates: got %q", got)
	}
	cands := []string{"node-a", "node-b", "node-c", "node-d"}
	rev := slices.Clone(cands)
	slices.Reverse(rev)
	for _, k := range keys(500) {
		if a, b := Rendezvous(k, cands), Rendezvous(k, rev); a != b {
			t.Fatalf("key %q: order changes the winner: %q vs %q", k, a, b)
		}
	}
}

// TestRendezvousMovement: adding a candidate moves only keys to it (about
// 1/n of them); removing one moves only its keys.
func TestRendezvousMovement(t *testing.T) {
	t.Parallel()
	ks := keys(20000)
	three := []string{"node-1", "node-2", "node-3"}
	four := append(slices.Clone(three), "node-4")
	moved := 0
	for _, k := range ks {
		before, after := Rendezvous(k, three), Rendezvous(k, four)
		if before != after {
			if after != "node-4" {
				t.Fatalf("key %q moved from %s to %s, not to the new candidate", k, before, after)
			}
			moved++
		}
	}
	if frac := float64(moved) / float64(len(ks)); frac < 0.22 || frac > 0.28 {
		t.Errorf("adding a 4th candidate moved %.3f of the keys, want about 0.25", frac)
	}
	two := []string{"node-1", "node-3"}
	for _, k := range ks {
		before, after := Rendezvous(k, three), Rendezvous(k, two)
		if before != "node-2" && before != after {
			t.Fatalf("removing node-2 moved key %q from %s to %s", k, before, after)
		}
	}
}

func TestRendezvousBalance(t *testing.T) {
	t.Parallel()
	tests := [][]string{
		{"node-1", "node-2", "node-3"},
		{"a", "b", "c"},
		{"hippocampus-7f9c", "hippocampus-x2", "hippocampus-qq1"},
	}
	for _, cands := range tests {
		t.Run(fmt.Sprint(cands), func(t *testing.T) {
			t.Parallel()
			count := map[string]int{}
			ks := keys(30000)
			for _, k := range ks {
				count[Rendezvous(k, cands)]++
			}
			for _, c := range cands {
				if frac := float64(count[c]) / float64(len(ks)); frac < 0.31 || frac > 0.357 {
					t.Errorf("%s owns %.3f of the keys, want about 1/3 (%v)", c, frac, count)
				}
			}
		})
	}
}

func BenchmarkRendezvous(b *testing.B) {
	cands := []string{"node-1", "node-2", "node-3", "node-4", "node-5", "node-6", "node-7", "node-8", "node-9", "node-10"}
	for b.Loop() {
		_ = Rendezvous("persona-4711", cands)
	}
}
