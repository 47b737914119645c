package policy

import (
	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/uri"
)

// ReferenceEvaluate is Evaluate written as plainly as possible, from the
// rules as written and uri.MatchURI, without compiled patterns or the
// first-segment index. Tests check Evaluate against it.
func ReferenceEvaluate(p *Policy, caller auth.Principal, u uri.URI) Evaluation {
	var e Evaluation
	for i, r := range p.rules {
		callerOK := false
		for _, c := range r.Callers {
			cp, _ := compileCaller(c)
			callerOK = callerOK || cp.match(caller.Name)
		}
		uriOK := false
		for _, pt := range r.URIs {
			uriOK = uriOK || uri.MatchURI(pt, u)
		}
		if !callerOK || !uriOK {
			continue
		}
		v := Verdict{Kind: r.Verdict, Reason: r.Reason, Env: r.Env, Rule: i, DryRun: r.DryRun}
		if r.DryRun {
			if e.DryRun == nil {
				e.DryRun = &v
			}
			continue
		}
		e.Effective = v
		return e
	}
	e.Effective = Verdict{Kind: p.def, Rule: DefaultRule}
	if p.def == Forbidden {
		e.Effective.Reason = ReasonNoMatchingRule
	}
	return e
}

// WithoutIndex returns a copy of p that evaluates every rule in turn, as a
// policy too big to index does.
func WithoutIndex(p *Policy) *Policy {
	q := *p
	q.byFirst = nil
	q.other = make([]int32, len(p.compiled))
	for i := range q.other {
		q.other[i] = int32(i)
	}
	return &q
}
