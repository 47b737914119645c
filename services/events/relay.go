package events

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// Relay forwards a subscription opened on another node's EventsService,
// which is what RouterService.Subscribe does for airc://<peer>/events/...:
// the router opens the subscription on the far node over the authenticated
// mesh hop, on behalf of its caller (auth.OnBehalfOf), and relays what
// arrives. A delivery (also inside a batch) that does not name the node it
// subscribed to as its publisher_node is dropped and counted, never
// forwarded.
type Relay struct {
	// Node is the node the subscription is opened on.
	Node string
	// Send forwards one response (ack, delivery or lag) to the subscriber.
	Send func(*eventsv1.SubscribeResponse) error

	foreign   atomic.Uint64
	forwarded atomic.Uint64
}

// Run opens the subscription with client and relays it until the stream
// ends (nil when the far side ended it cleanly, after Unsubscribe), ctx
// ends, or Send fails. ctx must carry the caller (auth.OnBehalfOf) when the
// hop is a mesh peer acting for someone.
func (r *Relay) Run(ctx context.Context, client eventsv1.EventsServiceClient, req *eventsv1.SubscribeRequest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Subscribe(ctx, req)
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if d := resp.GetDelivery(); d != nil && d.GetPublisherNode() != r.Node {
			r.foreign.Add(1)
			continue
		}
		if b := resp.GetBatch(); b != nil {
			kept := b.GetDeliveries()[:0]
			for _, d := range b.GetDeliveries() {
				if d.GetPublisherNode() != r.Node {
					r.foreign.Add(1)
					continue
				}
				kept = append(kept, d)
			}
			if len(kept) == 0 {
				continue
			}
			b.Deliveries = kept
		}
		if err := r.Send(resp); err != nil {
			return err
		}
		r.forwarded.Add(1)
	}
}

// Foreign returns how many deliveries were dropped for naming another
// publisher node.
func (r *Relay) Foreign() uint64 { return r.foreign.Load() }

// Forwarded returns how many responses were forwarded.
func (r *Relay) Forwarded() uint64 { return r.forwarded.Load() }
