package events

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// TestWildcardDeliveriesNameTheConcreteTopic subscribes with colon globs
// and artifact selectors and checks who gets what, with the concrete topic
// on every delivery.
func TestWildcardDeliveriesNameTheConcreteTopic(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name string
		req  *eventsv1.SubscribeRequest
		want []string // topics delivered, in order
	}{
		{"one segment glob", pattern("data:*:created"), []string{"data:chat:created", "data:room:created"}},
		{"tail glob", pattern("data:>"), []string{"data:chat:created", "data:chat:deleted", "data:room:created", "data:x"}},
		{"exact topic", pattern("data:chat:created"), []string{"data:chat:created"}},
		{"everything colon", pattern(">"), []string{"data:chat:created", "data:chat:deleted", "data:room:created", "data:x", "other", "data", "genome:working_set"}},
		{
			"artifact exact", artifact("genome/working_set.page_fault", eventsv1.ArtifactMatch_ARTIFACT_MATCH_EXACT),
			[]string{"genome/working_set.page_fault"},
		},
		{
			"artifact exact by default", artifact("genome/working_set.page_fault", eventsv1.ArtifactMatch_ARTIFACT_MATCH_UNSPECIFIED),
			[]string{"genome/working_set.page_fault"},
		},
		{
			"artifact prefix", artifact("genome/", eventsv1.ArtifactMatch_ARTIFACT_MATCH_PREFIX),
			[]string{"genome/working_set.page_fault", "genome/working_set.access_denied"},
		},
		{
			"artifact partial prefix", artifact("genome/working_set.a", eventsv1.ArtifactMatch_ARTIFACT_MATCH_PREFIX),
			[]string{"genome/working_set.access_denied"},
		},
	}
	tails := make([]*tail, len(tests))
	for i, tc := range tests {
		tails[i] = subscribe(t, e.admin, tc.req)
		tails[i].ack()
	}
	for _, topic := range []string{
		"data:chat:created", "genome/working_set.page_fault", "data:chat:deleted", "data:room:created",
		"genome/working_set.access_denied", "data:x", "other", "data", "genome:working_set",
	} {
		publish(t, e.admin, topic, map[string]any{"t": topic})
	}
	// A marker on every selector ends each expectation, so "nothing else
	// arrived" needs no sleep.
	publish(t, e.admin, "data:chat:created", map[string]any{"marker": true})
	publish(t, e.admin, "genome/working_set.page_fault", map[string]any{"marker": true})
	publish(t, e.admin, "genome/working_set.access_denied", map[string]any{"marker": true})
	for i, tc := range tests {
		var got []string
		for {
			d := tails[i].delivery()
			if d.GetPayload().GetFields()["marker"] != nil {
				break
			}
			got = append(got, d.GetTopic())
			if want := d.GetPayload().GetFields()["t"].GetStringValue(); want != d.GetTopic() {
				t.Errorf("%s: delivery names topic %q for an event published on %q", tc.name, d.GetTopic(), want)
			}
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: topics (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestSequencesAreGaplessPerSubscription(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	all := subscribe(t, e.admin, pattern("seq:>"))
	all.ack()
	odd := subscribe(t, e.admin, &eventsv1.SubscribeRequest{
		Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "seq:>"},
		Filter:   payload(t, map[string]any{"odd": true}),
	})
	oddID := odd.ack()
	for i := 1; i <= 20; i++ {
		topic := "seq:a"
		if i%3 == 0 {
			topic = "seq:b"
		}
		resp := publish(t, e.admin, topic, map[string]any{"i": i, "odd": i%2 == 1})
		wantDelivered := uint32(1)
		if i%2 == 1 {
			wantDelivered = 2
		}
		if resp.GetDelivered() != wantDelivered {
			t.Fatalf("publish %d delivered to %d, want %d", i, resp.GetDelivered(), wantDelivered)
		}
	}
	lastStream := map[string]uint64{}
	for i := 1; i <= 20; i++ {
		d := all.delivery()
		if d.GetSequence() != uint64(i) || int(d.GetPayload().GetFields()["i"].GetNumberValue()) != i {
			t.Fatalf("delivery %d: sequence %d payload %v", i, d.GetSequence(), d.GetPayload())
		}
		if d.GetStreamSequence() != lastStream[d.GetTopic()]+1 {
			t.Fatalf("topic %s: stream sequence %d after %d", d.GetTopic(), d.GetStreamSequence(), lastStream[d.GetTopic()])
		}
		lastStream[d.GetTopic()] = d.GetStreamSequence()
	}
	for i := 1; i <= 10; i++ {
		d := odd.delivery()
		if d.GetSequence() != uint64(i) || int(d.GetPayload().GetFields()["i"].GetNumberValue()) != 2*i-1 {
			t.Fatalf("filtered delivery %d: sequence %d payload %v", i, d.GetSequence(), d.GetPayload())
		}
	}
	st := stats(t, e.admin, oddID)
	if diff := cmp.Diff(&eventsv1.SubscriptionStats{
		SubscriptionId: oddID, Subscriber: "admin", Selector: "seq:>", Sent: 10, Filtered: 10, Node: "test-node",
	}, st, protocmp.Transform()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestDeliveryCarriesTheEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	x := subscribe(t, e.user, pattern("chat:created"))
	id := x.ack()
	resp, err := e.admin.Publish(ctxT(t), &eventsv1.PublishRequest{
		Topic: "chat:created", Payload: payload(t, map[string]any{"text": "hi", "n": 2.5}),
		Headers: map[string]string{"trace": "abc"}, MsgId: "m-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	d := x.delivery()
	if d.GetPublishedAt() == nil {
		t.Fatal("no published_at")
	}
	want := &eventsv1.Delivery{
		SubscriptionId: id, Topic: "chat:created", Sequence: 1, StreamSequence: resp.GetStreamSequence(),
		Publisher: "admin", PublisherNode: "test-node", MsgId: "m-1",
		Payload: payload(t, map[string]any{"text": "hi", "n": 2.5}), Headers: map[string]string{"trace": "abc"},
		PublishedAt: d.GetPublishedAt(),
	}
	if diff := cmp.Diff(want, d, protocmp.Transform()); diff != "" {
		t.Errorf("delivery (-want +got):\n%s", diff)
	}
}

func TestUnsubscribeIsIdempotentAndEndsTheStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	x := subscribe(t, e.user, pattern("u:>"))
	id := x.ack()
	if _, err := e.admin.Unsubscribe(ctxT(t), &eventsv1.UnsubscribeRequest{SubscriptionId: id}); err == nil {
		t.Fatal("another principal unsubscribed someone else's subscription")
	} else {
		wantCode(t, err, codes.PermissionDenied, ReasonSubscriptionNotOwned)
	}
	resp, err := e.user.Unsubscribe(ctxT(t), &eventsv1.UnsubscribeRequest{SubscriptionId: id})
	if err != nil || !resp.GetClosed() {
		t.Fatalf("first unsubscribe = %v, %v; want closed", resp, err)
	}
	if err := x.end(); err != nil {
		t.Fatalf("stream ended with %v, want a clean end", err)
	}
	resp, err = e.user.Unsubscribe(ctxT(t), &eventsv1.UnsubscribeRequest{SubscriptionId: id})
	if err != nil || resp.GetClosed() {
		t.Fatalf("second unsubscribe = %v, %v; want closed=false", resp, err)
	}
	if got := publish(t, e.admin, "u:x", nil).GetDelivered(); got != 0 {
		t.Fatalf("delivered to %d after unsubscribe", got)
	}
	_, err = e.user.Unsubscribe(ctxT(t), &eventsv1.UnsubscribeRequest{})
	wantCode(t, err, codes.InvalidArgument, "SUBSCRIPTION_ID_EMPTY")
}

func TestCancellingTheStreamUnsubscribes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	x := subscribe(t, e.admin, pattern("c:>"))
	id := x.ack()
	x.cancel()
	waitUntil(t, "the subscription to go", func() bool {
		resp, err := e.admin.ListSubscriptions(ctxT(t), &eventsv1.ListSubscriptionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range resp.GetSubscriptions() {
			if s.GetSubscriptionId() == id {
				return false
			}
		}
		return true
	})
}

// TestTopicStreamsAreBounded evicts the least recently published topic
// stream beyond MaxTopics: its sequence starts again, as after a restart.
func TestTopicStreamsAreBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.MaxTopics = 2 })
	publish(t, e.admin, "lru:a", nil)
	publish(t, e.admin, "lru:a", nil)
	publish(t, e.admin, "lru:b", nil)
	publish(t, e.admin, "lru:b", nil)
	if got := publish(t, e.admin, "lru:b", nil).GetStreamSequence(); got != 3 {
		t.Fatalf("lru:b at %d", got)
	}
	publish(t, e.admin, "lru:c", nil) // evicts lru:a, the least recently published
	if got := publish(t, e.admin, "lru:b", nil).GetStreamSequence(); got != 4 {
		t.Fatalf("lru:b was evicted (sequence %d)", got)
	}
	if got := publish(t, e.admin, "lru:a", nil).GetStreamSequence(); got != 1 {
		t.Fatalf("lru:a kept its stream (sequence %d)", got)
	}
}

// TestFiltersOnReplay: a subscription that starts in the past filters the
// retained events, which keep only their encoding (the payload is decoded
// for the filter), by last_n and by start_after_sequence alike.
func TestFiltersOnReplay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 1; i <= 10; i++ {
		publish(t, e.admin, "replay:f", map[string]any{"i": i, "odd": i%2 == 1})
	}
	odd := payload(t, map[string]any{"odd": true})
	last := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "replay:f"}, Filter: odd, LastN: 2})
	last.ack()
	for _, want := range []int{7, 9} {
		if d := last.delivery(); int(d.GetPayload().GetFields()["i"].GetNumberValue()) != want {
			t.Fatalf("last_n 2 odd: got %v, want i=%d", d.GetPayload(), want)
		}
	}
	after := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "replay:f"}, Filter: odd, StartAfterSequence: 4})
	after.ack()
	for _, want := range []int{5, 7, 9} {
		d := after.delivery()
		if int(d.GetPayload().GetFields()["i"].GetNumberValue()) != want || !d.GetPayload().GetFields()["odd"].GetBoolValue() {
			t.Fatalf("after 4, odd: got %v, want i=%d", d.GetPayload(), want)
		}
	}
	// Live events after the replay still go through the same filter.
	publish(t, e.admin, "replay:f", map[string]any{"i": 11, "odd": true})
	if d := after.delivery(); int(d.GetPayload().GetFields()["i"].GetNumberValue()) != 11 {
		t.Fatalf("live after replay: got %v, want i=11", d.GetPayload())
	}
}
