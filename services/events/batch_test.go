package events

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// TestBatchedDeliveries replays 100 events to a subscription that asked for
// batches of 16: they arrive packed, in order, with gapless sequences, and
// live deliveries after the replay arrive as well.
func TestBatchedDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 1; i <= 100; i++ {
		publish(t, e.admin, "b:x", map[string]any{"i": i})
	}
	x := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("b:x").Selector, LastN: 100, MaxBatch: 16})
	id := x.ack()
	var got []*eventsv1.Delivery
	batches := 0
	for len(got) < 100 {
		r := x.next()
		switch {
		case r.GetBatch() != nil:
			batches++
			if n := len(r.GetBatch().GetDeliveries()); n < 2 || n > 16 {
				t.Fatalf("batch of %d", n)
			}
			got = append(got, r.GetBatch().GetDeliveries()...)
		case r.GetDelivery() != nil:
			got = append(got, r.GetDelivery())
		default:
			t.Fatalf("unexpected %v", r)
		}
	}
	if batches < 100/16 {
		t.Fatalf("%d batches for 100 replayed events", batches)
	}
	publish(t, e.admin, "b:x", map[string]any{"i": 101})
	got = append(got, x.delivery())
	for i, d := range got {
		want := uint64(i + 1)
		if d.GetSequence() != want || d.GetStreamSequence() != want || d.GetSubscriptionId() != id ||
			d.GetTopic() != "b:x" || d.GetPublisher() != "admin" || d.GetPayload().GetFields()["i"].GetNumberValue() != float64(want) {
			t.Fatalf("delivery %d: %v", i+1, d)
		}
	}
	if s := stats(t, e.admin, id); s.GetSent() != 101 {
		t.Fatalf("sent %d", s.GetSent())
	}
	wantCode(t, subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("b:x").Selector, MaxBatch: 5000}).refused(),
		codes.InvalidArgument, "BATCH_TOO_LARGE")
}

// TestBatchBytesBounded replays 64 events of 2 KB to a subscription that
// asked for batches of 64: every message stays within gRPC's 32 KiB buffer
// tier (maxBatchBytes), so the batch is split, still in order and gapless.
func TestBatchBytesBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pad := strings.Repeat("x", 2048)
	for i := 1; i <= 64; i++ {
		publish(t, e.admin, "bb:x", map[string]any{"i": i, "pad": pad})
	}
	x := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("bb:x").Selector, LastN: 64, MaxBatch: 64})
	x.ack()
	var got []*eventsv1.Delivery
	for len(got) < 64 {
		r := x.next()
		if n := proto.Size(r); n > 32<<10 {
			t.Fatalf("a message of %d bytes, above 32 KiB", n)
		}
		switch {
		case r.GetBatch() != nil:
			if n := len(r.GetBatch().GetDeliveries()); n < 2 {
				t.Fatalf("batch of %d", n)
			}
			got = append(got, r.GetBatch().GetDeliveries()...)
		case r.GetDelivery() != nil:
			got = append(got, r.GetDelivery())
		default:
			t.Fatalf("unexpected %v", r)
		}
	}
	for i, d := range got {
		if want := uint64(i + 1); d.GetSequence() != want || d.GetPayload().GetFields()["i"].GetNumberValue() != float64(want) {
			t.Fatalf("delivery %d: %v", i+1, d)
		}
	}
}
