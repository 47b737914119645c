package rpc_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
)

// probes streams one probe when release closes (or ctx ends), then ends.
type probes struct {
	debugv1.UnimplementedDebugServiceServer
	started chan struct{}
	release chan struct{}
}

func (p probes) StreamProbes(_ *debugv1.StreamProbesRequest, out grpc.ServerStreamingServer[debugv1.StreamProbesResponse]) error {
	close(p.started)
	select {
	case <-p.release:
		return out.Send(&debugv1.StreamProbesResponse{})
	case <-out.Context().Done():
		return out.Context().Err()
	}
}

// TestEndOnDrain: a drain ends the open calls of a method named with
// EndOnDrain at once with UNAVAILABLE DRAINING, and lets any other call
// finish.
func TestEndOnDrain(t *testing.T) {
	for _, named := range []bool{true, false} {
		t.Run(map[bool]string{true: "named", false: "not named"}[named], func(t *testing.T) {
			p := probes{started: make(chan struct{}), release: make(chan struct{})}
			s := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) {
				debugv1.RegisterDebugServiceServer(r, p)
			})
			if named {
				s.EndOnDrain(debugv1.DebugService_StreamProbes_FullMethodName)
			}
			cc := s.Dial(rpctest.AdminToken)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			stream, err := debugv1.NewDebugServiceClient(cc).StreamProbes(ctx, &debugv1.StreamProbesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			<-p.started
			drained := make(chan struct{})
			go func() { s.Drain(); close(drained) }()
			// Once the drain has begun (health is no longer SERVING), the
			// finite call may finish.
			health := healthpb.NewHealthClient(cc)
			for {
				r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
				if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					break
				}
				if ctx.Err() != nil {
					t.Fatal("the drain did not begin")
				}
			}
			if !named {
				close(p.release)
			}
			_, err = stream.Recv()
			if named {
				if status.Code(err) != codes.Unavailable || rpcerr.Reason(err) != rpc.ReasonDraining {
					t.Fatalf("got %v (reason %q); want UNAVAILABLE %s", err, rpcerr.Reason(err), rpc.ReasonDraining)
				}
			} else {
				if err != nil {
					t.Fatalf("the call that was not named was cut by the drain: %v", err)
				}
				if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
					t.Fatalf("after the probe: %v; want the end of the stream", err)
				}
			}
			select {
			case <-drained:
			case <-ctx.Done():
				t.Fatal("the drain did not end")
			}
		})
	}
}
