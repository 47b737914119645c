// Package uri parses, renders and matches the command URI of the Continuum
// mesh, as specified by the command URI contract (URI.md):
//
//	airc://[peer[@node]][:env]/path[?query][#fragment]
//	airc://room:<uuid>[:env]/path[?query][#fragment]
//	path[?query][#fragment]                          (bare form: local)
//
// One string is the routing address, the policy key, the audit key and the
// trace attribute, so the parser is strict: every malformed input is a
// *ParseError with a stable Reason, never a silent fallback to Local.
//
// Decisions this package makes where the contract is silent:
//
//   - The scheme is recognised only as "<scheme>://" at the start of the
//     input (case-insensitive "airc"); any other scheme is
//     URI_UNKNOWN_SCHEME. "airc:" not followed by "//" is also
//     URI_UNKNOWN_SCHEME, rather than a bare path whose first segment happens
//     to be "airc:". Such a path is written "airc:///airc:x", and String
//     renders it that way (found by FuzzParse). Other colons before the first "/" are part of a bare
//     path, so event topics such as "data:chat:created" parse as Local.
//   - A path never starts with "/": "/x" in the bare form and "airc://p//x"
//     are URI_INVALID_PATH (use "x" or "airc:///x"). A trailing "/" is kept.
//   - Paths, queries and fragments are kept verbatim (no percent-decoding),
//     but dot segments are rejected also in their percent-encoded spellings
//     ("%2e%2e"), so a component that decodes later cannot be walked upwards.
//   - An authority with an env but no peer ("airc://:vr/x") is
//     URI_EMPTY_PEER: Local has no env.
//   - "room:<uuid>:*" stays a Room with Env "*" (all envs of the room's
//     members); only a peer with env "*" is a Broadcast.
//   - Peer names, node names and envs are case-sensitive and kept as written;
//     only UUIDs are canonicalised (to lower case). The reserved peer name
//     "room" is rejected in any case ("Room", "ROOM").
//   - Peer and node names made only of dots ("." or "..") are invalid.
//   - A peer of 36 characters with hyphens at the 8-4-4-4-12 positions (and
//     nowhere else) is a UUID or an error; 32 hex digits without hyphens are a
//     name.
//   - Whitespace, control characters, Unicode format characters (bidi
//     overrides, zero-width joiners) and invalid UTF-8 are rejected anywhere in
//     the input, query and fragment included: they make audit logs lie.
package uri

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLength is the longest input, in bytes, that Parse accepts.
const MaxLength = 4096

// Kind is the routing variant of a URI. The zero value is KindLocal.
type Kind int

// The four variants of the contract; the list is exhaustive.
const (
	KindLocal     Kind = iota // handled by this process: bare form or airc:///
	KindPeer                  // one peer, optionally one node and one env
	KindRoom                  // every member of a room, optionally one env
	KindBroadcast             // every env of one peer (env "*")
)

var kindNames = [...]string{"local", "peer", "room", "broadcast"}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// URI is a parsed command URI. Values returned by Parse are canonical, so two
// URIs naming the same target compare equal with ==.
type URI struct {
	Kind Kind
	// Peer is a peer name, or a UUID in canonical lower-case 8-4-4-4-12
	// form when PeerIsUUID. Empty for Local and Room.
	Peer       string
	PeerIsUUID bool
	// Node is the machine the peer runs on; "" when absent.
	Node string
	// Env is the environment: "" when absent, "*" for Broadcast (and for a
	// room addressed with ":*").
	Env string
	// Room is the canonical lower-case room UUID; set only for Room.
	Room string
	// Path is the command or topic path without a leading slash, verbatim.
	Path     string
	Query    string // without "?"; verbatim
	Fragment string // without "#"; verbatim
}

// MustParse is Parse for constants and tests: it panics on error.
func MustParse(s string) URI {
	u, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// CommandPath returns the path, the part MethodFor maps to a gRPC method.
func (u URI) CommandPath() string { return u.Path }

// Parse parses s as a command URI. Every error is a *ParseError.
//
// Parse does not allocate for valid input except to lower-case a UUID
// written in upper case; every string field slices s.
func Parse(s string) (URI, error) {
	u, r, detail := parse(s)
	if r != "" {
		return URI{}, newError(r, s, detail)
	}
	return u, nil
}

// parse reports failures as (reason, detail) so the success path stays free of
// allocations and the error is built once, in Parse.
func parse(s string) (u URI, r Reason, detail string) {
	if s == "" {
		return u, ReasonEmpty, "empty input"
	}
	if len(s) > MaxLength {
		return u, ReasonTooLong, "longer than " + strconv.Itoa(MaxLength) + " bytes"
	}
	if r, detail = checkCharacters(s); r != "" {
		return u, r, detail
	}
	rest, scheme, r, detail := splitScheme(s)
	if r != "" {
		return u, r, detail
	}
	if scheme {
		// The authority ends where the path, query or fragment begins.
		end := indexDelim(rest)
		if r, detail = parseAuthority(&u, rest[:end]); r != "" {
			return URI{}, r, detail
		}
		rest = rest[end:]
		if rest == "" || rest[0] != '/' {
			return URI{}, ReasonEmptyPath, "no path after the authority"
		}
		rest = rest[1:]
	}
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		u.Fragment = rest[i+1:]
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		u.Query = rest[i+1:]
		rest = rest[:i]
	}
	if r, detail = checkPath(rest); r != "" {
		return URI{}, r, detail
	}
	u.Path = rest
	return u, "", ""
}

// checkCharacters rejects what would make the string print differently from
// what it routes to: whitespace, control and format characters, bad UTF-8.
func checkCharacters(s string) (Reason, string) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == 0x7f {
				return ReasonInvalidCharacter, "whitespace or control character at byte " + strconv.Itoa(i)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return ReasonInvalidCharacter, "invalid UTF-8 at byte " + strconv.Itoa(i)
		}
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ReasonInvalidCharacter, "whitespace, control or format character at byte " + strconv.Itoa(i)
		}
		i += n
	}
	return "", ""
}

// splitScheme returns what follows "airc://" (scheme true), or s itself for
// the bare form. The input has passed checkCharacters.
func splitScheme(s string) (rest string, scheme bool, r Reason, detail string) {
	end := indexDelim(s)
	if end > 0 && end < len(s) && s[end-1] == ':' && strings.HasPrefix(s[end:], "//") {
		name := s[:end-1]
		if isSchemeName(name) {
			if strings.EqualFold(name, "airc") {
				return s[end+2:], true, "", ""
			}
			return "", false, ReasonUnknownScheme, "scheme " + quote(name) + " is not airc"
		}
	}
	if len(s) >= 5 && strings.EqualFold(s[:5], "airc:") {
		return "", false, ReasonUnknownScheme, `"airc:" must be followed by "//"`
	}
	return s, false, "", ""
}

// indexDelim returns the index of the first '/', '?' or '#' in s, or len(s).
// It is strings.IndexAny without building a set on every call.
func indexDelim(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '/' || c == '?' || c == '#' {
			return i
		}
	}
	return len(s)
}

// isSchemeName is RFC 3986's scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func isSchemeName(s string) bool {
	if s == "" || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLetter(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// parseAuthority fills the routing fields of u from the authority between
// "airc://" and the path. An empty authority is Local.
func parseAuthority(u *URI, auth string) (Reason, string) {
	if auth == "" {
		u.Kind = KindLocal
		return "", ""
	}
	if rest, ok := strings.CutPrefix(auth, "room:"); ok {
		id, env, hasEnv := strings.Cut(rest, ":")
		if id == "" {
			return ReasonEmptyRoom, "no room id after room:"
		}
		room, ok := canonicalUUID(id)
		if !ok {
			return ReasonInvalidRoomUUID, "room id " + quote(id) + " is not a UUID"
		}
		if hasEnv {
			if r, d := checkEnv(env); r != "" {
				return r, d
			}
		}
		u.Kind, u.Room, u.Env = KindRoom, room, env
		return "", ""
	}
	left, env, hasEnv := strings.Cut(auth, ":")
	peer, node, hasNode := strings.Cut(left, "@")
	if peer == "" {
		return ReasonEmptyPeer, "no peer before @ or :"
	}
	canon, isUUID, r, d := checkPeer(peer)
	if r != "" {
		return r, d
	}
	if hasNode {
		if r, d := checkNode(node); r != "" {
			return r, d
		}
	}
	if hasEnv {
		if r, d := checkEnv(env); r != "" {
			return r, d
		}
	}
	u.Kind = KindPeer
	if env == "*" {
		u.Kind = KindBroadcast
	}
	u.Peer, u.PeerIsUUID, u.Node, u.Env = canon, isUUID, node, env
	return "", ""
}

// checkPeer validates a non-empty peer and returns its canonical spelling.
func checkPeer(p string) (canon string, isUUID bool, r Reason, detail string) {
	if uuidShaped(p) {
		c, ok := canonicalUUID(p)
		if !ok {
			return "", false, ReasonInvalidPeerUUID, "peer " + quote(p) + " has the shape of a UUID but is not hex"
		}
		return c, true, "", ""
	}
	if !isName(p) {
		return "", false, ReasonInvalidPeer, "peer " + quote(p) + " is not [A-Za-z0-9._-]+ (and not only dots)"
	}
	if strings.EqualFold(p, "room") {
		return "", false, ReasonReservedPeer, `"room" is a reserved sigil; address this peer by UUID`
	}
	return p, false, "", ""
}

func checkNode(n string) (Reason, string) {
	if n == "" {
		return ReasonEmptyNode, "no node after @"
	}
	if !isName(n) {
		return ReasonInvalidNode, "node " + quote(n) + " is not [A-Za-z0-9._-]+ (and not only dots)"
	}
	return "", ""
}

// checkEnv accepts the closed list of envs, "*", and x-<vendor-name> where
// vendor-name is lower-case alphanumeric words joined by single hyphens.
func checkEnv(e string) (Reason, string) {
	switch e {
	case "":
		return ReasonEmptyEnv, "no env after :"
	case "web", "tty", "cli", "vr", "ar", "headless", "*":
		return "", ""
	}
	if v, ok := strings.CutPrefix(e, "x-"); ok && isVendorName(v) {
		return "", ""
	}
	return ReasonUnknownEnv, "env " + quote(e) + " is not web, tty, cli, vr, ar, headless, x-<vendor> or *"
}

func isVendorName(v string) bool {
	if v == "" || v[0] == '-' || v[len(v)-1] == '-' {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case isLower(c) || isDigit(c):
		case c == '-' && v[i-1] != '-':
		default:
			return false
		}
	}
	return true
}

// checkPath validates a path (already split from query and fragment).
func checkPath(p string) (Reason, string) {
	if p == "" {
		return ReasonEmptyPath, "empty path"
	}
	if p[0] == '/' {
		return ReasonInvalidPath, `path must not start with "/"`
	}
	for rest := p; ; {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "" && more {
			return ReasonInvalidPath, `empty path segment ("//")`
		}
		if isDotSegment(seg) {
			return ReasonInvalidPath, "dot segment " + quote(seg) + " in path"
		}
		if !more {
			return "", ""
		}
		rest = tail
	}
}

// isDotSegment reports "." and "..", also spelled with %2e / %2E, because
// the path is not decoded here but may be decoded downstream.
func isDotSegment(seg string) bool {
	dots := 0
	for seg != "" {
		switch {
		case seg[0] == '.':
			seg = seg[1:]
		case len(seg) >= 3 && seg[0] == '%' && seg[1] == '2' && (seg[2] == 'e' || seg[2] == 'E'):
			seg = seg[3:]
		default:
			return false
		}
		if dots++; dots > 2 {
			return false
		}
	}
	return dots > 0
}

// uuidShaped reports the 8-4-4-4-12 shape: 36 bytes, hyphens exactly at 8,
// 13, 18 and 23. Such a peer is a UUID or an error, never a name.
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

// canonicalUUID validates an 8-4-4-4-12 hex UUID and lower-cases it in one
// pass, allocating only when s has upper-case digits.
func canonicalUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	var lower [36]byte
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			switch {
			case isDigit(c), 'a' <= c && c <= 'f':
			case 'A' <= c && c <= 'F':
				upper = true
				c += 'a' - 'A'
			default:
				return "", false
			}
		}
		lower[i] = c
	}
	if upper {
		return string(lower[:]), true
	}
	return s, true
}

// isName is the peer and node alphabet: ASCII letters, digits, - _ . but
// not dots alone: names end up in file paths and host names downstream, where
// "." and ".." mean something else.
func isName(s string) bool {
	dotsOnly := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '.' {
			dotsOnly = false
		}
		if !isLetter(c) && !isDigit(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return !dotsOnly
}

// bareReadsBack reports whether a Local path written in the bare form
// parses back as that path: not when it would read as a scheme ("AirC:",
// "airc:x"), which the bare form refuses; such a path renders as
// "airc:///AirC:".
func bareReadsBack(path string) bool {
	rest, scheme, r, _ := splitScheme(path)
	return !scheme && r == "" && rest == path
}

// String renders the canonical form: Local in the bare form (unless the
// path would read as a scheme there, see bareReadsBack), everything
// else as airc://. For every URI returned by Parse, Parse(u.String())
// returns u. The result for a URI that Parse could not have returned (for
// example the zero URI, which has no path) is unspecified.
func (u URI) String() string {
	var auth1, auth2, auth3, auth4, auth5 string
	bare := u.Kind == KindLocal && bareReadsBack(u.Path)
	switch u.Kind {
	case KindLocal:
		if u.Query == "" && u.Fragment == "" && bare {
			return u.Path
		}
	case KindRoom:
		auth1, auth2 = "room:", u.Room
		if u.Env != "" {
			auth4, auth5 = ":", u.Env
		}
	default: // KindPeer, KindBroadcast
		auth1 = u.Peer
		if u.Node != "" {
			auth2, auth3 = "@", u.Node
		}
		if u.Env != "" {
			auth4, auth5 = ":", u.Env
		}
	}
	var b strings.Builder
	b.Grow(len("airc:///") + len(auth1) + len(auth2) + len(auth3) + len(auth4) + len(auth5) +
		len(u.Path) + 1 + len(u.Query) + 1 + len(u.Fragment))
	if !bare {
		b.WriteString("airc://")
		b.WriteString(auth1)
		b.WriteString(auth2)
		b.WriteString(auth3)
		b.WriteString(auth4)
		b.WriteString(auth5)
		b.WriteByte('/')
	}
	b.WriteString(u.Path)
	if u.Query != "" {
		b.WriteByte('?')
		b.WriteString(u.Query)
	}
	if u.Fragment != "" {
		b.WriteByte('#')
		b.WriteString(u.Fragment)
	}
	return b.String()
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isLower(c byte) bool  { return 'a' <= c && c <= 'z' }
func isUpper(c byte) bool  { return 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// quote keeps details short: a component longer than a UUID is cut.
func quote(s string) string {
	const max = 48
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
