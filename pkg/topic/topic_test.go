package topic_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/continuum-mesh/continuum/pkg/topic"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", topic.MaxLength+1)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"single segment", "audit", true},
		{"colon topic", "data:chat:created", true},
		{"dots and dashes", "data:chat.v2:created-at_x", true},
		{"artifact key", "genome/working_set.page_fault", true},
		{"artifact with colon", "cognition/genome/lora:ts", true},
		{"max length", strings.Repeat("a", topic.MaxLength), true},
		{"empty", "", false},
		{"too long", long, false},
		{"leading colon", ":a", false},
		{"trailing colon", "a:", false},
		{"double colon", "a::b", false},
		{"star is no topic", "data:*", false},
		{"tail is no topic", "data:>", false},
		{"space", "data: x", false},
		{"unicode", "daté", false},
		{"artifact leading slash", "/genome/x", false},
		{"artifact trailing slash", "genome/", false},
		{"artifact double slash", "genome//x", false},
		{"artifact dot segment", "genome/../x", false},
		{"artifact dot", "genome/./x", false},
		{"artifact star", "genome/*", false},
		{"artifact query", "genome/x?y", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := topic.Validate(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("Validate(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && !errors.Is(err, topic.ErrInvalidTopic) {
				t.Fatalf("Validate(%q) = %v, want ErrInvalidTopic", tc.in, err)
			}
		})
	}
}

func TestPatternMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern string
		topic   string
		want    bool
	}{
		{"data:chat:created", "data:chat:created", true},
		{"data:chat:created", "data:chat:deleted", false},
		{"data:*:created", "data:chat:created", true},
		{"data:*:created", "data:room:created", true},
		{"data:*:created", "data:chat:x:created", false},
		{"data:*:created", "data:created", false},
		{"data:*", "data:chat", true},
		{"data:*", "data", false},
		{"data:*", "data:chat:created", false},
		{"data:>", "data:chat", true},
		{"data:>", "data:chat:created", true},
		{"data:>", "data", false},
		{"data:>", "database:x", false},
		{">", "a", true},
		{">", "a:b:c", true},
		{"*", "a", true},
		{"*", "a:b", false},
		{"*:>", "a", false},
		{"*:>", "a:b", true},
		{"*:*:*", "a:b:c", true},
		{"*:*:*", "a:b", false},
		{"data:*:>", "data:x:y:z", true},
		// Colon patterns never match artifact keys.
		{">", "genome/working_set.page_fault", false},
		{"genome:>", "genome/x", false},
		{"*", "genome/x", false},
		// Malformed topics never match a wildcard.
		{"*", "a:", false},
		{"a:*", "a:", false},
		{"a:>", "a:", false},
	}
	for _, tc := range tests {
		t.Run(tc.pattern+"~"+tc.topic, func(t *testing.T) {
			t.Parallel()
			p, err := topic.CompilePattern(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Match(tc.topic); got != tc.want {
				t.Fatalf("%q.Match(%q) = %v, want %v", tc.pattern, tc.topic, got, tc.want)
			}
		})
	}
}

func TestCompilePatternErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", "data:>:x", "data:*x", "data:x*", "data:>x", "a::b", ":a", "a:", "genome/*", "genome/x",
		"da ta", "data:\x00", strings.Repeat("a", topic.MaxLength+1),
	} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			if _, err := topic.CompilePattern(in); !errors.Is(err, topic.ErrInvalidPattern) {
				t.Fatalf("CompilePattern(%q) = %v, want ErrInvalidPattern", in, err)
			}
		})
	}
}

func TestArtifactSelectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		selector string
		key      string
		want     bool
	}{
		{"genome/working_set.page_fault", "genome/working_set.page_fault", true},
		{"genome/working_set.page_fault", "genome/working_set.page_fault_x", false},
		{"genome/working_set.page_fault", "genome/working_set", false},
		{"genome/", "genome/working_set.page_fault", true},
		{"genome/*", "genome/working_set.page_fault", true},
		{"genome/*", "genome/a/b", true},
		{"genome/*", "genomes/a", false},
		{"genome/working_set.*", "genome/working_set.page_fault", true},
		{"genome/working_set.*", "genome/working_set", false},
		{"genome/working_set.*", "genome/page_out", false},
		// The artifact matcher never matches colon topics, and never globs.
		{"genome/*", "genome:x", false},
	}
	for _, tc := range tests {
		t.Run(tc.selector+"~"+tc.key, func(t *testing.T) {
			t.Parallel()
			s, err := topic.ParseSelector(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Match(tc.key); got != tc.want {
				t.Fatalf("%q.Match(%q) = %v, want %v", tc.selector, tc.key, got, tc.want)
			}
		})
	}
}

func TestParseSelector(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		kind      topic.SelectorKind
		canonical string
		exact     string
	}{
		{"data:>", topic.SelectPattern, "data:>", ""},
		{"audit:refusal", topic.SelectPattern, "audit:refusal", "audit:refusal"},
		{"genome/working_set.page_fault", topic.SelectArtifactExact, "genome/working_set.page_fault", "genome/working_set.page_fault"},
		{"genome/", topic.SelectArtifactPrefix, "genome/*", ""},
		{"genome/*", topic.SelectArtifactPrefix, "genome/*", ""},
		{"genome/working_set.*", topic.SelectArtifactPrefix, "genome/working_set.*", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			s, err := topic.ParseSelector(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			exact, _ := s.Exact()
			if s.Kind() != tc.kind || s.String() != tc.canonical || exact != tc.exact {
				t.Fatalf("ParseSelector(%q) = kind %v %q exact %q, want kind %v %q exact %q",
					tc.in, s.Kind(), s.String(), exact, tc.kind, tc.canonical, tc.exact)
			}
		})
	}
	for _, in := range []string{"", "genome*", "genome/**", "genome/a*b", "/genome/", "genome//", "genome/../*", "data:*x", "genome/*:x"} {
		t.Run("error "+in, func(t *testing.T) {
			t.Parallel()
			if _, err := topic.ParseSelector(in); err == nil {
				t.Fatalf("ParseSelector(%q) succeeded", in)
			}
		})
	}
}

func TestArtifactValidationErrors(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"genome", "genome/", "/x", "a//b", "a/../b", "a/*", ""} {
		if err := topic.ValidateArtifactKey(key); !errors.Is(err, topic.ErrInvalidArtifact) {
			t.Errorf("ValidateArtifactKey(%q) = %v, want ErrInvalidArtifact", key, err)
		}
	}
	for _, prefix := range []string{"genome", "", "/genome/", "a//", "a/../", "a/*"} {
		if err := topic.ValidateArtifactPrefix(prefix); !errors.Is(err, topic.ErrInvalidArtifact) {
			t.Errorf("ValidateArtifactPrefix(%q) = %v, want ErrInvalidArtifact", prefix, err)
		}
	}
	for _, prefix := range []string{"genome/", "genome/working_set.", "genome/.", "a/b/"} {
		if err := topic.ValidateArtifactPrefix(prefix); err != nil {
			t.Errorf("ValidateArtifactPrefix(%q) = %v", prefix, err)
		}
	}
}

func TestCovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		class, topic string
		want         bool
	}{
		{"audit", "audit", true},
		{"audit", "audit:refusal", true},
		{"audit", "audit:refusal:x", true},
		{"audit", "auditor", false},
		{"audit", "auditor:x", false},
		{"audit:refusal", "audit", false},
		{"audit", "audit/x", false},
		{"genome/working_set.access_denied", "genome/working_set.access_denied", true},
		{"genome/working_set.access_denied", "genome/working_set.access_denied.x", false},
		{"genome/working_set.access_denied", "genome/working_set.access_denied:x", false},
	}
	for _, tc := range tests {
		if got := topic.Covers(tc.class, tc.topic); got != tc.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tc.class, tc.topic, got, tc.want)
		}
	}
}

func TestWithinAndOverlaps(t *testing.T) {
	t.Parallel()
	within := []struct {
		pattern, class string
		want           bool
	}{
		{"audit:>", "audit", true},
		{"audit:*", "audit", true},
		{"audit", "audit", true},
		{"audit:refusal", "audit", true},
		{">", "audit", false},
		{"*:refusal", "audit", false},
		{"audit", "audit:refusal", false},
		{"audit:>", "audit:refusal", false},
		{"audit:refusal:>", "audit:refusal", true},
		{"audit:>", "genome/x", false},
	}
	for _, tc := range within {
		if got := topic.MustCompilePattern(tc.pattern).Within(tc.class); got != tc.want {
			t.Errorf("%q.Within(%q) = %v, want %v", tc.pattern, tc.class, got, tc.want)
		}
	}
	overlaps := []struct {
		a, b string
		want bool
	}{
		{"a:b", "a:b", true},
		{"a:b", "a:c", false},
		{"a:*", "a:b", true},
		{"a:>", "a", false},
		{"a:>", "a:b:c", true},
		{"*:b", "a:*", true},
		{"*:b", "a:c", false},
		{">", "x", true},
		{"a:*", "a:b:c", false},
		{"a:*:c", "a:>", true},
	}
	for _, tc := range overlaps {
		a, b := topic.MustCompilePattern(tc.a), topic.MustCompilePattern(tc.b)
		if got := a.Overlaps(b); got != tc.want {
			t.Errorf("%q.Overlaps(%q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := b.Overlaps(a); got != tc.want {
			t.Errorf("%q.Overlaps(%q) = %v, want %v (symmetry)", tc.b, tc.a, got, tc.want)
		}
	}
	classes := []struct {
		pattern, class string
		want           bool
	}{
		{"audit:>", "audit:refusal", true},
		{"audit:*", "audit:refusal", true},
		{"audit:x", "audit:refusal", false},
		{"*:refusal:x", "audit:refusal", true},
		{"audit", "audit:refusal", false},
		{">", "genome/x", false},
	}
	for _, tc := range classes {
		if got := topic.MustCompilePattern(tc.pattern).OverlapsClass(tc.class); got != tc.want {
			t.Errorf("%q.OverlapsClass(%q) = %v, want %v", tc.pattern, tc.class, got, tc.want)
		}
	}
}

func TestZeroValues(t *testing.T) {
	t.Parallel()
	var p topic.Pattern
	var s topic.Selector
	if p.Match("a") || s.Match("a") || s.Match("a/b") || p.Overlaps(topic.MustCompilePattern(">")) || p.Within("a") {
		t.Fatal("zero values must match nothing")
	}
	if p.IsExact() || s.String() != "" {
		t.Fatal("zero values are not exact and render empty")
	}
}

func TestMustCompilePatternPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	topic.MustCompilePattern("a:>:b")
}
