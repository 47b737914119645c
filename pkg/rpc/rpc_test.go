package rpc_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// whoami answers GetLogLevel with the caller and hop it saw, and panics or
// fails on request, so the interceptor chain can be observed end to end.
type whoami struct {
	debugv1.UnimplementedDebugServiceServer
}

func (whoami) GetLogLevel(ctx context.Context, _ *debugv1.GetLogLevelRequest) (*debugv1.GetLogLevelResponse, error) {
	if err := grpc.SetHeader(ctx, metadata.Pairs("x-whoami", "header")); err != nil {
		return nil, err
	}
	if err := grpc.SetTrailer(ctx, metadata.Pairs("x-whoami-trailer", "trailer")); err != nil {
		return nil, err
	}
	return &debugv1.GetLogLevelResponse{Level: auth.Caller(ctx).Name + "|" + auth.Hop(ctx).Name}, nil
}

func (whoami) SetLogLevel(_ context.Context, req *debugv1.SetLogLevelRequest) (*debugv1.SetLogLevelResponse, error) {
	switch req.GetLevel() {
	case "panic":
		panic("boom")
	case "bare":
		return nil, errors.New("a bare error with secrets")
	case "cancel":
		return nil, context.Canceled
	}
	return &debugv1.SetLogLevelResponse{}, nil
}

func start(t *testing.T, g gate.Gate) *rpctest.Server {
	t.Helper()
	return rpctest.Start(t, rpctest.Options{Gate: g}, func(r grpc.ServiceRegistrar) {
		debugv1.RegisterDebugServiceServer(r, whoami{})
	})
}

func TestIdentity(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	forged := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, auth.CallerHeader, auth.EncodeCaller(rpctest.Admin))
	}
	tests := []struct {
		name     string
		conn     *grpc.ClientConn
		ctx      func(context.Context) context.Context
		want     string
		wantCode codes.Code
		reason   string
	}{
		{name: "admin token", conn: srv.Dial(rpctest.AdminToken), want: "admin|admin"},
		{name: "user token", conn: srv.Dial(rpctest.UserToken), want: "user|user"},
		{name: "anonymous refused", conn: srv.Dial(""), wantCode: codes.Unauthenticated, reason: rpc.ReasonAuthRequired},
		{name: "unknown token", conn: srv.Dial("nope"), wantCode: codes.Unauthenticated, reason: rpc.ReasonTokenInvalid},
		{name: "forged caller from a token holder", conn: srv.Dial(rpctest.UserToken), ctx: forged, wantCode: codes.Unauthenticated, reason: rpc.ReasonIdentityForged},
		{name: "forged caller from anonymous", conn: srv.Dial(""), ctx: forged, wantCode: codes.Unauthenticated, reason: rpc.ReasonIdentityForged},
		{name: "mesh peer", conn: srv.DialMeshPeer(), want: "peer:test-node|peer:test-node"},
		{name: "mesh peer on behalf of user", conn: srv.DialMeshPeer(), ctx: func(ctx context.Context) context.Context {
			return auth.OnBehalfOf(ctx, rpctest.User)
		}, want: "user|peer:test-node"},
		{name: "mesh peer with malformed caller", conn: srv.DialMeshPeer(), ctx: func(ctx context.Context) context.Context {
			return metadata.AppendToOutgoingContext(ctx, auth.CallerHeader, "root")
		}, wantCode: codes.Unauthenticated, reason: rpc.ReasonIdentityForged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx(ctx)
			}
			resp, err := debugv1.NewDebugServiceClient(tt.conn).GetLogLevel(ctx, &debugv1.GetLogLevelRequest{})
			if tt.wantCode != codes.OK {
				if status.Code(err) != tt.wantCode || rpcerr.Reason(err) != tt.reason {
					t.Fatalf("got %v (reason %q), want %v %s", err, rpcerr.Reason(err), tt.wantCode, tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetLevel() != tt.want {
				t.Errorf("caller|hop = %q, want %q", resp.GetLevel(), tt.want)
			}
		})
	}
}

func TestAnonymousHealthAndReflection(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	resp, err := healthpb.NewHealthClient(srv.Dial("")).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v", resp.GetStatus())
	}
	resp, err = healthpb.NewHealthClient(srv.Dial("")).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "continuum.debug.v1.DebugService"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("per-service health = %v, %v", resp.GetStatus(), err)
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	client := debugv1.NewDebugServiceClient(srv.Dial(rpctest.AdminToken))
	tests := []struct {
		level  string
		code   codes.Code
		reason string
	}{
		{level: "panic", code: codes.Internal, reason: rpc.ReasonInternal},
		{level: "bare", code: codes.Internal, reason: rpc.ReasonInternal},
		{level: "cancel", code: codes.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			t.Parallel()
			_, err := client.SetLogLevel(context.Background(), &debugv1.SetLogLevelRequest{Level: tt.level})
			if status.Code(err) != tt.code || rpcerr.Reason(err) != tt.reason {
				t.Fatalf("got %v (reason %q), want %v %q", err, rpcerr.Reason(err), tt.code, tt.reason)
			}
			if tt.code == codes.Internal && rpcerr.Info(err).GetMetadata()["error_id"] == "" {
				t.Error("internal error carries no error_id")
			}
		})
	}
	// The server keeps serving after a panic.
	if _, err := client.GetLogLevel(context.Background(), &debugv1.GetLogLevelRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestGateOnDirectCalls(t *testing.T) {
	t.Parallel()
	g := gate.Func(func(_ context.Context, caller auth.Principal, uri string) (*routerv1.Verdict, error) {
		if caller.Name == "user" && uri == "debug/get-log-level" {
			return &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_FORBIDDEN, Reason: "no-permission"}, nil
		}
		return &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_ALLOWED}, nil
	})
	srv := start(t, g)
	_, err := debugv1.NewDebugServiceClient(srv.Dial(rpctest.UserToken)).GetLogLevel(context.Background(), &debugv1.GetLogLevelRequest{})
	if status.Code(err) != codes.PermissionDenied || rpcerr.Reason(err) != "FORBIDDEN_NO_PERMISSION" {
		t.Fatalf("user: %v (reason %q)", err, rpcerr.Reason(err))
	}
	if _, err := debugv1.NewDebugServiceClient(srv.Dial(rpctest.AdminToken)).GetLogLevel(context.Background(), &debugv1.GetLogLevelRequest{}); err != nil {
		t.Fatalf("admin: %v", err)
	}
	// Mesh peers were gated by the router that forwarded them.
	ctx := auth.OnBehalfOf(context.Background(), rpctest.User)
	if _, err := debugv1.NewDebugServiceClient(srv.DialMeshPeer()).GetLogLevel(ctx, &debugv1.GetLogLevelRequest{}); err != nil {
		t.Fatalf("mesh peer: %v", err)
	}
}

// TestMetadataLimit: a request whose metadata is over the header limit is
// refused by the transport (grpc-go's own default would take 16 MiB per
// stream) and the server keeps serving; metadata under it passes.
func TestMetadataLimit(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	client := debugv1.NewDebugServiceClient(srv.Dial(rpctest.AdminToken))
	pad := func(n int) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "x-pad", strings.Repeat("p", n))
	}
	if _, err := client.GetLogLevel(pad(1<<20), &debugv1.GetLogLevelRequest{}); status.Code(err) == codes.OK {
		t.Fatal("a request with 1 MiB of metadata was served")
	}
	if _, err := client.GetLogLevel(pad(rpc.DefaultMaxHeaderBytes/2), &debugv1.GetLogLevelRequest{}); err != nil {
		t.Fatalf("metadata under the limit: %v", err)
	}
}
