package policy

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/continuum-mesh/continuum/pkg/uri"
)

// Caller patterns.

type callerKind uint8

const (
	callerExact  callerKind = iota // the principal name itself
	callerAny                      // "*"
	callerPrefix                   // "peer:*": names starting with "peer:"
)

type callerPattern struct {
	kind  callerKind
	value string // the name, or the prefix without its "*"
}

// MaxCallerLength bounds a caller pattern, as pkg/auth bounds a principal
// name.
const MaxCallerLength = 256

// compileCaller checks a caller pattern and returns it compiled, or a
// detail saying what is wrong. A "*" anywhere but at the end is an error:
// "pe*r" or "*admin" look like globs this matcher does not have, and a
// silently-literal pattern would never match.
func compileCaller(s string) (callerPattern, string) {
	switch {
	case s == "":
		return callerPattern{}, "empty caller pattern"
	case len(s) > MaxCallerLength:
		return callerPattern{}, "caller pattern longer than 256 bytes"
	case s == "*":
		return callerPattern{kind: callerAny}, ""
	}
	for i, r := range s {
		if r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return callerPattern{}, "caller pattern " + quoteShort(s) + " has whitespace, control characters or invalid UTF-8"
		}
		if r == '*' && i != len(s)-1 {
			return callerPattern{}, "caller pattern " + quoteShort(s) + ` may hold "*" only at its end ("peer:*")`
		}
	}
	if prefix, ok := strings.CutSuffix(s, "*"); ok {
		return callerPattern{kind: callerPrefix, value: prefix}, ""
	}
	return callerPattern{kind: callerExact, value: s}, ""
}

func (c *callerPattern) match(name string) bool {
	switch c.kind {
	case callerAny:
		return true
	case callerPrefix:
		return strings.HasPrefix(name, c.value)
	default:
		return name == c.value
	}
}

func (c *callerPattern) String() string {
	switch c.kind {
	case callerAny:
		return "*"
	case callerPrefix:
		return c.value + "*"
	}
	return c.value
}

// URI patterns.
//
// uri.MatchURI parses its pattern on every call, which is right for a
// one-off match and too slow for a gate that tries tens of patterns on every
// command. A uriPattern is the same pattern parsed once. Its semantics are
// exactly those of uri.MatchURI (see pkg/uri/match.go); compileURI validates
// with uri.ValidatePattern, so the language is pkg/uri's, and
// TestMatchAgreesWithURI and FuzzMatch check the two matchers agree.

type authorityKind uint8

const (
	anyAuthority  authorityKind = iota // a bare path pattern
	localOnly                          // airc:///
	peerAuthority                      // airc://peer[@node][:env]/
	roomAuthority                      // airc://room:id[:env]/
)

type uriPattern struct {
	kind authorityKind
	// peer is a name, a UUID or "*"; peerUUID when it has the UUID's shape,
	// which compares case-insensitively.
	peer     string
	peerUUID bool
	node     string // "" or "*" for any
	env      string // "" or "*" for any
	room     string // a UUID or "*"
	// segs are the path segments before a final "**"; tail is set when the
	// pattern ends in "**".
	segs []pathSegment
	tail bool
}

type pathSegment struct {
	any     bool // "*": one non-empty segment
	literal string
}

const scheme = "airc://"

// compileURI validates a pattern with pkg/uri and compiles it. The error is
// pkg/uri's *uri.ParseError.
func compileURI(p string) (uriPattern, error) {
	if err := uri.ValidatePattern(p); err != nil {
		return uriPattern{}, err
	}
	var pt uriPattern
	path := p
	// A valid pattern either starts with "airc://" in any case, or is a
	// bare path pattern (no other scheme validates).
	if len(p) >= len(scheme) && strings.EqualFold(p[:len(scheme)], scheme) {
		authority, rest, _ := strings.Cut(p[len(scheme):], "/")
		pt.parseAuthority(authority)
		path = rest
	}
	for {
		seg, rest, more := strings.Cut(path, "/")
		switch seg {
		case "**":
			pt.tail = true // last, by validation
		case "*":
			pt.segs = append(pt.segs, pathSegment{any: true})
		default:
			pt.segs = append(pt.segs, pathSegment{literal: seg})
		}
		if !more {
			return pt, nil
		}
		path = rest
	}
}

// parseAuthority fills the authority of a validated pattern.
func (pt *uriPattern) parseAuthority(a string) {
	if a == "" {
		pt.kind = localOnly
		return
	}
	if rest, ok := strings.CutPrefix(a, "room:"); ok {
		pt.kind = roomAuthority
		pt.room, pt.env, _ = strings.Cut(rest, ":")
		return
	}
	pt.kind = peerAuthority
	left, env, _ := strings.Cut(a, ":")
	pt.peer, pt.node, _ = strings.Cut(left, "@")
	pt.env = env
	pt.peerUUID = uuidShaped(pt.peer)
}

// firstLiteral returns the pattern's first path segment when it is a
// literal, which every path it matches starts with; ok is false when the
// first segment is "*" or "**".
func (pt *uriPattern) firstLiteral() (lit string, ok bool) {
	if len(pt.segs) == 0 || pt.segs[0].any {
		return "", false
	}
	return pt.segs[0].literal, true
}

func (pt *uriPattern) match(u *uri.URI) bool {
	return pt.matchAuthority(u) && pt.matchPath(u.Path)
}

// target is the URI Evaluate matches, with its path split into segments
// on first use, so that the patterns that get to look at the path do not
// each split it again. Paths of more than maxSplitSegments segments are
// matched unsplit (matchPath).
type target struct {
	u *uri.URI
	// n is the number of segments in buf: 0 before the first split, -1
	// when there are too many. (A slice of buf kept in the struct would
	// make it escape to the heap.)
	n   int
	buf [maxSplitSegments]string
}

const maxSplitSegments = 16

// split returns the path's segments, as strings.Split(path, "/") would,
// or false when there are more than maxSplitSegments.
func (t *target) split() ([]string, bool) {
	if t.n == 0 {
		t.n = -1
		path := t.u.Path
		for n := 0; n < len(t.buf); {
			seg, rest, more := strings.Cut(path, "/")
			t.buf[n] = seg
			n++
			if !more {
				t.n = n
				break
			}
			path = rest
		}
	}
	if t.n < 0 {
		return nil, false
	}
	return t.buf[:t.n], true
}

// matchSplit is match for a path already split into segments: a literal
// matches itself, "*" one non-empty segment, a final "**" whatever is left.
func (pt *uriPattern) matchSplit(u *uri.URI, segs []string) bool {
	if !pt.matchAuthority(u) {
		return false
	}
	if len(segs) < len(pt.segs) || !pt.tail && len(segs) != len(pt.segs) {
		return false
	}
	for i := range pt.segs {
		if s := &pt.segs[i]; s.any {
			if segs[i] == "" {
				return false
			}
		} else if s.literal != segs[i] {
			return false
		}
	}
	return true
}

func (pt *uriPattern) matchAuthority(u *uri.URI) bool {
	switch pt.kind {
	case anyAuthority:
		return true
	case localOnly:
		return u.Kind == uri.KindLocal
	case peerAuthority:
		if u.Kind != uri.KindPeer && u.Kind != uri.KindBroadcast {
			return false
		}
		if pt.peer != "*" && pt.peer != u.Peer && (!pt.peerUUID || !strings.EqualFold(pt.peer, u.Peer)) {
			return false
		}
		return anyOr(pt.node, u.Node) && anyOr(pt.env, u.Env)
	case roomAuthority:
		return u.Kind == uri.KindRoom && (pt.room == "*" || strings.EqualFold(pt.room, u.Room)) && anyOr(pt.env, u.Env)
	}
	return false
}

// anyOr is the rule for node and env: absent or "*" matches anything.
func anyOr(want, got string) bool { return want == "" || want == "*" || want == got }

// matchPath matches path segment by segment: a literal matches itself, "*"
// one non-empty segment, a final "**" whatever is left, even nothing.
func (pt *uriPattern) matchPath(path string) bool {
	last := len(pt.segs) - 1
	for i := range pt.segs {
		seg, rest, more := strings.Cut(path, "/")
		if s := &pt.segs[i]; s.any {
			if seg == "" {
				return false
			}
		} else if s.literal != seg {
			return false
		}
		if i == last {
			// A pattern without "**" must use up the path; with "**" the
			// rest (even nothing) matches.
			return pt.tail || !more
		}
		if !more {
			return false // pattern segments left, path used up
		}
		path = rest
	}
	return pt.tail // only "**": anything matches
}

// uuidShaped reports the 8-4-4-4-12 shape that pkg/uri treats as a UUID.
func uuidShaped(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] == '-') != (i == 8 || i == 13 || i == 18 || i == 23) {
			return false
		}
	}
	return true
}
