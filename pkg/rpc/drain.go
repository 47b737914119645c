package rpc

import (
	"context"
	"errors"

	grpcmw "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// ReasonDraining ends a server stream that was still open when the server
// began to drain: the node is going away, and the caller should reconnect
// to another node (an event subscriber resumes with start_after_sequence,
// losing nothing).
const ReasonDraining = "DRAINING"

// endOnDrain is the stream interceptor that keeps long-lived server
// streams (subscriptions, relays of them, proxied ones) from holding
// GracefulStop until the drain deadline: when Drain begins, their handler's
// context ends, and a handler that then returns a cancellation (or
// nothing) ends the call with UNAVAILABLE DRAINING instead. Streams the
// client drives (client-streaming and bidi) are left to finish: their
// client ends them.
func (s *Server) endOnDrain(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if !serverStreamOnly(info) {
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
		return err // the handler's own typed end (e.g. SHUTTING_DOWN)
	}
	return rpcerr.New(codes.Unavailable, ReasonDraining,
		"the node is draining; reconnect to another node (resume a subscription with start_after_sequence)",
		"node", s.cfg.Node)
}

// serverStreamOnly reports a server-streaming call whose client sends one
// request. Calls for services this server does not register (the mesh
// proxy's) come as bidi streams, so their method is looked up.
func serverStreamOnly(info *grpc.StreamServerInfo) bool {
	if !info.IsServerStream {
		return false
	}
	if !info.IsClientStream {
		return true
	}
	md := methodDescriptor(info.FullMethod)
	return md != nil && md.IsStreamingServer() && !md.IsStreamingClient()
}

// methodDescriptor finds "/pkg.Service/Method" in the registered protos.
func methodDescriptor(full string) protoreflect.MethodDescriptor {
	svc, method := splitMethod(full)
	if svc == "" || method == "" {
		return nil
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil
	}
	return sd.Methods().ByName(protoreflect.Name(method))
}
