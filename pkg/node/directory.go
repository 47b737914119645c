package node

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/continuum-mesh/continuum/pkg/mesh"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/services/router"
)

// directory adapts the mesh to the router's view of it.
type directory struct{ m *mesh.Mesh }

var _ router.Directory = directory{}

func (d directory) Self() string { return d.m.Self().Name }

func (d directory) PeerHosts(peer string) ([]router.PeerHost, error) {
	hosts := d.m.Hosts(peer)
	if len(hosts) == 0 {
		// HostOf tells an unknown peer from one whose hosts are all down.
		if _, err := d.m.HostOf(peer); err != nil {
			return nil, mesh.ToStatus(err)
		}
		return nil, rpcerr.New(codes.NotFound, router.ReasonPeerUnknown, "no live member hosts peer "+peer, "peer", peer)
	}
	out := make([]router.PeerHost, 0, len(hosts))
	for _, h := range hosts {
		ph := router.PeerHost{Node: h.Name}
		for _, p := range h.Peers {
			if c, ok := mesh.CanonicalPeer(peer); ok && p.Name == c {
				ph.Envs = p.Envs
			}
		}
		out = append(out, ph)
	}
	return out, nil
}

func (d directory) RoomMembers(room string) ([]string, error) {
	ms := d.m.RoomMembers(room)
	if len(ms) == 0 {
		return nil, rpcerr.New(codes.NotFound, router.ReasonRoomUnknown, "no live member is in room "+room, "room", room)
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out, nil
}

func (d directory) ServiceMember(service string) (string, error) {
	name, err := d.m.ResolveName(service, "")
	if err != nil {
		return "", mesh.ToStatus(err)
	}
	return name, nil
}

func (d directory) Owner(service, key string) (string, error) {
	m, err := d.m.Owner(service, key)
	if err != nil {
		return "", mesh.ToStatus(err)
	}
	return m.Name, nil
}

func (d directory) Conn(ctx context.Context, member string) (grpc.ClientConnInterface, error) {
	c, err := d.m.Conn(ctx, member)
	if err != nil {
		return nil, mesh.ToStatus(err)
	}
	return c, nil
}
