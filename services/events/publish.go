package events

import (
	"context"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
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

// maxInFlight bounds the publishes of one PublishStream that are
// sequenced but not yet acknowledged.
const maxInFlight = 1024

func (s *Service) publishStream(ctx context.Context, stream grpc.BidiStreamingServer[eventsv1.PublishStreamRequest, eventsv1.PublishStreamResponse]) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inflight := make(chan pending, maxInFlight)
	readErr := make(chan error, 1)
	// The reader submits in arrival order, so sequences follow the
	// stream; the handler goroutine waits for each and acknowledges it.
	go func() {
		defer close(inflight)
		for {
			req, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readErr <- err
				return
			}
			p := s.submit(ctx, req.GetPublish())
			select {
			case inflight <- p:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
			if p.err != nil {
				readErr <- nil
				return
			}
		}
	}()
	for p := range inflight {
		res, err := p.wait()
		if err != nil {
			return err
		}
		if err := stream.Send(&eventsv1.PublishStreamResponse{Ack: res.response()}); err != nil {
			return err
		}
	}
	return <-readErr
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
	headers := req.GetHeaders()
	if len(headers) == 0 {
		headers = nil
	}
	return st.submit(&event{
		topic:     t,
		at:        s.now(),
		publisher: caller.Name,
		node:      s.cfg.Node,
		msgID:     req.GetMsgId(),
		headers:   headers,
		payload:   payload,
	})
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
	if err := checkPublish(req, s.cfg.MaxEventBytes); err != nil {
		return err
	}
	if _, err := gate.Check(ctx, s.gate, auth.Caller(ctx), GateURI(t, ActionPublish)); err != nil {
		return err
	}
	return nil
}

// checkPublish validates what a publish carries besides its topic.
func checkPublish(req *eventsv1.PublishRequest, maxBytes int) error {
	if id := req.GetMsgId(); len(id) > maxMsgID || !printable(id) {
		return failure(errMsgIDInvalid, "msg_id must be at most "+strconv.Itoa(maxMsgID)+" printable bytes")
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
		}
	}
	if n := proto.Size(req); n > maxBytes {
		return failure(errEventTooLarge, strconv.Itoa(n)+" bytes, the limit is "+strconv.Itoa(maxBytes),
			"size", strconv.Itoa(n), "limit", strconv.Itoa(maxBytes))
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
