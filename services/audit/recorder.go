package audit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mesh/continuum/pkg/auditevents"
	"github.com/continuum-mesh/continuum/pkg/auditlog"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// A source is one durable stream the recorder follows. Its stream
// sequences are what makes recording exactly-once: the log remembers the
// highest one it holds from each source (rebuilt from the entries' source
// fields on open), resubscribes after it, and skips anything at or below
// it.
type source struct {
	// key names the stream: the class name "audit" (one sequence across
	// "audit" and every "audit:..." topic) or the artifact key.
	key   string
	class *eventsv1.EventClass
	// subscribe builds the request that replays after seq and then
	// streams live.
	subscribe func(after uint64) *eventsv1.SubscribeRequest
}

func sources() []source {
	return []source{
		{
			key:   auditevents.ClassName,
			class: auditevents.Class(),
			subscribe: func(after uint64) *eventsv1.SubscribeRequest {
				return &eventsv1.SubscribeRequest{
					Selector:           &eventsv1.SubscribeRequest_Pattern{Pattern: auditevents.ClassName + ":>"},
					StartAfterSequence: after,
				}
			},
		},
		{
			key:   auditevents.ArtifactAccessDenied,
			class: auditevents.AccessDeniedClass(),
			subscribe: func(after uint64) *eventsv1.SubscribeRequest {
				return &eventsv1.SubscribeRequest{
					Selector: &eventsv1.SubscribeRequest_Artifact{Artifact: &eventsv1.ArtifactSelector{
						Key: auditevents.ArtifactAccessDenied, Match: eventsv1.ArtifactMatch_ARTIFACT_MATCH_EXACT,
					}},
					StartAfterSequence: after,
				}
			},
		},
	}
}

// streamKey names the source stream of a recorded topic, or "" for an
// entry appended directly.
func streamKey(topic string) string {
	switch {
	case topic == auditevents.ClassName || strings.HasPrefix(topic, auditevents.ClassName+":"):
		return auditevents.ClassName
	case topic == auditevents.ArtifactAccessDenied:
		return auditevents.ArtifactAccessDenied
	}
	return ""
}

// kindOf maps a delivery's topic to the kind of entry it becomes.
func kindOf(topic string) (string, bool) {
	switch topic {
	case auditevents.TopicRefusal:
		// Dry-run refusals too: the payload's dry_run says which.
		return auditlog.KindRefusal, true
	case auditevents.TopicAccessDenied, auditevents.ArtifactAccessDenied:
		return auditlog.KindAccessDenied, true
	case auditevents.TopicGovernorOverride:
		return auditlog.KindGovernorOverride, true
	case auditevents.TopicPolicyDrift:
		return auditlog.KindFederationPolicyDrift, true
	}
	// "audit:<kind>" names a kind directly.
	if k, ok := strings.CutPrefix(topic, auditevents.ClassName+":"); ok && auditlog.ValidKind(k) {
		return k, true
	}
	return "", false
}

// recorderStats count what the recorder did since the service started.
type recorderStats struct {
	recorded      atomic.Uint64
	duplicates    atomic.Uint64
	unknownTopics atomic.Uint64
	rejected      atomic.Uint64
	lags          atomic.Uint64
	subscriptions atomic.Uint64
}

// errLagged ends a subscription that reported lost deliveries, so it is
// resubscribed from the high-water mark at once.
var errLagged = errors.New("subscription lagged")

// maxRecordBatch bounds how many deliveries go into one append.
const maxRecordBatch = 512

// follow keeps one source recorded until ctx ends: it declares the
// source's class, subscribes after the high-water mark, records, and on
// any break resubscribes with jittered exponential backoff.
func (s *Service) follow(ctx context.Context, src source) {
	backoff := s.cfg.ReconnectMin
	for {
		progressed, err := s.session(ctx, src)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = s.cfg.ReconnectMin
		}
		if errors.Is(err, errLagged) {
			s.log.WarnContext(ctx, "audit recorder lagged; resubscribing from the high-water mark",
				"source", src.key, "after", s.store.highWater(src.key))
			continue
		}
		s.log.WarnContext(ctx, "audit recorder: subscription broke; will resubscribe",
			"source", src.key, "after", s.store.highWater(src.key), "retry_in", backoff, "error", err)
		// Full jitter keeps many recorders from resubscribing in step.
		wait := backoff/2 + rand.N(backoff/2+1) //nolint:gosec // jitter needs no cryptographic randomness
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, s.cfg.ReconnectMax)
	}
}

// session is one subscription: it returns when the stream breaks, lags,
// an append fails, or ctx ends; progressed says whether it recorded or
// acknowledged anything (so backoff resets).
func (s *Service) session(ctx context.Context, src source) (progressed bool, err error) {
	if _, err := s.deps.Events.DeclareClass(ctx, &eventsv1.DeclareClassRequest{Class: src.class}); err != nil {
		if status.Code(err) != codes.AlreadyExists {
			return false, fmt.Errorf("declare class %s: %w", src.class.GetName(), err)
		}
		// Someone declared the class differently; it exists, which is what
		// the recorder needs.
		s.log.WarnContext(ctx, "audit recorder: class already declared differently", "class", src.class.GetName(), "error", err)
	}
	after := s.store.highWater(src.key)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.deps.Events.Subscribe(sctx, src.subscribe(after))
	if err != nil {
		return false, fmt.Errorf("subscribe %s after %d: %w", src.key, after, err)
	}
	s.rec.subscriptions.Add(1)
	s.log.DebugContext(ctx, "audit recorder subscribed", "source", src.key, "after", after)

	// A reader goroutine feeds msgs, so the recorder can take everything
	// that has arrived into one append.
	msgs := make(chan *eventsv1.SubscribeResponse, maxRecordBatch)
	recvErr := make(chan error, 1)
	go func() {
		defer close(msgs)
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-sctx.Done():
				recvErr <- sctx.Err()
				return
			}
		}
	}()
	defer func() {
		cancel()
		for range msgs { //nolint:revive // drain so the reader goroutine ends
		}
	}()

	hwm := after
	var pending []pendingEntry
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if _, err := s.store.append(pending); err != nil {
			return fmt.Errorf("record %d events from %s: %w", len(pending), src.key, err)
		}
		s.rec.recorded.Add(uint64(len(pending)))
		progressed = true
		pending = pending[:0]
		return nil
	}
	for {
		var m *eventsv1.SubscribeResponse
		var ok bool
		select {
		case m, ok = <-msgs:
		case <-ctx.Done():
			return progressed, ctx.Err()
		}
		if !ok {
			if err := flush(); err != nil {
				return progressed, err
			}
			return progressed, <-recvErr
		}
		// Take whatever else has arrived, then record it in one append.
		for more := true; more; {
			switch {
			case m.GetAck() != nil:
				progressed = true
			case m.GetLag() != nil:
				s.rec.lags.Add(1)
				if err := flush(); err != nil {
					return progressed, err
				}
				return progressed, fmt.Errorf("%w: missed %d", errLagged, m.GetLag().GetMissed())
			case m.GetDelivery() != nil:
				d := m.GetDelivery()
				if d.GetStreamSequence() > hwm {
					hwm = d.GetStreamSequence()
					if e, ok := s.entryOf(ctx, d); ok {
						pending = append(pending, e)
					}
				} else {
					s.skipDuplicate(ctx, src, d, after)
				}
			}
			if len(pending) >= maxRecordBatch {
				break
			}
			select {
			case m, more = <-msgs:
				more = more && m != nil
			default:
				more = false
			}
		}
		if err := flush(); err != nil {
			return progressed, err
		}
	}
}

// skipDuplicate counts a delivery already recorded. One at or below the
// point the subscription asked to start after means the events service
// replayed what it was told to skip: its stream may have been reset, and
// new events numbered below the high-water mark would be lost, so it is
// worth a warning.
func (s *Service) skipDuplicate(ctx context.Context, src source, d *eventsv1.Delivery, after uint64) {
	s.rec.duplicates.Add(1)
	if d.GetStreamSequence() <= after {
		s.log.WarnContext(ctx, "audit recorder: skipped a delivery at or below the resume point; was the events stream reset?",
			"source", src.key, "topic", d.GetTopic(), "stream_sequence", d.GetStreamSequence(), "after", after)
	}
}

// entryOf turns a delivery into an entry to record. Deliveries on topics
// with no kind are skipped (they are not audit events this recorder knows).
func (s *Service) entryOf(ctx context.Context, d *eventsv1.Delivery) (pendingEntry, bool) {
	kind, ok := kindOf(d.GetTopic())
	if !ok {
		s.rec.unknownTopics.Add(1)
		s.log.WarnContext(ctx, "audit recorder: skipping an event on a topic with no audit kind",
			"topic", d.GetTopic(), "stream_sequence", d.GetStreamSequence())
		return pendingEntry{}, false
	}
	payload, err := s.payloadOf(d.GetPayload())
	if err != nil {
		// Record that the event happened even when its payload cannot be
		// kept as sent; dropping it would leave no trace.
		s.rec.rejected.Add(1)
		s.log.ErrorContext(ctx, "audit recorder: event payload refused; recording a placeholder",
			"topic", d.GetTopic(), "stream_sequence", d.GetStreamSequence(), "error", err)
		payload = map[string]any{"payloadRejected": err.Error(), "payloadBytes": float64(proto.Size(d.GetPayload()))}
	}
	return pendingEntry{
		Kind:    kind,
		Payload: payload,
		Source:  auditlog.Source{Topic: d.GetTopic(), StreamSequence: d.GetStreamSequence(), Publisher: d.GetPublisher()},
	}, true
}
