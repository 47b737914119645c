package hippocampus

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"time"
	"unicode"
	"unicode/utf8"
)

// EngramInput is an engram to remember.
type EngramInput struct {
	// ID is optional: 1 to 128 bytes of [A-Za-z0-9._:-]. With an id, a
	// Remember is idempotent; without one a random id is assigned.
	ID      string
	Content string
	// Entities and Topics are compared case-insensitively with runs of
	// white space folded.
	Entities []string
	Topics   []string
	// Importance is 1..10; 0 is unknown (5).
	Importance uint32
	// At is when it happened; zero is now, and a future time is taken as
	// now.
	At time.Time
	// ReplyTo names the engram this one replies to; empty takes the
	// channel's previous engram when it is recent enough.
	ReplyTo string
}

var (
	errNameEmpty   = errors.New("empty")
	errNameInvalid = errors.New("must be at most 128 bytes of printable UTF-8")
)

// validName checks a persona or channel name: 1..128 bytes of printable
// UTF-8 without control characters.
func validName(s string) error {
	if s == "" {
		return errNameEmpty
	}
	if len(s) > maxNameLen || !utf8.ValidString(s) {
		return errNameInvalid
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return errNameInvalid
		}
	}
	return nil
}

func checkPersona(persona string) error {
	switch err := validName(persona); {
	case err == nil:
		return nil
	case errors.Is(err, errNameEmpty):
		return invalid(ReasonPersonaEmpty, "persona", "persona is required")
	}
	return invalid(ReasonPersonaInvalid, "persona", "persona %s", errNameInvalid)
}

func checkChannel(channel string) error {
	switch err := validName(channel); {
	case err == nil:
		return nil
	case errors.Is(err, errNameEmpty):
		return invalid(ReasonChannelEmpty, "channel", "channel is required")
	}
	return invalid(ReasonChannelInvalid, "channel", "channel %s", errNameInvalid)
}

// validID checks an engram id: 1..128 bytes of [A-Za-z0-9._:-].
func validID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return errors.New("engram ids are 1 to 128 bytes")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return errors.New("engram ids are made of [A-Za-z0-9._:-]")
		}
	}
	return nil
}

// checkEngramID checks an id a caller names.
func checkEngramID(field, id string) error {
	if err := validID(id); err != nil {
		return invalid(ReasonEngramIDInvalid, field, "%v", err)
	}
	return nil
}

// normalizeInput checks an engram and returns its normalized features.
func normalizeInput(in *EngramInput, requireContent bool) (entities, topics []string, err error) {
	if in.ID != "" {
		if err := checkEngramID("engram.id", in.ID); err != nil {
			return nil, nil, err
		}
	}
	if requireContent && in.Content == "" {
		return nil, nil, invalid(ReasonContentEmpty, "engram.content", "content is required")
	}
	if len(in.Content) > maxContentLen {
		return nil, nil, invalid(ReasonContentTooLarge, "engram.content", "content is %d bytes; the limit is %d", len(in.Content), maxContentLen)
	}
	if !utf8.ValidString(in.Content) {
		return nil, nil, invalid(ReasonContentEmpty, "engram.content", "content must be UTF-8")
	}
	if in.Importance > 10 {
		return nil, nil, invalid(ReasonImportanceOutOfRange, "engram.importance", "importance %d is outside 0..10", in.Importance)
	}
	if in.ReplyTo != "" {
		if err := checkEngramID("engram.reply_to", in.ReplyTo); err != nil {
			return nil, nil, err
		}
	}
	if entities, err = normalizeFeatures("engram.entities", in.Entities); err != nil {
		return nil, nil, err
	}
	if topics, err = normalizeFeatures("engram.topics", in.Topics); err != nil {
		return nil, nil, err
	}
	return entities, topics, nil
}

func normalizeFeatures(field string, in []string) ([]string, error) {
	if len(in) > maxFeatures {
		return nil, invalid(ReasonFeatureInvalid, field, "%d features; the limit is %d", len(in), maxFeatures)
	}
	var out []string
	seen := map[string]bool{}
	for _, f := range in {
		if len(f) > maxFeatureLen || !utf8.ValidString(f) {
			return nil, invalid(ReasonFeatureInvalid, field, "features are at most %d bytes of UTF-8", maxFeatureLen)
		}
		n := normalizeFeature(f)
		if n == "" {
			return nil, invalid(ReasonFeatureInvalid, field, "a feature is empty")
		}
		for _, r := range n {
			if !unicode.IsPrint(r) {
				return nil, invalid(ReasonFeatureInvalid, field, "a feature holds a control character")
			}
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newEngramID returns a random id ("e-" and 26 base32 characters, 128
// bits): ids are unguessable, and lookups are scoped by persona anyway.
func newEngramID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "e-" + idEncoding.EncodeToString(b[:])
}
