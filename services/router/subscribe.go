package router

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/uri"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// eventsPrefix starts the command path of an event subscription URI.
const eventsPrefix = "events/"

// selectorFor turns the topic part of an events URI into a subscription
// selector: a key with a slash is an artifact key (a trailing slash makes
// it a prefix), anything else a colon topic pattern.
func selectorFor(topic string, req *eventsv1.SubscribeRequest) {
	if strings.Contains(topic, "/") {
		m := eventsv1.ArtifactMatch_ARTIFACT_MATCH_EXACT
		if strings.HasSuffix(topic, "/") {
			m = eventsv1.ArtifactMatch_ARTIFACT_MATCH_PREFIX
		}
		req.Selector = &eventsv1.SubscribeRequest_Artifact{Artifact: &eventsv1.ArtifactSelector{Key: topic, Match: m}}
		return
	}
	req.Selector = &eventsv1.SubscribeRequest_Pattern{Pattern: topic}
}

// Subscribe opens an event subscription on the node a URI names and relays
// it. The subscribe URI (events/<topic>/subscribe on the same authority) is
// gated here, and again by the far router and the events service.
func (s *Service) Subscribe(req *routerv1.SubscribeRequest, stream grpc.ServerStreamingServer[routerv1.SubscribeResponse]) error {
	ctx := stream.Context()
	u, err := uri.Parse(req.GetUri())
	if err != nil {
		return uriError(req.GetUri(), err)
	}
	if !strings.HasPrefix(u.Path, eventsPrefix) || len(u.Path) == len(eventsPrefix) {
		return rpcerr.New(codes.InvalidArgument, ReasonNotATopic, "subscribe URIs name events/<topic>", "uri", u.String())
	}
	topic := strings.TrimPrefix(u.Path, eventsPrefix)
	caller := auth.Caller(ctx)
	kind := routeKind(u.Kind)
	gu := u
	gu.Path, gu.Query, gu.Fragment = u.Path+"/subscribe", "", ""
	if err := s.gate(ctx, caller, gu, gu.String(), kind); err != nil {
		return err
	}
	in := readIncoming(ctx)
	self := s.deps.Directory.Self()
	node := self
	switch {
	case in.deliverLocal, u.Kind == uri.KindLocal:
	case u.Kind == uri.KindPeer:
		hosts, err := s.deps.Directory.PeerHosts(u.Peer)
		if err != nil {
			return err
		}
		n, ok := pickHost(hosts, u.Node, self)
		if !ok {
			return rpcerr.New(codes.NotFound, ReasonPeerUnknown, "peer "+u.Peer+" is not hosted on node "+u.Node, "peer", u.Peer, "node", u.Node)
		}
		node = n
	default:
		return rpcerr.New(codes.InvalidArgument, "URI_ROUTE_UNSUPPORTED", "subscribe to a peer or a local topic; rooms and broadcasts are not subscribable", "uri", u.String())
	}
	if node == self {
		return s.subscribeLocal(ctx, caller, topic, req, stream)
	}
	return s.subscribeRemote(ctx, caller, node, req, in, stream)
}

func (s *Service) subscribeLocal(ctx context.Context, caller auth.Principal, topic string, req *routerv1.SubscribeRequest, stream grpc.ServerStreamingServer[routerv1.SubscribeResponse]) error {
	member, err := s.deps.Directory.ServiceMember("events")
	if err != nil {
		return err
	}
	conn, err := s.deps.Directory.Conn(ctx, member)
	if err != nil {
		return unreachable(member, err)
	}
	ereq := &eventsv1.SubscribeRequest{Filter: req.GetFilter(), StartAfterSequence: req.GetStartAfterSequence(), LastN: req.GetLastN()}
	selectorFor(topic, ereq)
	sub, err := eventsv1.NewEventsServiceClient(conn).Subscribe(auth.OnBehalfOf(ctx, caller), ereq)
	if err != nil {
		return err
	}
	self := s.deps.Directory.Self()
	for {
		msg, err := sub.Recv()
		if err != nil {
			return endOfStream(ctx, err)
		}
		out := &routerv1.SubscribeResponse{Node: self}
		switch k := msg.GetKind().(type) {
		case *eventsv1.SubscribeResponse_Ack:
			out.Kind = &routerv1.SubscribeResponse_Ack{Ack: k.Ack}
		case *eventsv1.SubscribeResponse_Delivery:
			out.Kind = &routerv1.SubscribeResponse_Delivery{Delivery: k.Delivery}
		case *eventsv1.SubscribeResponse_Lag:
			out.Kind = &routerv1.SubscribeResponse_Lag{Lag: k.Lag}
		default:
			continue
		}
		if err := stream.Send(out); err != nil {
			return err
		}
	}
}

// subscribeRemote relays a subscription opened through the far router.
// A message that does not come from the node subscribed to is dropped and
// counted, never relayed.
func (s *Service) subscribeRemote(ctx context.Context, caller auth.Principal, node string, req *routerv1.SubscribeRequest, in incoming, stream grpc.ServerStreamingServer[routerv1.SubscribeResponse]) error {
	if in.hops+1 > s.cfg.MaxHops {
		return rpcerr.New(codes.Unavailable, ReasonRouteLoop, "subscription forwarded too often", "hops", strconv.Itoa(in.hops))
	}
	conn, err := s.deps.Directory.Conn(ctx, node)
	if err != nil {
		return unreachable(node, err)
	}
	s.metrics.ForwardedToPeers.Add(1)
	octx := auth.OnBehalfOf(ctx, caller)
	octx = metadata.AppendToOutgoingContext(octx, hopsHeader, strconv.Itoa(in.hops+1))
	sub, err := routerv1.NewRouterServiceClient(conn).Subscribe(octx, req)
	if err != nil {
		return transportError(node, err)
	}
	for {
		msg, err := sub.Recv()
		if err != nil {
			return endOfStream(ctx, transportError(node, err))
		}
		if msg.GetNode() != node {
			s.metrics.ForeignDropped.Add(1)
			s.log.WarnContext(ctx, "dropped a delivery from a node not subscribed to", "want", node, "got", msg.GetNode())
			continue
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
}

func endOfStream(ctx context.Context, err error) error {
	if errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil
	}
	return err
}
