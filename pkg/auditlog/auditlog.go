// Package auditlog is the on-disk format of the audit recorder's log and
// everything needed to check it without the service: the entry, its JSON
// line, the canonical encoding the chain and the Merkle tree hash, the
// parallel verifier behind `continuum audit verify FILE`, and signed
// checkpoints.
//
// The log is JSON lines, one entry a line, each line ending in '\n'. What
// is hashed is never the JSON text: it is a length-prefixed binary encoding
// of the entry's values (see AppendCanonical and docs/audit.md), so a
// re-encoded copy of the file (other key order, other whitespace, other
// string escapes or number spellings) verifies exactly as the original.
package auditlog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// The kinds of entry, kebab-case on the wire.
const (
	KindRefusal               = "refusal"
	KindAccessDenied          = "access-denied"
	KindGovernorOverride      = "governor-override"
	KindFederationPolicyDrift = "federation-policy-drift"
)

// Kinds lists every kind an entry may have.
var Kinds = []string{KindRefusal, KindAccessDenied, KindGovernorOverride, KindFederationPolicyDrift}

// ValidKind reports whether k is one of Kinds.
func ValidKind(k string) bool {
	switch k {
	case KindRefusal, KindAccessDenied, KindGovernorOverride, KindFederationPolicyDrift:
		return true
	}
	return false
}

// Hash is a SHA-256 chain hash.
type Hash [sha256.Size]byte

// String renders the hash as 64 lower-case hex digits, as the log does.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// GenesisHash is the prevChainHash of the first entry: 64 zeros.
var GenesisHash Hash

// ParseHash parses 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("hash %q: want %d hex digits", s, 2*len(h))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	return h, nil
}

// Source names the event an entry was recorded from. Entries appended
// directly (AuditService.Append) have no topic and stream sequence; their
// Publisher is the caller.
type Source struct {
	// Topic is the event's concrete topic or artifact key.
	Topic string
	// StreamSequence is the event's sequence in its durable stream.
	StreamSequence uint64
	// Publisher is the authenticated principal that reported the entry: the
	// event's publisher, or the caller of Append.
	Publisher string
}

// Entry is one line of the log.
type Entry struct {
	// Seq is 1-based and gapless.
	Seq uint64
	// TimestampMs never goes backward: the sequencer clamps it to the
	// previous entry's.
	TimestampMs int64
	// RawTimestampMs is the wall clock at append, before clamping.
	RawTimestampMs int64
	Kind           string
	// Payload is a JSON object: its values are nil, bool, float64, string,
	// []any and map[string]any (what encoding/json and structpb.AsMap
	// produce).
	Payload       map[string]any
	Source        Source
	PrevChainHash Hash
	ChainHash     Hash
}

// Limits every appended payload keeps, so that every entry the recorder
// writes can be read back by ParseLine.
const (
	// MaxPayloadDepth bounds the nesting of containers in a payload; the
	// payload object itself is depth 1.
	MaxPayloadDepth = 32
)

// ErrPayloadInvalid is wrapped by ValidatePayload's errors.
var ErrPayloadInvalid = errors.New("payload invalid")

// ValidatePayload checks that p can be written and read back exactly:
// finite numbers, valid UTF-8 keys and strings, nesting at most
// MaxPayloadDepth, and only JSON value types.
func ValidatePayload(p map[string]any) error {
	if err := validateValue(p, 1); err != nil {
		return fmt.Errorf("%w: %s", ErrPayloadInvalid, err.Error())
	}
	return nil
}
