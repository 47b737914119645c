package events

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// TestSlowSubscriberDoesNotStallOthers parks one subscriber (it stops
// reading, so HTTP/2 flow control blocks its stream) and checks that
// publishers and a fast subscriber carry on, that the slow one's losses are
// counted, and that it learns of them with a lag notice saying where to
// resume before its next delivery, with its sequence still gapless.
func TestSlowSubscriberDoesNotStallOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	declare(t, e.admin, &eventsv1.EventClass{Name: "load", SchemaVersion: "1"})

	fast := subscribe(t, e.admin, pattern("load:>"))
	fast.ack()

	// A fixed 64 KiB window (no BDP growth) so a stream that is not read
	// blocks the server's sender after roughly 128 KiB.
	cc, err := grpc.NewClient(e.srv.Addr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+rpctest.AdminToken))
	t.Cleanup(cancel)
	slow, err := eventsv1.NewEventsServiceClient(cc).Subscribe(ctx, &eventsv1.SubscribeRequest{
		Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "load:>"}, QueueSize: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := slow.Recv()
	if err != nil {
		t.Fatal(err)
	}
	slowID := ack.GetAck().GetSubscriptionId()

	const n = 600
	body := strings.Repeat("x", 1024)
	for i := 1; i <= n; i++ {
		publish(t, e.admin, "load:x", map[string]any{"i": i, "body": body})
	}
	for i := 1; i <= n; i++ {
		if d := fast.delivery(); d.GetSequence() != uint64(i) || d.GetStreamSequence() != uint64(i) {
			t.Fatalf("fast subscriber: delivery %d has sequence %d stream sequence %d", i, d.GetSequence(), d.GetStreamSequence())
		}
	}
	st := stats(t, e.admin, slowID)
	if st.GetDropped() == 0 || st.GetDropped() >= n {
		t.Fatalf("slow subscriber stats %v: want some but not all events dropped", st)
	}

	// The slow subscriber reads again. Whenever it lost events, a lag
	// notice came first, saying how many and after which stream sequence;
	// its own sequence stays gapless.
	var got, last, missed uint64
	var pending, firstLag *eventsv1.Lag
	// step reads one message and returns the delivery, or nil for a lag.
	step := func() *eventsv1.Delivery {
		r, err := slow.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if l := r.GetLag(); l != nil {
			if pending != nil || l.GetResumeAfterSequence() != last || l.GetStream() != "load" ||
				l.GetTopic() != "load:x" || l.GetSubscriptionId() != slowID || l.GetMissed() == 0 {
				t.Fatalf("lag %v after stream sequence %d (pending %v)", l, last, pending)
			}
			if firstLag == nil {
				firstLag = l
			}
			pending, missed = l, missed+l.GetMissed()
			return nil
		}
		d := r.GetDelivery()
		want := last + 1
		if pending != nil {
			want += pending.GetMissed()
		}
		if got++; d.GetSequence() != got || d.GetStreamSequence() != want {
			t.Fatalf("delivery %d has sequence %d stream sequence %d, want stream sequence %d", got, d.GetSequence(), d.GetStreamSequence(), want)
		}
		last, pending = d.GetStreamSequence(), nil
		return d
	}
	for last+pending.GetMissed() < n {
		step()
	}
	publish(t, e.admin, "load:x", map[string]any{"marker": true})
	if d := step(); d.GetPayload().GetFields()["marker"] == nil {
		t.Fatalf("got %v, want the marker", d)
	}
	st = stats(t, e.admin, slowID)
	if firstLag == nil || missed != st.GetDropped() || got+missed != n+1 || st.GetSent() != got {
		t.Fatalf("stats %v: %d delivered, %d reported missed", st, got, missed)
	}
	lag := firstLag

	// Resuming from the notice recovers exactly what was missed.
	resumed := subscribe(t, e.admin, &eventsv1.SubscribeRequest{
		Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "load:>"}, StartAfterSequence: lag.GetResumeAfterSequence(),
	})
	resumed.ack()
	for want := lag.GetResumeAfterSequence() + 1; want <= n+1; want++ {
		if d := resumed.delivery(); d.GetStreamSequence() != want {
			t.Fatalf("resumed delivery has stream sequence %d, want %d", d.GetStreamSequence(), want)
		}
	}
}
