package node

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/mesh"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/uri"
	optionsv1 "github.com/continuum-mesh/continuum/proto/continuum/options/v1"
)

// forwardedHeaders are the caller's metadata the proxy passes on; identity
// travels only as the verified caller (auth.OnBehalfOf), never as a token.
var forwardedHeaders = []string{"x-continuum-env"}

// proxy serves calls for mesh services this node does not run: it forwards
// them, stream and all, to a member that serves the service (the owner of
// the shard key for a sharded one), carrying the caller the interceptors
// authenticated. This is what lets one published port (the router's)
// answer every service, and any member answer any call.
func (n *Node) proxy(_ any, ss grpc.ServerStream) error {
	full, _ := grpc.MethodFromServerStream(ss)
	md, svcShort, err := proxiedMethod(full)
	if err != nil {
		return err
	}
	ctx := ss.Context()
	first := dynamicpb.NewMessage(md.Input())
	if err := ss.RecvMsg(first); err != nil {
		if errors.Is(err, io.EOF) {
			return rpcerr.New(codes.InvalidArgument, "REQUEST_MISSING", "the call sent no request message")
		}
		return err
	}
	member, err := n.proxyTarget(md, svcShort, first)
	if err != nil {
		return err
	}
	if member == n.cfg.Node {
		return rpcerr.New(codes.Unimplemented, "SERVICE_NOT_SERVED", "this node does not serve "+svcShort, "service", svcShort)
	}
	conn, err := n.mesh.Conn(ctx, member)
	if err != nil {
		return mesh.ToStatus(err)
	}
	octx := auth.OnBehalfOf(ctx, auth.Caller(ctx))
	in, _ := metadata.FromIncomingContext(ctx)
	for _, h := range forwardedHeaders {
		for _, v := range in.Get(h) {
			octx = metadata.AppendToOutgoingContext(octx, h, v)
		}
	}
	octx, cancel := context.WithCancel(octx)
	defer cancel()
	desc := &grpc.StreamDesc{ServerStreams: md.IsStreamingServer(), ClientStreams: md.IsStreamingClient()}
	cs, err := conn.NewStream(octx, desc, full)
	if err != nil {
		return err
	}
	if err := cs.SendMsg(first); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	upErr := make(chan error, 1)
	if md.IsStreamingClient() {
		go func() {
			for {
				m := dynamicpb.NewMessage(md.Input())
				if err := ss.RecvMsg(m); err != nil {
					if errors.Is(err, io.EOF) {
						upErr <- cs.CloseSend()
						return
					}
					cancel()
					upErr <- err
					return
				}
				if err := cs.SendMsg(m); err != nil {
					upErr <- nil // the far side's status comes from RecvMsg
					return
				}
			}
		}()
	} else if err := cs.CloseSend(); err != nil {
		return err
	}
	if h, err := cs.Header(); err == nil && len(h) > 0 {
		_ = ss.SendHeader(h)
	}
	for {
		out := dynamicpb.NewMessage(md.Output())
		if err := cs.RecvMsg(out); err != nil {
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				if md.IsStreamingClient() {
					if uerr := <-upErr; uerr != nil {
						return uerr
					}
				}
				return nil
			}
			return err
		}
		if err := ss.SendMsg(out); err != nil {
			return err
		}
	}
}

// proxiedMethod finds the descriptor of a mesh service's method.
func proxiedMethod(full string) (protoreflect.MethodDescriptor, string, error) {
	path, ok := uri.CommandPathFor(full)
	if !ok {
		return nil, "", rpcerr.New(codes.Unimplemented, "METHOD_UNKNOWN", "unknown method "+full)
	}
	svcShort, _, _ := strings.Cut(path, "/")
	if !slices.Contains(knownServices(), svcShort) {
		return nil, "", rpcerr.New(codes.Unimplemented, "SERVICE_UNKNOWN", "unknown service "+svcShort, "service", svcShort)
	}
	name := strings.TrimPrefix(full, "/")
	svcName, method, _ := strings.Cut(name, "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svcName))
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if err != nil || !ok {
		return nil, "", rpcerr.New(codes.Unimplemented, "SERVICE_UNKNOWN", "unknown service "+svcName)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, "", rpcerr.New(codes.Unimplemented, "METHOD_UNKNOWN", "unknown method "+full)
	}
	return md, svcShort, nil
}

// proxyTarget is the member a proxied call goes to.
func (n *Node) proxyTarget(md protoreflect.MethodDescriptor, svcShort string, first *dynamicpb.Message) (string, error) {
	sd := md.Parent().(protoreflect.ServiceDescriptor)
	if key, _ := proto.GetExtension(sd.Options(), optionsv1.E_ShardKey).(string); key != "" {
		if fd := md.Input().Fields().ByName(protoreflect.Name(key)); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() {
			if v := first.Get(fd).String(); v != "" {
				m, err := n.mesh.Owner(svcShort, v)
				if err != nil {
					return "", mesh.ToStatus(err)
				}
				return m.Name, nil
			}
		}
	}
	m, err := n.mesh.Resolve(svcShort, "")
	if err != nil {
		return "", mesh.ToStatus(err)
	}
	return m.Name, nil
}
