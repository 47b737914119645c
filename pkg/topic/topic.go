// Package topic validates and matches the names events travel under. There
// are two kinds of name and two matchers that never mix (URI.md, "Event
// topics"):
//
//   - A colon topic is colon-segmented, "data:chat:created". Each segment is
//     one or more of [A-Za-z0-9_.-]. A colon pattern may use "*" for exactly
//     one segment and ">" as its last segment for one or more trailing
//     segments ("data:*:created", "data:>", ">"); "data:>" does not match
//     "data" itself. A pattern without wildcards matches exactly one topic.
//   - An artifact key is slash-and-dot, "genome/working_set.page_fault": it
//     contains at least one "/", its segments are one or more of
//     [A-Za-z0-9_.:-] and never "." or "..", and it has no leading or
//     trailing "/". Artifact selectors match keys exactly or by string
//     prefix ("genome/", "genome/working_set."), never by the colon glob, and
//     a colon pattern never matches an artifact key.
//
// A name containing "/" is an artifact key; any other name is a colon topic.
// Every name, pattern and prefix is at most MaxLength bytes.
//
// Classes cover topics: a class named x (a colon topic) covers the topic x
// and every topic under x:>; a class named by an artifact key covers exactly
// that key. Covers, Pattern.Within and Pattern.Overlaps answer the questions
// a stream registry asks about that coverage.
package topic

import (
	"errors"
	"strconv"
	"strings"
)

// MaxLength is the longest topic, artifact key, pattern or prefix in bytes.
const MaxLength = 256

// The errors this package returns wrap exactly one of these; use errors.Is.
var (
	// ErrInvalidTopic: not a concrete colon topic or artifact key.
	ErrInvalidTopic = errors.New("invalid topic")
	// ErrInvalidPattern: not a colon topic pattern.
	ErrInvalidPattern = errors.New("invalid topic pattern")
	// ErrInvalidArtifact: not an artifact key or artifact prefix.
	ErrInvalidArtifact = errors.New("invalid artifact selector")
)

// Error says what is wrong with an input. Kind is one of the Err* sentinels
// (Unwrap returns it); Detail is for humans.
type Error struct {
	Kind   error
	Input  string
	Detail string
}

func (e *Error) Error() string {
	in := e.Input
	if len(in) > 64 {
		in = in[:64] + "..."
	}
	return e.Kind.Error() + " " + strconv.Quote(in) + ": " + e.Detail
}

// Unwrap returns the sentinel kind.
func (e *Error) Unwrap() error { return e.Kind }

func newError(kind error, in, detail string) *Error {
	return &Error{Kind: kind, Input: in, Detail: detail}
}

// IsArtifactKey reports whether name is in the artifact form (contains
// "/"). It does not validate.
func IsArtifactKey(name string) bool { return strings.IndexByte(name, '/') >= 0 }

// Validate checks a concrete name a publish may use: a colon topic without
// wildcards or an artifact key. Errors wrap ErrInvalidTopic.
func Validate(name string) error {
	if IsArtifactKey(name) {
		if d := checkArtifact(name, false); d != "" {
			return newError(ErrInvalidTopic, name, d)
		}
		return nil
	}
	if d := checkColon(name, false); d != "" {
		return newError(ErrInvalidTopic, name, d)
	}
	return nil
}

// ValidateArtifactKey checks an exact artifact key. Errors wrap
// ErrInvalidArtifact.
func ValidateArtifactKey(key string) error {
	if !IsArtifactKey(key) {
		return newError(ErrInvalidArtifact, key, `an artifact key contains "/" (colon topics use a pattern)`)
	}
	if d := checkArtifact(key, false); d != "" {
		return newError(ErrInvalidArtifact, key, d)
	}
	return nil
}

// ValidateArtifactPrefix checks an artifact prefix: the start of an artifact
// key that contains at least its first "/" ("genome/", "genome/working_set.");
// it may end inside a segment or with "/". Errors wrap ErrInvalidArtifact.
func ValidateArtifactPrefix(prefix string) error {
	if !IsArtifactKey(prefix) {
		return newError(ErrInvalidArtifact, prefix, `an artifact prefix contains "/" ("genome/" selects every genome/... key)`)
	}
	if d := checkArtifact(prefix, true); d != "" {
		return newError(ErrInvalidArtifact, prefix, d)
	}
	return nil
}

// Covers reports whether a class named class covers the concrete topic t:
// t == class, or, for a colon class, t lies under class:>.
func Covers(class, t string) bool {
	if len(t) < len(class) || t[:len(class)] != class {
		return false
	}
	if len(t) == len(class) {
		return true
	}
	return !IsArtifactKey(class) && t[len(class)] == ':' && !IsArtifactKey(t)
}

func isColonByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
}

func isArtifactByte(c byte) bool { return isColonByte(c) || c == ':' }

// checkColon validates a colon topic, or a colon pattern when wild.
func checkColon(s string, wild bool) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > MaxLength:
		return "longer than " + strconv.Itoa(MaxLength) + " bytes"
	}
	for rest := s; ; {
		seg, tail, more := strings.Cut(rest, ":")
		switch {
		case seg == "":
			return `empty segment (leading, trailing or doubled ":")`
		case wild && seg == "*":
		case wild && seg == ">":
			if more {
				return `">" must be the last segment`
			}
		default:
			for i := 0; i < len(seg); i++ {
				if c := seg[i]; !isColonByte(c) {
					if wild && (c == '*' || c == '>') {
						return "segment " + strconv.Quote(seg) + ` mixes a wildcard with other characters`
					}
					return "byte " + strconv.Quote(string(c)) + " in segment " + strconv.Quote(seg) + " (allowed: A-Z a-z 0-9 _ . -)"
				}
			}
		}
		if !more {
			return ""
		}
		rest = tail
	}
}

// checkArtifact validates an artifact key, or a prefix of one when prefix.
func checkArtifact(s string, prefix bool) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > MaxLength:
		return "longer than " + strconv.Itoa(MaxLength) + " bytes"
	case s[0] == '/':
		return `leading "/"`
	}
	for rest := s; ; {
		seg, tail, more := strings.Cut(rest, "/")
		last := !more
		switch {
		case seg == "" && more:
			return `empty segment ("//")`
		case seg == "" && !prefix:
			return `trailing "/" (a key ending in "/" is a prefix)`
		case (more || !prefix) && (seg == "." || seg == ".."):
			return "dot segment " + strconv.Quote(seg)
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !isArtifactByte(c) {
				return "byte " + strconv.Quote(string(c)) + " in segment " + strconv.Quote(seg) + " (allowed: A-Z a-z 0-9 _ . - :)"
			}
		}
		if last {
			return ""
		}
		rest = tail
	}
}
