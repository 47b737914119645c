package events

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/jsonvalue"
	"github.com/continuum-mesh/continuum/pkg/topic"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// Limits of a publish besides Config.MaxEventBytes.
const (
	maxHeaders      = 64
	maxHeaderKey    = 128
	maxHeaderValue  = 4096
	maxMsgID        = 256
	reservedHeaders = "continuum-"
)

// Publish validates, gates, sequences and delivers one event.
func (s *Service) Publish(ctx context.Context, req *eventsv1.PublishRequest) (*eventsv1.PublishResponse, error) {
	res, err := s.submit(ctx, req).wait()
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return res.response(), nil
}

// PublishStream publishes what the stream sends, pipelined, and answers
// each request in order; it ends at the first failure.
func (s *Service) PublishStream(stream grpc.BidiStreamingServer[eventsv1.PublishStreamRequest, eventsv1.PublishStreamResponse]) error {
	ctx := stream.Context()
	return toStatus(ctx, s.log, s.publishStream(ctx, stream))
}

// Bounds of PublishStream: publishes per request, and requests sequenced
// but not yet acknowledged.
const (
	maxPublishBatch = 1024
	maxInFlight     = 64
)

func (s *Service) publishStream(ctx context.Context, stream grpc.BidiStreamingServer[eventsv1.PublishStreamRequest, eventsv1.PublishStreamResponse]) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A receiving goroutine submits requests in arrival order, so
	// sequences follow the stream. A request whose publishes are all done
	// (memory streams) it acknowledges at once when nothing is queued before
	// it; the others (durable publishes waiting for their group commit) are
	// queued for this goroutine, which waits for them in order while the
	// stream keeps receiving. sendMu keeps the two from sending at once and,
	// with queued, keeps responses in request order; once closed is set,
	// nothing is sent any more.
	var (
		sendMu  sync.Mutex
		queued  int
		sendErr error
		closed  bool
		// resp and acks are reused from response to response (under
		// sendMu): gRPC has marshalled a response when Send returns.
		resp eventsv1.PublishStreamResponse
		acks []eventsv1.PublishResponse
	)
	respond := func(ps []pending) error {
		if cap(acks) < len(ps) {
			acks = make([]eventsv1.PublishResponse, len(ps))
		}
		resp.Acks = resp.Acks[:0]
		var firstErr error
		for i, p := range ps {
			res, err := p.wait()
			if err != nil {
				firstErr = err
				break
			}
			a := &acks[i]
			a.StreamSequence, a.Delivered, a.Duplicate = res.seq, res.delivered, res.duplicate
			resp.Acks = append(resp.Acks, a)
		}
		if len(resp.Acks) > 0 || firstErr == nil {
			if err := stream.Send(&resp); err != nil {
				return err
			}
		}
		return firstErr
	}
	waiting := make(chan []pending, maxInFlight)
	received := make(chan error, 1)
	go func() {
		defer close(waiting)
		for {
			req, err := stream.Recv()
			if err != nil || ctx.Err() != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				received <- err
				return
			}
			ps, failed := s.submitBatch(ctx, req.GetPublishes())
			sendMu.Lock()
			if closed || sendErr != nil {
				sendMu.Unlock()
				received <- nil
				return
			}
			if queued == 0 && allDone(ps) {
				sendErr = respond(ps)
				sendMu.Unlock()
			} else {
				queued++
				sendMu.Unlock()
				select {
				case waiting <- ps:
				case <-ctx.Done():
					received <- nil
					return
				}
			}
			if failed {
				received <- nil
				return
			}
		}
	}()
	end := func() error {
		sendMu.Lock()
		defer sendMu.Unlock()
		closed = true
		return sendErr
	}
	for ps := range waiting {
		for _, p := range ps {
			_, _ = p.wait() // outside sendMu: the receiving side carries on
		}
		sendMu.Lock()
		if sendErr == nil {
			sendErr = respond(ps)
		}
		queued--
		failed := sendErr != nil
		sendMu.Unlock()
		if failed {
			return end()
		}
	}
	if err := end(); err != nil {
		return err
	}
	return <-received
}

// allDone reports whether every publish is complete without waiting.
func allDone(ps []pending) bool {
	for _, p := range ps {
		if p.batch != nil {
			select {
			case <-p.batch.done:
			default:
				return false
			}
		}
	}
	return true
}

// submitBatch submits the publishes of one PublishStream request in order,
// stopping at the first that fails (its pending carries the error).
func (s *Service) submitBatch(ctx context.Context, reqs []*eventsv1.PublishRequest) (ps []pending, failed bool) {
	if len(reqs) == 0 || len(reqs) > maxPublishBatch {
		err := failure(errPublishBatch, "a request carries 1 to "+strconv.Itoa(maxPublishBatch)+" publishes", "publishes", strconv.Itoa(len(reqs)))
		return []pending{{err: err}}, true
	}
	ps = make([]pending, 0, len(reqs))
	for _, req := range reqs {
		p := s.submit(ctx, req)
		ps = append(ps, p)
		if p.err != nil {
			return ps, true
		}
	}
	return ps, false
}

func (r publishResult) response() *eventsv1.PublishResponse {
	return &eventsv1.PublishResponse{StreamSequence: r.seq, Delivered: r.delivered, Duplicate: r.duplicate}
}

// submit validates, gates and sequences one publish.
func (s *Service) submit(ctx context.Context, req *eventsv1.PublishRequest) pending {
	if err := s.admitPublish(ctx, req); err != nil {
		return pending{err: err}
	}
	t := req.GetTopic()
	st := s.reg.streamFor(t)
	caller := auth.Caller(ctx)
	if c := st.class; c != nil {
		if v := req.GetSchemaVersion(); v != "" && v != c.GetSchemaVersion() {
			if c.GetOnUnknownSchema() != eventsv1.UnknownSchemaPolicy_UNKNOWN_SCHEMA_POLICY_WARN {
				return pending{err: failure(errSchemaUnknown, "the class "+strconv.Quote(c.GetName())+" has schema version "+strconv.Quote(c.GetSchemaVersion()),
					"class", c.GetName(), "schema_version", c.GetSchemaVersion(), "got", v)}
			}
			s.log.WarnContext(ctx, "events: publish with an unknown schema version",
				"class", c.GetName(), "schema_version", c.GetSchemaVersion(), "got", v, "publisher", caller.Name)
		}
	}
	payload := req.GetPayload()
	if payload == nil {
		payload = &structpb.Struct{}
	}
	if err := jsonvalue.Check(payload, jsonvalue.Limits{}); err != nil {
		return pending{err: failure(errPublishPayload, "payload: "+err.Error())}
	}
	headers := req.GetHeaders()
	if len(headers) == 0 {
		headers = nil
	}
	ev := &event{
		topic:     t,
		at:        s.now(),
		publisher: caller.Name,
		node:      s.cfg.Node,
		msgID:     req.GetMsgId(),
		headers:   headers,
		payload:   payload,
	}
	body, err := encodeEvent(ev)
	if err != nil {
		return pending{err: failure(errPublishPayload, err.Error())}
	}
	if n := len(body) - seqRoom; n > s.cfg.MaxEventBytes {
		return pending{err: failure(errEventTooLarge, strconv.Itoa(n)+" bytes encoded, the limit is "+strconv.Itoa(s.cfg.MaxEventBytes),
			"size", strconv.Itoa(n), "limit", strconv.Itoa(s.cfg.MaxEventBytes))}
	}
	ev.body = body
	return st.submit(ev)
}

// admitPublish checks what a publish carries and asks the gate.
func (s *Service) admitPublish(ctx context.Context, req *eventsv1.PublishRequest) error {
	if s.closed.Load() {
		return errShuttingDown
	}
	t := req.GetTopic()
	if err := topic.Validate(t); err != nil {
		return err
	}
	if err := checkPublish(req); err != nil {
		return err
	}
	if _, err := gate.Check(ctx, s.gate, auth.Caller(ctx), GateURI(t, ActionPublish)); err != nil {
		return err
	}
	return nil
}

// checkPublish validates what a publish carries besides its topic and
// size.
func checkPublish(req *eventsv1.PublishRequest) error {
	if id := req.GetMsgId(); len(id) > maxMsgID || !printable(id) {
		return failure(errMsgIDInvalid, "msg_id must be at most "+strconv.Itoa(maxMsgID)+" printable bytes")
	}
	if v := req.GetSchemaVersion(); len(v) > maxMsgID || !printable(v) {
		return failure(errSchemaInvalid, "schema_version must be at most "+strconv.Itoa(maxMsgID)+" printable bytes")
	}
	if len(req.GetHeaders()) > maxHeaders {
		return failure(errHeaderInvalid, "more than "+strconv.Itoa(maxHeaders)+" headers")
	}
	for k, v := range req.GetHeaders() {
		switch {
		case k == "" || len(k) > maxHeaderKey || !printable(k):
			return failure(errHeaderInvalid, "header names are 1 to "+strconv.Itoa(maxHeaderKey)+" printable bytes", "header", k)
		case len(k) >= len(reservedHeaders) && asciiLower(k[:len(reservedHeaders)]) == reservedHeaders:
			return failure(errHeaderInvalid, "header names starting with "+reservedHeaders+" are reserved for the server", "header", k)
		case len(v) > maxHeaderValue:
			return failure(errHeaderInvalid, "header values are at most "+strconv.Itoa(maxHeaderValue)+" bytes", "header", k)
		case !printable(strings.ReplaceAll(v, "\t", " ")):
			// As in HTTP and NATS header values: tabs, but no line breaks
			// or other control characters that could forge a line in a
			// log or a relay's framing.
			return failure(errHeaderInvalid, "header values may not hold control characters (tab excepted)", "header", k)
		}
	}
	return nil
}

// printable reports valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Actions of the event gate URIs.
const (
	ActionPublish   = "publish"
	ActionSubscribe = "subscribe"
)

// GateURI is the URI the policy gate decides for an event action:
// events/<topic-or-selector>/<action>, where an artifact prefix selector is
// written "<prefix>*" (topic.Selector.String). The router uses the same
// form for events/... URIs.
func GateURI(selector, action string) string {
	return "events/" + selector + "/" + action
}
