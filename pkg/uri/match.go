package uri

import "strings"

// ValidatePattern reports, as a *ParseError, whether pattern is a valid URI
// pattern: a path pattern (see MatchPath) or an airc:// pattern (see
// MatchURI). Policies call it at load time so a typo is a startup error and
// not a rule that silently never matches.
func ValidatePattern(pattern string) error {
	if _, r, d := parsePattern(pattern); r != "" {
		return newError(r, pattern, d)
	}
	return nil
}

// MatchPath reports whether path matches a path pattern: a path whose
// segments (split on "/") are literals, "*" or "**", where
//
//   - a literal segment matches exactly that segment (byte for byte);
//   - "*" matches exactly one non-empty segment;
//   - "**" matches zero or more segments of any content and must be the last
//     segment, so "genome/**" matches "genome", "genome/page-in" and
//     "genome/a/b/".
//
// A trailing "/" in a path is an empty last segment: "cognition/*/" matches
// "cognition/lora:ts/", while "cognition/*" does not. A segment that merely
// contains "*" ("page-*") is invalid rather than literal: it almost certainly
// means a glob we do not support, and a silently-literal deny rule would never
// fire. Otherwise a path pattern obeys the path rules of Parse (no leading
// "/", no "//", no dot segments, no whitespace) and has no "?" or "#".
//
// MatchPath is false for every pattern ValidatePattern rejects and for
// airc:// patterns. The path is expected to come from a parsed URI; it is not
// validated.
func MatchPath(pattern, path string) bool {
	pt, r, _ := parsePattern(pattern)
	return r == "" && pt.kind == patternAnyAuthority && matchPath(pt.path, path)
}

// MatchURI reports whether u matches a URI pattern. A path pattern (see
// MatchPath) matches u.Path under any authority and any Kind. Otherwise the
// pattern is airc://<authority>/<path pattern>, where the authority is one of
//
//	(empty)                   Local URIs only
//	peer[@node][:env]         Peer and Broadcast URIs
//	room:room-id[:env]        Room URIs only
//
// and each of peer, node, env and room-id is "*" (any) or a value valid in a
// URI, compared with the parsed URI's field (UUIDs case-insensitively, names
// and envs exactly). An absent @node or :env is unconstrained, the same as
// "*": "airc://maya/x" matches "airc://maya@rig:vr/x" and the broadcast
// "airc://maya:*/x". A literal env matches only that env, not a broadcast
// (Env "*"), so a rule aimed at one env of a peer must decide separately
// what to do with broadcasts to that peer. "airc://*/x" matches any peer but
// neither Local nor Room URIs. Query and fragment never take part in
// matching. MatchURI is false for every pattern ValidatePattern rejects.
func MatchURI(pattern string, u URI) bool {
	pt, r, _ := parsePattern(pattern)
	return r == "" && pt.matchAuthority(u) && matchPath(pt.path, u.Path)
}

type patternKind int

const (
	patternAnyAuthority patternKind = iota // bare path pattern
	patternLocal                           // airc:///
	patternPeer                            // airc://peer[@node][:env]/
	patternRoom                            // airc://room:id[:env]/
)

// pattern is a parsed URI pattern; "" in node and env means absent.
type pattern struct {
	kind       patternKind
	peer, node string
	env, room  string
	path       string
}

func parsePattern(p string) (pt pattern, r Reason, detail string) {
	if p == "" {
		return pt, ReasonEmpty, "empty pattern"
	}
	if len(p) > MaxLength {
		return pt, ReasonTooLong, "longer than the limit for URIs"
	}
	if r, detail = checkCharacters(p); r != "" {
		return pt, r, detail
	}
	rest, scheme, r, detail := splitScheme(p)
	if r != "" {
		return pt, r, detail
	}
	if strings.ContainsAny(rest, "?#") {
		return pt, ReasonInvalidPattern, "a pattern has no query or fragment"
	}
	if scheme {
		auth, path, ok := strings.Cut(rest, "/")
		if r, detail = pt.parseAuthority(auth); r != "" {
			return pattern{}, r, detail
		}
		if !ok {
			return pattern{}, ReasonEmptyPath, "no path after the authority"
		}
		rest = path
	}
	if r, detail = checkPatternPath(rest); r != "" {
		return pattern{}, r, detail
	}
	pt.path = rest
	return pt, "", ""
}

func (pt *pattern) parseAuthority(auth string) (Reason, string) {
	if auth == "" {
		pt.kind = patternLocal
		return "", ""
	}
	if rest, ok := strings.CutPrefix(auth, "room:"); ok {
		id, env, hasEnv := strings.Cut(rest, ":")
		if id == "" {
			return ReasonEmptyRoom, "no room id after room:"
		}
		if _, ok := canonicalUUID(id); !ok && id != "*" {
			return ReasonInvalidRoomUUID, "room id " + quote(id) + " is neither a UUID nor *"
		}
		if hasEnv {
			if r, d := checkEnv(env); r != "" {
				return r, d
			}
		}
		pt.kind, pt.room, pt.env = patternRoom, id, env
		return "", ""
	}
	left, env, hasEnv := strings.Cut(auth, ":")
	peer, node, hasNode := strings.Cut(left, "@")
	if peer == "" {
		return ReasonEmptyPeer, "no peer before @ or :"
	}
	if peer != "*" {
		if _, _, r, d := checkPeer(peer); r != "" {
			return r, d
		}
	}
	if hasNode && node != "*" {
		if r, d := checkNode(node); r != "" {
			return r, d
		}
	}
	if hasEnv {
		if r, d := checkEnv(env); r != "" {
			return r, d
		}
	}
	pt.kind, pt.peer, pt.node, pt.env = patternPeer, peer, node, env
	return "", ""
}

func checkPatternPath(p string) (Reason, string) {
	if p == "" {
		return ReasonEmptyPath, "empty path pattern"
	}
	if p[0] == '/' {
		return ReasonInvalidPath, `path must not start with "/"`
	}
	for rest := p; ; {
		seg, tail, more := strings.Cut(rest, "/")
		switch {
		case seg == "" && more:
			return ReasonInvalidPath, `empty path segment ("//")`
		case isDotSegment(seg):
			return ReasonInvalidPath, "dot segment " + quote(seg) + " in path"
		case seg == "**" && more:
			return ReasonInvalidPattern, `"**" must be the last segment`
		case seg != "*" && seg != "**" && strings.Contains(seg, "*"):
			return ReasonInvalidPattern, "segment " + quote(seg) + ` mixes "*" with other characters`
		}
		if !more {
			return "", ""
		}
		rest = tail
	}
}

// matchAuthority compares the routing fields by the rules of MatchURI.
func (pt *pattern) matchAuthority(u URI) bool {
	switch pt.kind {
	case patternAnyAuthority:
		return true
	case patternLocal:
		return u.Kind == KindLocal
	case patternPeer:
		if u.Kind != KindPeer && u.Kind != KindBroadcast {
			return false
		}
		if pt.peer != "*" && !(pt.peer == u.Peer || uuidShaped(pt.peer) && strings.EqualFold(pt.peer, u.Peer)) {
			return false
		}
		return anyOr(pt.node, u.Node) && anyOr(pt.env, u.Env)
	case patternRoom:
		return u.Kind == KindRoom && (pt.room == "*" || strings.EqualFold(pt.room, u.Room)) && anyOr(pt.env, u.Env)
	}
	return false
}

// anyOr is the rule for node and env: absent or "*" matches anything.
func anyOr(want, got string) bool { return want == "" || want == "*" || want == got }

// matchPath matches a validated path pattern against path.
func matchPath(pattern, path string) bool {
	for {
		pseg, prest, pmore := strings.Cut(pattern, "/")
		if pseg == "**" {
			return true // last by validation; matches whatever is left, even nothing
		}
		xseg, xrest, xmore := strings.Cut(path, "/")
		if pseg == "*" {
			if xseg == "" {
				return false
			}
		} else if pseg != xseg {
			return false
		}
		switch {
		case !pmore:
			return !xmore
		case !xmore:
			return prest == "**" // the path is used up; only "**" matches nothing
		}
		pattern, path = prest, xrest
	}
}
