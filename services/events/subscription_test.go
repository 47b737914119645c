package events

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/topic"
)

// TestSubscriptionQueue drives the queue directly: overflow is counted per
// stream, and the lag marker comes before the next queued event, or by
// itself once the queue drains.
func TestSubscriptionQueue(t *testing.T) {
	t.Parallel()
	sel, err := topic.ParseSelector("q:>")
	if err != nil {
		t.Fatal(err)
	}
	sub := newSubscription("s", auth.AnonymousPrincipal, sel, filter{}, 2)
	a, b := &stream{name: "a"}, &stream{name: "b"}
	ev := func(seq uint64, t string) *event { return &event{seq: seq, topic: t} }
	type got struct {
		Seq    uint64
		Lag    bool
		Stream string
		First  uint64
		Missed uint64
	}
	take := func() []got {
		var out []got
		for _, it := range sub.take(nil, 10) {
			if it.lag != nil {
				for _, l := range it.lag {
					out = append(out, got{Lag: true, Stream: l.stream.name, First: l.firstSeq, Missed: l.missed})
				}
				continue
			}
			out = append(out, got{Seq: it.ev.seq, Stream: it.stream.name})
		}
		return out
	}
	var queued []bool
	for i, s := range []*stream{a, a, a, b, a} {
		queued = append(queued, sub.offer(s, ev(uint64(i+1), "q:"+s.name)))
	}
	if diff := cmp.Diff([]bool{true, true, false, false, false}, queued); diff != "" {
		t.Fatalf("offers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]got{{Seq: 1, Stream: "a"}, {Seq: 2, Stream: "a"}}, take()); diff != "" {
		t.Fatalf("first take (-want +got):\n%s", diff)
	}
	// Drained with a lag pending: the notice comes on its own, one entry per
	// stream.
	if diff := cmp.Diff([]got{{Lag: true, Stream: "a", First: 3, Missed: 2}, {Lag: true, Stream: "b", First: 4, Missed: 1}}, take()); diff != "" {
		t.Fatalf("lag take (-want +got):\n%s", diff)
	}
	if len(take()) != 0 {
		t.Fatal("the lag was reported twice")
	}
	// Overflow again; the next event that fits carries the notice first.
	sub.offer(a, ev(6, "q:a"))
	sub.offer(a, ev(7, "q:a"))
	sub.offer(a, ev(8, "q:a"))
	sub.take(nil, 1)
	sub.offer(a, ev(9, "q:a"))
	if diff := cmp.Diff([]got{{Seq: 7, Stream: "a"}, {Lag: true, Stream: "a", First: 8, Missed: 1}, {Seq: 9, Stream: "a"}}, take()); diff != "" {
		t.Fatalf("take after the second overflow (-want +got):\n%s", diff)
	}
	if sub.dropped.Load() != 4 {
		t.Fatalf("dropped %d", sub.dropped.Load())
	}
	sub.close(nil)
	if sub.offer(a, ev(10, "q:a")) {
		t.Fatal("a closed subscription took an event")
	}
}
