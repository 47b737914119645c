package rpc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mesh/continuum/pkg/auth"
)

// Channel is a grpc.ClientConnInterface for calls from this process to
// this server. A unary call to a service registered on the server runs
// the method's handler directly, without HTTP/2: with the server's whole
// unary interceptor chain (recovery, logging, authentication as this
// node, the gate, error mapping), a server span, the request and the
// response copied by marshaling as over the wire, header and trailer
// metadata, the caller's deadline and cancellation, and the server's
// message size limit. Everything else (streams; health, reflection and the
// services the node proxies to other members) goes through the in-process
// listener, like any connection.
//
// The handler's context is the caller's, so trace context and baggage
// carry over as propagation would carry them, with the caller's metadata
// turned into incoming metadata, no outgoing metadata, and the in-process
// peer.
type Channel struct {
	s    *Server
	conn *grpc.ClientConn
	peer *peer.Peer
}

var _ grpc.ClientConnInterface = (*Channel)(nil)

// unaryMethod is a registered unary handler.
type unaryMethod struct {
	impl     any
	handler  func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error)
	service  string
	method   string
	spanName string // service/method, as otelgrpc names server spans
}

// Channel returns the in-process channel to this server; conn (from
// DialInproc) carries what the channel does not run directly.
func (s *Server) Channel(conn *grpc.ClientConn) *Channel {
	// One peer for every call: it never changes, and handlers only read it.
	p := &peer.Peer{Addr: InprocAddr{Node: s.cfg.Node}, LocalAddr: InprocAddr{Node: s.cfg.Node}, AuthInfo: inprocAuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}}
	return &Channel{s: s, conn: conn, peer: p}
}

// Invoke implements grpc.ClientConnInterface.
func (c *Channel) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.s.unaryMethod(method)
	if !ok {
		return c.conn.Invoke(ctx, method, args, reply, opts...)
	}
	in, ok := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok || !ok2 {
		return status.Errorf(codes.Internal, "in-process call %s: messages must be protobuf messages", method)
	}
	if !c.s.enterInproc() {
		return status.Error(codes.Unavailable, "server "+c.s.cfg.Node+" is shutting down")
	}
	defer c.s.inflight.Done()
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	// The request is merged into the handler's message when marshaling it
	// could not fail (copyMessage); otherwise it is marshaled here, and
	// marshaling's error is the caller's, as on the wire.
	var reqBytes []byte
	var size int
	if mergeable(in.ProtoReflect()) {
		size = proto.Size(in)
	} else {
		var err error
		if reqBytes, err = proto.Marshal(in); err != nil {
			return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
		}
		size = len(reqBytes)
	}
	if size > c.s.cfg.MaxRecvBytes {
		return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", size, c.s.cfg.MaxRecvBytes)
	}

	md, _ := metadata.FromOutgoingContext(ctx)
	_, st, err := c.run(ctx, method, m, md, nil, decoder(in, reqBytes), out, 0)
	st.deliver(opts, c.peer)
	return err
}

// Call runs a unary method of this server for an in-process caller that
// hands its request over and only reads the response, such as the
// router running a command on its own node. It is Invoke (the interceptor
// chain, the server span, deadline and cancellation, the size limit,
// header and trailer) less the copies and the metadata round trip a
// caller that keeps its messages needs:
//   - caller is the principal the call is made for, given to the
//     authenticator directly (as OnBehalfOf's header would, but for this
//     call only: a call the handler makes does not inherit it);
//   - md is the rest of the incoming metadata (nil for none); the
//     caller's outgoing metadata is not read;
//   - in is merged into the handler's message: it must be a message the
//     caller built, whose strings are valid UTF-8 (as every message
//     decoded from the wire or JSON is), and it must not change until
//     Call returns;
//   - the response is the handler's own, to be read, not changed or
//     kept past the caller's use of it;
//   - timeout, when positive, bounds the call as context.WithTimeout
//     would, with the call's own context rather than one more around it.
//
// A method this server does not run directly answers ok false, and the
// caller uses Invoke.
func (c *Channel) Call(ctx context.Context, method string, caller auth.Principal, md metadata.MD, in proto.Message, timeout time.Duration) (resp proto.Message, header metadata.MD, ok bool, err error) {
	m, ok := c.s.unaryMethod(method)
	if !ok {
		return nil, nil, false, nil
	}
	if !c.s.enterInproc() {
		return nil, nil, true, status.Error(codes.Unavailable, "server "+c.s.cfg.Node+" is shutting down")
	}
	defer c.s.inflight.Done()
	if err := ctx.Err(); err != nil {
		return nil, nil, true, status.FromContextError(err).Err()
	}
	if size := proto.Size(in); size > c.s.cfg.MaxRecvBytes {
		return nil, nil, true, status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", size, c.s.cfg.MaxRecvBytes)
	}
	r, st, err := c.run(ctx, method, m, md, &caller, decoder(in, nil), nil, timeout)
	if err != nil {
		return nil, nil, true, err
	}
	msg, isMsg := r.(proto.Message)
	if !isMsg || msg == nil {
		return nil, nil, true, status.Errorf(codes.Internal, "grpc: handler returned %T, not a protobuf message", r)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return msg, st.header, true, nil
}

// decoder fills the handler's request message: from reqBytes, the
// request's wire form, when there is one, else from in itself, which the
// caller knows to be mergeable (merged when the types match, else through
// the wire form).
func decoder(in proto.Message, reqBytes []byte) func(any) error {
	return func(v any) error {
		msg, ok := v.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "grpc: %T is not a protobuf message", v)
		}
		var err error
		if reqBytes == nil {
			err = copyVia(msg, in, msg.ProtoReflect().Type() == in.ProtoReflect().Type())
		} else {
			err = proto.Unmarshal(reqBytes, msg)
		}
		if err != nil {
			return status.Errorf(codes.Internal, "grpc: error unmarshalling request: %v", err)
		}
		return nil
	}
}

// run runs m's handler for a direct call the caller has counted in
// (enterInproc): the incoming metadata md, no outgoing metadata, the
// in-process peer, the call's own cancellation (ended with the call, or by
// stopDirect, or after timeout when that is positive), a server span,
// and the caller, when not nil, given to the
// authenticator directly. With out set, the response is copied into it
// (copyReply); run returns the handler's response either way.
func (c *Channel) run(ctx context.Context, method string, m unaryMethod, md metadata.MD, caller *auth.Principal, dec func(any) error, out proto.Message, timeout time.Duration) (any, *inprocStream, error) {
	sctx := metadata.NewIncomingContext(ctx, md)
	sctx = metadata.NewOutgoingContext(sctx, nil)
	sctx = peer.NewContext(sctx, c.peer)
	st := &inprocStream{method: method}
	if caller != nil {
		st.caller, st.hasCaller = *caller, true
	}
	sctx = grpc.NewContextWithServerTransportStream(sctx, st)
	var cancel context.CancelFunc
	if timeout > 0 {
		sctx, cancel = context.WithTimeout(sctx, timeout)
	} else {
		sctx, cancel = context.WithCancel(sctx)
	}
	defer cancel()
	st.cancel = cancel
	c.s.track(st)
	defer c.s.untrack(st)
	// A server span, unless nothing records spans and the call already
	// has a trace to log against: an unrecorded span would only give the
	// handler's log lines a span ID no trace will ever hold.
	var span trace.Span
	if c.s.recording() || !trace.SpanContextFromContext(sctx).IsValid() {
		sctx, span = c.s.tracer.Start(sctx, m.spanName, trace.WithSpanKind(trace.SpanKindServer))
		if span.IsRecording() {
			span.SetAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", m.service), attribute.String("rpc.method", m.method),
				attribute.String("rpc.transport", "inproc"))
		}
	}
	resp, err := m.handler(m.impl, sctx, dec, c.s.unaryChain)
	if err == nil && out != nil {
		err = copyReply(resp, out, st.handedOver.Load())
	}
	code := codes.OK
	if err != nil {
		s, ok := status.FromError(err)
		if !ok {
			s = status.FromContextError(err)
		}
		err, code = s.Err(), s.Code()
	}
	if span != nil {
		if span.IsRecording() {
			span.SetAttributes(attribute.Int64("rpc.grpc.status_code", int64(code)))
			if serverFault(code) {
				span.SetStatus(otelcodes.Error, status.Convert(err).Message())
			}
		}
		span.End()
	}
	return resp, st, err
}

// copyReply copies the handler's response into the caller's message with
// the outcome marshaling and unmarshaling it would have, as the wire
// would: merged when that is the same (see copyMessage), else marshaled,
// so marshaling's errors are the caller's.
//
// A response the handler handed over (HandOver) is not copied deeply: out
// gets its fields, sharing what they point to.
func copyReply(resp any, out proto.Message, handedOver bool) error {
	msg, ok := resp.(proto.Message)
	if !ok || msg == nil {
		return status.Errorf(codes.Internal, "grpc: handler returned %T, not a protobuf message", resp)
	}
	if handedOver && out.ProtoReflect().Type() == msg.ProtoReflect().Type() && mergeable(msg.ProtoReflect()) {
		moveFields(out.ProtoReflect(), msg.ProtoReflect())
		return nil
	}
	if err := copyMessage(out, msg); err != nil {
		return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err)
	}
	return nil
}

// serverFault: the codes otelgrpc marks as a server span error.
func serverFault(c codes.Code) bool {
	switch c {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

// NewStream implements grpc.ClientConnInterface through the in-process
// listener.
func (c *Channel) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.conn.NewStream(ctx, desc, method, opts...)
}

// inprocStream is the grpc.ServerTransportStream of a direct call: it
// collects the header and trailer a handler sets.
type inprocStream struct {
	method string
	// caller, when hasCaller, is the principal Channel.Call gave for this
	// call; the authenticator believes it only from this stream.
	caller    auth.Principal
	hasCaller bool
	// handedOver: the handler gave its response away (HandOver).
	handedOver atomic.Bool
	// cancel ends the call's context; prev and next ring it into the
	// server's calls under way (Server.track).
	cancel     context.CancelFunc
	prev, next *inprocStream

	mu         sync.Mutex
	header     metadata.MD
	trailer    metadata.MD
	headerSent bool
}

func (s *inprocStream) Method() string { return s.method }

func (s *inprocStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headerSent {
		return status.Error(codes.Internal, "transport: SetHeader called after the header was sent")
	}
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *inprocStream) SendHeader(md metadata.MD) error {
	if err := s.SetHeader(md); err != nil {
		return err
	}
	s.mu.Lock()
	s.headerSent = true
	s.mu.Unlock()
	return nil
}

func (s *inprocStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// deliver fills the caller's Header, Trailer and Peer call options.
func (s *inprocStream) deliver(opts []grpc.CallOption, p *peer.Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = s.header.Copy()
			if *o.HeaderAddr == nil {
				*o.HeaderAddr = metadata.MD{}
			}
		case grpc.TrailerCallOption:
			*o.TrailerAddr = s.trailer.Copy()
			if *o.TrailerAddr == nil {
				*o.TrailerAddr = metadata.MD{}
			}
		case grpc.PeerCallOption:
			*o.PeerAddr = *p
		}
	}
}

// chainUnary runs interceptors in order around a handler, as
// grpc.ChainUnaryInterceptor does.
func chainUnary(ints []grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	var call func(i int, ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error)
	call = func(i int, ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if i == len(ints) {
			return h(ctx, req)
		}
		return ints[i](ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return call(i+1, ctx, req, info, h)
		})
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return call(0, ctx, req, info, h)
	}
}

// HandOver tells the server that the response the handler of ctx's call
// is about to return is the caller's: built for this call, and neither
// kept nor changed by the server afterwards. An in-process caller then
// gets its fields without a deep copy (the wire form is still what it
// would have been; a response marshaling would refuse is still refused).
// On a network call it does nothing.
func HandOver(ctx context.Context) {
	if st, ok := grpc.ServerTransportStreamFromContext(ctx).(*inprocStream); ok {
		st.handedOver.Store(true)
	}
}

// unaryMethod returns the registered unary method named method.
func (s *Server) unaryMethod(method string) (unaryMethod, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.unary[method]
	return m, ok
}

// registerUnary records a service's unary methods for the Channel.
func (s *Server) registerUnary(desc *grpc.ServiceDesc, impl any) {
	for _, md := range desc.Methods {
		full := fmt.Sprintf("/%s/%s", desc.ServiceName, md.MethodName)
		s.unary[full] = unaryMethod{impl: impl, handler: md.Handler, service: desc.ServiceName, method: md.MethodName, spanName: strings.TrimPrefix(full, "/")}
	}
}

// enterInproc counts a direct call in, unless the server drains.
func (s *Server) enterInproc() bool {
	s.inprocMu.RLock()
	defer s.inprocMu.RUnlock()
	if s.inprocClosed {
		return false
	}
	s.inflight.Add(1)
	return true
}

// track rings a direct call into the calls under way, or cancels it at
// once when the server has already stopped them.
func (s *Server) track(st *inprocStream) {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	if s.stopped {
		st.cancel()
		st.prev, st.next = st, st
		return
	}
	st.prev, st.next = s.calls.prev, &s.calls
	s.calls.prev.next = st
	s.calls.prev = st
}

// untrack takes a finished call out of the ring.
func (s *Server) untrack(st *inprocStream) {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	st.prev.next, st.next.prev = st.next, st.prev
	st.prev, st.next = nil, nil
}

// stopDirect cancels the contexts of the direct calls under way and of
// any that start later.
func (s *Server) stopDirect() {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	s.stopped = true
	for st := s.calls.next; st != &s.calls; st = st.next {
		st.cancel()
	}
}

// closeInproc refuses new direct calls and waits for those under way.
func (s *Server) closeInproc() {
	s.inprocMu.Lock()
	s.inprocClosed = true
	s.inprocMu.Unlock()
	s.inflight.Wait()
}

func tracerFor(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer("github.com/continuum-mesh/continuum/pkg/rpc")
}
