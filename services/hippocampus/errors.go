package hippocampus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc/codes"

	"github.com/continuum-mesh/continuum/pkg/region"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// Reasons in the google.rpc.ErrorInfo of the service's errors.
const (
	ReasonPersonaEmpty         = "PERSONA_EMPTY"
	ReasonPersonaInvalid       = "PERSONA_INVALID"
	ReasonChannelEmpty         = "CHANNEL_EMPTY"
	ReasonChannelInvalid       = "CHANNEL_INVALID"
	ReasonContentEmpty         = "CONTENT_EMPTY"
	ReasonContentTooLarge      = "CONTENT_TOO_LARGE"
	ReasonImportanceOutOfRange = "IMPORTANCE_OUT_OF_RANGE"
	ReasonFeatureInvalid       = "FEATURE_INVALID"
	ReasonEngramIDInvalid      = "ENGRAM_ID_INVALID"
	ReasonTimestampInvalid     = "TIMESTAMP_INVALID"
	ReasonEngramUnknown        = "ENGRAM_UNKNOWN"
	ReasonEngramIDsEmpty       = "ENGRAM_IDS_EMPTY"
	ReasonTooManyEngrams       = "TOO_MANY_ENGRAMS"
	ReasonEdgeKindInvalid      = "EDGE_KIND_INVALID"
	ReasonWeightInvalid        = "WEIGHT_INVALID"
	ReasonEdgeSelfLoop         = "EDGE_SELF_LOOP"
	ReasonCueTooLarge          = "CUE_TOO_LARGE"
	ReasonKOutOfRange          = "K_OUT_OF_RANGE"
	ReasonSignalEmpty          = "SIGNAL_EMPTY"
	ReasonSignalRejected       = "SIGNAL_REJECTED"
	ReasonPersonaFull          = "PERSONA_FULL"
	ReasonChannelsFull         = "CHANNELS_FULL"
	ReasonPersonaNotOwned      = "PERSONA_NOT_OWNED"
	ReasonPersonaMoving        = "PERSONA_MOVING"
	ReasonPersonaOwnerDown     = "PERSONA_OWNER_DOWN"
	ReasonPersonaUnknown       = "PERSONA_UNKNOWN"
	ReasonMeshUnavailable      = "MESH_UNAVAILABLE"
	ReasonMeshPeerRequired     = "MESH_PEER_REQUIRED"
	ReasonSnapshotInvalid      = "SNAPSHOT_INVALID"
	ReasonChunkInvalid         = "CHUNK_INVALID"
	ReasonSnapshotTooLarge     = "SNAPSHOT_TOO_LARGE"
	ReasonHandOffFailed        = "HANDOFF_FAILED"
	ReasonStoreUnavailable     = "STORE_UNAVAILABLE"
	ReasonServiceClosing       = "SERVICE_CLOSING"
	ReasonInternal             = "INTERNAL"
)

// Domain errors. Handlers return these; toStatus is the one place that
// turns them into gRPC statuses.
var (
	// ErrOwnerDown is what a Ring's Owner wraps when the persona's owner
	// crashed (as opposed to leaving): its personas are unavailable until it
	// is back.
	ErrOwnerDown = errors.New("persona owner is down")
	// ErrClosed is returned once Close has begun.
	ErrClosed = errors.New("hippocampus is closing")
	// ErrMeshPeerRequired refuses mesh-internal calls from anyone but a
	// mesh peer acting for itself.
	ErrMeshPeerRequired = errors.New("only a mesh peer may call this")
	// ErrPersonaUnknown is an export of a persona this member does not hold.
	ErrPersonaUnknown = errors.New("persona unknown")
	// errStore marks store failures.
	errStore = errors.New("store failure")
)

// InvalidError is a request that cannot be served as sent.
type InvalidError struct {
	Reason string
	Field  string
	Msg    string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Msg }

func invalid(reason, field, format string, args ...any) error {
	return &InvalidError{Reason: reason, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// EngramUnknownError names an engram the persona does not have.
type EngramUnknownError struct{ Persona, ID string }

func (e *EngramUnknownError) Error() string {
	return fmt.Sprintf("persona %q has no engram %q", e.Persona, e.ID)
}

// LimitError is a request refused because a bound was reached.
type LimitError struct {
	Reason string
	Msg    string
}

func (e *LimitError) Error() string { return e.Msg }

// NotOwnedError is a call for a persona another member owns.
type NotOwnedError struct{ Persona, Owner string }

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("persona %q is owned by %q", e.Persona, e.Owner)
}

// OwnerDownError is a call for a persona whose holder crashed.
type OwnerDownError struct{ Persona, Owner string }

func (e *OwnerDownError) Error() string {
	return fmt.Sprintf("persona %q is held by %q, which is down", e.Persona, e.Owner)
}

// MovingError is a call for a persona being handed between members.
type MovingError struct{ Persona string }

func (e *MovingError) Error() string { return fmt.Sprintf("persona %q is moving", e.Persona) }

// MeshError is a failure to learn the persona's owner.
type MeshError struct{ Err error }

func (e *MeshError) Error() string { return "mesh membership: " + e.Err.Error() }
func (e *MeshError) Unwrap() error { return e.Err }

// HandOffError is a failed hand-off.
type HandOffError struct {
	Persona, To string
	Err         error
}

func (e *HandOffError) Error() string {
	return fmt.Sprintf("hand persona %q to %q: %v", e.Persona, e.To, e.Err)
}
func (e *HandOffError) Unwrap() error { return e.Err }

// toStatus maps a domain error to the typed gRPC status callers see. It is
// the only place the service chooses codes and reasons; unexpected errors
// are logged with an id and reach the caller as a neutral INTERNAL.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if ce := rpcerr.FromContext(err); ce != nil {
		return ce
	}
	var (
		inv     *InvalidError
		unknown *EngramUnknownError
		limit   *LimitError
		owned   *NotOwnedError
		down    *OwnerDownError
		moving  *MovingError
		mesh    *MeshError
		handoff *HandOffError
		sig     *region.SignalError
		snap    *SnapshotError
	)
	switch {
	case errors.As(err, &inv):
		return rpcerr.New(codes.InvalidArgument, inv.Reason, inv.Error(), "field", inv.Field)
	case errors.As(err, &unknown):
		return rpcerr.New(codes.NotFound, ReasonEngramUnknown, unknown.Error(), "engram_id", unknown.ID)
	case errors.As(err, &limit):
		return rpcerr.New(codes.ResourceExhausted, limit.Reason, limit.Msg)
	case errors.As(err, &owned):
		return rpcerr.New(codes.Unavailable, ReasonPersonaNotOwned, owned.Error(), "persona", owned.Persona, "owner", owned.Owner)
	case errors.As(err, &down):
		return rpcerr.New(codes.Unavailable, ReasonPersonaOwnerDown, down.Error(), "persona", down.Persona, "owner", down.Owner)
	case errors.As(err, &moving):
		return rpcerr.New(codes.Unavailable, ReasonPersonaMoving, moving.Error(), "persona", moving.Persona)
	case errors.As(err, &mesh):
		return rpcerr.New(codes.Unavailable, ReasonMeshUnavailable, "mesh membership is not available")
	case errors.As(err, &sig):
		return rpcerr.New(codes.FailedPrecondition, ReasonSignalRejected, sig.Error(), "why", sig.Why, "signal", sig.Signal.Kind.String())
	case errors.As(err, &snap):
		return rpcerr.New(codes.InvalidArgument, ReasonSnapshotInvalid, snap.Error())
	case errors.Is(err, ErrPersonaUnknown):
		return rpcerr.New(codes.NotFound, ReasonPersonaUnknown, err.Error())
	case errors.Is(err, ErrMeshPeerRequired):
		return rpcerr.New(codes.PermissionDenied, ReasonMeshPeerRequired, err.Error())
	case errors.Is(err, ErrClosed):
		return rpcerr.New(codes.Unavailable, ReasonServiceClosing, err.Error())
	case errors.As(err, &handoff):
		id := errorID()
		log.WarnContext(ctx, "hand-off failed", "error_id", id, "persona", handoff.Persona, "to", handoff.To, "error", handoff.Err)
		return rpcerr.New(codes.Unavailable, ReasonHandOffFailed, "hand-off failed (id "+id+")", "persona", handoff.Persona, "to", handoff.To, "error_id", id)
	case errors.Is(err, errStore):
		id := errorID()
		log.ErrorContext(ctx, "store failure", "error_id", id, "error", err)
		return rpcerr.New(codes.Unavailable, ReasonStoreUnavailable, "the store is unavailable (id "+id+")", "error_id", id)
	}
	id := errorID()
	log.ErrorContext(ctx, "unexpected error", "error_id", id, "error", err)
	return rpcerr.New(codes.Internal, ReasonInternal, "internal error (id "+id+")", "error_id", id)
}

func errorID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
