package node_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/node/nodetest"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
	"github.com/continuum-mesh/continuum/services/events"
)

// TestDrainEndsSubscriptions stops nodes that hold open event
// subscriptions: served by their own events service, relayed by their
// router from another node's (RouterService.Subscribe), and proxied to the
// node that runs events. Each subscriber gets a typed UNAVAILABLE (so it
// resubscribes elsewhere with start_after_sequence), and each node stops
// well inside its drain timeout instead of GracefulStop waiting the
// streams out.
func TestDrainEndsSubscriptions(t *testing.T) {
	m := nodetest.New(t)
	local := m.Start("local", nodetest.Options{Services: []string{"router", "events", "audit"}, Policy: policyOpen})
	relay := m.Start("relay", nodetest.Options{Services: []string{"router"}, Policy: policyOpen})
	proxy := m.Start("proxy", nodetest.Options{Services: []string{"router"}, Policy: policyOpen})
	m.Start("far", nodetest.Options{Services: []string{"router", "events"}, Policy: policyOpen})
	m.WaitMembers(4, 15*time.Second)

	// subscribeEvents opens an events subscription on n (served there, or
	// proxied to the node that runs events) and returns its next Recv.
	subscribeEvents := func(ctx context.Context, n *nodetest.Node) (func() error, error) {
		sub, err := eventsv1.NewEventsServiceClient(m.Dial(n, nodetest.AdminToken)).Subscribe(ctx, &eventsv1.SubscribeRequest{
			Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "drain:>"},
		})
		if err != nil {
			return nil, err
		}
		if msg, err := sub.Recv(); err != nil || msg.GetAck() == nil {
			t.Fatalf("first message %v, %v; want the ack", msg, err)
		}
		return func() error { _, err := sub.Recv(); return err }, nil
	}
	cases := []struct {
		name   string
		node   *nodetest.Node
		open   func(ctx context.Context, n *nodetest.Node) (func() error, error)
		reason string
	}{
		{
			name: "served here", node: local, reason: events.ReasonShuttingDown,
			open: subscribeEvents,
		},
		{
			name: "relayed by the router from another node", node: relay, reason: rpc.ReasonDraining,
			open: func(ctx context.Context, n *nodetest.Node) (func() error, error) {
				sub, err := routerv1.NewRouterServiceClient(m.Dial(n, nodetest.AdminToken)).Subscribe(ctx,
					&routerv1.SubscribeRequest{Uri: "airc://far/events/drain:x"})
				if err != nil {
					return nil, err
				}
				if msg, err := sub.Recv(); err != nil || msg.GetAck() == nil {
					t.Fatalf("first message %v, %v; want the ack", msg, err)
				}
				return func() error { _, err := sub.Recv(); return err }, nil
			},
		},
		{
			name: "proxied to the node that runs events", node: proxy, reason: rpc.ReasonDraining,
			open: subscribeEvents,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			recv, err := c.open(ctx, c.node)
			if err != nil {
				t.Fatal(err)
			}
			ended := make(chan error, 1)
			go func() { ended <- recv() }()

			start := time.Now()
			m.Stop(c.node.Name())
			took := time.Since(start)
			if limit := c.node.Config.DrainTimeout / 2; took >= limit {
				t.Errorf("the node took %v to stop with a subscription open; want < %v (drain timeout %v)", took, limit, c.node.Config.DrainTimeout)
			}
			select {
			case err = <-ended:
			case <-ctx.Done():
				t.Fatal("the subscription did not end")
			}
			if status.Code(err) != codes.Unavailable || rpcerr.Reason(err) != c.reason {
				t.Fatalf("the subscription ended with %v (reason %q); want UNAVAILABLE %s", err, rpcerr.Reason(err), c.reason)
			}
		})
	}
}
