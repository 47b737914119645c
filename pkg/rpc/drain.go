package rpc

import (
	"context"
	"errors"

	grpcmw "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// ReasonDraining ends a long-lived server stream that was still open when
// the server began to drain: the node is going away, and the caller should
// reconnect to another node (an event subscriber resumes with
// start_after_sequence, losing nothing).
const ReasonDraining = "DRAINING"

// EndOnDrain names server-streaming methods ("/pkg.Service/Method") that
// run until their caller ends them (subscriptions, telemetry): when Drain
// begins, their open calls end with UNAVAILABLE DRAINING instead of holding
// GracefulStop until the drain deadline. It covers the calls this server
// proxies for another node too. Every other call is left to finish. Call
// it before Serve.
func (s *Server) EndOnDrain(fullMethods ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.longLived == nil {
		s.longLived = map[string]bool{}
	}
	for _, m := range fullMethods {
		s.longLived[m] = true
	}
}

func (s *Server) endsOnDrain(fullMethod string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.longLived[fullMethod]
}

// endOnDrain is the stream interceptor behind EndOnDrain: when Drain
// begins, the handler's context ends, and a handler that then returns a
// cancellation (or nothing) ends the call with UNAVAILABLE DRAINING. A
// handler's own typed end (such as the events service's SHUTTING_DOWN) is
// kept.
func (s *Server) endOnDrain(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if !s.endsOnDrain(info.FullMethod) {
		return h(srv, ss)
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	stop := context.AfterFunc(s.draining, cancel)
	defer stop()
	w := grpcmw.WrapServerStream(ss)
	w.WrappedContext = ctx
	err := h(srv, w)
	if s.draining.Err() == nil || ss.Context().Err() != nil {
		return err // not ended by the drain (or the client went away too)
	}
	if err != nil && !errors.Is(err, context.Canceled) && status.Code(err) != codes.Canceled {
		return err
	}
	return rpcerr.New(codes.Unavailable, ReasonDraining,
		"the node is draining; reconnect to another node (resume a subscription with start_after_sequence)",
		"node", s.cfg.Node)
}
