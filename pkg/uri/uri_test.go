package uri_test

import (
	"errors"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/quick"

	"github.com/google/go-cmp/cmp"

	"github.com/continuum-mesh/continuum/pkg/uri"
)

const (
	roomID  = "0b6c3a52-7d1e-4f3a-9c2b-8e5d4f6a7b8c"
	peerID  = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
	peerIDU = "6F1C2A3B-4D5E-4F60-8A7B-9C0D1E2F3A4B"
)

// TestParseVariants has one row per row of the contract's variant table, then
// the edge cases the contract calls out in prose.
func TestParseVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want uri.URI
	}{
		// The variant table, in order.
		{
			"local bare", "inference/llm/generate",
			uri.URI{Kind: uri.KindLocal, Path: "inference/llm/generate"},
		},
		{
			"local bare query fragment", "inference/llm/generate?model=x#f",
			uri.URI{Kind: uri.KindLocal, Path: "inference/llm/generate", Query: "model=x", Fragment: "f"},
		},
		{
			"local airc triple slash", "airc:///inference/llm/generate",
			uri.URI{Kind: uri.KindLocal, Path: "inference/llm/generate"},
		},
		{
			"peer name", "airc://maya/inference/llm/generate",
			uri.URI{Kind: uri.KindPeer, Peer: "maya", Path: "inference/llm/generate"},
		},
		{
			"peer uuid", "airc://" + peerID + "/path",
			uri.URI{Kind: uri.KindPeer, Peer: peerID, PeerIsUUID: true, Path: "path"},
		},
		{
			"peer node", "airc://maya@5090-rig/scene/spawn",
			uri.URI{Kind: uri.KindPeer, Peer: "maya", Node: "5090-rig", Path: "scene/spawn"},
		},
		{
			"peer env", "airc://maya:vr/scene/spawn",
			uri.URI{Kind: uri.KindPeer, Peer: "maya", Env: "vr", Path: "scene/spawn"},
		},
		{
			"peer node env", "airc://maya@5090-rig:vr/scene/spawn",
			uri.URI{Kind: uri.KindPeer, Peer: "maya", Node: "5090-rig", Env: "vr", Path: "scene/spawn"},
		},
		{
			"broadcast", "airc://maya:*/notification/post",
			uri.URI{Kind: uri.KindBroadcast, Peer: "maya", Env: "*", Path: "notification/post"},
		},
		{
			"broadcast node", "airc://maya@5090-rig:*/notification/post",
			uri.URI{Kind: uri.KindBroadcast, Peer: "maya", Node: "5090-rig", Env: "*", Path: "notification/post"},
		},
		{
			"room", "airc://room:" + roomID + "/render/start",
			uri.URI{Kind: uri.KindRoom, Room: roomID, Path: "render/start"},
		},
		{
			"room env", "airc://room:" + roomID + ":web/render/start",
			uri.URI{Kind: uri.KindRoom, Room: roomID, Env: "web", Path: "render/start"},
		},

		// Prose of the contract and the decisions documented in the package.
		{
			"upper-case peer uuid is canonicalised", "airc://" + peerIDU + "/path",
			uri.URI{Kind: uri.KindPeer, Peer: peerID, PeerIsUUID: true, Path: "path"},
		},
		{
			"upper-case room uuid is canonicalised", "airc://room:" + strings.ToUpper(roomID) + "/x",
			uri.URI{Kind: uri.KindRoom, Room: roomID, Path: "x"},
		},
		{
			"hyphenated name is a name", "airc://ai-provider-1/x",
			uri.URI{Kind: uri.KindPeer, Peer: "ai-provider-1", Path: "x"},
		},
		{
			"32 hex without hyphens is a name", "airc://6f1c2a3b4d5e4f608a7b9c0d1e2f3a4b/x",
			uri.URI{Kind: uri.KindPeer, Peer: "6f1c2a3b4d5e4f608a7b9c0d1e2f3a4b", Path: "x"},
		},
		{
			"name with dot and underscore", "airc://maya.v2_beta@rig_1.lan/x",
			uri.URI{Kind: uri.KindPeer, Peer: "maya.v2_beta", Node: "rig_1.lan", Path: "x"},
		},
		{
			"names with dots and more", "airc://...a@_.../x",
			uri.URI{Kind: uri.KindPeer, Peer: "...a", Node: "_...", Path: "x"},
		},
		{
			"peer named room by uuid", "airc://" + peerID + ":tty/x",
			uri.URI{Kind: uri.KindPeer, Peer: peerID, PeerIsUUID: true, Env: "tty", Path: "x"},
		},
		{
			"colons dots trailing slash in path", "airc://maya/cognition/genome/lora:typescript-expertise/",
			uri.URI{Kind: uri.KindPeer, Peer: "maya", Path: "cognition/genome/lora:typescript-expertise/"},
		},
		{
			"artifact key", "genome/working_set.page_fault",
			uri.URI{Kind: uri.KindLocal, Path: "genome/working_set.page_fault"},
		},
		{
			"event topic with colons", "data:chat:created",
			uri.URI{Kind: uri.KindLocal, Path: "data:chat:created"},
		},
		{
			"colon path that looks like a scheme without //", "http:x/y",
			uri.URI{Kind: uri.KindLocal, Path: "http:x/y"},
		},
		{"single segment", "x", uri.URI{Kind: uri.KindLocal, Path: "x"}},
		{
			"dotted segment that is not a dot segment", "a/.../.hidden/b.",
			uri.URI{Kind: uri.KindLocal, Path: "a/.../.hidden/b."},
		},
		{
			"percent escapes kept verbatim", "a/b%20c?q=%41#%2F",
			uri.URI{Kind: uri.KindLocal, Path: "a/b%20c", Query: "q=%41", Fragment: "%2F"},
		},
		{
			"fragment holds # and ?", "x#a#b?c",
			uri.URI{Kind: uri.KindLocal, Path: "x", Fragment: "a#b?c"},
		},
		{
			"query holds ? and /", "airc://maya/x?a=1?b=/c",
			uri.URI{Kind: uri.KindPeer, Peer: "maya", Path: "x", Query: "a=1?b=/c"},
		},
		{
			"empty query and fragment", "x?#",
			uri.URI{Kind: uri.KindLocal, Path: "x"},
		},
		{
			"scheme is case-insensitive", "AIRC://maya/x",
			uri.URI{Kind: uri.KindPeer, Peer: "maya", Path: "x"},
		},
		{
			"custom env", "airc://maya:x-acme-glasses2/x",
			uri.URI{Kind: uri.KindPeer, Peer: "maya", Env: "x-acme-glasses2", Path: "x"},
		},
		{
			"room with every env", "airc://room:" + roomID + ":*/x",
			uri.URI{Kind: uri.KindRoom, Room: roomID, Env: "*", Path: "x"},
		},
		{
			"non-ASCII path", "airc://maya/gr\u00fc\u00dfe/\u65e5\u672c",
			uri.URI{Kind: uri.KindPeer, Peer: "maya", Path: "gr\u00fc\u00dfe/\u65e5\u672c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := uri.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// TestParseErrors covers every error of the contract's error list, then the
// ones this package adds; rows are checked by Reason, never by message.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want uri.Reason
	}{
		// The contract's list, in order.
		{"unknown scheme", "http://x/y", uri.ReasonUnknownScheme},
		{"empty input", "", uri.ReasonEmpty},
		{"empty path no slash", "airc://maya", uri.ReasonEmptyPath},
		{"empty path slash", "airc://maya/", uri.ReasonEmptyPath},
		{"empty peer before @", "airc://@node/x", uri.ReasonEmptyPeer},
		{"empty node", "airc://maya@/x", uri.ReasonEmptyNode},
		{"empty env", "airc://maya:/x", uri.ReasonEmptyEnv},
		{"empty room id", "airc://room:/x", uri.ReasonEmptyRoom},
		{"invalid room uuid", "airc://room:abc/x", uri.ReasonInvalidRoomUUID},
		{"malformed peer uuid", "airc://6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4z/x", uri.ReasonInvalidPeerUUID},
		{"whitespace", "genome/page in", uri.ReasonInvalidCharacter},
		{"control character", "genome/page\x00in", uri.ReasonInvalidCharacter},

		// Variations on the contract's list.
		{"unknown scheme https", "https://maya/x", uri.ReasonUnknownScheme},
		{"unknown scheme upper", "HTTP://x/y", uri.ReasonUnknownScheme},
		{"airc without slashes", "airc:maya/x", uri.ReasonUnknownScheme},
		{"airc one slash", "airc:/x", uri.ReasonUnknownScheme},
		{"scheme only", "airc://", uri.ReasonEmptyPath},
		{"triple slash only", "airc:///", uri.ReasonEmptyPath},
		{"empty path before query", "airc://maya?x=1", uri.ReasonEmptyPath},
		{"empty path before fragment", "airc://maya/#f", uri.ReasonEmptyPath},
		{"bare empty path with query", "?x=1", uri.ReasonEmptyPath},
		{"bare empty path with fragment", "#f", uri.ReasonEmptyPath},
		{"env without peer", "airc://:vr/x", uri.ReasonEmptyPeer},
		{"broadcast without peer", "airc://:*/x", uri.ReasonEmptyPeer},
		{"empty node before env", "airc://maya@:vr/x", uri.ReasonEmptyNode},
		{"empty env after node", "airc://maya@rig:/x", uri.ReasonEmptyEnv},
		{"empty room env", "airc://room:" + roomID + ":/x", uri.ReasonEmptyEnv},
		{"room uuid bad hex", "airc://room:0b6c3a52-7d1e-4f3a-9c2b-8e5d4f6a7b8g/x", uri.ReasonInvalidRoomUUID},
		{"room uuid short", "airc://room:0b6c3a52-7d1e-4f3a-9c2b-8e5d4f6a7b8/x", uri.ReasonInvalidRoomUUID},
		{"room with node", "airc://room:" + roomID + "@rig/x", uri.ReasonInvalidRoomUUID},
		{"room wildcard", "airc://room:*/x", uri.ReasonInvalidRoomUUID},
		{"peer uuid all z", "airc://zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz/x", uri.ReasonInvalidPeerUUID},
		{"peer uuid with node", "airc://zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz@rig/x", uri.ReasonInvalidPeerUUID},
		{"whitespace tab", "airc://maya/x\ty", uri.ReasonInvalidCharacter},
		{"whitespace in authority", "airc://ma ya/x", uri.ReasonInvalidCharacter},
		{"whitespace in query", "x?a b", uri.ReasonInvalidCharacter},
		{"newline in fragment", "x#a\nb", uri.ReasonInvalidCharacter},
		{"DEL", "x\x7f", uri.ReasonInvalidCharacter},
		{"C1 control", "x\u0085", uri.ReasonInvalidCharacter},
		{"no-break space", "x\u00a0y", uri.ReasonInvalidCharacter},
		{"line separator", "x\u2028y", uri.ReasonInvalidCharacter},
		{"bidi override", "x/\u202egpj", uri.ReasonInvalidCharacter},
		{"zero-width space", "x\u200by", uri.ReasonInvalidCharacter},
		{"byte order mark", "\ufeffx", uri.ReasonInvalidCharacter},
		{"invalid UTF-8", "x/\xff", uri.ReasonInvalidCharacter},
		{"too long", strings.Repeat("a", uri.MaxLength+1), uri.ReasonTooLong},
		{"invalid peer char", "airc://ma!ya/x", uri.ReasonInvalidPeer},
		{"invalid peer non-ASCII", "airc://m\u00e4ya/x", uri.ReasonInvalidPeer},
		{"invalid node char", "airc://maya@rig+1/x", uri.ReasonInvalidNode},
		{"dots-only peer", "airc://../x", uri.ReasonInvalidPeer},
		{"dot peer", "airc://./x", uri.ReasonInvalidPeer},
		{"dots-only node", "airc://maya@../x", uri.ReasonInvalidNode},
		{"double @", "airc://maya@a@b/x", uri.ReasonInvalidNode},
		{"unknown env", "airc://maya:desktop/x", uri.ReasonUnknownEnv},
		{"env is case-sensitive", "airc://maya:VR/x", uri.ReasonUnknownEnv},
		{"two envs", "airc://maya:vr:web/x", uri.ReasonUnknownEnv},
		{"bare x- env", "airc://maya:x-/x", uri.ReasonUnknownEnv},
		{"x- env upper", "airc://maya:x-Acme/x", uri.ReasonUnknownEnv},
		{"x- env double hyphen", "airc://maya:x-acme--vr/x", uri.ReasonUnknownEnv},
		{"x- env trailing hyphen", "airc://maya:x-acme-/x", uri.ReasonUnknownEnv},
		{"room env unknown", "airc://room:" + roomID + ":desktop/x", uri.ReasonUnknownEnv},
		{"reserved peer", "airc://room/x", uri.ReasonReservedPeer},
		{"reserved peer upper", "airc://ROOM/x", uri.ReasonReservedPeer},
		{"reserved peer with node", "airc://room@rig/x", uri.ReasonReservedPeer},
		{"room sigil with env-like id", "airc://room:web/x", uri.ReasonInvalidRoomUUID},
		{"bare leading slash", "/inference/llm/generate", uri.ReasonInvalidPath},
		{"airc leading double slash", "airc://maya//x", uri.ReasonInvalidPath},
		{"empty segment", "genome//page-in", uri.ReasonInvalidPath},
		{"double trailing slash", "genome/page-in//", uri.ReasonInvalidPath},
		{"dot segment", "genome/./page-in", uri.ReasonInvalidPath},
		{"dot dot segment", "airc://maya/genome/../debug/x", uri.ReasonInvalidPath},
		{"leading dot dot", "../x", uri.ReasonInvalidPath},
		{"trailing dot", "x/.", uri.ReasonInvalidPath},
		{"trailing dot dot slash", "x/../", uri.ReasonInvalidPath},
		{"encoded dot dot", "x/%2e%2e/y", uri.ReasonInvalidPath},
		{"encoded dot dot mixed", "x/.%2E/y", uri.ReasonInvalidPath},
		{"encoded dot", "x/%2E", uri.ReasonInvalidPath},
		{"scheme-shaped but not a scheme", "lora:x://y", uri.ReasonInvalidPath},
		{"empty scheme", "://x", uri.ReasonInvalidPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, err := uri.Parse(tt.in)
			var pe *uri.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) = %+v, %v; want *ParseError %s", tt.in, u, err, tt.want)
			}
			if pe.Reason != tt.want {
				t.Errorf("Parse(%q) reason = %s (%v), want %s", tt.in, pe.Reason, err, tt.want)
			}
			if pe.Input != tt.in {
				t.Errorf("ParseError.Input = %q, want the input %q", pe.Input, tt.in)
			}
			if u != (uri.URI{}) {
				t.Errorf("Parse(%q) returned %+v with an error; want the zero URI", tt.in, u)
			}
			if !strings.Contains(err.Error(), string(tt.want)) {
				t.Errorf("Error() = %q does not name the reason", err.Error())
			}
		})
	}
}

func TestParseLengthLimit(t *testing.T) {
	t.Parallel()
	at := "airc://maya/" + strings.Repeat("a", uri.MaxLength-len("airc://maya/"))
	if _, err := uri.Parse(at); err != nil {
		t.Errorf("Parse of exactly %d bytes: %v", uri.MaxLength, err)
	}
	if _, err := uri.Parse(at + "a"); reasonOf(err) != uri.ReasonTooLong {
		t.Errorf("Parse of %d bytes: %v, want %s", uri.MaxLength+1, err, uri.ReasonTooLong)
	}
	if len(errorString(at+strings.Repeat("a", 1<<16))) > 512 {
		t.Error("Error() of a long input is not truncated")
	}
}

func errorString(s string) string {
	_, err := uri.Parse(s)
	return err.Error()
}

func reasonOf(err error) uri.Reason {
	var pe *uri.ParseError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return ""
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"inference/llm/generate", "inference/llm/generate"},
		{"airc:///inference/llm/generate", "inference/llm/generate"},
		{"airc:///x?q=1#f", "x?q=1#f"},
		{"x?#", "x"},
		{"x?q", "x?q"},
		{"x#f", "x#f"},
		{"AIRC://maya/x", "airc://maya/x"},
		{"airc://maya/x", "airc://maya/x"},
		{"airc://maya@5090-rig:vr/scene/spawn?a=b#c", "airc://maya@5090-rig:vr/scene/spawn?a=b#c"},
		{"airc://maya@5090-rig/scene/spawn", "airc://maya@5090-rig/scene/spawn"},
		{"airc://maya:*/notification/post", "airc://maya:*/notification/post"},
		{"airc://" + peerIDU + "@rig:tty/x", "airc://" + peerID + "@rig:tty/x"},
		{"airc://room:" + strings.ToUpper(roomID) + ":web/render/start", "airc://room:" + roomID + ":web/render/start"},
		{"airc://room:" + roomID + "/render/start?", "airc://room:" + roomID + "/render/start"},
		{"cognition/genome/lora:ts/", "cognition/genome/lora:ts/"},
		// A Local path that would read as a scheme in the bare form keeps
		// the airc:/// prefix (FuzzParse found "AirC:///AirC:").
		{"AirC:///AirC:", "airc:///AirC:"},
		{"airc:///airc:x/y?q", "airc:///airc:x/y?q"},
		{"airc:///air:x", "air:x"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			u := uri.MustParse(tt.in)
			if got := u.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if again := uri.MustParse(u.String()); again != u {
				t.Errorf("Parse(String()) = %+v, want %+v", again, u)
			}
		})
	}
}

// TestRoundTripCombinations renders every combination of a set of valid
// components and checks the canonical-form property on each.
func TestRoundTripCombinations(t *testing.T) {
	t.Parallel()
	authorities := []string{"", "maya", "ai-provider-1", peerID, peerIDU, "AIRC.peer_1"}
	nodes := []string{"", "@5090-rig", "@n.lan"}
	envs := []string{"", ":web", ":tty", ":cli", ":vr", ":ar", ":headless", ":x-acme", ":*"}
	rooms := []string{"room:" + roomID, "room:" + strings.ToUpper(roomID)}
	paths := []string{"x", "genome/page-in", "cognition/genome/lora:ts/", "data:chat:created", "a/b.c/d_e"}
	tails := []string{"", "?", "#", "?q=1", "#f", "?q=1#f", "?a?b#c#d", "?#"}

	var inputs []string
	for _, p := range paths {
		for _, tl := range tails {
			inputs = append(inputs, p+tl, "airc:///"+p+tl)
			for _, a := range authorities {
				if a == "" {
					continue
				}
				for _, n := range nodes {
					for _, e := range envs {
						inputs = append(inputs, "airc://"+a+n+e+"/"+p+tl)
					}
				}
			}
			for _, r := range rooms {
				for _, e := range envs {
					inputs = append(inputs, "airc://"+r+e+"/"+p+tl)
				}
			}
		}
	}
	for _, in := range inputs {
		u, err := uri.Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		checkCanonical(t, in, u)
	}
}

// checkCanonical asserts Parse(u.String()) == u and that String is a fixed
// point of Parse∘String.
func checkCanonical(t *testing.T, in string, u uri.URI) {
	t.Helper()
	s := u.String()
	again, err := uri.Parse(s)
	if err != nil {
		t.Errorf("Parse(%q) = %+v, but Parse(String() = %q): %v", in, u, s, err)
		return
	}
	if again != u {
		t.Errorf("Parse(%q) = %+v, Parse(%q) = %+v", in, u, s, again)
	}
	if s2 := again.String(); s2 != s {
		t.Errorf("String not a fixed point: %q then %q", s, s2)
	}
}

// validURI generates URIs from valid components, for testing/quick.
type validURI struct{ in string }

func (validURI) Generate(r *rand.Rand, _ int) reflect.Value {
	pick := func(xs ...string) string { return xs[r.Intn(len(xs))] }
	word := func(alphabet string, min, max int) string {
		n := min + r.Intn(max-min+1)
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.Intn(len(alphabet))]
		}
		return string(b)
	}
	const nameChars = "abcXYZ019-_."
	name := func() string {
		n := word(nameChars, 1, 8)
		for strings.Trim(n, ".") == "" {
			n = word(nameChars, 1, 8)
		}
		return n
	}
	const pathChars = "abz09-_.:@!$&'()*+,;=%~"
	var path []string
	for range 1 + r.Intn(4) {
		seg := word(pathChars, 1, 6)
		for strings.Trim(seg, ".") == "" || strings.Contains(strings.ToLower(seg), "%2e") {
			seg = word(pathChars, 1, 6)
		}
		path = append(path, seg)
	}
	p := strings.Join(path, "/") + pick("", "/")
	if strings.HasPrefix(strings.ToLower(p), "airc:") {
		p = "x" + p
	}
	tail := pick("", "?"+word(pathChars+"/?", 0, 5)) + pick("", "#"+word(pathChars+"/?#", 0, 5))
	uuid := func() string {
		h := word("0123456789abcdefABCDEF", 32, 32)
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	}
	env := pick("", ":web", ":tty", ":cli", ":vr", ":ar", ":headless", ":*", ":x-"+word("abc123", 1, 4))
	var s string
	switch r.Intn(4) {
	case 0:
		s = p + tail
	case 1:
		s = "airc:///" + p + tail
	case 2:
		peer := name()
		if strings.EqualFold(peer, "room") || r.Intn(4) == 0 {
			peer = uuid()
		}
		node := pick("", "@"+name())
		s = "airc://" + peer + node + env + "/" + p + tail
	default:
		s = "airc://room:" + uuid() + env + "/" + p + tail
	}
	return reflect.ValueOf(validURI{s})
}

func TestRoundTripQuick(t *testing.T) {
	t.Parallel()
	property := func(v validURI) bool {
		u, err := uri.Parse(v.in)
		if err != nil {
			t.Errorf("generated input %q: %v", v.in, err)
			return false
		}
		s := u.String()
		again, err := uri.Parse(s)
		return err == nil && again == u && again.String() == s
	}
	if err := quick.Check(property, &quick.Config{MaxCount: 20000}); err != nil {
		t.Error(err)
	}
}

func TestMustParsePanics(t *testing.T) {
	t.Parallel()
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || reasonOf(err) != uri.ReasonEmptyPath {
			t.Errorf("MustParse panicked with %v, want a *ParseError %s", r, uri.ReasonEmptyPath)
		}
	}()
	uri.MustParse("airc://maya/")
}

func TestKindString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		k    uri.Kind
		want string
	}{
		{uri.KindLocal, "local"},
		{uri.KindPeer, "peer"},
		{uri.KindRoom, "room"},
		{uri.KindBroadcast, "broadcast"},
		{uri.Kind(7), "Kind(7)"},
		{uri.Kind(-1), "Kind(-1)"},
	}
	for _, tt := range tests {
		if got := tt.k.String(); got != tt.want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(tt.k), got, tt.want)
		}
	}
}

func TestCommandPath(t *testing.T) {
	t.Parallel()
	if got := uri.MustParse("airc://maya:vr/genome/page-in?x#y").CommandPath(); got != "genome/page-in" {
		t.Errorf("CommandPath() = %q", got)
	}
}

func TestRoute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   uri.URI
		want uri.Decision
	}{
		{
			"local", uri.MustParse("genome/page-in?a#b"),
			uri.Decision{Kind: uri.KindLocal, Path: "genome/page-in", Query: "a", Fragment: "b"},
		},
		{
			"peer", uri.MustParse("airc://maya@rig:vr/scene/spawn"),
			uri.Decision{Kind: uri.KindPeer, Peer: "maya", Node: "rig", Env: "vr", Path: "scene/spawn"},
		},
		{
			"peer uuid", uri.MustParse("airc://" + peerIDU + "/x"),
			uri.Decision{Kind: uri.KindPeer, Peer: peerID, Path: "x"},
		},
		{
			"broadcast", uri.MustParse("airc://maya@rig:*/notification/post"),
			uri.Decision{Kind: uri.KindBroadcast, Peer: "maya", Node: "rig", Env: "*", Path: "notification/post"},
		},
		{
			"room", uri.MustParse("airc://room:" + roomID + ":web/render/start"),
			uri.Decision{Kind: uri.KindRoom, Room: roomID, Env: "web", Path: "render/start"},
		},
		// Hand-built values: Route keeps only what the Kind defines.
		{
			"local drops stray routing fields",
			uri.URI{Kind: uri.KindLocal, Peer: "eve", Node: "n", Env: "vr", Room: roomID, Path: "x"},
			uri.Decision{Kind: uri.KindLocal, Path: "x"},
		},
		{
			"room drops peer",
			uri.URI{Kind: uri.KindRoom, Peer: "eve", Node: "n", Room: roomID, Path: "x"},
			uri.Decision{Kind: uri.KindRoom, Room: roomID, Path: "x"},
		},
		{
			"peer drops room",
			uri.URI{Kind: uri.KindPeer, Peer: "maya", Room: roomID, Path: "x"},
			uri.Decision{Kind: uri.KindPeer, Peer: "maya", Path: "x"},
		},
		{
			"broadcast always all envs",
			uri.URI{Kind: uri.KindBroadcast, Peer: "maya", Path: "x"},
			uri.Decision{Kind: uri.KindBroadcast, Peer: "maya", Env: "*", Path: "x"},
		},
		{
			"unknown kind carries no target",
			uri.URI{Kind: uri.Kind(9), Peer: "maya", Room: roomID, Path: "x"},
			uri.Decision{Kind: uri.Kind(9), Path: "x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, uri.Route(tt.in)); diff != "" {
				t.Errorf("Route mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
