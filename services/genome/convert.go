package genome

import (
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
)

// Conversions between the domain types and their protobuf messages.

func roleProto(r Role) genomev1.Role {
	if r.Valid() {
		return genomev1.Role(r)
	}
	return genomev1.Role_ROLE_UNSPECIFIED
}

func roleFromProto(r genomev1.Role) (Role, error) {
	role := Role(r)
	if !role.Valid() {
		return RoleNone, fmt.Errorf("%w: %s", ErrRoleInvalid, r)
	}
	return role, nil
}

func refProto(r PageRef) *genomev1.PageRef {
	out := &genomev1.PageRef{ArtifactId: r.Artifact.String(), ExpertIndex: r.Expert, Offset: r.Offset, Length: r.Length}
	switch r.Kind {
	case KindWhole:
		out.Kind = genomev1.PageKind_PAGE_KIND_WHOLE
	case KindExpert:
		out.Kind = genomev1.PageKind_PAGE_KIND_EXPERT
	case KindByteRange:
		out.Kind = genomev1.PageKind_PAGE_KIND_BYTE_RANGE
	}
	return out
}

// refFromProto parses a page ref. An unspecified kind with no expert
// index, offset or length is the whole artifact, so JSON callers may send
// just {"artifact_id": "..."}.
func refFromProto(r *genomev1.PageRef) (PageRef, error) {
	if r == nil {
		return PageRef{}, fmt.Errorf("%w: page is required", ErrPageRefInvalid)
	}
	a, err := ParseArtifactID(r.GetArtifactId())
	if err != nil {
		return PageRef{}, err
	}
	ref := PageRef{Artifact: a, Expert: r.GetExpertIndex(), Offset: r.GetOffset(), Length: r.GetLength()}
	switch r.GetKind() {
	case genomev1.PageKind_PAGE_KIND_WHOLE:
		ref.Kind = KindWhole
	case genomev1.PageKind_PAGE_KIND_EXPERT:
		ref.Kind = KindExpert
	case genomev1.PageKind_PAGE_KIND_BYTE_RANGE:
		ref.Kind = KindByteRange
	case genomev1.PageKind_PAGE_KIND_UNSPECIFIED:
		if ref.Expert != 0 || ref.Offset != 0 || ref.Length != 0 {
			return PageRef{}, fmt.Errorf("%w: say which kind of page (expert or byte range)", ErrPageRefInvalid)
		}
		ref.Kind = KindWhole
	default:
		return PageRef{}, fmt.Errorf("%w: unknown kind %d", ErrPageRefInvalid, r.GetKind())
	}
	return ref, ref.Validate()
}

func residentProto(p ResidentPage) *genomev1.ResidentPage {
	return &genomev1.ResidentPage{Page: refProto(p.Ref), Role: roleProto(p.Role), SizeBytes: p.Size, Pinned: p.Pinned, Handle: p.Handle.String()}
}

func evictionProto(r EvictionRecord) *genomev1.EvictionRecord {
	return &genomev1.EvictionRecord{Page: refProto(r.Page), PersonaId: r.Persona.String(), From: roleProto(r.From), To: roleProto(r.To), Policy: r.Policy}
}

func evictionsProto(recs []EvictionRecord) []*genomev1.EvictionRecord {
	out := make([]*genomev1.EvictionRecord, len(recs))
	for i, r := range recs {
		out[i] = evictionProto(r)
	}
	return out
}

func denialProto(r AccessDenied, node string) *genomev1.AccessDenied {
	return &genomev1.AccessDenied{
		Actor: r.Actor.String(), Caller: r.Caller, Owner: r.Owner.String(), Page: refProto(r.Page),
		Reason: r.Reason, Operation: r.Operation, Node: node, At: timestamppb.New(r.At),
	}
}

func tierProto(t TierStatus) *genomev1.TierStatus {
	return &genomev1.TierStatus{
		Role: roleProto(t.Role), CapacityBytes: t.Capacity.Total, UsedBytes: t.Capacity.Used,
		AvailableBytes: t.Capacity.Available(), Utilization: t.Capacity.Utilization(), Policy: t.Policy, Pages: t.Pages,
		Home: t.Home, Evictions: t.Evictions, Faults: t.Faults,
	}
}
