// Package gate is the policy gate as services see it: a verdict for a caller
// and a URI, and the one mapping from a refusal to a typed gRPC error. The
// router owns the policy; other services ask it through this interface (in
// the router's process directly, elsewhere through RouterService.Authorize).
package gate

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// Gate decides whether caller may use uri.
type Gate interface {
	Authorize(ctx context.Context, caller auth.Principal, uri string) (*routerv1.Verdict, error)
}

// Func adapts a function to Gate.
type Func func(ctx context.Context, caller auth.Principal, uri string) (*routerv1.Verdict, error)

// Authorize implements Gate.
func (f Func) Authorize(ctx context.Context, caller auth.Principal, uri string) (*routerv1.Verdict, error) {
	return f(ctx, caller, uri)
}

// ReasonCode turns a kebab-case policy reason ("no-permission") into the
// upper snake case used in ErrorInfo reasons ("NO_PERMISSION").
func ReasonCode(reason string) string {
	if reason == "" {
		return "UNSPECIFIED"
	}
	var b strings.Builder
	for _, r := range reason {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Refusal returns the gRPC error for a verdict that refuses, or nil for an
// allowed or dry-run verdict: PERMISSION_DENIED with reason
// FORBIDDEN_<WHY>, or FAILED_PRECONDITION with reason DEFERRED_<WHY> and the
// prompt_target_env in metadata.
func Refusal(v *routerv1.Verdict, caller auth.Principal, uri string) error {
	if v == nil || v.GetDryRun() {
		return nil
	}
	switch v.GetKind() {
	case routerv1.VerdictKind_VERDICT_KIND_ALLOWED:
		return nil
	case routerv1.VerdictKind_VERDICT_KIND_DEFERRED:
		return rpcerr.New(codes.FailedPrecondition, "DEFERRED_"+ReasonCode(v.GetReason()),
			"deferred: "+v.GetReason()+" (ask in env "+v.GetPromptTargetEnv()+")",
			"uri", uri, "caller", caller.Name, "prompt_target_env", v.GetPromptTargetEnv(), "reason", v.GetReason())
	default:
		return rpcerr.New(codes.PermissionDenied, "FORBIDDEN_"+ReasonCode(v.GetReason()),
			"forbidden: "+v.GetReason(),
			"uri", uri, "caller", caller.Name, "reason", v.GetReason())
	}
}

// Check asks g and returns the refusal error, if any.
func Check(ctx context.Context, g Gate, caller auth.Principal, uri string) (*routerv1.Verdict, error) {
	v, err := g.Authorize(ctx, caller, uri)
	if err != nil {
		return nil, err
	}
	return v, Refusal(v, caller, uri)
}
