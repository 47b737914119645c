package genome

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/google/uuid"
)

// PersonaID names a persona. It is a UUID of its own type so that a persona
// id and an artifact id cannot be swapped by accident.
type PersonaID uuid.UUID

// ArtifactID names an artifact. It is derived from the artifact's content
// (see ArtifactIDFor), so identical bytes always get the same id.
type ArtifactID uuid.UUID

// artifactNamespace is the UUIDv5 namespace of artifact ids
// (6c7e1f0a-3b2d-5e4f-9a8b-0c1d2e3f4a5b, fixed forever: changing it would
// change every artifact's id).
var artifactNamespace = uuid.UUID{0x6c, 0x7e, 0x1f, 0x0a, 0x3b, 0x2d, 0x5e, 0x4f, 0x9a, 0x8b, 0x0c, 0x1d, 0x2e, 0x3f, 0x4a, 0x5b}

// ArtifactIDFor returns the id of the artifact whose SHA-256 is sum: a
// UUIDv5 over the digest in the artifact namespace.
func ArtifactIDFor(sum [sha256.Size]byte) ArtifactID {
	return ArtifactID(uuid.NewSHA1(artifactNamespace, sum[:]))
}

// parseUUID accepts only the canonical 36-character 8-4-4-4-12 form (either
// case) and refuses the nil UUID: ids end up in file names and event keys,
// so there must be exactly one spelling of each.
func parseUUID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.UUID{}, fmt.Errorf("%q is not a UUID in 8-4-4-4-12 form", s)
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("%q is not a UUID: %w", s, err)
	}
	if u == uuid.Nil {
		return uuid.UUID{}, fmt.Errorf("the nil UUID is not an id")
	}
	return u, nil
}

// ParsePersonaID parses a persona id in canonical UUID form.
func ParsePersonaID(s string) (PersonaID, error) {
	u, err := parseUUID(s)
	if err != nil {
		return PersonaID{}, fmt.Errorf("%w: %w", ErrPersonaIDInvalid, err)
	}
	return PersonaID(u), nil
}

// ParseArtifactID parses an artifact id in canonical UUID form.
func ParseArtifactID(s string) (ArtifactID, error) {
	u, err := parseUUID(s)
	if err != nil {
		return ArtifactID{}, fmt.Errorf("%w: %w", ErrArtifactIDInvalid, err)
	}
	return ArtifactID(u), nil
}

// String returns the canonical lower-case form.
func (p PersonaID) String() string { return uuid.UUID(p).String() }

// IsZero reports whether p is the zero value (no persona).
func (p PersonaID) IsZero() bool { return p == PersonaID{} }

// String returns the canonical lower-case form.
func (a ArtifactID) String() string { return uuid.UUID(a).String() }

// IsZero reports whether a is the zero value (no artifact).
func (a ArtifactID) IsZero() bool { return a == ArtifactID{} }

// parseSHA256 parses a hex SHA-256 digest (64 hex digits, either case).
func parseSHA256(s string) ([sha256.Size]byte, bool) {
	var sum [sha256.Size]byte
	if len(s) != 2*sha256.Size {
		return sum, false
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, false
	}
	return sum, true
}
