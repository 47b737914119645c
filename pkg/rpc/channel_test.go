package rpc_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
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
	big := &debugv1.SetLogLevelRequest{Level: strings.Repeat("x", 2000)}
	if _, _, _, err := s.Channel(conn).Call(context.Background(), "/continuum.debug.v1.DebugService/SetLogLevel", auth.AnonymousPrincipal, nil, big, 0); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized request through Call: %v, want ResourceExhausted", err)
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

// stuck is a debug service whose GetLogLevel waits for its context to
// end, saying when it started.
type stuck struct {
	debugv1.UnimplementedDebugServiceServer
	started chan struct{}
}

func (s stuck) GetLogLevel(ctx context.Context, _ *debugv1.GetLogLevelRequest) (*debugv1.GetLogLevelResponse, error) {
	s.started <- struct{}{}
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// TestChannelHardStop: when a drain runs out of time, the handlers of
// direct calls still running have their contexts ended, as grpc's Stop
// ends those of network calls, and the drain finishes.
func TestChannelHardStop(t *testing.T) {
	t.Parallel()
	s, err := rpc.New(rpc.Config{Node: "n", Listen: "127.0.0.1:0", DrainTimeout: 200 * time.Millisecond}, rpc.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	st := stuck{started: make(chan struct{}, 3)}
	debugv1.RegisterDebugServiceServer(s, st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	conn, err := s.DialInproc()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch := debugv1.NewDebugServiceClient(s.Channel(conn))

	// Three calls under way: ending them must unlink each from the ring
	// of calls, whichever order they finish in.
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := ch.GetLogLevel(context.Background(), &debugv1.GetLogLevelRequest{})
			errs <- err
		}()
		<-st.started
	}
	start := time.Now()
	cancel()
	for range 3 {
		select {
		case err := <-errs:
			if status.Code(err) != codes.Canceled {
				t.Errorf("stuck call ended with %v, want Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the hard stop did not end a direct call's handler")
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("drain ended the calls after %v, before its 200ms deadline", el)
	}
}

// relay is a mesh service whose Members asks the debug service, through
// the channel and without naming a caller, who it is; the answer comes
// back as the one member's name.
type relay struct {
	meshv1.UnimplementedMeshServiceServer
	ch *grpc.ClientConnInterface
}

func (r relay) Members(ctx context.Context, _ *meshv1.MembersRequest) (*meshv1.MembersResponse, error) {
	level, err := getLevel(ctx, *r.ch)
	if err != nil {
		return nil, err
	}
	return &meshv1.MembersResponse{Members: []*meshv1.Member{{Name: level}}}, nil
}

// TestChannelCallMatchesInvoke: Call answers every call as Invoke does on
// behalf of the same caller (the identity the interceptors establish,
// errors with their reasons, the header), takes incoming metadata only
// from its md argument, refuses oversized requests, hands a method the
// server does not run directly back to the caller, and gives its caller
// to this call only: a call the handler makes is the node's own.
func TestChannelCallMatchesInvoke(t *testing.T) {
	t.Parallel()
	var inner grpc.ClientConnInterface
	srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) {
		debugv1.RegisterDebugServiceServer(r, whoami{})
		meshv1.RegisterMeshServiceServer(r, relay{ch: &inner})
	})
	ch := srv.Channel(srv.DialMeshPeer())
	inner = ch
	user := rpctest.User

	cases := []struct {
		method string
		in     proto.Message
	}{
		{"/continuum.debug.v1.DebugService/GetLogLevel", &debugv1.GetLogLevelRequest{}},
		{"/continuum.debug.v1.DebugService/SetLogLevel", &debugv1.SetLogLevelRequest{Level: "panic"}},
		{"/continuum.debug.v1.DebugService/SetLogLevel", &debugv1.SetLogLevelRequest{Level: "bare"}},
		{"/continuum.debug.v1.DebugService/SetLogLevel", &debugv1.SetLogLevelRequest{Level: "cancel"}},
		{"/continuum.debug.v1.DebugService/SetLogLevel", &debugv1.SetLogLevelRequest{Level: "info"}},
	}
	for _, c := range cases {
		name := c.method + " " + prototext(c.in)
		var out proto.Message = &debugv1.SetLogLevelResponse{}
		if _, ok := c.in.(*debugv1.GetLogLevelRequest); ok {
			out = &debugv1.GetLogLevelResponse{}
		}
		var header metadata.MD
		ierr := ch.Invoke(auth.OnBehalfOf(context.Background(), user), c.method, c.in, out, grpc.Header(&header))
		want := outcome{Code: status.Code(ierr), Reason: rpcerr.Reason(ierr), Header: header.Get("x-whoami")}
		if ierr == nil {
			want.Resp = prototext(out)
		}

		// Outgoing metadata of the caller's context is not read.
		ctx := metadata.AppendToOutgoingContext(context.Background(), auth.CallerHeader, auth.EncodeCaller(rpctest.Admin))
		resp, hdr, ok, err := ch.Call(ctx, c.method, user, nil, c.in, 0)
		if !ok {
			t.Fatalf("%s: Call did not run a registered method", name)
		}
		got := outcome{Code: status.Code(err), Reason: rpcerr.Reason(err), Header: hdr.Get("x-whoami")}
		if err == nil {
			got.Resp = prototext(resp)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: Call differs from Invoke (-invoke +call):\n%s", name, diff)
		}
	}

	if got, _, _, err := ch.Call(context.Background(), "/continuum.debug.v1.DebugService/GetLogLevel", user, nil, &debugv1.GetLogLevelRequest{}, 0); err != nil ||
		got.(*debugv1.GetLogLevelResponse).GetLevel() != "user|peer:"+rpctest.Node {
		t.Fatalf("Call as user = %v, %v; want the user, by way of this node", got, err)
	}
	resp, _, _, err := ch.Call(context.Background(), "/continuum.mesh.v1.MeshService/Members", user, nil, &meshv1.MembersRequest{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.(*meshv1.MembersResponse).GetMembers()[0].GetName(); got != "peer:"+rpctest.Node+"|peer:"+rpctest.Node {
		t.Fatalf("a call made by the handler ran as %q; the caller Call named must not carry over", got)
	}
	if _, _, ok, _ := ch.Call(context.Background(), "/continuum.router.v1.RouterService/Route", user, nil, &routerv1.RouteRequest{}, 0); ok {
		t.Fatal("Call ran a method the server does not serve directly")
	}
}

func prototext(m proto.Message) string { return fmt.Sprint(m) }

// TestChannelCallTimeout: Call's timeout ends a handler that does not
// return, with DeadlineExceeded, as a deadline on the caller's context
// would.
func TestChannelCallTimeout(t *testing.T) {
	t.Parallel()
	st := stuck{started: make(chan struct{}, 1)}
	srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) {
		debugv1.RegisterDebugServiceServer(r, st)
	})
	ch := srv.Channel(srv.DialMeshPeer())
	start := time.Now()
	_, _, ok, err := ch.Call(context.Background(), "/continuum.debug.v1.DebugService/GetLogLevel", rpctest.User, nil, &debugv1.GetLogLevelRequest{}, 50*time.Millisecond)
	if !ok || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Call with a 50ms timeout on a stuck handler = %v (ran: %v), want DeadlineExceeded", err, ok)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("the timeout fired after %v, before 50ms", el)
	}
}

// handing is a router service whose Route answers with a response it
// keeps (uri "kept"), or one it built for the call and hands over (any
// other uri, used as the decision's path; "bad" gives a path of invalid
// UTF-8).
type handing struct {
	routerv1.UnimplementedRouterServiceServer
	kept *routerv1.RouteResponse
}

func (h handing) Route(ctx context.Context, req *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
	if req.GetUri() == "kept" {
		return h.kept, nil
	}
	rpc.HandOver(ctx)
	path := req.GetUri()
	if path == "bad" {
		path = "x/\xff" // invalid UTF-8: marshaling the response fails
	}
	return &routerv1.RouteResponse{Decision: &routerv1.RouteDecision{Path: path, Peer: "maya"}}, nil
}

// TestHandOver: a response the handler hands over reaches an in-process
// caller whole (and still refused where marshaling would refuse it); one
// it keeps is copied deeply, so the caller's changes do not reach it.
func TestHandOver(t *testing.T) {
	t.Parallel()
	kept := &routerv1.RouteResponse{Decision: &routerv1.RouteDecision{Path: "a/b", Peer: "ada"}}
	srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) {
		routerv1.RegisterRouterServiceServer(r, handing{kept: kept})
	})
	for name, cc := range map[string]grpc.ClientConnInterface{"channel": srv.Channel(srv.DialMeshPeer()), "listener": srv.DialMeshPeer()} {
		rc := routerv1.NewRouterServiceClient(cc)
		got, err := rc.Route(context.Background(), &routerv1.RouteRequest{Uri: "x/y"})
		if err != nil || got.GetDecision().GetPath() != "x/y" || got.GetDecision().GetPeer() != "maya" {
			t.Errorf("%s: handed-over response = %v, %v", name, got, err)
		}
		if _, err := rc.Route(context.Background(), &routerv1.RouteRequest{Uri: "bad"}); status.Code(err) != codes.Internal {
			t.Errorf("%s: invalid UTF-8 in a handed-over response: %v, want Internal as marshaling gives", name, err)
		}
		got, err = rc.Route(context.Background(), &routerv1.RouteRequest{Uri: "kept"})
		if err != nil || got.GetDecision().GetPath() != "a/b" {
			t.Fatalf("%s: kept response = %v, %v", name, got, err)
		}
		got.Decision.Path = "changed"
		if kept.GetDecision().GetPath() != "a/b" {
			t.Fatalf("%s: the caller's change reached the response the server keeps", name)
		}
	}
}
