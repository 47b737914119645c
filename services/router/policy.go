package router

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auditevents"
	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/uri"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// Authorize returns the gate's verdict for a URI without running anything.
func (s *Service) Authorize(ctx context.Context, req *routerv1.AuthorizeRequest) (*routerv1.AuthorizeResponse, error) {
	u, err := uri.Parse(req.GetUri())
	if err != nil {
		return nil, uriError(req.GetUri(), err)
	}
	caller := auth.Caller(ctx)
	if name := req.GetCaller(); name != "" && name != caller.Name {
		if !auth.Hop(ctx).IsMeshPeer() {
			return nil, rpcerr.New(codes.PermissionDenied, ReasonCallerNotAllowed,
				"only a mesh peer may ask on behalf of another caller", "caller", name)
		}
		caller = principalNamed(name)
	}
	eff, _ := s.deps.Gate.Evaluate(caller, u)
	return &routerv1.AuthorizeResponse{Verdict: eff, Decision: decisionProto(u), Caller: caller.Name}, nil
}

// principalNamed rebuilds a principal from a policy name.
func principalNamed(name string) auth.Principal {
	switch {
	case name == auth.Anonymous:
		return auth.AnonymousPrincipal
	case len(name) > len(auth.PeerPrefix) && name[:len(auth.PeerPrefix)] == auth.PeerPrefix:
		return auth.Principal{Name: name, Kind: auth.KindMeshPeer}
	default:
		return auth.Principal{Name: name, Kind: auth.KindToken}
	}
}

func (s *Service) requireAdmin(ctx context.Context) (auth.Principal, error) {
	caller := auth.Caller(ctx)
	if !s.deps.Admins.IsAdmin(caller) {
		return caller, rpcerr.New(codes.PermissionDenied, ReasonNotAdmin, "policy administration needs an admin principal", "caller", caller.Name)
	}
	return caller, nil
}

// GetPolicy returns the policy and its version (admin only).
func (s *Service) GetPolicy(ctx context.Context, _ *routerv1.GetPolicyRequest) (*routerv1.GetPolicyResponse, error) {
	if _, err := s.requireAdmin(ctx); err != nil {
		return nil, err
	}
	p, v, y, err := s.deps.Policy.Get()
	if err != nil {
		return nil, err
	}
	return &routerv1.GetPolicyResponse{Policy: p, Version: v, Yaml: y}, nil
}

// PutPolicy replaces the policy (admin only) and publishes the drift.
func (s *Service) PutPolicy(ctx context.Context, req *routerv1.PutPolicyRequest) (*routerv1.PutPolicyResponse, error) {
	caller, err := s.requireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetPolicy() == nil && req.GetYaml() == "" {
		return nil, rpcerr.New(codes.InvalidArgument, ReasonPolicyInvalid, "give a policy or its yaml")
	}
	_, old, _, err := s.deps.Policy.Get()
	if err != nil {
		return nil, err
	}
	v, err := s.deps.Policy.Put(req.GetPolicy(), req.GetYaml(), req.GetExpectedVersion())
	if err != nil {
		return nil, err
	}
	p, _, _, _ := s.deps.Policy.Get()
	s.log.InfoContext(ctx, "policy changed", "by", caller.Name, "old_version", old, "new_version", v, "rules", len(p.GetRules()))
	payload, err := structpb.NewStruct(map[string]any{
		"node":        s.cfg.Node,
		"by":          caller.Name,
		"old_version": float64(old),
		"new_version": float64(v),
		"rules":       float64(len(p.GetRules())),
		"default":     p.GetDefault().String(),
	})
	if err == nil {
		s.publish(ctx, auditevents.TopicPolicyDrift, payload)
	}
	return &routerv1.PutPolicyResponse{Version: v}, nil
}

// ReportDrift publishes a policy change that did not come through
// PutPolicy, such as a policy file edited while the node was down.
func (s *Service) ReportDrift(ctx context.Context, version uint64, why string) {
	s.log.WarnContext(ctx, "policy changed outside PutPolicy", "version", version, "why", why)
	payload, err := structpb.NewStruct(map[string]any{
		"node":        s.cfg.Node,
		"by":          "file",
		"why":         why,
		"new_version": float64(version),
	})
	if err == nil && s.deps.Events != nil {
		s.enqueue(ctx, newAuditEvent(auditevents.TopicPolicyDrift, payload))
	}
}
