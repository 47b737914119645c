package rpc_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// outcome is what a caller can observe of one unary call.
type outcome struct {
	Resp    string
	Code    codes.Code
	Reason  string
	Header  []string
	Trailer []string
	Peer    string
}

// TestChannelMatchesListener: every call answers the same through the
// direct in-process Channel as through the in-process listener: the
// identity the interceptors establish, errors with their reasons (panics
// and bare errors included), header and trailer metadata, the peer, and
// the fallback for services the server does not run.
func TestChannelMatchesListener(t *testing.T) {
	t.Parallel()
	srv := start(t, nil)
	conn := srv.DialMeshPeer()
	conns := map[string]grpc.ClientConnInterface{"listener": conn, "channel": srv.Channel(conn)}
	cases := []struct {
		name string
		call func(context.Context, grpc.ClientConnInterface, ...grpc.CallOption) (string, error)
		ctx  func(context.Context) context.Context
	}{
		{name: "as this node", call: getLevel},
		{name: "on behalf of a user", call: getLevel, ctx: func(ctx context.Context) context.Context { return auth.OnBehalfOf(ctx, rpctest.User) }},
		{name: "panic", call: setLevel("panic")},
		{name: "bare error", call: setLevel("bare")},
		{name: "handler cancelled", call: setLevel("cancel")},
		{name: "ok", call: setLevel("info")},
		{name: "unknown service", call: func(ctx context.Context, cc grpc.ClientConnInterface, o ...grpc.CallOption) (string, error) {
			_, err := routerv1.NewRouterServiceClient(cc).Route(ctx, &routerv1.RouteRequest{Uri: "debug/x"}, o...)
			return "", err
		}},
		{name: "caller cancelled", call: getLevel, ctx: func(ctx context.Context) context.Context {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return ctx
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := map[string]outcome{}
			for name, cc := range conns {
				ctx := context.Background()
				if tc.ctx != nil {
					ctx = tc.ctx(ctx)
				}
				var header, trailer metadata.MD
				var p peer.Peer
				resp, err := tc.call(ctx, cc, grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p))
				o := outcome{Resp: resp, Code: status.Code(err), Reason: rpcerr.Reason(err), Header: header.Get("x-whoami"), Trailer: trailer.Get("x-whoami-trailer")}
				if p.Addr != nil {
					o.Peer = p.Addr.String()
				}
				if o.Code == codes.Internal && rpcerr.Info(err).GetMetadata()["error_id"] == "" {
					t.Errorf("%s: internal error without an error_id: %v", name, err)
				}
				if err != nil && strings.Contains(err.Error(), "secrets") {
					t.Errorf("%s: a bare error's text reached the caller: %v", name, err)
				}
				got[name] = o
			}
			if diff := cmp.Diff(got["listener"], got["channel"], protocmp.Transform()); diff != "" {
				t.Errorf("channel differs from listener (-listener +channel):\n%s", diff)
			}
		})
	}
}

func getLevel(ctx context.Context, cc grpc.ClientConnInterface, o ...grpc.CallOption) (string, error) {
	resp, err := debugv1.NewDebugServiceClient(cc).GetLogLevel(ctx, &debugv1.GetLogLevelRequest{}, o...)
	return resp.GetLevel(), err
}

func setLevel(level string) func(context.Context, grpc.ClientConnInterface, ...grpc.CallOption) (string, error) {
	return func(ctx context.Context, cc grpc.ClientConnInterface, o ...grpc.CallOption) (string, error) {
		_, err := debugv1.NewDebugServiceClient(cc).SetLogLevel(ctx, &debugv1.SetLogLevelRequest{Level: level}, o...)
		return "", err
	}
}

// TestChannelLimitsAndDrain: the channel enforces the server's message
// size limit, and refuses calls once the server drains.
func TestChannelLimitsAndDrain(t *testing.T) {
	t.Parallel()
	s, err := rpc.New(rpc.Config{Node: "n", Listen: "127.0.0.1:0", MaxRecvBytes: 1024}, rpc.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	debugv1.RegisterDebugServiceServer(s, whoami{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	conn, err := s.DialInproc()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch := debugv1.NewDebugServiceClient(s.Channel(conn))

	if _, err := ch.SetLogLevel(context.Background(), &debugv1.SetLogLevelRequest{Level: strings.Repeat("x", 2000)}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized request: %v, want ResourceExhausted", err)
	}
	if got, err := ch.GetLogLevel(context.Background(), &debugv1.GetLogLevelRequest{}); err != nil || got.GetLevel() != "peer:n|peer:n" {
		t.Fatalf("GetLogLevel = %q, %v", got.GetLevel(), err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := ch.GetLogLevel(context.Background(), &debugv1.GetLogLevelRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("after drain: %v, want Unavailable", err)
	}
}
