package gateway

import (
	"context"
	"io"
	"reflect"
	"time"

	"google.golang.org/grpc"
)

// upstream is a connection to the mesh as the gateway uses it: errors it
// returns are marked as the mesh's (see fromMesh), and a unary call whose
// client set no deadline gets the gateway's call timeout.
type upstream struct {
	cc          grpc.ClientConnInterface
	callTimeout time.Duration
}

var _ grpc.ClientConnInterface = upstream{}

// Invoke implements grpc.ClientConnInterface.
func (u upstream) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if _, ok := ctx.Deadline(); !ok && u.callTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, u.callTimeout)
		defer cancel()
	}
	return fromMesh(u.cc.Invoke(ctx, method, args, reply, opts...))
}

// NewStream implements grpc.ClientConnInterface. Streams have no gateway
// deadline: they last as long as the HTTP client stays.
func (u upstream) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := u.cc.NewStream(ctx, desc, method, opts...)
	if err != nil {
		return nil, fromMesh(err)
	}
	return upstreamStream{cs}, nil
}

// upstreamStream marks the errors of a stream as the mesh's.
type upstreamStream struct{ grpc.ClientStream }

func (s upstreamStream) SendMsg(m any) error { return fromMesh(s.ClientStream.SendMsg(m)) }
func (s upstreamStream) RecvMsg(m any) error { return fromMesh(s.ClientStream.RecvMsg(m)) }

// closeConns closes the connections Dial returned, each once, skipping
// those that are not io.Closers.
func closeConns(conns []grpc.ClientConnInterface) {
	seen := map[any]bool{}
	for _, c := range conns {
		cl, ok := c.(io.Closer)
		if !ok {
			continue
		}
		if reflect.TypeOf(c).Comparable() {
			if seen[c] {
				continue
			}
			seen[c] = true
		}
		_ = cl.Close()
	}
}
