package node

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/pkg/mesh"
	"github.com/continuum-mesh/continuum/services/hippocampus"
)

// hippocampusRing adapts the mesh to the hippocampus's view of its region:
// the members serving "hippocampus" and rendezvous ownership of personas.
type hippocampusRing struct{ m *mesh.Mesh }

var _ hippocampus.Ring = hippocampusRing{}

const hippocampusService = "hippocampus"

func (r hippocampusRing) Self() string { return r.m.Self().Name }

func (r hippocampusRing) Owner(persona string) (string, error) {
	m, err := r.m.Owner(hippocampusService, persona)
	var down *mesh.ErrOwnerDown
	if errors.As(err, &down) {
		return down.Member.Name, fmt.Errorf("%w: %w", hippocampus.ErrOwnerDown, err)
	}
	if err != nil {
		return "", err
	}
	return m.Name, nil
}

func (r hippocampusRing) PreviousOwner(persona, exclude string) (string, bool) {
	m, ok := r.m.PreviousOwner(hippocampusService, persona, exclude)
	return m.Name, ok
}

func (r hippocampusRing) Members() []string {
	ms := r.m.Serving(hippocampusService)
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

func (r hippocampusRing) Conn(ctx context.Context, member string) (grpc.ClientConnInterface, error) {
	c, err := r.m.Conn(ctx, member)
	if err != nil {
		return nil, mesh.ToStatus(err)
	}
	return c, nil
}

func (r hippocampusRing) Watch() (<-chan struct{}, func()) { return r.m.Watch() }
