package node

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/grpc/codes"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/policy"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/uri"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
	"github.com/continuum-mesh/continuum/services/router"
)

// policyGate evaluates the store's current policy: the router's gate and,
// in the router's process, the gate of every service.
type policyGate struct{ store *policy.Store }

var _ router.Gatekeeper = policyGate{}

func (g policyGate) Evaluate(caller auth.Principal, u uri.URI) (*routerv1.Verdict, *routerv1.Verdict) {
	p, _ := g.store.Get()
	ev := p.Evaluate(caller, u)
	var dry *routerv1.Verdict
	if ev.DryRun != nil {
		dry = ev.DryRun.Proto()
	}
	return ev.Effective.Proto(), dry
}

// Authorize implements gate.Gate for services in the router's process.
func (g policyGate) Authorize(_ context.Context, caller auth.Principal, raw string) (*routerv1.Verdict, error) {
	u, err := uri.Parse(raw)
	if err != nil {
		return nil, rpcerr.New(codes.InvalidArgument, "URI_INVALID", err.Error(), "uri", raw)
	}
	eff, _ := g.Evaluate(caller, u)
	return eff, nil
}

var _ gate.Gate = policyGate{}

// remoteGate asks the router of the mesh, for services whose process does
// not run one.
type remoteGate struct{ client routerv1.RouterServiceClient }

func (g remoteGate) Authorize(ctx context.Context, caller auth.Principal, raw string) (*routerv1.Verdict, error) {
	resp, err := g.client.Authorize(auth.OnBehalfOf(ctx, caller), &routerv1.AuthorizeRequest{Uri: raw})
	if err != nil {
		return nil, err
	}
	return resp.GetVerdict(), nil
}

// policyAdmin serves GetPolicy and PutPolicy from the store.
type policyAdmin struct{ store *policy.Store }

func (a policyAdmin) Get() (*routerv1.Policy, uint64, string, error) {
	p, v := a.store.Get()
	y, err := p.Marshal()
	if err != nil {
		return nil, 0, "", rpcerr.New(codes.Internal, "POLICY_ENCODING", err.Error())
	}
	return p.Proto(), v, string(y), nil
}

func (a policyAdmin) Put(pb *routerv1.Policy, yaml string, expected uint64) (uint64, error) {
	var p *policy.Policy
	var err error
	if pb != nil {
		p, err = policy.FromProto(pb)
	} else {
		p, err = policy.Parse([]byte(yaml))
	}
	if err != nil {
		var pe *policy.Error
		if errors.As(err, &pe) {
			return 0, rpcerr.New(codes.InvalidArgument, router.ReasonPolicyInvalid, err.Error(),
				"where", pe.Where(), "problem", string(pe.Problem), "line", strconv.Itoa(pe.Line))
		}
		return 0, rpcerr.New(codes.InvalidArgument, router.ReasonPolicyInvalid, err.Error())
	}
	v, err := a.store.Put(p, expected)
	if errors.Is(err, policy.ErrVersionMismatch) {
		_, cur := a.store.Get()
		return 0, rpcerr.New(codes.Aborted, router.ReasonVersionMismatch, err.Error(), "current_version", uitoa(cur))
	}
	if err != nil {
		return 0, rpcerr.New(codes.Internal, "POLICY_PERSIST", err.Error())
	}
	return v, nil
}

func uitoa(v uint64) string { return strconv.FormatUint(v, 10) }
