package topic

import "strings"

// Pattern is a compiled colon topic pattern. The zero value matches nothing.
type Pattern struct {
	src  string
	segs []string
	// wild is false when the pattern is an exact topic.
	wild bool
}

// CompilePattern parses a colon pattern ("data:*:created", "data:>", ">",
// or an exact topic). Artifact keys are refused: they have their own
// selector. Errors wrap ErrInvalidPattern.
func CompilePattern(p string) (Pattern, error) {
	if IsArtifactKey(p) {
		return Pattern{}, newError(ErrInvalidPattern, p, `contains "/": artifact keys are selected exactly or by prefix, not by a colon pattern`)
	}
	if d := checkColon(p, true); d != "" {
		return Pattern{}, newError(ErrInvalidPattern, p, d)
	}
	segs := strings.Split(p, ":")
	wild := false
	for _, s := range segs {
		if s == "*" || s == ">" {
			wild = true
		}
	}
	return Pattern{src: p, segs: segs, wild: wild}, nil
}

// MustCompilePattern is CompilePattern for constants and tests; it panics on
// an invalid pattern.
func MustCompilePattern(p string) Pattern {
	pt, err := CompilePattern(p)
	if err != nil {
		panic(err)
	}
	return pt
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.src }

// IsExact reports whether the pattern has no wildcard, so it matches exactly
// the topic String().
func (p Pattern) IsExact() bool { return p.src != "" && !p.wild }

// Match reports whether the concrete colon topic t matches. It is false for
// every artifact key. t is not otherwise validated.
func (p Pattern) Match(t string) bool {
	if p.src == "" || IsArtifactKey(t) {
		return false
	}
	if !p.wild {
		return t == p.src
	}
	for i, seg := range p.segs {
		if seg == ">" {
			return t != ""
		}
		cur, next, found := strings.Cut(t, ":")
		if cur == "" || seg != "*" && seg != cur {
			return false
		}
		if i == len(p.segs)-1 {
			return !found
		}
		if !found {
			return false
		}
		t = next
	}
	return false
}

// Within reports whether every topic p matches is covered by the class
// named class (see Covers): the class's segments are a literal prefix of p.
// It is false for artifact-key classes.
func (p Pattern) Within(class string) bool {
	if p.src == "" || class == "" || IsArtifactKey(class) {
		return false
	}
	csegs := strings.Split(class, ":")
	if len(csegs) > len(p.segs) {
		return false
	}
	for i, c := range csegs {
		if p.segs[i] != c || c == "*" || c == ">" {
			return false
		}
	}
	return true
}

// Overlaps reports whether some concrete topic matches both p and q.
func (p Pattern) Overlaps(q Pattern) bool {
	if p.src == "" || q.src == "" {
		return false
	}
	a, b := p.segs, q.segs
	for i := 0; ; i++ {
		aEnd, bEnd := i == len(a), i == len(b)
		if aEnd || bEnd {
			return aEnd && bEnd
		}
		x, y := a[i], b[i]
		switch {
		case x == ">" || y == ">":
			// ">" takes one or more segments, and the other side has at
			// least one left here.
			return true
		case x == "*" || y == "*" || x == y:
		default:
			return false
		}
	}
}

// OverlapsClass reports whether some topic matches p and is covered by the
// colon class named class (the topic class itself or one under class:>).
// It is false for artifact-key classes.
func (p Pattern) OverlapsClass(class string) bool {
	if class == "" || IsArtifactKey(class) {
		return false
	}
	exact, err := CompilePattern(class)
	if err != nil {
		return false
	}
	if p.Overlaps(exact) {
		return true
	}
	tail := Pattern{src: class + ":>", segs: append(strings.Split(class, ":"), ">"), wild: true}
	return p.Overlaps(tail)
}
