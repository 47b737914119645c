package mesh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	membership "github.com/continuum-mesh/continuum/pkg/mesh"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// Reasons of this service's own errors. The membership errors keep the
// reasons pkg/mesh gives them (SERVICE_UNAVAILABLE, OWNER_DOWN, ...).
const (
	ReasonInvalidService = "INVALID_SERVICE"
	ReasonInvalidKey     = "INVALID_KEY"
	ReasonInternal       = "INTERNAL"
)

// errInvalid is a request that fails validation.
type errInvalid struct {
	reason, field, msg string
}

func (e *errInvalid) Error() string { return e.msg }

// toStatus is the one place this service's errors become gRPC statuses:
// invalid requests are INVALID_ARGUMENT, membership errors keep their
// typed status (pkg/mesh.ToStatus), context errors their codes, and
// anything else is INTERNAL with an id that is logged with the cause.
func (s *Service) toStatus(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var inv *errInvalid
	if errors.As(err, &inv) {
		return rpcerr.New(codes.InvalidArgument, inv.reason, inv.msg, "field", inv.field)
	}
	if ce := rpcerr.FromContext(err); ce != nil {
		return ce
	}
	if st := membership.ToStatus(err); st != err { //nolint:errorlint // identity: ToStatus returns err itself when it is no mesh error
		return st
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	id := errorID()
	s.log.ErrorContext(ctx, "mesh service error", "op", op, "error_id", id, "error", err)
	return rpcerr.New(codes.Internal, ReasonInternal, fmt.Sprintf("internal error (id %s)", id), "error_id", id)
}

func errorID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
