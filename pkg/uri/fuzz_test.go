package uri_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/continuum-mesh/continuum/pkg/uri"
)

// knownReasons is every Reason Parse, ValidatePattern and MethodFor may
// return; a fuzz input producing anything else is a bug (the reasons are a
// wire contract).
var knownReasons = map[uri.Reason]bool{
	uri.ReasonEmpty: true, uri.ReasonTooLong: true, uri.ReasonInvalidCharacter: true,
	uri.ReasonUnknownScheme: true, uri.ReasonEmptyPath: true, uri.ReasonInvalidPath: true,
	uri.ReasonEmptyPeer: true, uri.ReasonInvalidPeer: true, uri.ReasonInvalidPeerUUID: true,
	uri.ReasonReservedPeer: true, uri.ReasonEmptyNode: true, uri.ReasonInvalidNode: true,
	uri.ReasonEmptyEnv: true, uri.ReasonUnknownEnv: true, uri.ReasonEmptyRoom: true,
	uri.ReasonInvalidRoomUUID: true, uri.ReasonNotACommand: true, uri.ReasonInvalidPattern: true,
}

// FuzzParse checks that Parse never panics, fails only with a known Reason,
// and that everything it accepts is canonical: Parse(String()) gives the
// same value and String is a fixed point. It also checks the invariants the
// router and the policy rely on for every accepted URI.
// Seeds: testdata/fuzz/FuzzParse, one per variant and per error.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		u, err := uri.Parse(s)
		if err != nil {
			var pe *uri.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %T is not a *ParseError", s, err)
			}
			if !knownReasons[pe.Reason] || pe.Reason == uri.ReasonNotACommand || pe.Reason == uri.ReasonInvalidPattern {
				t.Fatalf("Parse(%q) reason %q is not a Parse reason", s, pe.Reason)
			}
			if pe.Input != s {
				t.Fatalf("ParseError.Input = %q, want %q", pe.Input, s)
			}
			_ = err.Error()
			return
		}
		checkCanonical(t, s, u)

		switch u.Kind {
		case uri.KindLocal:
			if u.Peer != "" || u.Node != "" || u.Env != "" || u.Room != "" || u.PeerIsUUID {
				t.Fatalf("Local %q has routing fields: %+v", s, u)
			}
		case uri.KindPeer, uri.KindBroadcast:
			if u.Peer == "" || u.Room != "" || (u.Env == "*") != (u.Kind == uri.KindBroadcast) {
				t.Fatalf("peer URI %q has inconsistent fields: %+v", s, u)
			}
			if strings.EqualFold(u.Peer, "room") {
				t.Fatalf("peer named room accepted: %q", s)
			}
		case uri.KindRoom:
			if u.Room == "" || u.Peer != "" || u.Node != "" || u.PeerIsUUID {
				t.Fatalf("room URI %q has inconsistent fields: %+v", s, u)
			}
		default:
			t.Fatalf("Parse(%q) Kind = %d", s, u.Kind)
		}
		if u.PeerIsUUID && u.Peer != strings.ToLower(u.Peer) || u.Room != strings.ToLower(u.Room) {
			t.Fatalf("UUID not canonical in %+v", u)
		}
		for _, seg := range strings.Split(u.Path, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("dot segment accepted in %q", s)
			}
		}
		if d := uri.Route(u); d.Kind != u.Kind || d.Path != u.Path || d.Peer != u.Peer || d.Room != u.Room || d.Env != u.Env {
			t.Fatalf("Route(%+v) = %+v", u, d)
		}

		// Every path matches "**", and a URI without query, fragment or "*"
		// is a pattern that matches itself.
		if !uri.MatchPath("**", u.Path) {
			t.Fatalf(`MatchPath("**", %q) = false`, u.Path)
		}
		if u.Query == "" && u.Fragment == "" && !strings.Contains(u.Path, "*") {
			p := u.String()
			if err := uri.ValidatePattern(p); err != nil {
				t.Fatalf("ValidatePattern(%q) = %v for a valid URI", p, err)
			}
			if !uri.MatchURI(p, u) {
				t.Fatalf("MatchURI(%q, itself) = false", p)
			}
		}

		// A path that is a command maps to a method and back.
		if full, _, _, err := uri.MethodFor(u.Path); err == nil {
			if back, ok := uri.CommandPathFor(full); !ok || back != u.Path {
				t.Fatalf("CommandPathFor(MethodFor(%q) = %q) = %q, %v", u.Path, full, back, ok)
			}
		}
	})
}

// FuzzMatchPath compares MatchPath with a direct transcription of the rules
// (split on "/", recurse) and checks that invalid patterns never match.
func FuzzMatchPath(f *testing.F) {
	for _, seed := range [][2]string{
		{"genome/page-in", "genome/page-in"},
		{"genome/*", "genome/page-in"},
		{"genome/*", "genome/"},
		{"genome/**", "genome"},
		{"**", "a/b/c/"},
		{"*/*/**", "a"},
		{"cognition/genome/*/", "cognition/genome/lora:ts/"},
		{"genome/**/x", "genome/a/x"},
		{"genome/page-*", "genome/page-*"},
		{"airc:///genome/**", "genome/x"},
		{"a/./b", "a/./b"},
		{"a//b", "a//b"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, path string) {
		got := uri.MatchPath(pattern, path)
		perr := uri.ValidatePattern(pattern)
		if got && perr != nil {
			t.Fatalf("MatchPath(%q, %q) = true but ValidatePattern: %v", pattern, path, perr)
		}
		if perr != nil {
			var pe *uri.ParseError
			if !errors.As(perr, &pe) || !knownReasons[pe.Reason] {
				t.Fatalf("ValidatePattern(%q) = %v, not a known *ParseError", pattern, perr)
			}
			return
		}
		isURIPattern := len(pattern) >= 7 && strings.EqualFold(pattern[:7], "airc://")
		want := !isURIPattern && refMatch(strings.Split(pattern, "/"), strings.Split(path, "/"))
		if got != want {
			t.Fatalf("MatchPath(%q, %q) = %v, reference says %v", pattern, path, got, want)
		}
		if isURIPattern {
			return
		}
		// For a path that Parse accepts as a plain Local path, the bare
		// pattern means the same through MatchURI, and a pattern without
		// wildcards is plain equality.
		if u, err := uri.Parse(path); err == nil && u.Kind == uri.KindLocal && u.Path == path {
			if m := uri.MatchURI(pattern, u); m != got {
				t.Fatalf("MatchURI(%q, %q) = %v, MatchPath = %v", pattern, path, m, got)
			}
			if !strings.Contains(pattern, "*") && got != (pattern == path) {
				t.Fatalf("literal MatchPath(%q, %q) = %v", pattern, path, got)
			}
		}
	})
}

// refMatch is the rule as written: literal segments equal, "*" one non-empty
// segment, a final "**" any tail including none.
func refMatch(ps, xs []string) bool {
	switch {
	case len(ps) == 0:
		return len(xs) == 0
	case ps[0] == "**":
		return true
	case len(xs) == 0:
		return false
	case ps[0] == "*" && xs[0] != "", ps[0] == xs[0]:
		return refMatch(ps[1:], xs[1:])
	}
	return false
}

// FuzzMethodFor checks that MethodFor and CommandPathFor are inverse
// bijections on whatever either accepts.
func FuzzMethodFor(f *testing.F) {
	for _, s := range []string{
		"genome/page-in", "debug/set-log-level", "event-bus/publish", "a/b2-c",
		"genome/page-2", "/continuum.genome.v1.GenomeService/PageIn",
		"continuum.event_bus.v1.EventBusService/Publish", "/continuum.debug.v1.DebugService/GetHTTPStatus",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if full, service, method, err := uri.MethodFor(s); err == nil {
			if full != "/"+service+"/"+method {
				t.Fatalf("MethodFor(%q) = %q, %q, %q: inconsistent", s, full, service, method)
			}
			if back, ok := uri.CommandPathFor(full); !ok || back != s {
				t.Fatalf("CommandPathFor(%q) = %q, %v; want %q", full, back, ok, s)
			}
		} else {
			var pe *uri.ParseError
			if !errors.As(err, &pe) || pe.Reason != uri.ReasonNotACommand {
				t.Fatalf("MethodFor(%q) error %v", s, err)
			}
		}
		if path, ok := uri.CommandPathFor(s); ok {
			full, _, _, err := uri.MethodFor(path)
			if err != nil || full != "/"+strings.TrimPrefix(s, "/") {
				t.Fatalf("MethodFor(CommandPathFor(%q) = %q) = %q, %v", s, path, full, err)
			}
		}
	})
}
