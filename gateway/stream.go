package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// framing is how a server stream is written to HTTP.
type framing int

const (
	// framingNDJSON writes one {"result": ...} JSON object per line, and
	// {"error": ...} last when the stream fails (grpc-gateway's shape).
	framingNDJSON framing = iota
	// framingSSE writes Server-Sent Events.
	framingSSE
)

// Content types of the two framings.
const (
	ContentTypeSSE    = "text/event-stream"
	ContentTypeNDJSON = "application/x-ndjson"
)

// streamOpenWait is how long a stream waits for its first message before
// it answers 200 anyway. Refusals (authentication, the gate) arrive well
// within it and are answered with their HTTP status; later errors can only
// be sent inside the stream.
const streamOpenWait = time.Second

// maxBatch bounds the messages written between two flushes.
const maxBatch = 64

// sseRetryMillis is the reconnection delay SSE clients are told to use.
const sseRetryMillis = 2000

// wantsSSE reports whether the client asked for text/event-stream.
func wantsSSE(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err == nil && mt == ContentTypeSSE {
				return true
			}
		}
	}
	return false
}

// streamCall is one server-streaming call the gateway relays.
type streamCall struct {
	conn   grpc.ClientConnInterface
	method string
	req    proto.Message
	// newResp returns an empty response message.
	newResp func() proto.Message
}

// serveStream relays a server stream to the HTTP client until the stream
// ends, the client goes away or the gateway drains. Errors before the
// first byte are answered with their HTTP status and ErrorBody; later ones
// are an SSE "error" event or a final {"error": ...} line.
func (g *Gateway) serveStream(w http.ResponseWriter, r *http.Request, call streamCall, f framing) {
	select {
	case g.streamSlots <- struct{}{}:
		defer func() { <-g.streamSlots }()
	default:
		g.writeError(w, r, newError(codes.ResourceExhausted, ReasonStreamLimit, "too many streams are open on this gateway",
			"limit", strconv.Itoa(g.cfg.MaxStreams)))
		return
	}
	if g.isDraining() {
		g.writeError(w, r, errShuttingDown())
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ctx, err := runtime.AnnotateContext(ctx, g.api, r, call.method)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	cs, err := call.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, call.method)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	// io.EOF from SendMsg means the stream already ended; RecvMsg tells why.
	if err := cs.SendMsg(call.req); err != nil && !errors.Is(err, io.EOF) {
		g.writeError(w, r, err)
		return
	}
	if err := cs.CloseSend(); err != nil {
		g.writeError(w, r, fromMesh(err))
		return
	}

	// A short buffer lets messages that arrive together share a flush;
	// beyond it the stream pushes back on the mesh (gRPC flow control).
	msgs := make(chan proto.Message, maxBatch)
	errc := make(chan error, 1)
	go func() {
		for {
			m := call.newResp()
			if err := cs.RecvMsg(m); err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()

	sw := &streamWriter{w: w, rc: http.NewResponseController(w), f: f, timeout: g.cfg.WriteTimeout, marshal: g.marshal}
	defer sw.clearDeadline()
	openWait := min(streamOpenWait, g.cfg.Heartbeat)
	open := time.NewTimer(openWait)
	defer open.Stop()
	var beat <-chan time.Time
	if f == framingSSE {
		t := time.NewTicker(g.cfg.Heartbeat)
		defer t.Stop()
		beat = t.C
	}
	var sent uint64
	defer func() { noteMessages(r.Context(), sent) }()
	for {
		var werr error
		select {
		case m := <-msgs:
			werr = sw.batch(m, msgs, &sent)
		case err := <-errc:
			// The receiver sent everything before its error; relay what
			// is still buffered first.
			for werr == nil && len(msgs) > 0 {
				werr = sw.batch(<-msgs, msgs, &sent)
			}
			switch {
			case werr != nil:
				g.log.DebugContext(r.Context(), "stream write failed; ending the stream", "method", call.method, "error", werr)
			case errors.Is(err, io.EOF):
				// Write errors no longer matter: the stream is over.
				if sw.commit() == nil {
					_ = sw.end()
				}
			case r.Context().Err() != nil:
				// The client went away; nobody is listening.
			case !sw.committed:
				g.writeError(w, r, err)
			default:
				b := g.errorBody(ctx, err)
				noteReason(r.Context(), b.Reason)
				_ = sw.error(b)
			}
			return
		case <-open.C:
			werr = sw.commit()
		case <-beat:
			if sw.committed {
				werr = sw.ping()
			} else {
				werr = sw.commit()
			}
		case <-g.draining:
			if !sw.committed {
				g.writeError(w, r, errShuttingDown())
			} else {
				b := g.errorBody(ctx, errShuttingDown())
				noteReason(r.Context(), b.Reason)
				_ = sw.error(b)
			}
			return
		case <-r.Context().Done():
			return
		}
		if werr != nil {
			g.log.DebugContext(r.Context(), "stream write failed; ending the stream", "method", call.method, "error", werr)
			return
		}
	}
}

func errShuttingDown() error {
	return newError(codes.Unavailable, ReasonShuttingDown, "the gateway is shutting down; reconnect")
}

// streamWriter writes one stream's framing.
type streamWriter struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	f         framing
	timeout   time.Duration
	marshal   func(proto.Message) ([]byte, error)
	committed bool
	buf       bytes.Buffer
}

// commit sends the 200 and the headers, once.
func (s *streamWriter) commit() error {
	if s.committed {
		return nil
	}
	s.committed = true
	h := s.w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	if s.f == framingSSE {
		h.Set("Content-Type", ContentTypeSSE+"; charset=utf-8")
		s.w.WriteHeader(http.StatusOK)
		s.buf.WriteString("retry: " + strconv.Itoa(sseRetryMillis) + "\n\n")
		return s.flush()
	}
	h.Set("Content-Type", ContentTypeNDJSON)
	s.w.WriteHeader(http.StatusOK)
	return s.flush()
}

// batch commits, writes m and the messages already waiting behind it (up
// to maxBatch) and flushes them together, counting them in sent.
func (s *streamWriter) batch(m proto.Message, msgs <-chan proto.Message, sent *uint64) error {
	if err := s.commit(); err != nil {
		return err
	}
	for n := 1; ; n++ {
		if err := s.message(m); err != nil {
			return err
		}
		*sent++
		if n == maxBatch {
			return s.flush()
		}
		select {
		case m = <-msgs:
		default:
			return s.flush()
		}
	}
}

// message buffers one response message; flush sends it.
func (s *streamWriter) message(m proto.Message) error {
	data, err := s.marshal(m)
	if err != nil {
		return err
	}
	if s.f == framingSSE {
		name, id := eventOf(m)
		s.event(name, id, data)
		return nil
	}
	s.buf.WriteString(`{"result":`)
	s.buf.Write(data)
	s.buf.WriteString("}\n")
	return nil
}

// error writes a failure inside the stream.
func (s *streamWriter) error(b ErrorBody) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if s.f == framingSSE {
		s.event("error", "", data)
		return s.flush()
	}
	s.buf.WriteString(`{"error":`)
	s.buf.Write(data)
	s.buf.WriteString("}\n")
	return s.flush()
}

// end marks a stream that finished without error (SSE only: an
// EventSource would otherwise reconnect and start over).
func (s *streamWriter) end() error {
	if s.f != framingSSE {
		return nil
	}
	s.event("end", "", []byte("{}"))
	return s.flush()
}

// ping keeps an idle SSE stream open through proxies.
func (s *streamWriter) ping() error {
	s.buf.WriteString(": ping\n\n")
	return s.flush()
}

// event formats one SSE event. Data is JSON, which has no raw newlines, but
// every line gets its own "data:" field anyway, as the format requires.
func (s *streamWriter) event(name, id string, data []byte) {
	s.buf.WriteString("event: " + name + "\n")
	if id != "" {
		s.buf.WriteString("id: " + id + "\n")
	}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		s.buf.WriteString("data: ")
		s.buf.Write(line)
		s.buf.WriteByte('\n')
	}
	s.buf.WriteByte('\n')
}

// flush writes what is buffered and pushes it to the client, within the
// write timeout.
func (s *streamWriter) flush() error {
	if s.timeout > 0 {
		if err := s.rc.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
	}
	if s.buf.Len() > 0 {
		_, err := s.w.Write(s.buf.Bytes())
		s.buf.Reset()
		if err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

// clearDeadline lifts the write deadline, so a kept-alive connection's
// next request does not inherit it.
func (s *streamWriter) clearDeadline() {
	_ = s.rc.SetWriteDeadline(time.Time{})
}

// eventOf names the SSE event of a stream message: the field set in its
// oneof ("ack", "delivery", "lag"), else the name of its only field when
// that is a message ("probe"), else "message". The id is the "sequence" of
// the oneof's message, when it has a non-zero one.
func eventOf(m proto.Message) (name, id string) {
	rm := m.ProtoReflect()
	oneofs := rm.Descriptor().Oneofs()
	for i := range oneofs.Len() {
		o := oneofs.Get(i)
		if o.IsSynthetic() {
			continue
		}
		fd := rm.WhichOneof(o)
		if fd == nil {
			continue
		}
		if fd.Message() != nil {
			id = sequenceOf(rm.Get(fd).Message())
		}
		return string(fd.Name()), id
	}
	fields := rm.Descriptor().Fields()
	if fields.Len() == 1 {
		if fd := fields.Get(0); fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
			return string(fd.Name()), ""
		}
	}
	return "message", ""
}

func sequenceOf(m protoreflect.Message) string {
	fd := m.Descriptor().Fields().ByName("sequence")
	if fd == nil || fd.IsList() {
		return ""
	}
	switch fd.Kind() {
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind, protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if v := m.Get(fd).Uint(); v != 0 {
			return strconv.FormatUint(v, 10)
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if v := m.Get(fd).Int(); v != 0 {
			return strconv.FormatInt(v, 10)
		}
	}
	return ""
}
