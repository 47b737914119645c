package events

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		deps Deps
	}{
		{"no node", Config{}, Deps{Gate: &policyGate{}}},
		{"no gate", Config{Node: "n"}, Deps{}},
		{"queue above max", Config{Node: "n", DefaultQueue: 10, MaxQueue: 5}, Deps{Gate: &policyGate{}}},
		{"tiny events", Config{Node: "n", MaxEventBytes: 10}, Deps{Gate: &policyGate{}}},
		{"negative window", Config{Node: "n", DedupWindow: -time.Second}, Deps{Gate: &policyGate{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tc.cfg, tc.deps); err == nil {
				t.Fatal("New accepted a bad configuration")
			}
		})
	}
}

// TestRunDrainsThenCloseStops follows the drain order: Run's end ends open
// subscriptions and refuses new ones, publishes go on, and Close stops
// everything.
func TestRunDrainsThenCloseStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withDataDir(t.TempDir()))
	declare(t, e.admin, durableClass("keep"))
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- e.svc.Run(ctx) }()

	x := subscribe(t, e.admin, pattern("keep"))
	x.ack()
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	wantCode(t, x.refused(), codes.Unavailable, ReasonShuttingDown)
	wantCode(t, subscribe(t, e.admin, pattern("keep")).refused(), codes.Unavailable, ReasonShuttingDown)
	if got := publish(t, e.admin, "keep", nil).GetStreamSequence(); got != 1 {
		t.Fatalf("publish while draining got sequence %d", got)
	}

	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := e.admin.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "keep"})
	wantCode(t, err, codes.Unavailable, ReasonShuttingDown)
	_, err = e.admin.DeclareClass(ctxT(t), &eventsv1.DeclareClassRequest{Class: durableClass("late")})
	wantCode(t, err, codes.Unavailable, ReasonShuttingDown)

	// What was acknowledged while draining is on disk.
	e = e.restart()
	r := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("keep").Selector, LastN: 1})
	r.ack()
	if d := r.delivery(); d.GetStreamSequence() != 1 {
		t.Fatalf("replay after restart %v", d)
	}
}

// TestRunEnforcesRetention lets Run's ticker expire a memory class's
// events by age (on a fake clock) and forget msg_ids.
func TestRunEnforcesRetention(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	e := startEnvClock(t, Config{Node: "test-node", RetentionInterval: time.Millisecond}, clock)
	declare(t, e.admin, &eventsv1.EventClass{Name: "short", SchemaVersion: "1", Retention: durationpb.New(time.Minute)})
	if _, err := e.admin.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "short:x", MsgId: "once"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- e.svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	clock.advance(time.Hour)
	st := e.svc.reg.streamFor("short:x")
	waitUntil(t, "retention to expire the event", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.ring.len() == 0 && len(st.dedup.ids) == 0
	})
	resp, err := e.admin.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "short:x", MsgId: "once"})
	if err != nil || resp.GetDuplicate() || resp.GetStreamSequence() != 2 {
		t.Fatalf("publish after the dedup window = %v, %v", resp, err)
	}
	x := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("short:>").Selector, LastN: 5})
	x.ack()
	publish(t, e.admin, "short:x", nil)
	if d := x.delivery(); d.GetStreamSequence() != 2 {
		t.Fatalf("last_n replayed %v; the expired event must be gone", d)
	}
}
