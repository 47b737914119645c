package policy_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/continuum-mesh/continuum/pkg/policy"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

func TestProtoRoundTrip(t *testing.T) {
	t.Parallel()
	pb := &routerv1.Policy{
		Default: routerv1.PolicyDefault_POLICY_DEFAULT_ALLOW,
		Rules: []*routerv1.Rule{
			{Callers: []string{"user"}, Uris: []string{"debug/**"}, Verdict: "forbid", Reason: "no-permission", DryRun: true},
			{Callers: []string{"*"}, Uris: []string{"genome/page-out", "airc://maya:vr/**"}, Verdict: "defer", Reason: "ask-target-env", Env: "web"},
			{Callers: []string{"peer:*"}, Uris: []string{"**"}, Verdict: "allow"},
		},
	}
	p, err := policy.FromProto(pb)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pb, p.Proto(), protocmp.Transform()); diff != "" {
		t.Errorf("Proto(FromProto(x)) (-want +got):\n%s", diff)
	}
	// The YAML path gives the same policy.
	y, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q := mustParse(t, string(y))
	if diff := cmp.Diff(pb, q.Proto(), protocmp.Transform()); diff != "" {
		t.Errorf("Parse(Marshal(x)) (-want +got):\n%s", diff)
	}
	// Mutating the proto afterwards does not reach the policy.
	pb.Rules[0].Callers[0] = "admin"
	if got := p.Proto().GetRules()[0].GetCallers()[0]; got != "user" {
		t.Errorf("policy aliases the proto: caller is %q", got)
	}
}

func TestFromProtoUnspecifiedDefaultIsForbid(t *testing.T) {
	t.Parallel()
	p, err := policy.FromProto(&routerv1.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	want := &routerv1.Policy{Default: routerv1.PolicyDefault_POLICY_DEFAULT_FORBID, Rules: []*routerv1.Rule{}}
	if diff := cmp.Diff(want, p.Proto(), protocmp.Transform()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestFromProtoErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pb      *routerv1.Policy
		problem policy.Problem
		rule    int
		field   string
	}{
		{"nil", nil, policy.ProblemEmptyDocument, -1, ""},
		{"unknown default", &routerv1.Policy{Default: 7}, policy.ProblemUnknownDefault, -1, "default"},
		{"nil rule", &routerv1.Policy{Rules: []*routerv1.Rule{nil}}, policy.ProblemWrongType, 0, ""},
		{"unknown verdict", &routerv1.Policy{Rules: []*routerv1.Rule{{Callers: []string{"a"}, Uris: []string{"x"}, Verdict: "deny"}}}, policy.ProblemUnknownVerdict, 0, "verdict"},
		{"verdict case matters", &routerv1.Policy{Rules: []*routerv1.Rule{{Callers: []string{"a"}, Uris: []string{"x"}, Verdict: "Allow"}}}, policy.ProblemUnknownVerdict, 0, "verdict"},
		{"missing verdict", &routerv1.Policy{Rules: []*routerv1.Rule{{Callers: []string{"a"}, Uris: []string{"x"}}}}, policy.ProblemMissingField, 0, "verdict"},
		{"no callers", &routerv1.Policy{Rules: []*routerv1.Rule{{Uris: []string{"x"}, Verdict: "allow"}}}, policy.ProblemEmptyList, 0, "callers"},
		{"bad uri", &routerv1.Policy{Rules: []*routerv1.Rule{
			{Callers: []string{"a"}, Uris: []string{"x"}, Verdict: "allow"},
			{Callers: []string{"a"}, Uris: []string{"x", "y/**/z"}, Verdict: "allow"},
		}}, policy.ProblemInvalidURI, 1, "uris[1]"},
		{"env on allow", &routerv1.Policy{Rules: []*routerv1.Rule{{Callers: []string{"a"}, Uris: []string{"x"}, Verdict: "allow", Env: "web"}}}, policy.ProblemUnexpectedField, 0, "env"},
		{"too many rules", &routerv1.Policy{Rules: make([]*routerv1.Rule, policy.MaxRules+1)}, policy.ProblemTooManyRules, -1, "rules"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := policy.FromProto(tc.pb)
			pe := asError(t, err)
			if pe.Problem != tc.problem || pe.Rule != tc.rule || pe.Field != tc.field {
				t.Errorf("error %v: got (%s, %d, %q), want (%s, %d, %q)", err, pe.Problem, pe.Rule, pe.Field, tc.problem, tc.rule, tc.field)
			}
		})
	}
}

func TestVerdictProto(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v  policy.Verdict
		pb *routerv1.Verdict
	}{
		{allow(policy.DefaultRule), &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_ALLOWED, Rule: -1}},
		{forbid(3, "no-permission"), &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_FORBIDDEN, Reason: "no-permission", Rule: 3}},
		{*dry(deferTo(0, "ask-target-env", "web")), &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_DEFERRED, Reason: "ask-target-env", PromptTargetEnv: "web", DryRun: true}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.pb, tc.v.Proto(), protocmp.Transform()); diff != "" {
			t.Errorf("Proto (-want +got):\n%s", diff)
		}
		back, err := policy.VerdictFromProto(tc.pb)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.v, back); diff != "" {
			t.Errorf("VerdictFromProto (-want +got):\n%s", diff)
		}
	}
	for _, bad := range []*routerv1.Verdict{nil, {}, {Kind: 9}, {Kind: routerv1.VerdictKind_VERDICT_KIND_ALLOWED, Rule: -2}} {
		if v, err := policy.VerdictFromProto(bad); err == nil {
			t.Errorf("VerdictFromProto(%v) = %+v, want an error", bad, v)
		}
	}
}
