package policy

import (
	"strings"
	"testing"

	"github.com/continuum-mesh/continuum/pkg/uri"
)

var matchPatterns = []string{
	"**", "*", "a", "a/*", "a/**", "a/*/c", "a/b/", "a/*/", "*/b", "*/*/**", "a/b/c/**",
	"genome/page-in", "events/*/subscribe", "events/data:chat:created/*",
	"airc:///**", "airc:///a/*", "AIRC:///a/**",
	"airc://*/**", "airc://maya/**", "airc://maya/a", "airc://maya@rig/**", "airc://maya@*/a/*",
	"airc://maya:vr/**", "airc://maya:*/**", "airc://*:web/a/**", "airc://*@rig:vr/**",
	"airc://6F1C2A3B-1111-4222-8333-444455556666/**", "airc://6f1c2a3b-1111-4222-8333-444455556666:web/a",
	"airc://room:*/**", "airc://room:*:web/**", "airc://room:6F1C2A3B-1111-4222-8333-444455556666/render/*",
	"airc://room:6f1c2a3b-1111-4222-8333-444455556666:*/render/**",
}

var matchURIs = []string{
	"a", "a/b", "a/b/c", "a/b/", "a/b/c/d", "b", "x/b", "genome/page-in", "genome/page-in?x#y",
	"events/data:chat:created/subscribe", "events/data:chat:created/publish", "a/", "a/x/c", "a/x/c/",
	"airc:///a", "airc:///a/b", "airc://maya/a", "airc://maya/a/b", "airc://maya@rig/a/b", "airc://maya@box/a",
	"airc://maya:vr/a", "airc://maya:web/a", "airc://maya:*/a/b", "airc://maya@rig:vr/x",
	"airc://bob:web/a/b", "airc://6f1c2a3b-1111-4222-8333-444455556666/a", "airc://6F1C2A3B-1111-4222-8333-444455556666:web/a",
	"airc://room:6f1c2a3b-1111-4222-8333-444455556666/render/start", "airc://room:6f1c2a3b-1111-4222-8333-444455556666:web/a/b",
	"airc://room:6f1c2a3b-1111-4222-8333-444455556666:*/render/x",
}

// The compiled matcher must answer exactly as uri.MatchURI, whose language
// it compiles.
func TestMatchAgreesWithURI(t *testing.T) {
	t.Parallel()
	for _, p := range matchPatterns {
		pt, err := compileURI(p)
		if err != nil {
			t.Fatalf("compileURI(%q): %v", p, err)
		}
		for _, s := range matchURIs {
			u := uri.MustParse(s)
			want := uri.MatchURI(p, u)
			if got := pt.match(&u); got != want {
				t.Errorf("match(%q, %q) = %v, uri.MatchURI says %v", p, s, got, want)
			}
			if got, ok := matchSplit(&pt, &u); ok && got != want {
				t.Errorf("matchSplit(%q, %q) = %v, uri.MatchURI says %v", p, s, got, want)
			}
		}
	}
}

func TestCompileURIRejectsWhatURIRejects(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "a/**/b", "a/b*", "/a", "a//b", "a/../b", "http://x/y", "airc://room:abc/x", "airc://maya", "a?x", "a#f", "airc://:web/x"} {
		if _, err := compileURI(p); err == nil {
			t.Errorf("compileURI(%q) accepted", p)
		}
	}
}

func TestCallerPatterns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern string
		name    string
		want    bool
	}{
		{"*", "anonymous", true},
		{"*", "peer:x", true},
		{"admin", "admin", true},
		{"admin", "admin2", false},
		{"admin", "Admin", false},
		{"peer:*", "peer:node-1", true},
		{"peer:*", "peer:", true},
		{"peer:*", "peers", false},
		{"team-*", "team-ops", true},
	}
	for _, tc := range tests {
		c, detail := compileCaller(tc.pattern)
		if detail != "" {
			t.Fatalf("compileCaller(%q): %s", tc.pattern, detail)
		}
		if got := c.match(tc.name); got != tc.want {
			t.Errorf("caller %q matches %q = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
		if c.String() != tc.pattern {
			t.Errorf("String() = %q, want %q", c.String(), tc.pattern)
		}
	}
}

// FuzzMatch checks the compiled matcher against uri.MatchURI on arbitrary
// patterns and URIs.
func FuzzMatch(f *testing.F) {
	for i, p := range matchPatterns {
		f.Add(p, matchURIs[i%len(matchURIs)])
	}
	f.Fuzz(func(t *testing.T, p, s string) {
		u, err := uri.Parse(s)
		if err != nil {
			return
		}
		pt, err := compileURI(p)
		if err != nil {
			if uri.MatchURI(p, u) {
				t.Fatalf("uri.MatchURI(%q, %q) is true for a pattern compileURI rejects", p, s)
			}
			return
		}
		want := uri.MatchURI(p, u)
		if got := pt.match(&u); got != want {
			t.Fatalf("match(%q, %q) = %v, uri.MatchURI says %v", p, s, got, want)
		}
		if got, ok := matchSplit(&pt, &u); ok && got != want {
			t.Fatalf("matchSplit(%q, %q) = %v, uri.MatchURI says %v", p, s, got, want)
		}
	})
}

// matchSplit matches through the split path, as Evaluate does; ok is false
// when the path has too many segments to split.
func matchSplit(pt *uriPattern, u *uri.URI) (matched, ok bool) {
	t := target{u: u}
	segs, ok := t.split()
	if !ok {
		return false, false
	}
	return pt.matchSplit(u, segs), true
}

func TestSplit(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"a", "a/b", "a/b/", "a//b", "1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16", "1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17"} {
		tg := target{u: &uri.URI{Path: path}}
		segs, ok := tg.split()
		want := strings.Split(path, "/")
		if len(want) > maxSplitSegments {
			if ok {
				t.Errorf("split(%q) = %q, want too many", path, segs)
			}
			continue
		}
		if !ok || strings.Join(segs, "|") != strings.Join(want, "|") {
			t.Errorf("split(%q) = %q, %v; want %q", path, segs, ok, want)
		}
	}
}
