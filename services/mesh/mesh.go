// Package mesh is continuum.mesh.v1.MeshService: this node's view of the
// mesh (its members, their states, what they serve and host) and the
// resolution of a service, or a key of a sharded service, to a member.
// Every node serves it. The membership itself lives in pkg/mesh; this
// package is its gRPC face and the `continuum mesh` commands.
package mesh

import (
	"errors"
	"log/slog"

	"google.golang.org/grpc"

	membership "github.com/continuum-mesh/continuum/pkg/mesh"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
)

// Membership is what the service asks of the mesh; *membership.Mesh
// implements it, and tests use a fake.
type Membership interface {
	// Members returns the live members, sorted by name.
	Members() []membership.Member
	// AllMembers returns also the DEAD and LEFT members, sorted by name.
	AllMembers() []membership.Member
	// Resolve names the member for service (and a shard key, if any).
	Resolve(service, key string) (membership.Member, error)
}

// Deps are the service's collaborators.
type Deps struct {
	// Mesh is this node's membership. Required.
	Mesh Membership
	// Logger; nil is slog.Default().
	Logger *slog.Logger
}

// Service implements meshv1.MeshServiceServer.
type Service struct {
	meshv1.UnimplementedMeshServiceServer
	cfg  Config
	mesh Membership
	log  *slog.Logger
}

// New builds the service. It does no I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Mesh == nil {
		return nil, errors.New("mesh service: Deps.Mesh is required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	return &Service{cfg: cfg, mesh: deps.Mesh, log: deps.Logger}, nil
}

// Register mounts the service on r.
func (s *Service) Register(r grpc.ServiceRegistrar) {
	meshv1.RegisterMeshServiceServer(r, s)
}
