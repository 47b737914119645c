package events

import (
	"context"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// streamSeqs reads n deliveries and returns their stream sequences,
// checking that the per-subscription sequence counts 1, 2, 3...
func streamSeqs(t *testing.T, x *tail, n int) []uint64 {
	t.Helper()
	var out []uint64
	for i := 1; i <= n; i++ {
		d := x.delivery()
		if d.GetSequence() != uint64(i) {
			t.Fatalf("delivery %d has sequence %d", i, d.GetSequence())
		}
		out = append(out, d.GetStreamSequence())
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestReplayStartPositions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 1; i <= 10; i++ {
		publish(t, e.admin, "r:x", map[string]any{"i": i, "even": i%2 == 0})
	}
	tests := []struct {
		name string
		req  *eventsv1.SubscribeRequest
		want []uint64 // stream sequences replayed, then 11 live
	}{
		{"new only", pattern("r:x"), nil},
		{"last 3", &eventsv1.SubscribeRequest{Selector: pattern("r:x").Selector, LastN: 3}, []uint64{8, 9, 10}},
		{"last 2 even", &eventsv1.SubscribeRequest{
			Selector: pattern("r:x").Selector, LastN: 2,
			Filter: payload(t, map[string]any{"even": true}),
		}, []uint64{8, 10}},
		{"last more than retained", &eventsv1.SubscribeRequest{Selector: pattern("r:x").Selector, LastN: 50}, seqRange(1, 10)},
		{"after 6", &eventsv1.SubscribeRequest{Selector: pattern("r:x").Selector, StartAfterSequence: 6}, []uint64{7, 8, 9, 10}},
		{"after the last", &eventsv1.SubscribeRequest{Selector: pattern("r:x").Selector, StartAfterSequence: 10}, nil},
	}
	tails := make([]*tail, len(tests))
	for i, tc := range tests {
		tails[i] = subscribe(t, e.admin, tc.req)
		tails[i].ack()
	}
	publish(t, e.admin, "r:x", map[string]any{"i": 11, "even": true})
	for i, tc := range tests {
		want := append(append([]uint64(nil), tc.want...), 11)
		if diff := cmp.Diff(want, streamSeqs(t, tails[i], len(want))); diff != "" {
			t.Errorf("%s: stream sequences (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestReplayInsideAClass(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	declare(t, e.admin, &eventsv1.EventClass{Name: "audit", SchemaVersion: "1"})
	for i := 1; i <= 6; i++ {
		topic := "audit:refusal"
		if i%2 == 0 {
			topic = "audit:policy-drift"
		}
		publish(t, e.admin, topic, map[string]any{"i": i})
	}
	tests := []struct {
		name string
		req  *eventsv1.SubscribeRequest
		want []uint64
	}{
		{"exact topic in the class", &eventsv1.SubscribeRequest{Selector: pattern("audit:refusal").Selector, StartAfterSequence: 1}, []uint64{3, 5}},
		{"pattern within the class", &eventsv1.SubscribeRequest{Selector: pattern("audit:>").Selector, LastN: 3}, []uint64{4, 5, 6}},
		{"glob within the class", &eventsv1.SubscribeRequest{Selector: pattern("audit:*").Selector, StartAfterSequence: 4}, []uint64{5, 6}},
	}
	for _, tc := range tests {
		x := subscribe(t, e.admin, tc.req)
		x.ack()
		if diff := cmp.Diff(tc.want, streamSeqs(t, x, len(tc.want))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	// A more specific class splits audit:> into two streams.
	declare(t, e.admin, &eventsv1.EventClass{Name: "audit:refusal", SchemaVersion: "1"})
	wantCode(t, subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("audit:>").Selector, LastN: 1}).refused(),
		codes.InvalidArgument, ReasonStartAmbiguous)
	x := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("audit:policy-drift").Selector, LastN: 1})
	x.ack()
	if diff := cmp.Diff([]uint64{6}, streamSeqs(t, x, 1)); diff != "" {
		t.Errorf("policy-drift stays in the audit stream (-want +got):\n%s", diff)
	}
	if got := publish(t, e.admin, "audit:refusal", nil).GetStreamSequence(); got != 1 {
		t.Errorf("audit:refusal now has its own class stream; got sequence %d", got)
	}
}

func TestReplayReportsEventsRetentionDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.TopicRetained = 4 })
	for i := 1; i <= 10; i++ {
		publish(t, e.admin, "gap:x", nil)
	}
	x := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("gap:x").Selector, StartAfterSequence: 2})
	id := x.ack()
	lag := x.next().GetLag()
	want := &eventsv1.Lag{SubscriptionId: id, Missed: 4, ResumeAfterSequence: 6, Stream: "gap:x"}
	if diff := cmp.Diff(want, lag, protocmp.Transform()); diff != "" {
		t.Errorf("lag (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(seqRange(7, 10), streamSeqs(t, x, 4)); diff != "" {
		t.Errorf("replay (-want +got):\n%s", diff)
	}
}

// TestReplayHandsOverToLiveWithoutGapOrDuplicate subscribes with a start
// position while a publisher keeps publishing: every event after the start
// arrives exactly once, in order.
func TestReplayHandsOverToLiveWithoutGapOrDuplicate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.TopicRetained = 100_000 })
	const n = 800
	half := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			if _, err := e.admin.Publish(context.Background(), &eventsv1.PublishRequest{Topic: "h:x"}); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			if i == n/2 {
				close(half)
			}
		}
	}()
	<-half
	x := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("h:x").Selector, StartAfterSequence: 10})
	x.ack()
	got := streamSeqs(t, x, n-10)
	wg.Wait()
	if diff := cmp.Diff(seqRange(11, n), got); diff != "" {
		t.Errorf("stream sequences (-want +got):\n%s", diff)
	}
}
