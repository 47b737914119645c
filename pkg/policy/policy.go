// Package policy is the router's gate: an ordered list of rules, loaded from
// YAML (--policy FILE) or from a routerv1.Policy, compiled once into an
// immutable Policy whose Evaluate says allow, forbid or defer for a caller
// and a command URI. docs/policy.md is the long form of what follows.
//
//   - Rules are tried in order and the first rule that matches decides. A rule
//     matches when any of its caller patterns matches the caller's principal
//     name AND any of its URI patterns matches the URI. When no rule matches,
//     the policy's default decides: forbid, unless the policy says
//     "default: allow".
//   - Caller patterns are an exact principal name ("admin", "peer:node-1",
//     "anonymous"), "*" (everyone, anonymous included), or a prefix glob that
//     ends in "*" ("peer:*"). URI patterns are those of pkg/uri: a path
//     pattern ("debug/**") matching any authority, or a full airc:// pattern.
//   - A dry-run rule never decides. Evaluation goes on past it (audit mode, as
//     in Kubernetes' audit annotations and Linkerd's audit policies): the
//     effective verdict is that of the first matching rule that is not a dry
//     run, and the first matching dry-run rule before it is reported beside
//     it as the verdict the call would get if that rule were enforced.
//   - Everything is checked when the policy loads: a typo is a load error
//     naming the rule and the field, never a rule that silently never
//     matches. A security policy is explicit: a rule names its callers and its
//     URIs, and a refusal names its reason.
//
// A Policy is immutable and safe for concurrent use; Store holds the current
// one with a version and swaps it atomically, so Evaluate, which runs on
// every command, takes no lock.
package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/uri"
)

// VerdictKind is the gate's answer. Its values are those of
// routerv1.VerdictKind.
type VerdictKind uint8

// The verdicts. The zero value is not a verdict.
const (
	Allowed   VerdictKind = 1
	Forbidden VerdictKind = 2
	Deferred  VerdictKind = 3
)

// String returns "allowed", "forbidden" or "deferred", for logs.
func (k VerdictKind) String() string {
	switch k {
	case Allowed:
		return "allowed"
	case Forbidden:
		return "forbidden"
	case Deferred:
		return "deferred"
	}
	return fmt.Sprintf("VerdictKind(%d)", uint8(k))
}

// word is the verdict as policies spell it: allow, forbid, defer.
func (k VerdictKind) word() string {
	switch k {
	case Allowed:
		return "allow"
	case Forbidden:
		return "forbid"
	case Deferred:
		return "defer"
	}
	return ""
}

// verdictWord parses allow, forbid or defer.
func verdictWord(s string) (VerdictKind, bool) {
	switch s {
	case "allow":
		return Allowed, true
	case "forbid":
		return Forbidden, true
	case "defer":
		return Deferred, true
	}
	return 0, false
}

// ReasonNoMatchingRule is the reason of the default verdict of a policy
// whose default is forbid (FORBIDDEN_NO_MATCHING_RULE on the wire).
const ReasonNoMatchingRule = "no-matching-rule"

// DefaultRule is the Rule index of a verdict that came from the default.
const DefaultRule = -1

// Verdict is the decision of one rule, or of the default.
type Verdict struct {
	Kind VerdictKind
	// Reason is kebab-case ("no-permission"); it becomes FORBIDDEN_<REASON>
	// or DEFERRED_<REASON>. Allow verdicts carry the rule's reason if it gave
	// one (a label for logs), else "".
	Reason string
	// Env is the prompt_target_env of a Deferred verdict, else "".
	Env string
	// Rule is the index of the rule that decided, DefaultRule for the default.
	Rule int
	// DryRun is set on the verdict of a dry-run rule: the call proceeds and
	// the verdict is only logged and published.
	DryRun bool
}

// Refuses reports whether the verdict stops the call: a Forbidden or Deferred
// verdict that is not a dry run.
func (v Verdict) Refuses() bool { return !v.DryRun && v.Kind != Allowed }

// Evaluation is the answer of Policy.Evaluate.
type Evaluation struct {
	// Effective is the verdict the gate enforces: that of the first matching
	// rule that is not a dry run, or the default's.
	Effective Verdict
	// DryRun, when not nil, is the verdict of the first matching dry-run
	// rule before the effective one: what the call would get if that rule
	// were enforced. It is reported even when it agrees with Effective; the
	// router logs and publishes it and never enforces it.
	DryRun *Verdict
}

// Rule is one rule as written. A Policy keeps its rules compiled; Rules
// returns copies of them in this form.
type Rule struct {
	// Callers are principal names, "*", or prefix globs ending in "*".
	Callers []string
	// URIs are path patterns ("debug/**") or airc:// patterns.
	URIs    []string
	Verdict VerdictKind
	// Reason is required for Forbidden and Deferred, kebab-case.
	Reason string
	// Env is required for Deferred and forbidden otherwise.
	Env    string
	DryRun bool
}

func (r Rule) clone() Rule {
	r.Callers = slices.Clone(r.Callers)
	r.URIs = slices.Clone(r.URIs)
	return r
}

// Policy is a compiled, immutable policy. The zero value and nil are not
// usable policies except with Evaluate, which treats them as an empty policy
// whose default is forbid (a missing policy fails closed).
type Policy struct {
	def      VerdictKind
	rules    []Rule
	compiled []compiledRule
	// byFirst and other index the rules by the first segment of the path:
	// byFirst[s] lists, in order, the rules that can match a path whose
	// first segment is s; other those that can match any other path (the
	// rules with a pattern whose first segment is a wildcard). Evaluate
	// tries only those, so a long policy costs little for the commands it
	// does not mention. byFirst is nil when the index would be too big;
	// other then lists every rule.
	byFirst map[string][]int32
	other   []int32
	// defaultVerdict is the verdict of the default, precomputed.
	defaultVerdict Verdict
	// source is the YAML the policy was parsed from, nil when it was built
	// from rules or a proto.
	source []byte
}

type compiledRule struct {
	callers []callerPattern
	uris    []uriPattern
	verdict Verdict
}

// MaxRules bounds the number of rules of a policy.
const MaxRules = 10000

// New compiles a policy from its default (Allowed or Forbidden; zero means
// Forbidden) and its rules, checking every rule. Every error is an *Error
// naming the rule and the field.
func New(def VerdictKind, rules []Rule) (*Policy, error) {
	switch def {
	case 0:
		def = Forbidden
	case Allowed, Forbidden:
	default:
		return nil, &Error{
			Rule: DefaultRule, Field: "default", Problem: ProblemUnknownDefault,
			Detail: fmt.Sprintf("default must be allow or forbid, not %s", def),
		}
	}
	if len(rules) > MaxRules {
		return nil, &Error{
			Rule: DefaultRule, Field: "rules", Problem: ProblemTooManyRules,
			Detail: fmt.Sprintf("%d rules; at most %d", len(rules), MaxRules),
		}
	}
	p := &Policy{
		def:            def,
		rules:          make([]Rule, len(rules)),
		compiled:       make([]compiledRule, len(rules)),
		defaultVerdict: Verdict{Kind: def, Rule: DefaultRule},
	}
	if def == Forbidden {
		p.defaultVerdict.Reason = ReasonNoMatchingRule
	}
	for i, r := range rules {
		c, err := compileRule(i, r)
		if err != nil {
			return nil, err
		}
		p.rules[i] = r.clone()
		p.compiled[i] = c
	}
	p.index()
	return p, nil
}

func compileRule(i int, r Rule) (compiledRule, error) {
	c := compiledRule{verdict: Verdict{Kind: r.Verdict, Reason: r.Reason, Env: r.Env, Rule: i, DryRun: r.DryRun}}
	if len(r.Callers) == 0 {
		return c, &Error{
			Rule: i, Field: "callers", Problem: ProblemEmptyList,
			Detail: `callers is missing or empty; name the principals the rule is for ("*" for everyone)`,
		}
	}
	for j, s := range r.Callers {
		cp, detail := compileCaller(s)
		if detail != "" {
			return c, &Error{Rule: i, Field: fmt.Sprintf("callers[%d]", j), Problem: ProblemInvalidCaller, Detail: detail}
		}
		c.callers = append(c.callers, cp)
	}
	if len(r.URIs) == 0 {
		return c, &Error{
			Rule: i, Field: "uris", Problem: ProblemEmptyList,
			Detail: `uris is missing or empty; name the URIs the rule is for ("**" for every path)`,
		}
	}
	for j, s := range r.URIs {
		up, err := compileURI(s)
		if err != nil {
			return c, &Error{
				Rule: i, Field: fmt.Sprintf("uris[%d]", j), Problem: ProblemInvalidURI,
				Detail: "invalid URI pattern: " + err.Error(), Err: err,
			}
		}
		c.uris = append(c.uris, up)
	}
	switch r.Verdict {
	case Allowed, Forbidden, Deferred:
	case 0:
		return c, &Error{
			Rule: i, Field: "verdict", Problem: ProblemMissingField,
			Detail: "verdict is missing; give allow, forbid or defer",
		}
	default:
		return c, &Error{
			Rule: i, Field: "verdict", Problem: ProblemUnknownVerdict,
			Detail: fmt.Sprintf("unknown verdict %s; give allow, forbid or defer", r.Verdict),
		}
	}
	switch {
	case r.Reason == "" && r.Verdict != Allowed:
		return c, &Error{
			Rule: i, Field: "reason", Problem: ProblemMissingField,
			Detail: "a " + r.Verdict.word() + " rule needs a kebab-case reason (e.g. no-permission)",
		}
	case r.Reason != "":
		if detail := checkReason(r.Reason); detail != "" {
			return c, &Error{Rule: i, Field: "reason", Problem: ProblemInvalidReason, Detail: detail}
		}
	}
	switch {
	case r.Verdict == Deferred && r.Env == "":
		return c, &Error{
			Rule: i, Field: "env", Problem: ProblemMissingField,
			Detail: "a defer rule needs env, the environment to prompt the caller in (e.g. web)",
		}
	case r.Verdict != Deferred && r.Env != "":
		return c, &Error{
			Rule: i, Field: "env", Problem: ProblemUnexpectedField,
			Detail: "env is the prompt target of a defer rule; a " + r.Verdict.word() + " rule has none",
		}
	case r.Env != "":
		if detail := checkEnv(r.Env); detail != "" {
			return c, &Error{Rule: i, Field: "env", Problem: ProblemInvalidEnv, Detail: detail}
		}
	}
	return c, nil
}

// MaxReasonLength keeps FORBIDDEN_<REASON> within the 63 characters
// google.rpc.ErrorInfo allows a reason.
const MaxReasonLength = 48

// checkReason accepts [a-z0-9]+(-[a-z0-9]+)*.
func checkReason(s string) string {
	if len(s) > MaxReasonLength {
		return fmt.Sprintf("reason %s is longer than %d characters", quoteShort(s), MaxReasonLength)
	}
	bad := "reason " + quoteShort(s) + " is not kebab-case ([a-z0-9]+(-[a-z0-9]+)*)"
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return bad
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '-' && s[i-1] != '-':
		default:
			return bad
		}
	}
	return ""
}

// checkEnv accepts the envs a caller can be prompted in: those of the URI
// contract (web, tty, cli, vr, ar, headless, x-<vendor>), not "*". It asks
// pkg/uri so that the two lists cannot drift apart.
func checkEnv(env string) string {
	u, err := uri.Parse("airc://p:" + env + "/x")
	if err != nil || u.Kind != uri.KindPeer || u.Env != env {
		return "env " + quoteShort(env) + " is not web, tty, cli, vr, ar, headless or x-<vendor>"
	}
	return ""
}

// truncate keeps details short when an input is long.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// Evaluate decides for caller and u. See the package comment for the
// semantics. A nil Policy is an empty policy whose default is forbid. It
// does not allocate unless a dry-run rule matches.
func (p *Policy) Evaluate(caller auth.Principal, u uri.URI) Evaluation {
	if p == nil || p.def == 0 {
		return Evaluation{Effective: Verdict{Kind: Forbidden, Reason: ReasonNoMatchingRule, Rule: DefaultRule}}
	}
	candidates := p.other
	if p.byFirst != nil {
		first, _, _ := strings.Cut(u.Path, "/")
		if c, ok := p.byFirst[first]; ok {
			candidates = c
		}
	}
	var e Evaluation
	t := target{u: &u}
	for _, i := range candidates {
		r := &p.compiled[i]
		if !r.callerMatches(caller.Name) || !r.uriMatches(&t) {
			continue
		}
		if r.verdict.DryRun {
			if e.DryRun == nil {
				v := r.verdict
				e.DryRun = &v
			}
			continue
		}
		e.Effective = r.verdict
		return e
	}
	e.Effective = p.defaultVerdict
	return e
}

// maxIndexEntries bounds the first-segment index; a policy that would need
// more (thousands of wildcard rules times thousands of literals) is
// evaluated rule by rule instead.
const maxIndexEntries = 1 << 20

// index builds byFirst and other (see Policy).
func (p *Policy) index() {
	literals := map[string]bool{}
	wild := make([]bool, len(p.compiled))
	nwild := 0
	for i := range p.compiled {
		for j := range p.compiled[i].uris {
			if lit, ok := p.compiled[i].uris[j].firstLiteral(); ok {
				literals[lit] = true
			} else {
				wild[i] = true
			}
		}
		if wild[i] {
			nwild++
		}
	}
	p.other = make([]int32, 0, nwild)
	if len(literals)*nwild > maxIndexEntries {
		p.other = p.other[:0]
		for i := range p.compiled {
			p.other = append(p.other, int32(i))
		}
		return
	}
	p.byFirst = make(map[string][]int32, len(literals))
	for i := range p.compiled {
		idx := int32(i)
		if wild[i] {
			p.other = append(p.other, idx)
			for lit := range literals {
				p.byFirst[lit] = append(p.byFirst[lit], idx)
			}
			continue
		}
		for j := range p.compiled[i].uris {
			lit, _ := p.compiled[i].uris[j].firstLiteral()
			if l := p.byFirst[lit]; len(l) == 0 || l[len(l)-1] != idx {
				p.byFirst[lit] = append(l, idx)
			}
		}
	}
}

func (r *compiledRule) callerMatches(caller string) bool {
	for i := range r.callers {
		if r.callers[i].match(caller) {
			return true
		}
	}
	return false
}

func (r *compiledRule) uriMatches(t *target) bool {
	segs, ok := t.split()
	for i := range r.uris {
		if ok && r.uris[i].matchSplit(t.u, segs) || !ok && r.uris[i].match(t.u) {
			return true
		}
	}
	return false
}

// DefaultVerdict returns what the policy answers when no rule matches:
// Allowed or Forbidden.
func (p *Policy) DefaultVerdict() VerdictKind { return p.def }

// Rules returns a copy of the policy's rules in order.
func (p *Policy) Rules() []Rule {
	out := make([]Rule, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.clone()
	}
	return out
}
