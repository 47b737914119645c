package policy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/continuum-mesh/continuum/pkg/policy"
	"github.com/continuum-mesh/continuum/pkg/uri"
)

func asError(t *testing.T, err error) *policy.Error {
	t.Helper()
	var pe *policy.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *policy.Error", err, err)
	}
	return pe
}

func replace(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic("replace: " + old + " not in text")
	}
	return strings.Replace(s, old, new, 1)
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	rule := func(body string) string {
		return "default: forbid\nrules:\n  - callers: [\"admin\"]\n    uris: [\"**\"]\n    verdict: allow\n" + body
	}
	tests := []struct {
		name    string
		text    string
		problem policy.Problem
		rule    int
		field   string
		line    int // 0: not checked
	}{
		{"not yaml", "default: [forbid\n", policy.ProblemSyntax, -1, "", 0},
		{"tabs", "default:\tforbid\nrules:\n\t- x\n", policy.ProblemSyntax, -1, "", 0},
		{"empty", "", policy.ProblemEmptyDocument, -1, "", 0},
		{"only comments", "# nothing\n", policy.ProblemEmptyDocument, -1, "", 0},
		{"null document", "~\n", policy.ProblemEmptyDocument, -1, "", 0},
		{"two documents", "default: forbid\n---\ndefault: allow\n", policy.ProblemMultipleDocuments, -1, "", 0},
		{"list document", "- a\n", policy.ProblemWrongType, -1, "", 1},
		{"unknown top-level field", "default: forbid\nrule: []\n", policy.ProblemUnknownField, -1, "rule", 2},
		{"duplicate top-level key", "default: forbid\ndefault: allow\n", policy.ProblemDuplicateKey, -1, "default", 2},
		{"unknown default", "default: deny\n", policy.ProblemUnknownDefault, -1, "default", 1},
		{"default as list", "default: [allow]\n", policy.ProblemWrongType, -1, "default", 1},
		{"rules as mapping", "rules: {a: b}\n", policy.ProblemWrongType, -1, "rules", 1},
		{"rule as string", "rules:\n  - allow\n", policy.ProblemWrongType, 0, "", 2},
		{"unknown rule field", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdit: allow\n"), policy.ProblemUnknownField, 1, "verdit", 8},
		{"merge key is unknown", "base: &b {verdict: allow}\n", policy.ProblemUnknownField, -1, "base", 1},
		{"duplicate rule key", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: allow\n    verdict: forbid\n"), policy.ProblemDuplicateKey, 1, "verdict", 9},
		{"unknown verdict", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: deny\n"), policy.ProblemUnknownVerdict, 1, "verdict", 8},
		{"missing verdict", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n"), policy.ProblemMissingField, 1, "verdict", 6},
		{"forbid without reason", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: forbid\n"), policy.ProblemMissingField, 1, "reason", 6},
		{"defer without reason", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: defer\n    env: web\n"), policy.ProblemMissingField, 1, "reason", 6},
		{"reason not kebab", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: forbid\n    reason: No_Permission\n"), policy.ProblemInvalidReason, 1, "reason", 9},
		{"reason double hyphen", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: forbid\n    reason: no--permission\n"), policy.ProblemInvalidReason, 1, "reason", 9},
		{"reason trailing hyphen", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: forbid\n    reason: no-\n"), policy.ProblemInvalidReason, 1, "reason", 9},
		{"reason too long", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: forbid\n    reason: " + strings.Repeat("a", 49) + "\n"), policy.ProblemInvalidReason, 1, "reason", 9},
		{"allow reason must be kebab too", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: allow\n    reason: Yes\n"), policy.ProblemInvalidReason, 1, "reason", 9},
		{"defer without env", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: defer\n    reason: ask\n"), policy.ProblemMissingField, 1, "env", 6},
		{"env on forbid", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: forbid\n    reason: no\n    env: web\n"), policy.ProblemUnexpectedField, 1, "env", 10},
		{"env on allow", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: allow\n    env: web\n"), policy.ProblemUnexpectedField, 1, "env", 9},
		{"unknown env", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: defer\n    reason: ask\n    env: phone\n"), policy.ProblemInvalidEnv, 1, "env", 10},
		{"star env", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: defer\n    reason: ask\n    env: \"*\"\n"), policy.ProblemInvalidEnv, 1, "env", 10},
		{"env smuggling a path", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: defer\n    reason: ask\n    env: web/x\n"), policy.ProblemInvalidEnv, 1, "env", 10},
		{"double star not last", rule("  - callers: [\"a\"]\n    uris: [\"x\", \"debug/**/x\"]\n    verdict: allow\n"), policy.ProblemInvalidURI, 1, "uris[1]", 7},
		{"partial wildcard", rule("  - callers: [\"a\"]\n    uris: [\"genome/page-*\"]\n    verdict: allow\n"), policy.ProblemInvalidURI, 1, "uris[0]", 7},
		{"bad airc room", rule("  - callers: [\"a\"]\n    uris: [\"airc://room:abc/x\"]\n    verdict: allow\n"), policy.ProblemInvalidURI, 1, "uris[0]", 7},
		{"bad airc env", rule("  - callers: [\"a\"]\n    uris: [\"airc://maya:phone/x\"]\n    verdict: allow\n"), policy.ProblemInvalidURI, 1, "uris[0]", 7},
		{"other scheme", rule("  - callers: [\"a\"]\n    uris: [\"http://x/y\"]\n    verdict: allow\n"), policy.ProblemInvalidURI, 1, "uris[0]", 7},
		{"leading slash", rule("  - callers: [\"a\"]\n    uris: [\"/genome/x\"]\n    verdict: allow\n"), policy.ProblemInvalidURI, 1, "uris[0]", 7},
		{"empty uri", rule("  - callers: [\"a\"]\n    uris: [\"\"]\n    verdict: allow\n"), policy.ProblemInvalidURI, 1, "uris[0]", 7},
		{"empty uris", rule("  - callers: [\"a\"]\n    uris: []\n    verdict: allow\n"), policy.ProblemEmptyList, 1, "uris", 7},
		{"missing uris", rule("  - callers: [\"a\"]\n    verdict: allow\n"), policy.ProblemEmptyList, 1, "uris", 6},
		{"empty callers", rule("  - callers: []\n    uris: [\"x\"]\n    verdict: allow\n"), policy.ProblemEmptyList, 1, "callers", 6},
		{"missing callers", rule("  - uris: [\"x\"]\n    verdict: allow\n"), policy.ProblemEmptyList, 1, "callers", 6},
		{"null callers", rule("  - callers:\n    uris: [\"x\"]\n    verdict: allow\n"), policy.ProblemEmptyList, 1, "callers", 6},
		{"callers as string", rule("  - callers: admin\n    uris: [\"x\"]\n    verdict: allow\n"), policy.ProblemWrongType, 1, "callers", 6},
		{"caller as list", rule("  - callers: [[admin]]\n    uris: [\"x\"]\n    verdict: allow\n"), policy.ProblemWrongType, 1, "callers[0]", 6},
		{"caller glob inside", rule("  - callers: [\"pe*r\"]\n    uris: [\"x\"]\n    verdict: allow\n"), policy.ProblemInvalidCaller, 1, "callers[0]", 6},
		{"caller glob leading", rule("  - callers: [\"ok\", \"*admin\"]\n    uris: [\"x\"]\n    verdict: allow\n"), policy.ProblemInvalidCaller, 1, "callers[1]", 6},
		{"caller with space", rule("  - callers: [\"ad min\"]\n    uris: [\"x\"]\n    verdict: allow\n"), policy.ProblemInvalidCaller, 1, "callers[0]", 6},
		{"empty caller", rule("  - callers: [\"\"]\n    uris: [\"x\"]\n    verdict: allow\n"), policy.ProblemInvalidCaller, 1, "callers[0]", 6},
		{"dry_run not bool", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: allow\n    dry_run: \"yes\"\n"), policy.ProblemWrongType, 1, "dry_run", 9},
		{"dry_run yes is a string in YAML 1.2", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: allow\n    dry_run: yes\n"), policy.ProblemWrongType, 1, "dry_run", 9},
		{"reason as mapping", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: forbid\n    reason: {a: b}\n"), policy.ProblemWrongType, 1, "reason", 9},
		{"binary reason", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: forbid\n    reason: !!binary aGk=\n"), policy.ProblemWrongType, 1, "reason", 9},
		{"custom tag", rule("  - callers: [\"a\"]\n    uris: [\"x\"]\n    verdict: !x allow\n"), policy.ProblemWrongType, 1, "verdict", 8},
		{"self-referencing alias", "rules: &r\n  - *r\n", policy.ProblemWrongType, 0, "", 0},
		{"too large", "# " + strings.Repeat("x", policy.MaxBytes) + "\n", policy.ProblemTooLarge, -1, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := policy.Parse([]byte(tc.text))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s\nas %+v", tc.text, p.Rules())
			}
			pe := asError(t, err)
			got := struct {
				Problem policy.Problem
				Rule    int
				Field   string
			}{pe.Problem, pe.Rule, pe.Field}
			want := struct {
				Problem policy.Problem
				Rule    int
				Field   string
			}{tc.problem, tc.rule, tc.field}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("error %v (-want +got):\n%s", err, diff)
			}
			if tc.line != 0 && pe.Line != tc.line {
				t.Errorf("error %v: line %d, want %d", err, pe.Line, tc.line)
			}
			if pe.Detail == "" {
				t.Errorf("error %v has no detail", err)
			}
		})
	}
}

func TestParseInvalidURIWrapsParseError(t *testing.T) {
	t.Parallel()
	_, err := policy.Parse([]byte("rules:\n  - callers: [a]\n    uris: [\"x/**/y\"]\n    verdict: allow\n"))
	var ue *uri.ParseError
	if !errors.As(err, &ue) || ue.Reason != uri.ReasonInvalidPattern {
		t.Fatalf("error %v does not wrap a uri.ParseError with URI_INVALID_PATTERN", err)
	}
	if want := "policy: rules[0].uris[0] (line 3): "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q does not start with %q", err.Error(), want)
	}
}

func TestParseAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want []policy.Rule
		def  policy.VerdictKind
	}{
		{"no rules", "default: allow\n", nil, policy.Allowed},
		{"null rules", "default: forbid\nrules:\n", nil, policy.Forbidden},
		{"null default is forbid", "default:\nrules: []\n", nil, policy.Forbidden},
		{
			"every field",
			`rules:
  - callers:
      - user
      - "peer:*"
    uris: [airc://maya@rig:vr/scene/**, "genome/*"]
    verdict: defer
    reason: ask-target-env
    env: x-acme-glasses
    dry_run: true
  - {callers: ["*"], uris: ["**"], verdict: forbid, reason: "404"}
`,
			[]policy.Rule{
				{Callers: []string{"user", "peer:*"}, URIs: []string{"airc://maya@rig:vr/scene/**", "genome/*"}, Verdict: policy.Deferred, Reason: "ask-target-env", Env: "x-acme-glasses", DryRun: true},
				{Callers: []string{"*"}, URIs: []string{"**"}, Verdict: policy.Forbidden, Reason: "404"},
			},
			policy.Forbidden,
		},
		{
			"anchors and aliases",
			`rules:
  - callers: &people ["user", "guest"]
    uris: ["a/*"]
    verdict: allow
  - callers: *people
    uris: ["b/**"]
    verdict: forbid
    reason: &why no-permission
  - &last
    callers: ["anonymous"]
    uris: ["**"]
    verdict: forbid
    reason: *why
`,
			[]policy.Rule{
				{Callers: []string{"user", "guest"}, URIs: []string{"a/*"}, Verdict: policy.Allowed},
				{Callers: []string{"user", "guest"}, URIs: []string{"b/**"}, Verdict: policy.Forbidden, Reason: "no-permission"},
				{Callers: []string{"anonymous"}, URIs: []string{"**"}, Verdict: policy.Forbidden, Reason: "no-permission"},
			},
			policy.Forbidden,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := mustParse(t, tc.text)
			if diff := cmp.Diff(tc.want, p.Rules(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Rules (-want +got):\n%s", diff)
			}
			if got := p.DefaultVerdict(); got != tc.def {
				t.Errorf("DefaultVerdict = %v, want %v", got, tc.def)
			}
		})
	}
}

func TestMarshalKeepsSourceAndCanonicalRoundTrips(t *testing.T) {
	t.Parallel()
	const text = `# ops policy
default: allow # open by default
rules:
  - callers: ["anonymous", "peer:*"]   # odd but valid
    uris: ["debug/**", "airc://room:*:web/render/**"]
    verdict: forbid
    reason: no-permission
    dry_run: true
  - callers: ["*"]
    uris: ["genome/page-out"]
    verdict: defer
    reason: ask-target-env
    env: web
`
	p := mustParse(t, text)
	got, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != text {
		t.Errorf("Marshal did not return the source:\n%s", got)
	}
	canon, err := p.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	const want = `default: allow
rules:
  - callers: [anonymous, 'peer:*']
    uris: [debug/**, 'airc://room:*:web/render/**']
    verdict: forbid
    reason: no-permission
    dry_run: true
  - callers: ['*']
    uris: [genome/page-out]
    verdict: defer
    reason: ask-target-env
    env: web
`
	if diff := cmp.Diff(want, string(canon)); diff != "" {
		t.Errorf("Canonical (-want +got):\n%s", diff)
	}
	q := mustParse(t, string(canon))
	if diff := cmp.Diff(p.Proto(), q.Proto(), protocmp.Transform()); diff != "" {
		t.Errorf("Canonical round trip (-want +got):\n%s", diff)
	}
	// A policy built from a proto has no source: Marshal is Canonical.
	r, err := policy.FromProto(p.Proto())
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(m)); diff != "" {
		t.Errorf("Marshal of a proto-built policy (-want +got):\n%s", diff)
	}
}

func TestCanonicalEmpty(t *testing.T) {
	t.Parallel()
	p, err := policy.New(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("default: forbid\nrules: []\n", string(b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	mustParse(t, string(b))
}
