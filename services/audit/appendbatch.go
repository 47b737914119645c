package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"

	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
	"github.com/continuum-mesh/continuum/pkg/auth"
	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
)

// Bounds of AppendBatch and AppendStream.
const (
	// maxAppendBatch is the most entries one AppendBatch or AppendStream
	// request may carry: enough to amortize a call (a 1024-entry batch of
	// refusal-sized entries is ~0.5 MB), small enough that one request
	// never fills a group commit (maxBatchEntries) on its own.
	maxAppendBatch = 1024
	// maxStreamInFlight is how many requests of one AppendStream may be
	// received but not yet answered; the stream stops reading beyond it
	// (gRPC flow control then holds the producer back).
	maxStreamInFlight = 64
)

// AppendBatch records a batch of entries with one write and one fsync, all
// or nothing. The server's interceptor has already gated callers from
// outside the mesh on audit/append-batch.
func (s *Service) AppendBatch(ctx context.Context, req *auditv1.AppendBatchRequest) (*auditv1.AppendBatchResponse, error) {
	items, err := s.pendingBatch(req.GetEntries(), auth.Caller(ctx).Name)
	if err != nil {
		return nil, mapError(ctx, s.log, "append batch", err)
	}
	entries, err := s.store.append(items)
	if err != nil {
		return nil, mapError(ctx, s.log, "append batch", err)
	}
	return &auditv1.AppendBatchResponse{Acks: acksOf(entries)}, nil
}

// AppendStream records each request's entries as AppendBatch would,
// pipelined: requests are queued for group commit in the order received
// while earlier ones wait for their fsync, and answered in that order.
func (s *Service) AppendStream(stream grpc.BidiStreamingServer[auditv1.AppendStreamRequest, auditv1.AppendStreamResponse]) error {
	ctx := stream.Context()
	return mapError(ctx, s.log, "append stream", s.appendStream(ctx, stream))
}

// streamCommit is one received request on its way to its response: the
// queued commit, or the error that refused it before it was queued.
type streamCommit struct {
	req  *commitReq
	lead bool
	err  error
}

// streamAck is a request's outcome.
type streamAck struct {
	entries []auditlog.Entry
	err     error
}

// appendStream runs three goroutines joined by channels, so that neither a
// slow producer nor a slow reader of the responses holds up anyone else's
// commits:
//
//   - the receiver reads requests, checks them and queues them in arrival
//     order (store.enqueue); it takes one credit of the in-flight window
//     per request before reading it;
//   - the waiter waits for each queued request in order (store.wait),
//     leading a group commit when the role is handed to it, and never
//     blocks on the network;
//   - this goroutine sends each outcome and returns a credit.
//
// Every queued request is waited on, also after the stream has failed or
// the handler has returned: the leader role may be handed to any of them.
// The channels hold at most the window, so the waiter never blocks once
// the sender is gone. The stream's chain flag makes the store refuse the
// requests queued after one that failed, so what a stream recorded is
// always a prefix of what it sent.
func (s *Service) appendStream(ctx context.Context, stream grpc.BidiStreamingServer[auditv1.AppendStreamRequest, auditv1.AppendStreamResponse]) error {
	publisher := auth.Caller(ctx).Name
	chain := new(atomic.Bool)
	window := make(chan struct{}, maxStreamInFlight)
	queued := make(chan streamCommit, maxStreamInFlight)
	outcomes := make(chan streamAck, maxStreamInFlight)
	received := make(chan error, 1)

	go func() {
		defer close(queued)
		for {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				received <- ctx.Err()
				return
			}
			req, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				received <- err
				return
			}
			if chain.Load() {
				// An earlier request failed; the stream is ending.
				received <- nil
				return
			}
			items, err := s.pendingBatch(req.GetEntries(), publisher)
			var c streamCommit
			if err == nil {
				c.req, c.lead, err = s.store.enqueue(items, chain)
			}
			if err != nil {
				// Refused before it was queued: what came before is
				// still committed and answered, nothing after is read.
				queued <- streamCommit{err: err}
				received <- nil
				return
			}
			queued <- c
		}
	}()

	go func() {
		defer close(outcomes)
		for c := range queued {
			if c.err != nil {
				outcomes <- streamAck{err: c.err}
				continue
			}
			entries, err := s.store.wait(c.req, c.lead)
			outcomes <- streamAck{entries: entries, err: err}
		}
	}()

	for o := range outcomes {
		if o.err == nil {
			o.err = stream.Send(&auditv1.AppendStreamResponse{Acks: acksOf(o.entries)})
		}
		if o.err != nil {
			// Returning ends the stream's context, which stops the
			// receiver; the waiter finishes what is queued on its own.
			chain.Store(true)
			return o.err
		}
		<-window
	}
	return <-received
}

// pendingBatch checks the entries of an AppendBatch or AppendStream request,
// all of them before any is queued.
func (s *Service) pendingBatch(reqs []*auditv1.AppendRequest, publisher string) ([]pendingEntry, error) {
	if len(reqs) == 0 || len(reqs) > maxAppendBatch {
		return nil, newError(errBatchInvalid,
			fmt.Sprintf("a request carries 1 to %d entries, not %d", maxAppendBatch, len(reqs)),
			"entries", strconv.Itoa(len(reqs)), "max_entries", strconv.Itoa(maxAppendBatch))
	}
	items := make([]pendingEntry, len(reqs))
	for i, r := range reqs {
		p, err := s.pendingOf(r, publisher)
		if err != nil {
			var de *detailError
			if errors.As(err, &de) {
				de.msg = fmt.Sprintf("entry %d: %s", i, de.msg)
				de.kv = append(de.kv, "index", strconv.Itoa(i))
			}
			return nil, err
		}
		items[i] = p
	}
	return items, nil
}

// pendingOf checks one entry to append and makes it a pending entry.
func (s *Service) pendingOf(req *auditv1.AppendRequest, publisher string) (pendingEntry, error) {
	if !auditlog.ValidKind(req.GetKind()) {
		return pendingEntry{}, newError(errKindUnknown,
			fmt.Sprintf("kind %q is not one of %v", req.GetKind(), auditlog.Kinds), "kind", req.GetKind())
	}
	payload, err := s.payloadOf(req.GetPayload())
	if err != nil {
		return pendingEntry{}, newError(errPayloadInvalid, err.Error())
	}
	return pendingEntry{Kind: req.GetKind(), Payload: payload, Source: auditlog.Source{Publisher: publisher}}, nil
}

// acksOf acknowledges durable entries.
func acksOf(entries []auditlog.Entry) []*auditv1.AppendAck {
	acks := make([]*auditv1.AppendAck, len(entries))
	for i := range entries {
		e := &entries[i]
		acks[i] = &auditv1.AppendAck{Seq: e.Seq, TimestampMs: e.TimestampMs, ChainHash: e.ChainHash.String()}
	}
	return acks
}
