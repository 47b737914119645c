package genome

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Role is a tier's place in the chain, fastest first. RoleNone is no tier
// at all: the "from" of a true cold miss, the "to" of a page dropped from
// every tier.
type Role uint8

// The tier roles, fastest first.
const (
	RoleNone Role = iota
	RoleFast
	RoleWarm
	RoleBench
	RoleCold
	RoleFrozen
)

// Roles are the tier roles, fastest first.
func Roles() []Role { return []Role{RoleFast, RoleWarm, RoleBench, RoleCold, RoleFrozen} }

var roleNames = [...]string{"none", "fast", "warm", "bench", "cold", "frozen"}

// String returns the role's lower-case name ("fast"), "none" for RoleNone.
func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// Valid reports whether r is one of Fast..Frozen.
func (r Role) Valid() bool { return r >= RoleFast && r <= RoleFrozen }

// Medium says what a role's store is made of: memory for Fast and Warm,
// files for Bench and Cold, compressed files for Frozen.
func (r Role) Medium() string {
	switch r {
	case RoleFast, RoleWarm:
		return "memory"
	case RoleBench, RoleCold:
		return "files"
	case RoleFrozen:
		return "compressed files"
	}
	return "none"
}

// CanonicalPolicy is the eviction policy a role gets when the tier
// configuration names none. docs/genome.md explains the choice per role.
func (r Role) CanonicalPolicy() string {
	switch r {
	case RoleFast:
		return PolicyWTinyLFU
	case RoleWarm:
		return PolicySLRU
	case RoleBench:
		return PolicyLRU
	case RoleCold:
		return PolicyFIFO
	}
	return PolicyHome
}

// ParseRole parses a role name ("fast", ..., "frozen"), case-insensitively.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles() {
		if strings.EqualFold(s, r.String()) {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("%w: %q is not one of fast, warm, bench, cold, frozen", ErrRoleInvalid, s)
}

// Capacity is a capacity in bytes (of a tier or a working set) and how much
// of it is used. Used may exceed Total (a tier shrunk by configuration);
// Available then saturates at zero.
type Capacity struct {
	Total uint64
	Used  uint64
}

// Available is Total minus Used, never below zero.
func (c Capacity) Available() uint64 {
	if c.Used >= c.Total {
		return 0
	}
	return c.Total - c.Used
}

// Utilization is Used over Total; zero for a capacity of zero.
func (c Capacity) Utilization() float64 {
	if c.Total == 0 {
		return 0
	}
	return float64(c.Used) / float64(c.Total)
}

// PageKind says which part of an artifact a page is.
type PageKind uint8

// The page kinds.
const (
	KindInvalid PageKind = iota
	// KindWhole is the whole artifact.
	KindWhole
	// KindExpert is one expert of a mixture-of-experts artifact, by index.
	KindExpert
	// KindByteRange is a byte range of a large file.
	KindByteRange
)

func (k PageKind) String() string {
	switch k {
	case KindWhole:
		return "whole"
	case KindExpert:
		return "expert"
	case KindByteRange:
		return "bytes"
	}
	return "invalid"
}

// PageRef names a page: a kind, an artifact and the offset of the page in
// it (an expert index or a byte range). It is comparable, so it keys maps.
type PageRef struct {
	Kind     PageKind
	Artifact ArtifactID
	// Expert is the expert index of a KindExpert page.
	Expert uint32
	// Offset and Length are the byte range of a KindByteRange page.
	Offset uint64
	Length uint64
}

// WholePage is the page of a whole artifact.
func WholePage(a ArtifactID) PageRef { return PageRef{Kind: KindWhole, Artifact: a} }

// ExpertPage is the page of one expert of an artifact.
func ExpertPage(a ArtifactID, index uint32) PageRef {
	return PageRef{Kind: KindExpert, Artifact: a, Expert: index}
}

// RangePage is the page of length bytes of an artifact from offset.
func RangePage(a ArtifactID, offset, length uint64) PageRef {
	return PageRef{Kind: KindByteRange, Artifact: a, Offset: offset, Length: length}
}

// Validate checks the shape of a ref on its own: a known kind, an artifact,
// and only the fields its kind uses. Whether the expert or range lies
// inside the artifact is checked against the artifact (Artifact.Span).
func (r PageRef) Validate() error {
	if r.Artifact.IsZero() {
		return fmt.Errorf("%w: no artifact id", ErrPageRefInvalid)
	}
	switch r.Kind {
	case KindWhole:
		if r.Expert != 0 || r.Offset != 0 || r.Length != 0 {
			return fmt.Errorf("%w: a whole page has no expert index, offset or length", ErrPageRefInvalid)
		}
	case KindExpert:
		if r.Offset != 0 || r.Length != 0 {
			return fmt.Errorf("%w: an expert page has no offset or length", ErrPageRefInvalid)
		}
	case KindByteRange:
		if r.Expert != 0 {
			return fmt.Errorf("%w: a byte-range page has no expert index", ErrPageRefInvalid)
		}
		if r.Length == 0 {
			return fmt.Errorf("%w: a byte range needs a length of at least 1", ErrPageRefInvalid)
		}
		if r.Offset+r.Length < r.Offset {
			return fmt.Errorf("%w: byte range overflows", ErrPageRefInvalid)
		}
	default:
		return fmt.Errorf("%w: unknown page kind %d", ErrPageRefInvalid, r.Kind)
	}
	return nil
}

// String renders the ref for logs and messages: "<artifact>",
// "<artifact>/expert/3", "<artifact>/bytes/4096+512".
func (r PageRef) String() string {
	switch r.Kind {
	case KindExpert:
		return r.Artifact.String() + "/expert/" + strconv.FormatUint(uint64(r.Expert), 10)
	case KindByteRange:
		return r.Artifact.String() + "/bytes/" + strconv.FormatUint(r.Offset, 10) + "+" + strconv.FormatUint(r.Length, 10)
	}
	return r.Artifact.String()
}

// hash mixes a ref into 64 bits for sharding and the frequency sketch. Ids
// are UUIDv5 (uniformly random bits), so folding them is enough; the mixer
// spreads the kind and offsets.
func (r PageRef) hash() uint64 {
	a := r.Artifact
	lo := uint64(a[0]) | uint64(a[1])<<8 | uint64(a[2])<<16 | uint64(a[3])<<24 |
		uint64(a[4])<<32 | uint64(a[5])<<40 | uint64(a[6])<<48 | uint64(a[7])<<56
	hi := uint64(a[8]) | uint64(a[9])<<8 | uint64(a[10])<<16 | uint64(a[11])<<24 |
		uint64(a[12])<<32 | uint64(a[13])<<40 | uint64(a[14])<<48 | uint64(a[15])<<56
	h := lo ^ mix64(hi^uint64(r.Kind)<<56^uint64(r.Expert))
	return mix64(h ^ mix64(r.Offset) ^ mix64(r.Length^0x9e3779b97f4a7c15))
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// PageHandle identifies one residency of a page: the tier it is in and a
// generation that changes whenever the page moves, so a client holding a
// handle can tell that the page moved since.
type PageHandle struct {
	Role Role
	Gen  uint64
}

// String renders the handle opaquely ("fast-2a").
func (h PageHandle) String() string {
	return h.Role.String() + "-" + strconv.FormatUint(h.Gen, 16)
}

// ResidentPage is a page held in a persona's working set, in some tier.
type ResidentPage struct {
	Ref    PageRef
	Role   Role
	Size   uint64
	Pinned bool
	Handle PageHandle
}

// WorkingSet is a persona's resident pages and its capacity.
type WorkingSet struct {
	Persona  PersonaID
	Capacity Capacity
	// Pages, fastest tier first.
	Pages []ResidentPage
}

// PageFault reports a page that was not resident: the role it was found
// in (RoleNone for a true cold miss: no tier held the page, so it was cut
// from its artifact's home copy) and the role it was promoted to.
type PageFault struct {
	From Role
	To   Role
}

// ColdMiss reports whether no tier held the page.
func (f PageFault) ColdMiss() bool { return f.From == RoleNone }

// EvictionRecord reports a page pushed down the chain to make room. To is
// RoleNone when the page was dropped (its bytes remain in the artifact's
// home copy).
type EvictionRecord struct {
	Page    PageRef
	Persona PersonaID
	From    Role
	To      Role
	Policy  string
	Size    uint64
}

// AccessDenied is the record of a refused access: the persona named in the
// request (Actor), the principal the call was made on behalf of (Caller),
// the owner of the page and why.
type AccessDenied struct {
	Actor     PersonaID
	Caller    string
	Owner     PersonaID
	Page      PageRef
	Reason    string
	Operation string
	At        time.Time
}

// Reasons of access denials.
const (
	DenyOwnedByAnother = "PAGE_OWNED_BY_ANOTHER_PERSONA"
)

// PageInResult is what a page-in did. Fault is meaningful only when
// Faulted; a hit has neither a fault nor evictions and costs no allocation.
type PageInResult struct {
	Resident  ResidentPage
	Faulted   bool
	Fault     PageFault
	Evictions []EvictionRecord
}

// PageOutResult is what a page-out did.
type PageOutResult struct {
	Moved         bool
	SkippedPinned bool
	From, To      Role
	Evictions     []EvictionRecord
}

// TierStatus is one tier's capacity, use and counters.
type TierStatus struct {
	Role      Role
	Capacity  Capacity
	Policy    string
	Pages     uint64
	Home      bool
	Evictions uint64
	Faults    uint64
}

// ParsePageRef parses the form PageRef.String renders: "<artifact>",
// "<artifact>/expert/<index>" or "<artifact>/bytes/<offset>+<length>".
// Command-line tools use it; it accepts nothing else.
func ParsePageRef(s string) (PageRef, error) {
	id, rest, sub := strings.Cut(s, "/")
	a, err := ParseArtifactID(id)
	if err != nil {
		return PageRef{}, err
	}
	ref := PageRef{Kind: KindWhole, Artifact: a}
	if sub {
		kind, arg, ok := strings.Cut(rest, "/")
		if !ok {
			return PageRef{}, fmt.Errorf("%w: %q: want <artifact>[/expert/<i>|/bytes/<offset>+<length>]", ErrPageRefInvalid, s)
		}
		switch kind {
		case "expert":
			n, err := strconv.ParseUint(arg, 10, 32)
			if err != nil {
				return PageRef{}, fmt.Errorf("%w: expert index %q", ErrPageRefInvalid, arg)
			}
			ref.Kind, ref.Expert = KindExpert, uint32(n)
		case "bytes":
			o, l, ok := strings.Cut(arg, "+")
			off, err1 := strconv.ParseUint(o, 10, 64)
			n, err2 := strconv.ParseUint(l, 10, 64)
			if !ok || err1 != nil || err2 != nil {
				return PageRef{}, fmt.Errorf("%w: byte range %q: want <offset>+<length>", ErrPageRefInvalid, arg)
			}
			ref.Kind, ref.Offset, ref.Length = KindByteRange, off, n
		default:
			return PageRef{}, fmt.Errorf("%w: %q: unknown page kind %q", ErrPageRefInvalid, s, kind)
		}
	}
	if err := ref.Validate(); err != nil {
		return PageRef{}, err
	}
	return ref, nil
}
