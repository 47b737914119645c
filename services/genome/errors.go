package genome

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc/codes"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// Domain errors. Handlers never return them as they are: toStatus maps each
// to a gRPC code and an ErrorInfo reason, in this one place.
var (
	ErrPersonaIDInvalid    = errors.New("persona id is invalid")
	ErrArtifactIDInvalid   = errors.New("artifact id is invalid")
	ErrPageRefInvalid      = errors.New("page ref is invalid")
	ErrRoleInvalid         = errors.New("role is invalid")
	ErrCapacityInvalid     = errors.New("capacity is invalid")
	ErrHeaderMissing       = errors.New("the first message must be the header")
	ErrHeaderInvalid       = errors.New("artifact header is invalid")
	ErrExpertsInvalid      = errors.New("expert layout is invalid")
	ErrChecksumMismatch    = errors.New("checksum mismatch")
	ErrSizeMismatch        = errors.New("size mismatch")
	ErrPersonaUnknown      = errors.New("persona unknown")
	ErrArtifactUnknown     = errors.New("artifact unknown")
	ErrPageOwned           = errors.New("page is owned by another persona")
	ErrPageNotResident     = errors.New("page is not resident in the persona's working set")
	ErrNoEvictionCandidate = errors.New("no page can be evicted to make room")
	ErrWorkingSetFull      = errors.New("working set is full of pinned pages")
	ErrTierFull            = errors.New("tier is full")
	ErrArtifactDataLost    = errors.New("artifact data is lost")
	ErrPageCorrupt         = errors.New("page data is corrupt")
	ErrPageNotStored       = errors.New("page is not stored in this tier")
	ErrClosed              = errors.New("genome service is closed")
)

// Reasons are the ErrorInfo reasons clients switch on.
const (
	ReasonPersonaIDInvalid    = "PERSONA_ID_INVALID"
	ReasonArtifactIDInvalid   = "ARTIFACT_ID_INVALID"
	ReasonPageRefInvalid      = "PAGE_REF_INVALID"
	ReasonRoleInvalid         = "ROLE_INVALID"
	ReasonCapacityInvalid     = "CAPACITY_INVALID"
	ReasonHeaderMissing       = "HEADER_MISSING"
	ReasonHeaderInvalid       = "HEADER_INVALID"
	ReasonExpertsInvalid      = "EXPERTS_INVALID"
	ReasonChecksumMismatch    = "CHECKSUM_MISMATCH"
	ReasonSizeMismatch        = "SIZE_MISMATCH"
	ReasonPersonaUnknown      = "PERSONA_UNKNOWN"
	ReasonArtifactUnknown     = "ARTIFACT_UNKNOWN"
	ReasonPageOwned           = "PAGE_OWNED"
	ReasonPageAccessDenied    = "PAGE_ACCESS_DENIED"
	ReasonPageNotResident     = "PAGE_NOT_RESIDENT"
	ReasonNoEvictionCandidate = "NO_EVICTION_CANDIDATE"
	ReasonWorkingSetFull      = "WORKING_SET_FULL"
	ReasonTierFull            = "TIER_FULL"
	ReasonRoleNotConfigured   = "ROLE_NOT_CONFIGURED"
	ReasonArtifactDataLost    = "ARTIFACT_DATA_LOST"
	ReasonPageCorrupt         = "PAGE_CORRUPT"
	ReasonUnavailable         = "GENOME_CLOSED"
	ReasonInternal            = "INTERNAL"
)

// RoleNotConfiguredError is the error of a role this node's chain lacks.
type RoleNotConfiguredError struct{ Role Role }

func (e *RoleNotConfiguredError) Error() string {
	return fmt.Sprintf("role %s is not configured on this node", e.Role)
}

// AccessDeniedError is the error of a refused access; Record is what was
// published for the audit recorder.
type AccessDeniedError struct{ Record AccessDenied }

func (e *AccessDeniedError) Error() string {
	return fmt.Sprintf("persona %s may not use page %s: it is owned by persona %s",
		e.Record.Actor, e.Record.Page, e.Record.Owner)
}

// pageError attaches the page and persona a failure concerns, so the
// mapping can put them in ErrorInfo metadata.
type pageError struct {
	op      string
	persona PersonaID
	page    PageRef
	err     error
}

func (e *pageError) Error() string {
	if e.persona.IsZero() {
		return fmt.Sprintf("%s %s: %v", e.op, e.page, e.err)
	}
	return fmt.Sprintf("%s %s for persona %s: %v", e.op, e.page, e.persona, e.err)
}

func (e *pageError) Unwrap() error { return e.err }

// opErr wraps err with the operation, persona and page, unless err is nil.
func opErr(op string, persona PersonaID, page PageRef, err error) error {
	if err == nil {
		return nil
	}
	return &pageError{op: op, persona: persona, page: page, err: err}
}

// toStatus maps a domain error to a typed gRPC status: the one place where
// domain errors meet codes. Context errors keep their codes; anything
// unexpected becomes INTERNAL with a neutral message and an id that is
// logged with the real error.
func toStatus(log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if ce := rpcerr.FromContext(err); ce != nil {
		return ce
	}
	var kv []string
	var pe *pageError
	if errors.As(err, &pe) {
		if pe.page.Kind != KindInvalid {
			kv = append(kv, "page", pe.page.String(), "artifact_id", pe.page.Artifact.String())
		}
		if !pe.persona.IsZero() {
			kv = append(kv, "persona_id", pe.persona.String())
		}
	}
	msg := err.Error()
	var denied *AccessDeniedError
	var notConfigured *RoleNotConfiguredError
	switch {
	case errors.As(err, &denied):
		r := denied.Record
		return rpcerr.New(codes.PermissionDenied, ReasonPageAccessDenied, msg,
			"actor", r.Actor.String(), "owner", r.Owner.String(), "caller", r.Caller,
			"page", r.Page.String(), "reason", r.Reason)
	case errors.As(err, &notConfigured):
		return rpcerr.New(codes.FailedPrecondition, ReasonRoleNotConfigured, msg,
			append(kv, "role", notConfigured.Role.String())...)
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			return rpcerr.New(m.code, m.reason, msg, kv...)
		}
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	log.Error("genome: unexpected error", "error_id", id, "error", err)
	return rpcerr.New(codes.Internal, ReasonInternal, "internal error (id "+id+")", "error_id", id)
}

var errorTable = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{ErrPersonaIDInvalid, codes.InvalidArgument, ReasonPersonaIDInvalid},
	{ErrArtifactIDInvalid, codes.InvalidArgument, ReasonArtifactIDInvalid},
	{ErrPageRefInvalid, codes.InvalidArgument, ReasonPageRefInvalid},
	{ErrRoleInvalid, codes.InvalidArgument, ReasonRoleInvalid},
	{ErrCapacityInvalid, codes.InvalidArgument, ReasonCapacityInvalid},
	{ErrHeaderMissing, codes.InvalidArgument, ReasonHeaderMissing},
	{ErrHeaderInvalid, codes.InvalidArgument, ReasonHeaderInvalid},
	{ErrExpertsInvalid, codes.InvalidArgument, ReasonExpertsInvalid},
	{ErrChecksumMismatch, codes.InvalidArgument, ReasonChecksumMismatch},
	{ErrSizeMismatch, codes.InvalidArgument, ReasonSizeMismatch},
	{ErrPersonaUnknown, codes.NotFound, ReasonPersonaUnknown},
	{ErrArtifactUnknown, codes.NotFound, ReasonArtifactUnknown},
	{ErrPageOwned, codes.AlreadyExists, ReasonPageOwned},
	{ErrPageNotResident, codes.FailedPrecondition, ReasonPageNotResident},
	{ErrNoEvictionCandidate, codes.ResourceExhausted, ReasonNoEvictionCandidate},
	{ErrWorkingSetFull, codes.ResourceExhausted, ReasonWorkingSetFull},
	{ErrTierFull, codes.ResourceExhausted, ReasonTierFull},
	{ErrArtifactDataLost, codes.DataLoss, ReasonArtifactDataLost},
	{ErrPageCorrupt, codes.DataLoss, ReasonPageCorrupt},
	{ErrClosed, codes.Unavailable, ReasonUnavailable},
}
