package events

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// waitFor bounds every wait in these tests; nothing sleeps.
const waitFor = 15 * time.Second

// policyGate is a fake of the router's gate: the first rule whose caller
// and URI match decides; no match allows. A URI pattern is exact, or a
// prefix when it ends in "**".
type policyGate struct {
	mu    sync.Mutex
	rules []gateRule
	err   error
	errOn string // when set, err applies to this URI only
	calls atomic.Int64
}

type gateRule struct {
	caller string // principal name or "*"
	uri    string
	kind   routerv1.VerdictKind
	reason string
}

func (g *policyGate) Authorize(_ context.Context, caller auth.Principal, u string) (*routerv1.Verdict, error) {
	g.calls.Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil && (g.errOn == "" || g.errOn == u) {
		return nil, g.err
	}
	for i, r := range g.rules {
		if r.caller != "*" && r.caller != caller.Name {
			continue
		}
		if p, ok := strings.CutSuffix(r.uri, "**"); ok && strings.HasPrefix(u, p) || r.uri == u {
			return &routerv1.Verdict{Kind: r.kind, Reason: r.reason, Rule: int32(i), PromptTargetEnv: "cli"}, nil
		}
	}
	return &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_ALLOWED, Rule: -1}, nil
}

func (g *policyGate) forbid(caller, uri string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rules = append(g.rules, gateRule{caller: caller, uri: uri, kind: routerv1.VerdictKind_VERDICT_KIND_FORBIDDEN, reason: "no-permission"})
}

func (g *policyGate) set(rules ...gateRule) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rules = rules
}

func (g *policyGate) fail(err error) { g.failOn("", err) }

// failOn makes the gate fail with err for one URI ("" for all).
func (g *policyGate) failOn(uri string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.err, g.errOn = err, uri
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// quietLogger drops everything below errors before formatting it, so the
// server's per-call logs cost nothing in tests.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
}

// env is one events service behind a real rpc server.
type env struct {
	t     *testing.T
	cfg   Config
	gate  *policyGate
	clock *fakeClock
	svc   *Service
	srv   *rpctest.Server
	admin eventsv1.EventsServiceClient
	user  eventsv1.EventsServiceClient
	peer  eventsv1.EventsServiceClient
}

type envOption func(*Config)

func withDataDir(dir string) envOption { return func(c *Config) { c.DataDir = dir } }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	cfg := Config{Node: rpctest.Node}
	for _, o := range opts {
		o(&cfg)
	}
	return startEnv(t, cfg, &policyGate{})
}

func startEnv(t *testing.T, cfg Config, g *policyGate) *env {
	t.Helper()
	return startEnvDeps(t, cfg, g, nil)
}

func startEnvClock(t *testing.T, cfg Config, c *fakeClock) *env {
	t.Helper()
	return startEnvDeps(t, cfg, &policyGate{}, c)
}

func startEnvDeps(t *testing.T, cfg Config, g *policyGate, clock *fakeClock) *env {
	t.Helper()
	deps := Deps{Gate: g, Logger: discardLogger()}
	if clock != nil {
		deps.Now = clock.Now
	}
	svc, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	srv := rpctest.Start(t, rpctest.Options{Logger: quietLogger()}, svc.Register)
	return &env{
		t: t, cfg: cfg, gate: g, clock: clock, svc: svc, srv: srv,
		admin: eventsv1.NewEventsServiceClient(srv.Dial(rpctest.AdminToken)),
		user:  eventsv1.NewEventsServiceClient(srv.Dial(rpctest.UserToken)),
		peer:  eventsv1.NewEventsServiceClient(srv.DialMeshPeer()),
	}
}

// restart closes the service and its server and starts a new one on the
// same configuration (and data directory).
func (e *env) restart() *env {
	e.t.Helper()
	if err := e.svc.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.srv.Drain()
	return startEnvDeps(e.t, e.cfg, e.gate, e.clock)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

func payload(t testing.TB, kv map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(kv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func publish(t testing.TB, c eventsv1.EventsServiceClient, topic string, kv map[string]any) *eventsv1.PublishResponse {
	t.Helper()
	resp, err := c.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: topic, Payload: payload(t, kv)})
	if err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
	return resp
}

func declare(t testing.TB, c eventsv1.EventsServiceClient, class *eventsv1.EventClass) {
	t.Helper()
	if _, err := c.DeclareClass(ctxT(t), &eventsv1.DeclareClassRequest{Class: class}); err != nil {
		t.Fatalf("declare %s: %v", class.GetName(), err)
	}
}

func pattern(p string) *eventsv1.SubscribeRequest {
	return &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: p}}
}

func artifact(key string, m eventsv1.ArtifactMatch) *eventsv1.SubscribeRequest {
	return &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Artifact{Artifact: &eventsv1.ArtifactSelector{Key: key, Match: m}}}
}

// tail reads one subscription stream in the background.
type tail struct {
	t      testing.TB
	cancel context.CancelFunc
	ch     chan *eventsv1.SubscribeResponse
	done   chan struct{}
	err    error // set before done closes; nil for a clean end
}

func subscribe(t testing.TB, c eventsv1.EventsServiceClient, req *eventsv1.SubscribeRequest, opts ...grpc.CallOption) *tail {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := c.Subscribe(ctx, req, opts...)
	if err != nil {
		cancel()
		t.Fatalf("subscribe: %v", err)
	}
	x := &tail{t: t, cancel: cancel, ch: make(chan *eventsv1.SubscribeResponse, 1<<16), done: make(chan struct{})}
	go func() {
		defer close(x.done)
		for {
			r, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					x.err = err
				}
				return
			}
			x.ch <- r
		}
	}()
	return x
}

// next returns the next message, failing the test if none comes in time.
func (x *tail) next() *eventsv1.SubscribeResponse {
	x.t.Helper()
	select {
	case r := <-x.ch:
		return r
	case <-x.done:
		select {
		case r := <-x.ch:
			return r
		default:
		}
		x.t.Fatalf("stream ended (%v) while a message was expected", x.err)
	case <-time.After(waitFor):
		x.t.Fatal("no message in time")
	}
	return nil
}

func (x *tail) ack() string {
	x.t.Helper()
	r := x.next()
	if r.GetAck() == nil {
		x.t.Fatalf("first message is %v, want an ack", r)
	}
	return r.GetAck().GetSubscriptionId()
}

func (x *tail) delivery() *eventsv1.Delivery {
	x.t.Helper()
	r := x.next()
	if r.GetDelivery() == nil {
		x.t.Fatalf("got %v, want a delivery", r)
	}
	return r.GetDelivery()
}

// end waits for the stream to end and returns its error (nil for a clean
// end), failing if messages are still unread.
func (x *tail) end() error {
	x.t.Helper()
	select {
	case <-x.done:
	case <-time.After(waitFor):
		x.t.Fatal("stream did not end in time")
	}
	if len(x.ch) > 0 {
		x.t.Fatalf("stream ended with %d unread messages, first %v", len(x.ch), <-x.ch)
	}
	return x.err
}

// waitEnd waits for the stream to end and returns its error, leaving unread
// messages in ch.
func (x *tail) waitEnd() error {
	x.t.Helper()
	select {
	case <-x.done:
	case <-time.After(waitFor):
		x.t.Fatal("stream did not end in time")
	}
	return x.err
}

// refused waits for the stream's error, with no message before it.
func (x *tail) refused() error {
	x.t.Helper()
	err := x.end()
	if err == nil {
		x.t.Fatal("stream ended cleanly, want an error")
	}
	return err
}

// wantCode checks an error's code and ErrorInfo reason.
func wantCode(t testing.TB, err error, code codes.Code, reason string) {
	t.Helper()
	if status.Code(err) != code || rpcerr.Reason(err) != reason {
		t.Fatalf("error %v: got code %v reason %q, want %v %q", err, status.Code(err), rpcerr.Reason(err), code, reason)
	}
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// stats returns the counters of one subscription.
func stats(t testing.TB, c eventsv1.EventsServiceClient, id string) *eventsv1.SubscriptionStats {
	t.Helper()
	resp, err := c.ListSubscriptions(ctxT(t), &eventsv1.ListSubscriptionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range resp.GetSubscriptions() {
		if s.GetSubscriptionId() == id {
			return s
		}
	}
	t.Fatalf("subscription %s not listed", id)
	return nil
}

func statusCode(err error) codes.Code { return status.Code(err) }

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

// bearer is per-RPC credentials that send a bearer token over plaintext.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
