package mesh

import (
	"context"
	"fmt"

	membership "github.com/continuum-mesh/continuum/pkg/mesh"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
)

// Resolve implements meshv1.MeshServiceServer.
func (s *Service) Resolve(ctx context.Context, req *meshv1.ResolveRequest) (*meshv1.ResolveResponse, error) {
	if err := s.validateResolve(req); err != nil {
		return nil, s.toStatus(ctx, "resolve", err)
	}
	m, err := s.mesh.Resolve(req.GetService(), req.GetKey())
	if err != nil {
		return nil, s.toStatus(ctx, "resolve", err)
	}
	return &meshv1.ResolveResponse{Member: memberProto(m)}, nil
}

func (s *Service) validateResolve(req *meshv1.ResolveRequest) error {
	if !membership.ValidService(req.GetService()) {
		return &errInvalid{
			reason: ReasonInvalidService, field: "service",
			msg: fmt.Sprintf("service %.80q is not a service short name (lower-case [a-z][a-z0-9-]*, at most 64 bytes)", req.GetService()),
		}
	}
	if len(req.GetKey()) > s.cfg.MaxKeyBytes {
		return &errInvalid{
			reason: ReasonInvalidKey, field: "key",
			msg: fmt.Sprintf("key is %d bytes, over the %d-byte limit", len(req.GetKey()), s.cfg.MaxKeyBytes),
		}
	}
	return nil
}
