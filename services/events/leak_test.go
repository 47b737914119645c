package events

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// TestSubscribeUnsubscribeCyclesLeakNothing runs 10k subscribe/unsubscribe
// cycles through the real server and checks that no goroutine and no
// subscription is left behind.
func TestSubscribeUnsubscribeCyclesLeakNothing(t *testing.T) {
	// Not parallel: goleak compares this test's goroutines before and after.
	e := newEnv(t)
	cycle := func(i int) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stream, err := e.user.Subscribe(ctx, pattern("leak:>"))
		if err != nil {
			t.Error(err)
			return
		}
		r, err := stream.Recv()
		if err != nil {
			t.Error(err)
			return
		}
		id := r.GetAck().GetSubscriptionId()
		if i%2 == 0 {
			resp, err := e.user.Unsubscribe(ctx, &eventsv1.UnsubscribeRequest{SubscriptionId: id})
			if err != nil || !resp.GetClosed() {
				t.Errorf("cycle %d: unsubscribe = %v, %v", i, resp, err)
			}
			if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
				t.Errorf("cycle %d: stream ended with %v, want EOF", i, err)
			}
			return
		}
		cancel() // the other half end by cancelling the stream
		if _, err := stream.Recv(); codes.Canceled != statusCode(err) {
			t.Errorf("cycle %d: stream ended with %v", i, err)
		}
	}
	// Warm every connection up before the baseline.
	cycle(0)
	cycle(1)
	if _, err := e.admin.ListSubscriptions(ctxT(t), &eventsv1.ListSubscriptionsRequest{}); err != nil {
		t.Fatal(err)
	}
	baseline := goleak.IgnoreCurrent()
	const workers = 4
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 2 + w; i < 10_000; i += workers {
				cycle(i)
			}
		}()
	}
	wg.Wait()
	waitUntil(t, "every subscription to end", func() bool {
		resp, err := e.admin.ListSubscriptions(ctxT(t), &eventsv1.ListSubscriptionsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.GetSubscriptions()) == 0
	})
	goleak.VerifyNone(t, baseline)
	if n := len(e.svc.index.wild) + len(e.svc.index.exact); n != 0 {
		t.Fatalf("%d index entries left", n)
	}
}
