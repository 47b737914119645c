package topic_test

import (
	"strings"
	"testing"

	"github.com/continuum-mesh/continuum/pkg/topic"
)

// refMatch is the obvious split-based colon glob the fast matcher must agree
// with on every valid topic.
func refMatch(pattern, t string) bool {
	ps, ts := strings.Split(pattern, ":"), strings.Split(t, ":")
	for i, p := range ps {
		if p == ">" {
			return len(ts) > i
		}
		if i >= len(ts) || p != "*" && p != ts[i] {
			return false
		}
	}
	return len(ps) == len(ts)
}

// FuzzPattern checks that compiling never panics, that Match agrees with the
// reference matcher on valid topics, never matches an artifact key, and that
// Overlaps is sound: a topic matched by two patterns means they overlap.
func FuzzPattern(f *testing.F) {
	for _, s := range [][3]string{
		{"data:*:created", "data:chat:created", "data:>"},
		{">", "a", "*"},
		{"a:>", "a", "a"},
		{"*:*", "a:b", "a:*:c"},
		{"audit", "audit:x", "audit:>"},
		{"a:>:b", "genome/x", ">"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, pattern, name, other string) {
		p, err := topic.CompilePattern(pattern)
		if err != nil {
			if p.Match(name) {
				t.Fatalf("invalid pattern %q matched %q", pattern, name)
			}
			return
		}
		got := p.Match(name)
		if topic.IsArtifactKey(name) && got {
			t.Fatalf("colon pattern %q matched artifact key %q", pattern, name)
		}
		if topic.Validate(name) == nil && !topic.IsArtifactKey(name) {
			if want := refMatch(pattern, name); got != want {
				t.Fatalf("%q.Match(%q) = %v, reference says %v", pattern, name, got, want)
			}
		}
		q, err := topic.CompilePattern(other)
		if err != nil {
			return
		}
		if p.Overlaps(q) != q.Overlaps(p) {
			t.Fatalf("Overlaps is not symmetric for %q and %q", pattern, other)
		}
		if got && q.Match(name) && !p.Overlaps(q) {
			t.Fatalf("%q and %q both match %q but do not overlap", pattern, other, name)
		}
		if topic.Validate(other) == nil && !topic.IsArtifactKey(other) {
			if p.Within(other) && got && !topic.Covers(other, name) {
				t.Fatalf("%q is within class %q but matches %q outside it", pattern, other, name)
			}
			if got && topic.Covers(other, name) && !p.OverlapsClass(other) {
				t.Fatalf("%q matches %q covered by class %q but does not overlap the class", pattern, name, other)
			}
		}
	})
}

// FuzzParseSelector checks that parsing never panics, that String is the
// inverse of ParseSelector, and that artifact and colon matching never mix.
func FuzzParseSelector(f *testing.F) {
	for _, s := range [][2]string{
		{"genome/", "genome/working_set.page_fault"},
		{"genome/*", "genome:x"},
		{"genome/working_set.*", "genome/working_set.page_fault"},
		{"genome/working_set.page_fault", "genome/working_set.page_fault"},
		{"data:>", "data:x"},
		{"data:>", "data/x"},
		{"a/../*", "a/b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, in, name string) {
		s, err := topic.ParseSelector(in)
		if err != nil {
			if s.Match(name) {
				t.Fatalf("failed selector %q matched %q", in, name)
			}
			return
		}
		again, err := topic.ParseSelector(s.String())
		if err != nil || again.String() != s.String() || again.Kind() != s.Kind() {
			t.Fatalf("ParseSelector(%q).String() = %q does not round-trip: %v", in, s.String(), err)
		}
		if s.Match(name) {
			if (s.Kind() == topic.SelectPattern) == topic.IsArtifactKey(name) {
				t.Fatalf("selector %q (kind %v) matched %q across the matchers", in, s.Kind(), name)
			}
			if exact, ok := s.Exact(); ok && exact != name {
				t.Fatalf("exact selector %q matched %q", exact, name)
			}
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	for _, c := range []struct{ pattern, topic string }{
		{"data:chat:created", "data:chat:created"},
		{"data:*:created", "data:chat:created"},
		{"data:>", "data:chat:created:x:y"},
		{"genome/*", "genome/working_set.page_fault"},
	} {
		s, err := topic.ParseSelector(c.pattern)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.pattern, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if !s.Match(c.topic) {
					b.Fatal("no match")
				}
			}
		})
	}
}
