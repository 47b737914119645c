package mesh

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
)

// whoServer answers Members with the node that answered and the caller
// it saw, so a test can tell where a call landed and as whom.
type whoServer struct {
	meshv1.UnimplementedMeshServiceServer
	node string
}

func (w whoServer) Members(ctx context.Context, _ *meshv1.MembersRequest) (*meshv1.MembersResponse, error) {
	return &meshv1.MembersResponse{Members: []*meshv1.Member{{Name: w.node, GossipAddress: auth.Caller(ctx).Name}}}, nil
}

const meshToken = "mesh-test-token"

// grpcNode is a mesh member with a real pkg/rpc server behind its gRPC
// address.
type grpcNode struct {
	*node
	srv   *rpc.Server
	local *grpc.ClientConn
}

func startGRPCNode(t *testing.T, name string, services []string, join []string) *grpcNode {
	t.Helper()
	tokens, err := auth.NewTokens([]auth.TokenEntry{{Principal: "mesh-test", Token: meshToken}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := rpc.New(rpc.Config{Node: name, Listen: "127.0.0.1:0", DrainTimeout: time.Second}, rpc.Deps{Logger: testLogger(), Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	meshv1.RegisterMeshServiceServer(srv, whoServer{node: name})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	local, err := srv.DialInproc()
	if err != nil {
		t.Fatal(err)
	}
	g := &grpcNode{srv: srv, local: local}
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve %s: %v", name, err)
		}
		_ = local.Close()
	})

	m, err := New(Config{Node: name, GossipAddr: "127.0.0.1:0", GRPCAddr: srv.Addr(), Services: services, Join: join, Profile: ProfileLocal},
		Deps{Logger: testLogger(), Local: local, Dial: dialWithToken})
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(context.Background())
	n := &node{Mesh: m, cancel: mcancel, done: make(chan error, 1)}
	go func() { n.done <- m.Run(mctx) }()
	t.Cleanup(n.stop)
	if err := m.Start(mctx); err != nil {
		t.Fatal(err)
	}
	g.node = n
	return g
}

// dialWithToken is a plaintext dial carrying a bearer token: mTLS is the
// binary's wiring, and without a token the server would see an anonymous
// caller and refuse.
func dialWithToken(_ context.Context, m Member) (grpc.ClientConnInterface, error) {
	return grpc.NewClient(m.GRPCAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return inv(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+meshToken), method, req, reply, cc, opts...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, d *grpc.StreamDesc, cc *grpc.ClientConn, method string, st grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return st(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+meshToken), d, cc, method, opts...)
		}))
}

func who(ctx context.Context, cc grpc.ClientConnInterface) (node, caller string, err error) {
	resp, err := meshv1.NewMeshServiceClient(cc).Members(ctx, &meshv1.MembersRequest{})
	if err != nil {
		return "", "", err
	}
	return resp.GetMembers()[0].GetName(), resp.GetMembers()[0].GetGossipAddress(), nil
}

func TestConnAndServiceConn(t *testing.T) {
	t.Parallel()
	a := startGRPCNode(t, "conn-a", []string{"mesh", "router"}, nil)
	b := startGRPCNode(t, "conn-b", []string{"mesh", "genome"}, []string{a.Self().GossipAddr})
	eventually(t, 10*time.Second, "join", wantState(a.Mesh, "conn-b", Alive))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	tests := []struct {
		name       string
		cc         func() (grpc.ClientConnInterface, error)
		wantNode   string
		wantCaller string
	}{
		{"Conn to self is in-process", func() (grpc.ClientConnInterface, error) { return a.Conn(ctx, "conn-a") }, "conn-a", "peer:conn-a"},
		{"Conn to another member dials it", func() (grpc.ClientConnInterface, error) { return a.Conn(ctx, "conn-b") }, "conn-b", "mesh-test"},
		{"ServiceConn prefers self", func() (grpc.ClientConnInterface, error) { return a.ServiceConn("mesh"), nil }, "conn-a", "peer:conn-a"},
		{"ServiceConn finds the only server", func() (grpc.ClientConnInterface, error) { return a.ServiceConn("genome"), nil }, "conn-b", "mesh-test"},
		{"ServiceConn from the other side", func() (grpc.ClientConnInterface, error) { return b.ServiceConn("router"), nil }, "conn-a", "mesh-test"},
		{"OwnerConn", func() (grpc.ClientConnInterface, error) {
			cc, owner, err := a.OwnerConn(ctx, "genome", "persona-1")
			if err == nil && owner.Name != "conn-b" {
				err = fmt.Errorf("owner %s", owner.Name)
			}
			return cc, err
		}, "conn-b", "mesh-test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := tc.cc()
			if err != nil {
				t.Fatal(err)
			}
			gotNode, gotCaller, err := who(ctx, cc)
			if err != nil {
				t.Fatal(err)
			}
			if gotNode != tc.wantNode || gotCaller != tc.wantCaller {
				t.Errorf("answered by %s as %s, want %s as %s", gotNode, gotCaller, tc.wantNode, tc.wantCaller)
			}
		})
	}

	// Streams go through ServiceConn too (health Watch is a server stream).
	stream, err := healthpb.NewHealthClient(a.ServiceConn("genome")).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch via ServiceConn: %v %v", resp, err)
	}

	// Pooled: the second Conn is the same connection.
	c1, _ := a.Conn(ctx, "conn-b")
	c2, _ := a.Conn(ctx, "conn-b")
	if c1 != c2 || a.pool.size() != 1 {
		t.Errorf("not pooled: %p %p, pool size %d", c1, c2, a.pool.size())
	}

	_, _, err = who(ctx, a.ServiceConn("audit"))
	if status.Code(err) != codes.Unavailable || rpcerr.Reason(err) != ReasonServiceUnavailable {
		t.Errorf("no server: %v, want UNAVAILABLE SERVICE_UNAVAILABLE", err)
	}
	if _, err := a.Conn(ctx, "ghost"); status.Code(err) != codes.NotFound || rpcerr.Reason(err) != ReasonMemberUnknown {
		t.Errorf("unknown member: %v, want NOT_FOUND MEMBER_UNKNOWN", err)
	}

	// b crashes: a drops its pooled connection and refuses to dial it.
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	eventually(t, detectWithin, "failure detection", wantState(a.Mesh, "conn-b", Dead))
	if n := a.pool.size(); n != 0 {
		t.Errorf("pool still holds %d connections after b died", n)
	}
	if _, err := a.Conn(ctx, "conn-b"); status.Code(err) != codes.Unavailable || rpcerr.Reason(err) != ReasonMemberUnavailable {
		t.Errorf("dead member: %v, want UNAVAILABLE MEMBER_UNAVAILABLE", err)
	}
	if _, _, err := who(ctx, a.ServiceConn("genome")); rpcerr.Reason(err) != ReasonServiceUnavailable {
		t.Errorf("genome after b died: %v, want SERVICE_UNAVAILABLE", err)
	}
	if _, _, err := a.OwnerConn(ctx, "genome", "persona-1"); rpcerr.Reason(err) != ReasonOwnerDown {
		t.Errorf("owner after b died: %v, want OWNER_DOWN", err)
	}
}
