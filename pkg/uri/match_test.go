package uri_test

import (
	"errors"
	"testing"

	"github.com/continuum-mesh/continuum/pkg/uri"
)

func TestMatchPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"genome/page-in", "genome/page-in", true},
		{"genome/page-in", "genome/page-out", false},
		{"genome/page-in", "genome/page-in/", false},
		{"genome/page-in", "genome", false},
		{"genome/*", "genome/page-in", true},
		{"genome/*", "genome/page-in/x", false},
		{"genome/*", "genome", false},
		{"genome/*", "genome/", false}, // * needs a non-empty segment
		{"*/page-in", "genome/page-in", true},
		{"*/*", "a/b", true},
		{"*/*", "a", false},
		{"*", "a", true},
		{"*", "a/b", false},
		{"genome/**", "genome", true}, // zero segments
		{"genome/**", "genome/page-in", true},
		{"genome/**", "genome/a/b/c", true},
		{"genome/**", "genome/", true},
		{"genome/**", "genomes/x", false},
		{"genome/**", "other/genome", false},
		{"**", "anything/at/all/", true},
		{"**", "x", true},
		{"*/**", "x", true},
		{"*/*/**", "x", false},
		{"cognition/genome/*/", "cognition/genome/lora:ts/", true},
		{"cognition/genome/*", "cognition/genome/lora:ts/", false},
		{"cognition/genome/", "cognition/genome/", true},
		{"cognition/genome/", "cognition/genome", false},
		{"data:chat:created", "data:chat:created", true},
		{"data:*:created", "data:chat:created", false}, // colon globs are the event matcher's, not ours
		{"Genome/page-in", "genome/page-in", false},    // literal and case-sensitive
		// Invalid patterns never match, not even themselves.
		{"", "", false},
		{"genome/page-*", "genome/page-*", false},
		{"genome/**/x", "genome/a/x", false},
		{"**/x", "a/x", false},
		{"genome//x", "genome//x", false},
		{"/genome/x", "/genome/x", false},
		{"genome/../x", "genome/../x", false},
		{"genome/x?y", "genome/x?y", false},
		{"genome/x y", "genome/x y", false},
		{"airc:///genome/x", "genome/x", false}, // a URI pattern, not a path pattern
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			if got := uri.MatchPath(tt.pattern, tt.path); got != tt.want {
				t.Errorf("MatchPath(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
			}
		})
	}
}

func TestMatchURI(t *testing.T) {
	t.Parallel()
	var (
		local     = uri.MustParse("genome/page-in")
		peer      = uri.MustParse("airc://maya/genome/page-in")
		peerFull  = uri.MustParse("airc://maya@rig:vr/genome/page-in?q#f")
		peerUUID  = uri.MustParse("airc://" + peerID + "/genome/page-in")
		broadcast = uri.MustParse("airc://maya:*/genome/page-in")
		room      = uri.MustParse("airc://room:" + roomID + "/genome/page-in")
		roomWeb   = uri.MustParse("airc://room:" + roomID + ":web/genome/page-in")
	)
	tests := []struct {
		name    string
		pattern string
		u       uri.URI
		want    bool
	}{
		{"bare pattern any local", "genome/*", local, true},
		{"bare pattern any peer", "genome/*", peerFull, true},
		{"bare pattern any room", "genome/**", roomWeb, true},
		{"bare pattern any broadcast", "**", broadcast, true},
		{"bare pattern path mismatch", "mesh/*", peer, false},

		{"local pattern local", "airc:///genome/page-in", local, true},
		{"local pattern peer", "airc:///genome/page-in", peer, false},
		{"local pattern room", "airc:///**", room, false},

		{"peer exact", "airc://maya/genome/page-in", peer, true},
		{"peer other name", "airc://eve/genome/page-in", peer, false},
		{"peer name is case-sensitive", "airc://Maya/genome/page-in", peer, false},
		{"peer absent node and env are any", "airc://maya/genome/*", peerFull, true},
		{"peer node literal", "airc://maya@rig/**", peerFull, true},
		{"peer node other", "airc://maya@other/**", peerFull, false},
		{"peer node literal needs a node", "airc://maya@rig/**", peer, false},
		{"peer node star", "airc://maya@*/**", peer, true},
		{"peer env literal", "airc://maya:vr/**", peerFull, true},
		{"peer env other", "airc://maya:web/**", peerFull, false},
		{"peer env literal needs an env", "airc://maya:vr/**", peer, false},
		{"peer env star any", "airc://maya:*/**", peerFull, true},
		{"peer env star matches no env", "airc://maya:*/**", peer, true},
		{"peer star", "airc://*/genome/page-in", peer, true},
		{"peer star full", "airc://*@*:*/genome/page-in", peerFull, true},
		{"peer star not local", "airc://*/genome/page-in", local, false},
		{"peer star not room", "airc://*/genome/page-in", room, false},
		{"peer uuid", "airc://" + peerID + "/**", peerUUID, true},
		{"peer uuid any case", "airc://" + peerIDU + "/**", peerUUID, true},
		{"peer uuid vs name", "airc://" + peerID + "/**", peer, false},
		{"peer pattern covers broadcast", "airc://maya/**", broadcast, true},
		{"peer star env covers broadcast", "airc://maya:*/**", broadcast, true},
		{"literal env does not cover broadcast", "airc://maya:vr/**", broadcast, false},
		{"peer path mismatch", "airc://maya/mesh/*", peerFull, false},

		{"room exact", "airc://room:" + roomID + "/**", room, true},
		{"room upper-case pattern", "airc://room:" + upper(roomID) + "/**", room, true},
		{"room star", "airc://room:*/genome/page-in", roomWeb, true},
		{"room env literal", "airc://room:*:web/**", roomWeb, true},
		{"room env literal needs env", "airc://room:*:web/**", room, false},
		{"room env other", "airc://room:*:vr/**", roomWeb, false},
		{"room other id", "airc://room:" + peerID + "/**", room, false},
		{"room pattern not peer", "airc://room:*/**", peer, false},

		{"invalid pattern never matches", "airc://maya:desktop/**", peer, false},
		{"invalid path pattern never matches", "airc://maya/genome/**/x", peer, false},
		{"query in pattern", "airc://maya/genome/page-in?q", peerFull, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := uri.MatchURI(tt.pattern, tt.u); got != tt.want {
				t.Errorf("MatchURI(%q, %v) = %v, want %v", tt.pattern, tt.u, got, tt.want)
			}
		})
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestValidatePattern(t *testing.T) {
	t.Parallel()
	valid := []string{
		"genome/page-in",
		"genome/*",
		"genome/**",
		"**",
		"*/page-in",
		"cognition/genome/*/",
		"data:chat:created",
		"airc:///genome/**",
		"airc://maya/genome/**",
		"airc://*/genome/**",
		"airc://*@*:*/**",
		"airc://maya@rig:vr/x",
		"airc://maya:x-acme/x",
		"airc://" + peerIDU + "/x",
		"airc://room:*/x",
		"airc://room:*:*/x",
		"airc://room:" + roomID + ":web/x",
		"AIRC://maya/x",
	}
	for _, p := range valid {
		if err := uri.ValidatePattern(p); err != nil {
			t.Errorf("ValidatePattern(%q) = %v, want nil", p, err)
		}
	}
	invalid := []struct {
		pattern string
		want    uri.Reason
	}{
		{"", uri.ReasonEmpty},
		{"genome/page-*", uri.ReasonInvalidPattern},
		{"genome/*x", uri.ReasonInvalidPattern},
		{"genome/***", uri.ReasonInvalidPattern},
		{"genome/**/x", uri.ReasonInvalidPattern},
		{"genome/**/", uri.ReasonInvalidPattern},
		{"**/**", uri.ReasonInvalidPattern},
		{"genome/x?q", uri.ReasonInvalidPattern},
		{"genome/x#f", uri.ReasonInvalidPattern},
		{"airc://maya/x?q", uri.ReasonInvalidPattern},
		{"genome//x", uri.ReasonInvalidPath},
		{"/genome/x", uri.ReasonInvalidPath},
		{"genome/./x", uri.ReasonInvalidPath},
		{"genome/x y", uri.ReasonInvalidCharacter},
		{"http://maya/x", uri.ReasonUnknownScheme},
		{"airc:maya/x", uri.ReasonUnknownScheme},
		{"airc://maya", uri.ReasonEmptyPath},
		{"airc://maya/", uri.ReasonEmptyPath},
		{"airc://:vr/x", uri.ReasonEmptyPeer},
		{"airc://@rig/x", uri.ReasonEmptyPeer},
		{"airc://maya@/x", uri.ReasonEmptyNode},
		{"airc://maya:/x", uri.ReasonEmptyEnv},
		{"airc://maya:desktop/x", uri.ReasonUnknownEnv},
		{"airc://ma*ya/x", uri.ReasonInvalidPeer},
		{"airc://room/x", uri.ReasonReservedPeer},
		{"airc://zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz/x", uri.ReasonInvalidPeerUUID},
		{"airc://maya@r*g/x", uri.ReasonInvalidNode},
		{"airc://room:/x", uri.ReasonEmptyRoom},
		{"airc://room:abc/x", uri.ReasonInvalidRoomUUID},
		{"airc://room:a*/x", uri.ReasonInvalidRoomUUID},
		{"airc://room:*:/x", uri.ReasonEmptyEnv},
	}
	for _, tt := range invalid {
		err := uri.ValidatePattern(tt.pattern)
		var pe *uri.ParseError
		if !errors.As(err, &pe) || pe.Reason != tt.want {
			t.Errorf("ValidatePattern(%q) = %v, want %s", tt.pattern, err, tt.want)
		}
	}
}
