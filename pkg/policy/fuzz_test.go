package policy_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/policy"
	"github.com/continuum-mesh/continuum/pkg/uri"
)

// Probes on which a policy and its round trips must agree.
var (
	probeCallers = []auth.Principal{
		admin, user, anonymous, node1,
		{Name: "guest", Kind: auth.KindToken},
		{Name: "peer:", Kind: auth.KindMeshPeer},
	}
	probeURIs = []uri.URI{
		uri.MustParse("genome/page-in"),
		uri.MustParse("genome/page-out"),
		uri.MustParse("debug/set-log-level"),
		uri.MustParse("debug"),
		uri.MustParse("events/data:chat:created/subscribe"),
		uri.MustParse("events/audit:refusal/publish"),
		uri.MustParse("a/b/c/"),
		uri.MustParse("a/b/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17"),
		uri.MustParse("x"),
		uri.MustParse("airc:///mesh/members"),
		uri.MustParse("airc://maya/scene/spawn"),
		uri.MustParse("airc://maya@5090-rig:vr/scene/spawn"),
		uri.MustParse("airc://maya:*/notification/post"),
		uri.MustParse("airc://6f1c2a3b-1111-4222-8333-444455556666/a/b"),
		uri.MustParse("airc://room:6f1c2a3b-1111-4222-8333-444455556666:web/render/start"),
	}
)

// FuzzParse: Parse never panics, every refusal is a *policy.Error, an
// accepted policy evaluates as the plain reference evaluator does, and it
// survives Canonical/Parse, Marshal/Parse and
// Proto/FromProto with the same rules and the same evaluations.
// Seeds: testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, text []byte) {
		p, err := policy.Parse(text)
		if err != nil {
			var pe *policy.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %v (%T) is not a *policy.Error", err, err)
			}
			if pe.Detail == "" {
				t.Fatalf("Parse error %v has no detail", err)
			}
			return
		}
		unindexed := policy.WithoutIndex(p)
		for _, c := range probeCallers {
			for _, u := range probeURIs {
				want := policy.ReferenceEvaluate(p, c, u)
				if diff := cmp.Diff(want, p.Evaluate(c, u)); diff != "" {
					t.Fatalf("Evaluate(%s, %s) disagrees with the reference (-want +got):\n%s", c.Name, u, diff)
				}
				if diff := cmp.Diff(want, unindexed.Evaluate(c, u)); diff != "" {
					t.Fatalf("unindexed Evaluate(%s, %s) disagrees with the reference (-want +got):\n%s", c.Name, u, diff)
				}
			}
		}
		canon, err := p.Canonical()
		if err != nil {
			t.Fatalf("Canonical: %v", err)
		}
		fromCanon, err := policy.Parse(canon)
		if err != nil {
			t.Fatalf("Parse(Canonical()) refused %q: %v", canon, err)
		}
		marshalled, err := p.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		fromMarshal, err := policy.Parse(marshalled)
		if err != nil {
			t.Fatalf("Parse(Marshal()) refused: %v", err)
		}
		fromProto, err := policy.FromProto(p.Proto())
		if err != nil {
			t.Fatalf("FromProto(Proto()) refused: %v", err)
		}
		for name, q := range map[string]*policy.Policy{"canonical": fromCanon, "marshal": fromMarshal, "proto": fromProto} {
			if diff := cmp.Diff(p.Proto(), q.Proto(), protocmp.Transform()); diff != "" {
				t.Fatalf("%s round trip changed the policy (-want +got):\n%s", name, diff)
			}
			for _, c := range probeCallers {
				for _, u := range probeURIs {
					if diff := cmp.Diff(p.Evaluate(c, u), q.Evaluate(c, u)); diff != "" {
						t.Fatalf("%s round trip evaluates %s on %s differently (-want +got):\n%s", name, c.Name, u, diff)
					}
				}
			}
		}
	})
}
