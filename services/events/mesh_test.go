package events

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// meshNode is one node of an in-process mesh: its own rpc server, events
// service and gate.
type meshNode struct {
	name  string
	gate  *policyGate
	svc   *Service
	srv   *rpc.Server
	peer  eventsv1.EventsServiceClient // the mesh hop into this node
	admin eventsv1.EventsServiceClient
}

func startMesh(t *testing.T, names ...string) map[string]*meshNode {
	t.Helper()
	tokens, err := auth.NewTokens([]auth.TokenEntry{
		{Principal: "admin", Token: rpctest.AdminToken, Admin: true},
		{Principal: "user", Token: rpctest.UserToken},
	})
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*meshNode{}
	for _, name := range names {
		g := &policyGate{}
		svc, err := New(Config{Node: name}, Deps{Gate: g, Logger: discardLogger()})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := rpc.New(rpc.Config{Node: name, Listen: "127.0.0.1:0"}, rpc.Deps{Logger: quietLogger(), Tokens: tokens})
		if err != nil {
			t.Fatal(err)
		}
		svc.Register(srv)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx) }()
		t.Cleanup(func() {
			_ = svc.Close()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve %s: %v", name, err)
			}
		})
		inproc, err := srv.DialInproc()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = inproc.Close() })
		admin, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecureCreds()), grpc.WithPerRPCCredentials(bearer(rpctest.AdminToken)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Close() })
		nodes[name] = &meshNode{
			name: name, gate: g, svc: svc, srv: srv,
			peer: eventsv1.NewEventsServiceClient(inproc), admin: eventsv1.NewEventsServiceClient(admin),
		}
	}
	return nodes
}

// relayed runs a Relay into a channel, as the router on the subscribing
// node would, on behalf of caller.
type relayed struct {
	relay *Relay
	ch    chan *eventsv1.SubscribeResponse
	done  chan error
}

func startRelay(t *testing.T, to *meshNode, client eventsv1.EventsServiceClient, caller auth.Principal, req *eventsv1.SubscribeRequest) *relayed {
	t.Helper()
	r := &relayed{ch: make(chan *eventsv1.SubscribeResponse, 1024), done: make(chan error, 1)}
	r.relay = &Relay{Node: to.name, Send: func(resp *eventsv1.SubscribeResponse) error { r.ch <- resp; return nil }}
	ctx, cancel := context.WithCancel(auth.OnBehalfOf(context.Background(), caller))
	t.Cleanup(cancel)
	go func() { r.done <- r.relay.Run(ctx, client, req) }()
	return r
}

func (r *relayed) next(t *testing.T) *eventsv1.SubscribeResponse {
	t.Helper()
	select {
	case resp := <-r.ch:
		return resp
	case err := <-r.done:
		t.Fatalf("relay ended with %v while a message was expected", err)
	case <-time.After(waitFor):
		t.Fatal("nothing relayed in time")
	}
	return nil
}

// TestCrossPeerSubscription runs three nodes in one process. Node a
// subscribes on node b through the mesh hop, for a caller: deliveries are
// b's events only, each naming b as its publisher node; b gates the
// subscription with the carried caller; a delivery that names another node
// is dropped and counted; unsubscribing on b ends the relay.
func TestCrossPeerSubscription(t *testing.T) {
	t.Parallel()
	mesh := startMesh(t, "a", "b", "c")
	b := mesh["b"]
	user := auth.Principal{Name: "user", Kind: auth.KindToken}

	r := startRelay(t, b, b.peer, user, pattern("cognition:analyze:>"))
	id := r.next(t).GetAck().GetSubscriptionId()
	if id == "" {
		t.Fatal("no ack relayed")
	}
	if s := stats(t, b.admin, id); s.GetSubscriber() != "user" || s.GetNode() != "b" {
		t.Fatalf("the subscription on b is %v, want it to belong to user", s)
	}
	for _, n := range []string{"a", "c", "b"} {
		publish(t, mesh[n].admin, "cognition:analyze:complete", map[string]any{"on": n})
	}
	d := r.next(t).GetDelivery()
	if d.GetPublisherNode() != "b" || d.GetPublisher() != "admin" || d.GetTopic() != "cognition:analyze:complete" ||
		d.GetPayload().GetFields()["on"].GetStringValue() != "b" {
		t.Fatalf("relayed delivery %v, want b's event", d)
	}

	// The far node gates with the caller the hop carries.
	b.gate.forbid("user", "events/secret/subscribe")
	denied := startRelay(t, b, b.peer, user, pattern("secret"))
	wantCode(t, <-denied.done, codes.PermissionDenied, "FORBIDDEN_NO_PERMISSION")
	allowed := startRelay(t, b, b.peer, auth.Principal{Name: "admin", Kind: auth.KindToken}, pattern("secret"))
	if allowed.next(t).GetAck() == nil {
		t.Fatal("admin's relayed subscription was not acknowledged")
	}

	// A delivery naming another node is dropped and counted, not relayed.
	forged := startRelay(t, b, &injectingClient{EventsServiceClient: b.peer, node: "c"}, user, pattern("x"))
	forged.next(t) // ack
	publish(t, b.admin, "x", map[string]any{"real": true})
	if d := forged.next(t).GetDelivery(); d.GetPublisherNode() != "b" || !d.GetPayload().GetFields()["real"].GetBoolValue() {
		t.Fatalf("relayed %v, want only b's own delivery", d)
	}
	if forged.relay.Foreign() != 1 {
		t.Fatalf("foreign deliveries counted %d, want 1", forged.relay.Foreign())
	}

	// Unsubscribing on b (on behalf of the caller) ends the relay cleanly.
	resp, err := b.peer.Unsubscribe(auth.OnBehalfOf(ctxT(t), user), &eventsv1.UnsubscribeRequest{SubscriptionId: id})
	if err != nil || !resp.GetClosed() {
		t.Fatalf("unsubscribe on b = %v, %v", resp, err)
	}
	if err := <-r.done; err != nil {
		t.Fatalf("relay ended with %v", err)
	}
	if r.relay.Forwarded() != 2 {
		t.Fatalf("forwarded %d, want the ack and one delivery", r.relay.Forwarded())
	}
}

// injectingClient wraps a client so that each subscription stream slips a
// delivery from another node in before every real delivery.
type injectingClient struct {
	eventsv1.EventsServiceClient
	node string
}

func (c *injectingClient) Subscribe(ctx context.Context, in *eventsv1.SubscribeRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[eventsv1.SubscribeResponse], error) {
	s, err := c.EventsServiceClient.Subscribe(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	return &injectingStream{ServerStreamingClient: s, node: c.node}, nil
}

type injectingStream struct {
	grpc.ServerStreamingClient[eventsv1.SubscribeResponse]
	node    string
	pending *eventsv1.SubscribeResponse
}

func (s *injectingStream) Recv() (*eventsv1.SubscribeResponse, error) {
	if p := s.pending; p != nil {
		s.pending = nil
		return p, nil
	}
	r, err := s.ServerStreamingClient.Recv()
	if err != nil || r.GetDelivery() == nil {
		return r, err
	}
	s.pending = r
	return &eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Delivery{Delivery: &eventsv1.Delivery{
		SubscriptionId: r.GetDelivery().GetSubscriptionId(), Topic: "x", PublisherNode: s.node, Publisher: "admin",
	}}}, nil
}
