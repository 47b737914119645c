package mesh

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	membership "github.com/continuum-mesh/continuum/pkg/mesh"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
)

// Members implements meshv1.MeshServiceServer.
func (s *Service) Members(_ context.Context, req *meshv1.MembersRequest) (*meshv1.MembersResponse, error) {
	var ms []membership.Member
	if req.GetIncludeGone() {
		ms = s.mesh.AllMembers()
	} else {
		ms = s.mesh.Members()
	}
	out := &meshv1.MembersResponse{Members: make([]*meshv1.Member, 0, len(ms))}
	for _, m := range ms {
		out.Members = append(out.Members, memberProto(m))
	}
	return out, nil
}

// memberProto renders a member for the wire.
func memberProto(m membership.Member) *meshv1.Member {
	out := &meshv1.Member{
		Name:              m.Name,
		GrpcAddress:       m.GRPCAddr,
		GossipAddress:     m.GossipAddr,
		Services:          m.Services,
		Rooms:             m.Rooms,
		State:             stateProto(m.State),
		Self:              m.Self,
		MetadataTruncated: m.MetaTruncated,
		Draining:          m.Draining,
	}
	if !m.Since.IsZero() {
		out.StateSince = timestamppb.New(m.Since)
	}
	for _, p := range m.Peers {
		out.Peers = append(out.Peers, &meshv1.HostedPeer{Name: p.Name, Envs: p.Envs})
	}
	return out
}

func stateProto(s membership.State) meshv1.MemberState {
	switch s {
	case membership.Alive:
		return meshv1.MemberState_MEMBER_STATE_ALIVE
	case membership.Suspect:
		return meshv1.MemberState_MEMBER_STATE_SUSPECT
	case membership.Dead:
		return meshv1.MemberState_MEMBER_STATE_DEAD
	case membership.Left:
		return meshv1.MemberState_MEMBER_STATE_LEFT
	}
	return meshv1.MemberState_MEMBER_STATE_UNSPECIFIED
}
