package sweep

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/continuum-mesh/continuum/pkg/auth"
)

// frame is a message as the bytes on the wire, so the sweep can send what
// the proto library would refuse to marshal (invalid UTF-8, truncations,
// garbage).
type frame struct{ b []byte }

// rawCodec passes frames through untouched. Its name is "proto" so the
// content-type stays application/grpc+proto and the server decodes with
// its ordinary protobuf codec.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(f.b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	f.b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// method is one RPC the sweep exercises.
type method struct {
	desc protoreflect.MethodDescriptor
	// full is the gRPC method name, "/pkg.Service/Method".
	full string
}

func newMethod(md protoreflect.MethodDescriptor) method {
	return method{desc: md, full: "/" + string(md.Parent().FullName()) + "/" + string(md.Name())}
}

// kind names the method's streaming shape.
func (m method) kind() string {
	switch {
	case m.desc.IsStreamingClient() && m.desc.IsStreamingServer():
		return "bidi-stream"
	case m.desc.IsStreamingClient():
		return "client-stream"
	case m.desc.IsStreamingServer():
		return "server-stream"
	}
	return "unary"
}

// response is what came back for one call.
type response struct {
	// st is the final status; nil when the call succeeded or a stream was
	// still open when the sweep cancelled it.
	st *status.Status
	// open: a stream answered with messages (or nothing) and no error
	// within the window and was cancelled by the sweep.
	open bool
	// timedOut: the call got no answer before the sweep's deadline.
	timedOut bool
	// raw is the outcome of a raw HTTP/2 request, when the case used one.
	raw *rawResult
}

// caller sends cases to one server.
type caller struct {
	cc *grpc.ClientConn
	// peer: cc is an in-process connection of an embedded node, whose
	// calls are made by the node itself as a mesh peer; cases then present
	// no credentials of their own.
	peer        bool
	addr        string
	tls         *tls.Config
	adminToken  string
	userToken   string
	callTimeout time.Duration
	window      time.Duration
	// refusalWait is how long a server stream that must be refused may
	// stay silent before it counts as open (accepted).
	refusalWait time.Duration
}

// outgoing builds the metadata a case presents.
func (c *caller) outgoing(ctx context.Context, cs Case) context.Context {
	md := metadata.MD{}
	if c.peer {
		return metadata.NewOutgoingContext(ctx, md)
	}
	bearer := func(tok string) { md.Set(auth.AuthorizationHeader, "Bearer "+tok) }
	switch cs.auth {
	case authAdmin:
		bearer(c.adminToken)
	case authUser:
		bearer(c.userToken)
	case authForged:
		bearer(c.userToken)
		md.Set(auth.CallerHeader, "token;admin")
	case authForgedAnonymous:
		md.Set(auth.CallerHeader, "token;admin")
	case authUnknownToken:
		bearer("badinput-unknown-token")
	case authNotBearer:
		md.Set(auth.AuthorizationHeader, "Basic YWRtaW46YWRtaW4=")
	case authNone:
	}
	if cs.tokenBytes > 0 {
		bearer(strings.Repeat("t", cs.tokenBytes))
	}
	if cs.padHeader > 0 {
		md.Set("x-badinput-pad", strings.Repeat("p", cs.padHeader))
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// send runs one case against m and reports what came back.
func (c *caller) send(ctx context.Context, m method, cs Case, payload []byte) response {
	if cs.via != nil {
		m = *cs.via
	}
	if cs.rawHTTP2 {
		timeout := c.callTimeout
		if m.desc.IsStreamingServer() {
			timeout = c.refusalTime()
		}
		r := rawHeaders(ctx, c.addr, c.tls, m.full, c.adminToken, cs.padHeader, payload, timeout, m.desc.IsStreamingServer())
		return response{raw: &r}
	}
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	ctx = c.outgoing(ctx, cs)
	opts := []grpc.CallOption{grpc.ForceCodecV2(rawCodec{})}
	if !m.desc.IsStreamingClient() && !m.desc.IsStreamingServer() {
		err := c.cc.Invoke(ctx, m.full, &frame{b: payload}, &frame{}, opts...)
		return finish(ctx, err)
	}
	desc := &grpc.StreamDesc{StreamName: string(m.desc.Name()), ServerStreams: m.desc.IsStreamingServer(), ClientStreams: m.desc.IsStreamingClient()}
	stream, err := c.cc.NewStream(ctx, desc, m.full, opts...)
	if err != nil {
		return finish(ctx, err)
	}
	for i := 0; !cs.noMessage && i < max(cs.repeat, 1); i++ {
		// An error here (io.EOF when the server already ended the stream)
		// carries no status; RecvMsg below returns it.
		if stream.SendMsg(&frame{b: payload}) != nil {
			break
		}
	}
	if err := stream.CloseSend(); err != nil {
		return finish(ctx, err)
	}
	if !m.desc.IsStreamingServer() {
		return finish(ctx, stream.RecvMsg(&frame{}))
	}
	return c.watch(ctx, cancel, stream, cs.expect.refused)
}

// refusalTime is how long a server stream that must be refused may stay
// silent before it counts as open.
func (c *caller) refusalTime() time.Duration {
	return max(c.window, min(c.refusalWait, c.callTimeout/2))
}

// watch reads a server stream: its first error decides. A stream that
// sent messages, or nothing at all, for the window without an error is
// open (a valid subscription may stay open) and is cancelled. When the
// case must be refused and nothing came yet, the sweep waits longer for
// the error (refusalWait), so a slow refusal on a loaded machine is not
// taken for an open stream.
func (c *caller) watch(ctx context.Context, cancel context.CancelFunc, stream grpc.ClientStream, mustRefuse bool) response {
	errc := make(chan error, 1)
	msgs := make(chan struct{}, 1)
	go func() {
		for {
			if err := stream.RecvMsg(&frame{}); err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- struct{}{}:
			default:
			}
		}
	}()
	defer func() {
		cancel()
		<-errc
	}()
	wait := c.window
	if mustRefuse {
		wait = c.refusalTime()
	}
	window := time.NewTimer(c.window)
	defer window.Stop()
	long := time.NewTimer(wait)
	defer long.Stop()
	windowOver, gotMessage := false, false
	for {
		select {
		case err := <-errc:
			errc <- err // for the deferred drain
			return finish(ctx, err)
		case <-msgs:
			gotMessage = true
			if windowOver {
				return response{open: true}
			}
		case <-window.C:
			windowOver = true
			if gotMessage {
				return response{open: true}
			}
		case <-long.C:
			return response{open: true}
		case <-ctx.Done():
			return response{timedOut: true}
		}
	}
}

// finish turns a call's error into a response: io.EOF and nil are
// success, the sweep's own deadline is a timeout, anything else a status.
// A DEADLINE_EXCEEDED that arrives when the sweep's deadline is all but
// spent is the server giving up on the propagated deadline: a timeout too.
func finish(ctx context.Context, err error) response {
	if err == nil || errors.Is(err, io.EOF) {
		return response{}
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.DeadlineExceeded, codes.Canceled:
		deadline, ok := ctx.Deadline()
		if ctx.Err() != nil || (ok && st.Code() == codes.DeadlineExceeded && time.Until(deadline) < time.Second) {
			return response{timedOut: true}
		}
	}
	return response{st: st}
}
