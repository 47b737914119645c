package policy

import (
	"fmt"
	"math"
	"slices"

	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// Proto returns the policy as a routerv1.Policy. The default is always
// explicit (POLICY_DEFAULT_FORBID or POLICY_DEFAULT_ALLOW).
func (p *Policy) Proto() *routerv1.Policy {
	pb := &routerv1.Policy{Default: routerv1.PolicyDefault_POLICY_DEFAULT_FORBID}
	if p.def == Allowed {
		pb.Default = routerv1.PolicyDefault_POLICY_DEFAULT_ALLOW
	}
	pb.Rules = make([]*routerv1.Rule, len(p.rules))
	for i, r := range p.rules {
		pb.Rules[i] = &routerv1.Rule{
			Callers: slices.Clone(r.Callers),
			Uris:    slices.Clone(r.URIs),
			Verdict: r.Verdict.word(),
			Reason:  r.Reason,
			Env:     r.Env,
			DryRun:  r.DryRun,
		}
	}
	return pb
}

// FromProto compiles a policy from its proto form (PutPolicy). It checks
// exactly what Parse checks; POLICY_DEFAULT_UNSPECIFIED means forbid, as an
// absent default does in YAML. Errors are *Error.
func FromProto(pb *routerv1.Policy) (*Policy, error) {
	if pb == nil {
		return nil, &Error{Rule: DefaultRule, Problem: ProblemEmptyDocument, Detail: "no policy"}
	}
	var def VerdictKind
	switch pb.GetDefault() {
	case routerv1.PolicyDefault_POLICY_DEFAULT_UNSPECIFIED, routerv1.PolicyDefault_POLICY_DEFAULT_FORBID:
		def = Forbidden
	case routerv1.PolicyDefault_POLICY_DEFAULT_ALLOW:
		def = Allowed
	default:
		return nil, &Error{
			Rule: DefaultRule, Field: "default", Problem: ProblemUnknownDefault,
			Detail: fmt.Sprintf("unknown default %d; give POLICY_DEFAULT_FORBID or POLICY_DEFAULT_ALLOW", pb.GetDefault()),
		}
	}
	if len(pb.GetRules()) > MaxRules {
		return nil, &Error{
			Rule: DefaultRule, Field: "rules", Problem: ProblemTooManyRules,
			Detail: fmt.Sprintf("%d rules; at most %d", len(pb.GetRules()), MaxRules),
		}
	}
	rules := make([]Rule, len(pb.GetRules()))
	for i, r := range pb.GetRules() {
		if r == nil {
			return nil, &Error{Rule: i, Problem: ProblemWrongType, Detail: "rule is null"}
		}
		var k VerdictKind
		if r.GetVerdict() != "" {
			var ok bool
			if k, ok = verdictWord(r.GetVerdict()); !ok {
				return nil, &Error{
					Rule: i, Field: "verdict", Problem: ProblemUnknownVerdict,
					Detail: "unknown verdict " + quoteShort(r.GetVerdict()) + "; give allow, forbid or defer",
				}
			}
		}
		rules[i] = Rule{
			Callers: r.GetCallers(),
			URIs:    r.GetUris(),
			Verdict: k,
			Reason:  r.GetReason(),
			Env:     r.GetEnv(),
			DryRun:  r.GetDryRun(),
		}
	}
	return New(def, rules) // New copies the slices
}

// Proto returns the verdict as a routerv1.Verdict.
func (v Verdict) Proto() *routerv1.Verdict {
	rule := v.Rule
	if rule < DefaultRule || rule > math.MaxInt32 {
		rule = DefaultRule // unreachable for verdicts from a Policy (MaxRules)
	}
	return &routerv1.Verdict{
		Kind:            routerv1.VerdictKind(v.Kind),
		Reason:          v.Reason,
		PromptTargetEnv: v.Env,
		Rule:            int32(rule),
		DryRun:          v.DryRun,
	}
}

// VerdictFromProto reads a routerv1.Verdict, refusing an unspecified or
// unknown kind.
func VerdictFromProto(pb *routerv1.Verdict) (Verdict, error) {
	if pb == nil {
		return Verdict{}, fmt.Errorf("verdict: none")
	}
	k := VerdictKind(pb.GetKind())
	switch pb.GetKind() {
	case routerv1.VerdictKind_VERDICT_KIND_ALLOWED, routerv1.VerdictKind_VERDICT_KIND_FORBIDDEN, routerv1.VerdictKind_VERDICT_KIND_DEFERRED:
	default:
		return Verdict{}, fmt.Errorf("verdict: unknown kind %d", pb.GetKind())
	}
	if pb.GetRule() < DefaultRule {
		return Verdict{}, fmt.Errorf("verdict: rule index %d", pb.GetRule())
	}
	return Verdict{Kind: k, Reason: pb.GetReason(), Env: pb.GetPromptTargetEnv(), Rule: int(pb.GetRule()), DryRun: pb.GetDryRun()}, nil
}
