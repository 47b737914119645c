package policy_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/policy"
	"github.com/continuum-mesh/continuum/pkg/uri"
)

// benchPolicy is a 20-rule policy in the shape real ones take: a few
// principals, each with a few path and airc:// patterns.
func benchPolicy(b *testing.B) *policy.Policy {
	var sb strings.Builder
	sb.WriteString("default: forbid\nrules:\n")
	for i := 0; i < 19; i++ {
		fmt.Fprintf(&sb, `  - callers: ["team-%d", "svc-%d-*"]
    uris: ["svc%d/read/*/x", "airc://maya@rig:vr/svc%d/**", "svc%d/*/list", "events/*/svc%d"]
    verdict: forbid
    reason: rule-%d
`, i, i, i, i, i, i, i)
	}
	sb.WriteString(`  - callers: ["user", "peer:*"]
    uris: ["genome/**", "airc://*:web/hippocampus/*", "mesh/members"]
    verdict: allow
`)
	p, err := policy.Parse([]byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkEvaluate: the gate on the hot path. Goal: well under 1 µs for a
// 20-rule policy. Figures in docs/perf-policy.md.
func BenchmarkEvaluate(b *testing.B) {
	p := benchPolicy(b)
	cases := []struct {
		name   string
		caller auth.Principal
		uri    string
	}{
		// Every rule's callers are tried; only the last rule matches.
		{"last-rule", user, "genome/page-in"},
		// A caller that matches rule 10, whose URI patterns all fail, then
		// the default: every pattern of one rule is tried.
		{"default-after-uri-misses", auth.Principal{Name: "team-10", Kind: auth.KindToken}, "airc://maya@rig:web/svc10/x/y"},
		// A cross-peer URI matched by an airc:// pattern of the last rule.
		{"last-rule-airc", node1, "airc://maya:web/hippocampus/peek"},
		// No rule's callers match: the default.
		{"default", anonymous, "genome/page-in"},
	}
	for _, c := range cases {
		u := uri.MustParse(c.uri)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Evaluate(c.caller, u)
			}
		})
	}
	// The default policy (data/policy.yaml), as a user reading.
	def := policy.Default()
	b.Run("default-policy-user-recall", func(b *testing.B) {
		u := uri.MustParse("airc://maya/hippocampus/recall")
		b.ReportAllocs()
		for b.Loop() {
			_ = def.Evaluate(user, u)
		}
	})
	b.Run("default-policy-user-event", func(b *testing.B) {
		u := uri.MustParse("events/data:chat:created/subscribe")
		b.ReportAllocs()
		for b.Loop() {
			_ = def.Evaluate(user, u)
		}
	})
	// A dry-run rule matches: the one case that allocates (the reported
	// would-be verdict).
	dry := mustParse(b, "default: allow\nrules:\n  - callers: [\"*\"]\n    uris: [\"**\"]\n    verdict: forbid\n    reason: trial\n    dry_run: true\n")
	b.Run("dry-run-match", func(b *testing.B) {
		u := uri.MustParse("genome/page-in")
		b.ReportAllocs()
		for b.Loop() {
			_ = dry.Evaluate(user, u)
		}
	})
	// For comparison: the same first-match walk calling uri.MatchURI,
	// which parses its pattern on every call. This is why Policy compiles
	// its patterns; the gap grows with the patterns a caller reaches.
	b.Run("uncompiled-last-rule", func(b *testing.B) {
		benchUncompiled(b, p, user, uri.MustParse("genome/page-in"))
	})
	// A URI-keyed policy: 20 rules for "*", so every pattern of every rule
	// is tried before the default answers.
	keyed := uriKeyedPolicy(b)
	b.Run("uri-keyed-default", func(b *testing.B) {
		u := uri.MustParse("airc://maya:web/hippocampus/peek")
		b.ReportAllocs()
		for b.Loop() {
			_ = keyed.Evaluate(user, u)
		}
	})
	b.Run("uncompiled-uri-keyed-default", func(b *testing.B) {
		benchUncompiled(b, keyed, user, uri.MustParse("airc://maya:web/hippocampus/peek"))
	})
	// The index's worst case: every pattern of every rule starts with a
	// wildcard, so all 80 patterns are tried.
	wild := wildcardFirstPolicy(b)
	b.Run("wildcard-first-default", func(b *testing.B) {
		u := uri.MustParse("airc://maya:web/hippocampus/peek")
		b.ReportAllocs()
		for b.Loop() {
			_ = wild.Evaluate(user, u)
		}
	})
	// Parse plus Evaluate: what a gate that parsed the URI string every
	// time would pay.
	b.Run("parse-and-evaluate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			u, err := uri.Parse("airc://maya:web/hippocampus/peek")
			if err != nil {
				b.Fatal(err)
			}
			_ = p.Evaluate(node1, u)
		}
	})
}

// BenchmarkParse: loading the default policy (once per PutPolicy, never on
// the hot path).
func BenchmarkParse(b *testing.B) {
	text := policy.DefaultYAML()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policy.Parse(text); err != nil {
			b.Fatal(err)
		}
	}
}

func uriKeyedPolicy(b *testing.B) *policy.Policy {
	var sb strings.Builder
	sb.WriteString("default: forbid\nrules:\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&sb, `  - callers: ["*"]
    uris: ["svc%d/read/*/x", "airc://maya@rig:vr/svc%d/**", "svc%d/*/list", "events/*/svc%d"]
    verdict: allow
`, i, i, i, i)
	}
	p, err := policy.Parse([]byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func wildcardFirstPolicy(b *testing.B) *policy.Policy {
	var sb strings.Builder
	sb.WriteString("default: forbid\nrules:\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&sb, `  - callers: ["*"]
    uris: ["*/svc%d/**", "*/*/svc%d", "airc://*:vr/*/svc%d", "*/x/svc%d"]
    verdict: allow
`, i, i, i, i)
	}
	p, err := policy.Parse([]byte(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// benchUncompiled is Evaluate's first-match walk done with uri.MatchURI.
func benchUncompiled(b *testing.B, p *policy.Policy, caller auth.Principal, u uri.URI) {
	rules := p.Rules()
	callerMatches := func(c string) bool {
		return c == caller.Name || c == "*" || strings.HasSuffix(c, "*") && strings.HasPrefix(caller.Name, c[:len(c)-1])
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range rules {
			if slices.ContainsFunc(r.Callers, callerMatches) &&
				slices.ContainsFunc(r.URIs, func(pt string) bool { return uri.MatchURI(pt, u) }) {
				break
			}
		}
	}
}
