package policy_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/continuum-mesh/continuum/pkg/auditevents"
	"github.com/continuum-mesh/continuum/pkg/auditlog"
	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/policy"
	"github.com/continuum-mesh/continuum/pkg/uri"
	// The services whose commands the default policy names.
	_ "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

func TestDefault(t *testing.T) {
	t.Parallel()
	p := policy.Default()
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(policy.DefaultYAML()), string(b)); diff != "" {
		t.Errorf("Default().Marshal() is not DefaultYAML (-want +got):\n%s", diff)
	}
	noPermission := forbid(2, "no-permission")
	auditTopic := forbid(4, "audit-topic")
	tests := []struct {
		caller auth.Principal
		uri    string
		want   policy.Verdict
	}{
		{admin, "debug/set-log-level", allow(0)},
		{admin, "genome/page-out", allow(0)},
		{admin, "airc://maya@rig:vr/scene/spawn", allow(0)},
		{admin, "events/audit:refusal/subscribe", allow(0)},
		{node1, "hippocampus/remember", allow(1)},
		{node1, "airc://room:6f1c2a3b-1111-4222-8333-444455556666/render/start", allow(1)},
		{user, "debug/stream-probes", noPermission},
		{user, "debug/set-log-level", noPermission},
		{user, "genome/page-out", deferTo(3, "ask-target-env", "web")},
		{user, "events/audit:refusal/subscribe", auditTopic},
		{user, "events/audit:federation-policy-drift/publish", auditTopic},
		{user, "events/audit:>/subscribe", auditTopic},
		{user, "events/audit/entries/subscribe", auditTopic},
		{user, "mesh/members", allow(5)},
		{user, "router/route", allow(5)},
		{user, "events/data:chat:created/subscribe", allow(5)},
		{user, "events/data:chat:created/publish", allow(5)},
		{user, "airc://maya/events/data:chat:created/subscribe", allow(5)},
		{user, "events/genome/working_set.page_fault/subscribe", allow(5)},
		{user, "hippocampus/peek", allow(5)},
		{user, "hippocampus/recall", allow(5)},
		{user, "genome/page-in", allow(5)},
		{user, "genome/tiers", allow(5)},
		{user, "genome/working-set", allow(5)},
		{user, "audit/verify", allow(5)},
		{user, "audit/read", allow(5)},
		{user, "audit/checkpoint", allow(5)},
		{user, "audit/append", defaultForbid},
		{user, "hippocampus/remember", defaultForbid},
		{user, "hippocampus/forget", defaultForbid},
		{user, "genome/pin", defaultForbid},
		{user, "events/declare-class", defaultForbid},
		{user, "mesh/members/x", defaultForbid},
		{anonymous, "mesh/members", defaultForbid},
		{anonymous, "genome/page-in", defaultForbid},
		{auth.Principal{Name: "someone", Kind: auth.KindToken}, "mesh/members", defaultForbid},
	}
	for _, tc := range tests {
		got := p.Evaluate(tc.caller, uri.MustParse(tc.uri))
		if diff := cmp.Diff(policy.Evaluation{Effective: tc.want}, got); diff != "" {
			t.Errorf("Evaluate(%s, %s) (-want +got):\n%s", tc.caller.Name, tc.uri, diff)
		}
	}
}

// No audit topic is open to users, for publish (forging audit entries) or
// subscribe.
func TestDefaultClosesAuditTopics(t *testing.T) {
	t.Parallel()
	p := policy.Default()
	topics := []string{
		auditevents.ClassName, auditevents.TopicRefusal, auditevents.TopicAccessDenied,
		auditevents.TopicGovernorOverride, auditevents.TopicPolicyDrift, auditevents.ArtifactAccessDenied,
		auditevents.ClassName + ":>",
	}
	for _, k := range []string{auditlog.KindRefusal, auditlog.KindAccessDenied, auditlog.KindGovernorOverride, auditlog.KindFederationPolicyDrift} {
		topics = append(topics, auditevents.ClassName+":"+k)
	}
	for _, topic := range topics {
		for _, action := range []string{"publish", "subscribe"} {
			u := "events/" + topic + "/" + action
			if v := p.Evaluate(user, uri.MustParse(u)).Effective; v.Kind != policy.Forbidden || v.Reason != "audit-topic" {
				t.Errorf("user on %s: %+v, want forbidden audit-topic", u, v)
			}
		}
	}
}

// Every command path the default names must be a real command: a typo would
// be a rule that silently never matches.
func TestDefaultNamesRealCommands(t *testing.T) {
	t.Parallel()
	for _, r := range policy.Default().Rules() {
		for _, p := range r.URIs {
			if len(p) == 0 || p[len(p)-1] == '*' || p[:min(len(p), 7)] == "events/" {
				continue // globs and event topics
			}
			_, service, method, err := uri.MethodFor(p)
			if err != nil {
				t.Errorf("default policy names %q: %v", p, err)
				continue
			}
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
			if err != nil {
				t.Errorf("default policy names %q: no service %s: %v", p, service, err)
				continue
			}
			if d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method)) == nil {
				t.Errorf("default policy names %q: %s has no method %s", p, service, method)
			}
		}
	}
}
