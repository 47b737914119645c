package events

import (
	"context"

	"github.com/continuum-mesh/continuum/pkg/topic"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// ResolveChannel names the channel of a broadcast class for a context.
// Channels are concrete topics under the class, so "<class>:>" sees them
// all and policy can address each:
//
//	global   <class>
//	local    <class>:node:<this node>
//	by-room  <class>:room:<room>
//	by-peer  <class>:peer:<peer>
//	custom   <class>:<custom>
func (s *Service) ResolveChannel(ctx context.Context, req *eventsv1.ResolveChannelRequest) (*eventsv1.ResolveChannelResponse, error) {
	ch, err := s.resolveChannel(req)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &eventsv1.ResolveChannelResponse{Channel: ch}, nil
}

func (s *Service) resolveChannel(req *eventsv1.ResolveChannelRequest) (string, error) {
	name := req.GetClassName()
	if name == "" {
		return "", errClassEmptyName
	}
	c, ok := s.reg.get(name)
	if !ok {
		return "", failure(errClassUnknown, "", "name", name)
	}
	if !c.GetBroadcast() {
		return "", failure(errNotBroadcast, "", "name", name)
	}
	var ch, part, value string
	switch c.GetChannelStrategy() {
	case eventsv1.ChannelStrategy_CHANNEL_STRATEGY_GLOBAL:
		return name, nil
	case eventsv1.ChannelStrategy_CHANNEL_STRATEGY_LOCAL:
		part, value = "node", s.cfg.Node
		ch = name + ":node:" + value
	case eventsv1.ChannelStrategy_CHANNEL_STRATEGY_BY_ROOM:
		part, value = "room", req.GetRoom()
		ch = name + ":room:" + value
	case eventsv1.ChannelStrategy_CHANNEL_STRATEGY_BY_PEER:
		part, value = "peer", req.GetPeer()
		ch = name + ":peer:" + value
	case eventsv1.ChannelStrategy_CHANNEL_STRATEGY_CUSTOM:
		part, value = "custom", req.GetCustom()
		ch = name + ":" + value
	default:
		return "", failure(errClassChannelInvalid, "", "name", name)
	}
	if value == "" {
		return "", failure(errChannelContextMissing, "the "+c.GetChannelStrategy().String()+" strategy needs "+part,
			"name", name, "missing", part)
	}
	if err := topic.Validate(ch); err != nil {
		return "", failure(errChannelInvalid, part+" must be topic segments (A-Z a-z 0-9 _ . -)", "name", name, part, value)
	}
	return ch, nil
}
