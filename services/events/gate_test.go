package events

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/auth"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

func TestGatesWithAForbidRule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.gate.forbid("user", "events/secret:x/publish")
	e.gate.forbid("user", "events/secret:x/subscribe")
	e.gate.forbid("user", "events/genome/*/subscribe")
	e.gate.set(append(e.gate.rules, gateRule{
		caller: "user", uri: "events/ask:x/publish",
		kind: routerv1.VerdictKind_VERDICT_KIND_DEFERRED, reason: "ask-target-env",
	})...)

	_, err := e.user.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "secret:x"})
	wantCode(t, err, codes.PermissionDenied, "FORBIDDEN_NO_PERMISSION")
	_, err = e.user.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "ask:x"})
	wantCode(t, err, codes.FailedPrecondition, "DEFERRED_ASK_TARGET_ENV")
	publish(t, e.admin, "secret:x", nil) // the rule names user only

	wantCode(t, subscribe(t, e.user, pattern("secret:x")).refused(), codes.PermissionDenied, "FORBIDDEN_NO_PERMISSION")
	wantCode(t, subscribe(t, e.user, artifact("genome/", eventsv1.ArtifactMatch_ARTIFACT_MATCH_PREFIX)).refused(),
		codes.PermissionDenied, "FORBIDDEN_NO_PERMISSION")

	// A mesh peer subscribing on behalf of user is gated as user.
	onBehalf := auth.OnBehalfOf(ctxT(t), auth.Principal{Name: "user", Kind: auth.KindToken})
	stream, err := e.peer.Subscribe(onBehalf, pattern("secret:x"))
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.PermissionDenied, "FORBIDDEN_NO_PERMISSION")

	// A wildcard subscription may open, but topics the gate refuses the
	// subscriber are skipped and counted, per concrete topic.
	x := subscribe(t, e.user, pattern("secret:>"))
	id := x.ack()
	for _, topic := range []string{"secret:x", "secret:y", "secret:x", "secret:z"} {
		publish(t, e.admin, topic, nil)
	}
	for _, want := range []string{"secret:y", "secret:z"} {
		if d := x.delivery(); d.GetTopic() != want {
			t.Fatalf("delivered %s, want %s", d.GetTopic(), want)
		}
	}
	waitUntil(t, "denied counter", func() bool { return stats(t, e.admin, id).GetDenied() == 2 })
	if s := stats(t, e.admin, id); s.GetSent() != 2 {
		t.Fatalf("stats %v", s)
	}

	// The admin's wildcard sees everything.
	all := subscribe(t, e.admin, pattern("secret:>"))
	all.ack()
	publish(t, e.admin, "secret:x", nil)
	if d := all.delivery(); d.GetTopic() != "secret:x" || d.GetSequence() != 1 {
		t.Fatalf("admin delivery %v", d)
	}
}

func TestUnsubscribeIsNeverGated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	x := subscribe(t, e.user, pattern("revoked:>"))
	id := x.ack()
	// Access is revoked, then the gate fails outright: tearing down still
	// works and does not ask the gate.
	e.gate.forbid("user", "**")
	e.gate.fail(status.Error(codes.Unavailable, "router down"))
	calls := e.gate.calls.Load()
	resp, err := e.user.Unsubscribe(ctxT(t), &eventsv1.UnsubscribeRequest{SubscriptionId: id})
	if err != nil || !resp.GetClosed() {
		t.Fatalf("unsubscribe = %v, %v", resp, err)
	}
	if err := x.end(); err != nil {
		t.Fatalf("stream ended with %v", err)
	}
	if got := e.gate.calls.Load(); got != calls {
		t.Fatalf("unsubscribe asked the gate %d times", got-calls)
	}
	// While the gate is down, gated calls fail with its error.
	_, err = e.user.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "revoked:x"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("publish with the gate down: %v", err)
	}
}

// TestGateFailureEndsAWildcardStream checks that a wildcard subscription
// whose per-topic check cannot be answered ends with the gate's error
// rather than skipping events silently.
func TestGateFailureEndsAWildcardStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	x := subscribe(t, e.user, pattern("g:>"))
	x.ack()
	e.gate.failOn("events/g:x/subscribe", status.Error(codes.Unavailable, "router down"))
	publish(t, e.admin, "g:x", nil)
	if status.Code(x.refused()) != codes.Unavailable {
		t.Fatalf("stream ended with %v, want UNAVAILABLE", x.err)
	}
}
