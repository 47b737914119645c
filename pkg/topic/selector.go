package topic

import "strings"

// SelectorKind says how a Selector matches.
type SelectorKind int

// The kinds of selector. The zero value is no selector.
const (
	// SelectPattern matches colon topics by a Pattern.
	SelectPattern SelectorKind = iota + 1
	// SelectArtifactExact matches one artifact key.
	SelectArtifactExact
	// SelectArtifactPrefix matches artifact keys starting with a prefix.
	SelectArtifactPrefix
)

// Selector is what a subscription selects: a colon pattern or an artifact
// key matched exactly or by prefix. The zero value matches nothing.
type Selector struct {
	kind    SelectorKind
	pattern Pattern
	key     string
}

// PatternSelector selects colon topics by pattern (see CompilePattern).
func PatternSelector(p string) (Selector, error) {
	pt, err := CompilePattern(p)
	if err != nil {
		return Selector{}, err
	}
	return Selector{kind: SelectPattern, pattern: pt}, nil
}

// ArtifactExactSelector selects exactly one artifact key.
func ArtifactExactSelector(key string) (Selector, error) {
	if err := ValidateArtifactKey(key); err != nil {
		return Selector{}, err
	}
	return Selector{kind: SelectArtifactExact, key: key}, nil
}

// ArtifactPrefixSelector selects the artifact keys that start with prefix.
func ArtifactPrefixSelector(prefix string) (Selector, error) {
	if err := ValidateArtifactPrefix(prefix); err != nil {
		return Selector{}, err
	}
	return Selector{kind: SelectArtifactPrefix, key: prefix}, nil
}

// ParseSelector reads the one-string form that command lines and event
// URIs (events/<selector>) use, the inverse of Selector.String:
//
//   - without "/": a colon pattern ("data:>", "audit:refusal");
//   - with "/" and ending in "*" or "/": an artifact prefix
//     ("genome/*" and "genome/" both select every genome/... key,
//     "genome/working_set.*" the keys starting with genome/working_set.);
//   - any other string with "/": one exact artifact key.
func ParseSelector(s string) (Selector, error) {
	if !IsArtifactKey(s) {
		return PatternSelector(s)
	}
	if p, ok := strings.CutSuffix(s, "*"); ok {
		return ArtifactPrefixSelector(p)
	}
	if strings.HasSuffix(s, "/") {
		return ArtifactPrefixSelector(s)
	}
	return ArtifactExactSelector(s)
}

// Kind returns how the selector matches.
func (s Selector) Kind() SelectorKind { return s.kind }

// Pattern returns the colon pattern of a SelectPattern selector.
func (s Selector) Pattern() Pattern { return s.pattern }

// Key returns the artifact key or prefix of an artifact selector.
func (s Selector) Key() string { return s.key }

// Exact returns the one concrete topic or key the selector matches, when it
// matches exactly one.
func (s Selector) Exact() (string, bool) {
	switch {
	case s.kind == SelectArtifactExact:
		return s.key, true
	case s.kind == SelectPattern && s.pattern.IsExact():
		return s.pattern.String(), true
	}
	return "", false
}

// Match reports whether the concrete topic or artifact key t is selected.
// Colon patterns never match artifact keys, and artifact selectors never
// match colon topics.
func (s Selector) Match(t string) bool {
	switch s.kind {
	case SelectPattern:
		return s.pattern.Match(t)
	case SelectArtifactExact:
		return t == s.key
	case SelectArtifactPrefix:
		return strings.HasPrefix(t, s.key) && IsArtifactKey(t)
	}
	return false
}

// String renders the selector in the form ParseSelector reads; an artifact
// prefix is written with a trailing "*".
func (s Selector) String() string {
	switch s.kind {
	case SelectPattern:
		return s.pattern.String()
	case SelectArtifactExact:
		return s.key
	case SelectArtifactPrefix:
		return s.key + "*"
	}
	return ""
}
