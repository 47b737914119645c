package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// ErrorInfo reasons of AuditService, besides the verification reasons of
// pkg/auditlog (CHAIN_BROKEN, SEQUENCE_GAP, TIMESTAMP_WENT_BACKWARD), which
// Verify returns with DATA_LOSS.
const (
	ReasonKindUnknown    = "KIND_UNKNOWN"
	ReasonPayloadInvalid = "PAYLOAD_INVALID"
	ReasonBatchInvalid   = "BATCH_INVALID"
	ReasonStreamAborted  = "STREAM_ABORTED"
	ReasonSeqOutOfRange  = "SEQ_OUT_OF_RANGE"
	ReasonSizeOutOfRange = "SIZE_OUT_OF_RANGE"
	ReasonLogCorrupt     = "LOG_CORRUPT"
	ReasonLogFailed      = "LOG_FAILED"
	ReasonWriteFailed    = "LOG_WRITE_FAILED"
	ReasonLogClosed      = "LOG_CLOSED"
	ReasonEntryMalformed = "ENTRY_MALFORMED"
	ReasonInternal       = "INTERNAL"
)

// Domain errors. Each is wrapped in a *detailError carrying the ErrorInfo
// metadata; mapError turns them into statuses.
var (
	errKindUnknown    = errors.New("unknown kind")
	errPayloadInvalid = errors.New("payload invalid")
	// errBatchInvalid: an AppendBatch or AppendStream request with no
	// entries or more than maxAppendBatch.
	errBatchInvalid = errors.New("batch invalid")
	// errStreamAborted: a request of an AppendStream queued after one that
	// failed (or after the stream ended); it was not recorded.
	errStreamAborted = errors.New("append stream aborted")
	errSeqOutOfRange = errors.New("seq out of range")
	// errSizeInvalid: sizes that can never be valid (old > new).
	errSizeInvalid = errors.New("tree sizes out of order")
	// errSizeBeyondLog: a size the log has not reached (yet).
	errSizeBeyondLog = errors.New("tree size beyond the log")
	// errLogCorrupt: the log failed verification when the service opened
	// it; appends and proofs are refused until an operator repairs it.
	errLogCorrupt = errors.New("audit log failed verification when opened")
	// errLogFailed: a write could not be undone or an fsync failed; the
	// service must be restarted to reopen the log.
	errLogFailed = errors.New("audit log failed")
	// errWriteFailed: a write failed and was cut off; later appends may
	// succeed.
	errWriteFailed = errors.New("audit log write failed")
	// errLogClosed: Close was called.
	errLogClosed = errors.New("audit log closed")
	// errEntryMalformed: Read met a line it cannot parse.
	errEntryMalformed = errors.New("log entry malformed")
)

// detailError is a domain error with a message and ErrorInfo metadata.
type detailError struct {
	kind error
	msg  string
	kv   []string
}

func (e *detailError) Error() string { return e.msg }
func (e *detailError) Unwrap() error { return e.kind }

func newError(kind error, msg string, kv ...string) error {
	return &detailError{kind: kind, msg: msg, kv: kv}
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// statusOf is the gRPC code and reason of each domain error.
var statusOf = []struct {
	kind   error
	code   codes.Code
	reason string
}{
	{errKindUnknown, codes.InvalidArgument, ReasonKindUnknown},
	{errPayloadInvalid, codes.InvalidArgument, ReasonPayloadInvalid},
	{errBatchInvalid, codes.InvalidArgument, ReasonBatchInvalid},
	{errStreamAborted, codes.Aborted, ReasonStreamAborted},
	{errSeqOutOfRange, codes.InvalidArgument, ReasonSeqOutOfRange},
	{errSizeInvalid, codes.InvalidArgument, ReasonSizeOutOfRange},
	{errSizeBeyondLog, codes.OutOfRange, ReasonSizeOutOfRange},
	{errLogCorrupt, codes.FailedPrecondition, ReasonLogCorrupt},
	{errLogFailed, codes.Unavailable, ReasonLogFailed},
	{errWriteFailed, codes.Unavailable, ReasonWriteFailed},
	{errLogClosed, codes.Unavailable, ReasonLogClosed},
	{errEntryMalformed, codes.DataLoss, ReasonEntryMalformed},
}

// mapError is the one place a handler error becomes a gRPC status: context
// errors keep their codes, verification failures are DATA_LOSS with the
// failure's reason and seq, domain errors get their code and reason, and
// anything else is INTERNAL with an id that is logged with the real error.
func mapError(ctx context.Context, log *slog.Logger, op string, err error) error {
	if err == nil {
		return nil
	}
	if ce := rpcerr.FromContext(err); ce != nil {
		return ce
	}
	var ve *auditlog.VerifyError
	if errors.As(err, &ve) {
		return rpcerr.New(codes.DataLoss, ve.Reason, ve.Error(), verifyMetadata(ve)...)
	}
	var de *detailError
	if errors.As(err, &de) {
		for _, s := range statusOf {
			if errors.Is(de.kind, s.kind) {
				return rpcerr.New(s.code, s.reason, de.msg, de.kv...)
			}
		}
	}
	if st, ok := status.FromError(err); ok {
		// A stream's Send failing: the caller is gone; keep its status.
		return st.Err()
	}
	id := errorID()
	log.ErrorContext(ctx, "audit: "+op+" failed", "error_id", id, "error", err)
	return rpcerr.New(codes.Internal, ReasonInternal, "internal error (id "+id+")", "error_id", id)
}

// verifyMetadata is the ErrorInfo metadata of a verification failure.
func verifyMetadata(ve *auditlog.VerifyError) []string {
	kv := []string{"seq", u64(ve.Seq), "offset", strconv.FormatInt(ve.Offset, 10)}
	if ve.Reason == auditlog.ReasonSequenceGap {
		kv = append(kv, "expected", u64(ve.Expected), "got", u64(ve.Got))
	}
	return kv
}

// corruptError is the error of an operation refused because the log failed
// verification at open.
func corruptError(ve *auditlog.VerifyError) error {
	return newError(errLogCorrupt,
		fmt.Sprintf("the audit log failed verification when the service opened it (%v); run `continuum audit verify` on it, move it aside and restart", ve),
		append([]string{"verify_reason", ve.Reason}, verifyMetadata(ve)...)...)
}

func errorID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
