package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/topic"
)

// The domain errors of the events service. Handlers return them (wrapped
// with detail by failure), and toStatus maps them to typed gRPC errors in
// this one place.
var (
	errClassEmptyName          = errors.New("class name is empty")
	errClassInvalidName        = errors.New("class name is not a topic or artifact key")
	errClassEmptySchema        = errors.New("class schema version is empty")
	errClassSchemaInvalid      = errors.New("invalid class schema version")
	errBroadcastWithoutChannel = errors.New("broadcast class without a channel strategy")
	errChannelWithoutBroadcast = errors.New("channel strategy on a class that is not broadcast")
	errClassChannelInvalid     = errors.New("invalid channel strategy")
	errClassSchemaPolicy       = errors.New("invalid unknown-schema policy")
	errClassRetentionInvalid   = errors.New("invalid retention")
	errClassConflict           = errors.New("class already declared differently")
	errClassLimit              = errors.New("too many classes")
	errClassUnknown            = errors.New("unknown class")
	errDurableUnavailable      = errors.New("durable classes need a data directory")
	errNotBroadcast            = errors.New("class is not broadcast")
	errChannelContextMissing   = errors.New("the channel strategy needs a room, peer or custom name")
	errChannelInvalid          = errors.New("invalid channel name")

	errSchemaUnknown  = errors.New("schema version unknown to the class")
	errSchemaInvalid  = errors.New("invalid schema version")
	errHeaderInvalid  = errors.New("invalid header")
	errMsgIDInvalid   = errors.New("invalid msg_id")
	errEventTooLarge  = errors.New("event too large")
	errPublishPayload = errors.New("invalid payload")
	errPublishBatch   = errors.New("invalid publish batch")

	errSelectorMissing     = errors.New("no pattern or artifact selector")
	errFilterInvalid       = errors.New("invalid filter")
	errStartConflict       = errors.New("start_after_sequence and last_n both set")
	errStartAmbiguous      = errors.New("start position needs a selector that resolves to exactly one stream")
	errStartBeyondEnd      = errors.New("start_after_sequence is beyond the stream's last sequence")
	errQueueTooLarge       = errors.New("queue_size above the server's maximum")
	errBatchTooLarge       = errors.New("max_batch above the server's maximum")
	errSubscriptionLimit   = errors.New("too many subscriptions")
	errSubscriptionIDEmpty = errors.New("subscription id is empty")
	errNotOwner            = errors.New("subscription belongs to another principal")

	errShuttingDown = errors.New("events service is shutting down")
	errStoreFailed  = errors.New("durable store failed")
	errStoreCorrupt = errors.New("durable store is corrupt")
)

type mapping struct {
	err    error
	code   codes.Code
	reason string
}

// mappings is the one table from domain errors to gRPC codes and
// ErrorInfo reasons. The first entry errors.Is matches wins.
var mappings = []mapping{
	{errClassEmptyName, codes.InvalidArgument, "CLASS_EMPTY_NAME"},
	{errClassInvalidName, codes.InvalidArgument, "CLASS_INVALID_NAME"},
	{errClassEmptySchema, codes.InvalidArgument, "CLASS_EMPTY_SCHEMA_VERSION"},
	{errClassSchemaInvalid, codes.InvalidArgument, "CLASS_INVALID_SCHEMA_VERSION"},
	{errBroadcastWithoutChannel, codes.InvalidArgument, "CLASS_BROADCAST_WITHOUT_CHANNEL"},
	{errChannelWithoutBroadcast, codes.InvalidArgument, "CLASS_CHANNEL_WITHOUT_BROADCAST"},
	{errClassChannelInvalid, codes.InvalidArgument, "CLASS_CHANNEL_INVALID"},
	{errClassSchemaPolicy, codes.InvalidArgument, "CLASS_SCHEMA_POLICY_INVALID"},
	{errClassRetentionInvalid, codes.InvalidArgument, "CLASS_RETENTION_INVALID"},
	{errClassConflict, codes.AlreadyExists, "CLASS_CONFLICT"},
	{errClassLimit, codes.ResourceExhausted, "CLASS_LIMIT"},
	{errClassUnknown, codes.NotFound, "CLASS_UNKNOWN"},
	{errDurableUnavailable, codes.FailedPrecondition, "DURABLE_UNAVAILABLE"},
	{errNotBroadcast, codes.FailedPrecondition, "CLASS_NOT_BROADCAST"},
	{errChannelContextMissing, codes.InvalidArgument, "CHANNEL_CONTEXT_MISSING"},
	{errChannelInvalid, codes.InvalidArgument, "CHANNEL_INVALID"},

	{topic.ErrInvalidTopic, codes.InvalidArgument, "TOPIC_INVALID"},
	{errSchemaUnknown, codes.InvalidArgument, "SCHEMA_UNKNOWN"},
	{errSchemaInvalid, codes.InvalidArgument, "SCHEMA_VERSION_INVALID"},
	{errHeaderInvalid, codes.InvalidArgument, "HEADER_INVALID"},
	{errMsgIDInvalid, codes.InvalidArgument, "MSG_ID_INVALID"},
	{errEventTooLarge, codes.InvalidArgument, "EVENT_TOO_LARGE"},
	{errPublishPayload, codes.InvalidArgument, "PAYLOAD_INVALID"},
	{errPublishBatch, codes.InvalidArgument, "PUBLISH_BATCH_INVALID"},

	{errSelectorMissing, codes.InvalidArgument, "SELECTOR_MISSING"},
	{topic.ErrInvalidPattern, codes.InvalidArgument, "PATTERN_INVALID"},
	{topic.ErrInvalidArtifact, codes.InvalidArgument, "ARTIFACT_INVALID"},
	{errFilterInvalid, codes.InvalidArgument, "FILTER_INVALID"},
	{errStartConflict, codes.InvalidArgument, "START_CONFLICT"},
	{errStartAmbiguous, codes.InvalidArgument, "START_AMBIGUOUS"},
	{errStartBeyondEnd, codes.OutOfRange, "START_BEYOND_END"},
	{errQueueTooLarge, codes.InvalidArgument, "QUEUE_TOO_LARGE"},
	{errBatchTooLarge, codes.InvalidArgument, "BATCH_TOO_LARGE"},
	{errSubscriptionLimit, codes.ResourceExhausted, "SUBSCRIPTION_LIMIT"},
	{errSubscriptionIDEmpty, codes.InvalidArgument, "SUBSCRIPTION_ID_EMPTY"},
	{errNotOwner, codes.PermissionDenied, "SUBSCRIPTION_NOT_OWNED"},

	{errShuttingDown, codes.Unavailable, "SHUTTING_DOWN"},
	{errStoreFailed, codes.Unavailable, "STORE_FAILED"},
	{errStoreCorrupt, codes.DataLoss, "STORE_CORRUPT"},
}

// Reasons of the events service, for clients and tests to switch on.
const (
	ReasonClassConflict        = "CLASS_CONFLICT"
	ReasonStartAmbiguous       = "START_AMBIGUOUS"
	ReasonShuttingDown         = "SHUTTING_DOWN"
	ReasonSubscriptionNotOwned = "SUBSCRIPTION_NOT_OWNED"
)

// detailError is a domain error with what a caller needs to fix it: a
// human detail and ErrorInfo metadata.
type detailError struct {
	kind   error
	detail string
	meta   []string
}

func (e *detailError) Error() string {
	if e.detail == "" {
		return e.kind.Error()
	}
	return e.kind.Error() + ": " + e.detail
}

func (e *detailError) Unwrap() error { return e.kind }

// failure wraps a domain error with detail and metadata (alternating keys
// and values).
func failure(kind error, detail string, kv ...string) error {
	return &detailError{kind: kind, detail: detail, meta: kv}
}

// toStatus maps an error to the typed gRPC error callers see. Statuses
// (from the gate, or already mapped) pass through; context errors keep their
// codes; anything unknown becomes INTERNAL with an id that is logged with
// the real error.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if ce := rpcerr.FromContext(err); ce != nil {
		return ce
	}
	for _, m := range mappings {
		if !errors.Is(err, m.err) {
			continue
		}
		var kv []string
		var de *detailError
		if errors.As(err, &de) {
			kv = de.meta
		}
		var te *topic.Error
		if errors.As(err, &te) {
			kv = append(kv, "input", te.Input)
		}
		if m.code == codes.Unavailable || m.code == codes.DataLoss {
			log.ErrorContext(ctx, "events: "+m.reason, "error", err)
		}
		return rpcerr.New(m.code, m.reason, err.Error(), kv...)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	log.ErrorContext(ctx, "events: unmapped error", "error_id", id, "error", err)
	return rpcerr.New(codes.Internal, "INTERNAL", "internal error (id "+id+")", "error_id", id)
}
