package hippocampus

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGraph(t *testing.T) {
	t.Parallel()
	g := NewGraph()
	g.AddEdge(1, 2, EdgeSharedEntity, 0.6)
	g.AddEdge(1, 3, EdgeConversationalRepl, 1)
	g.AddEdge(1, 2, EdgeSharedTopic, 0.3) // another kind between the same pair
	g.AddEdge(4, 1, EdgeCitedIn, 0.9)
	g.AddEdge(3, 1, EdgeConversationalRepl, 1)
	if w, created := g.AddEdge(1, 2, EdgeSharedEntity, 0.5); created || w != 0.5 {
		t.Errorf("updating an edge = (%v, %v), want (0.5, false)", w, created)
	}
	want := []Edge{{2, EdgeSharedEntity, 0.5}, {3, EdgeConversationalRepl, 1}, {2, EdgeSharedTopic, 0.3}}
	if diff := cmp.Diff(want, g.Neighbors(1)); diff != "" {
		t.Errorf("Neighbors in insertion order (-want +got):\n%s", diff)
	}
	if g.InDegree(1) != 2 || g.InDegree(2) != 2 || g.OutDegree(1) != 3 || g.EdgeCount() != 5 {
		t.Errorf("in(1)=%d in(2)=%d out(1)=%d edges=%d", g.InDegree(1), g.InDegree(2), g.OutDegree(1), g.EdgeCount())
	}
	if g.Neighbors(99) != nil || g.InDegree(99) != 0 {
		t.Error("an unknown node has neighbours")
	}

	// Co-occurrence grows by 0.1 per co-consumption, up to 1.5.
	w := float32(0)
	for range 12 {
		w, _ = g.AddEdge(5, 6, EdgeRecallCoOccurrence, 0.7)
	}
	if w != coOccurrenceCap {
		t.Errorf("co-occurrence weight after 12 adds = %v, want %v", w, coOccurrenceCap)
	}

	if n := g.EvictEngram(1); n != 5 {
		t.Errorf("EvictEngram(1) removed %d edges, want 5", n)
	}
	if g.EvictEngram(1) != 0 {
		t.Error("a second EvictEngram removed edges")
	}
	if g.InDegree(2) != 0 || g.OutDegree(3) != 0 || g.OutDegree(4) != 0 || g.EdgeCount() != 1 {
		t.Errorf("after evicting 1: in(2)=%d out(3)=%d out(4)=%d edges=%d", g.InDegree(2), g.OutDegree(3), g.OutDegree(4), g.EdgeCount())
	}
}

// TestGraphConcurrentWriters runs writers, evictions and readers at once
// (meaningful under -race) and checks the counts agree at the end.
func TestGraphConcurrentWriters(t *testing.T) {
	t.Parallel()
	g := NewGraph()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				from := uint32(w*1000 + i)
				g.AddEdge(from, from+1, EdgeSharedTopic, 0.3)
				g.AddEdge(from+1, from, EdgeSharedTopic, 0.3)
				if i%10 == 0 {
					g.EvictEngram(from)
				}
				_ = g.Neighbors(from + 1)
				_ = g.InDegree(from)
			}
		}()
	}
	wg.Wait()
	total := 0
	g.eachEdge(func(uint32, Edge) { total++ })
	if total != g.EdgeCount() {
		t.Errorf("EdgeCount %d, edges walked %d", g.EdgeCount(), total)
	}
	in := 0
	for n := range uint32(5000) {
		in += g.InDegree(n)
	}
	if in != total {
		t.Errorf("in-degrees sum to %d, edges %d", in, total)
	}
}
