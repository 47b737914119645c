package mesh

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
	membership "github.com/continuum-mesh/continuum/pkg/mesh"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

var since = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// fakeMesh is a fixed membership.
type fakeMesh struct {
	members []membership.Member
	resolve func(service, key string) (membership.Member, error)
}

func (f *fakeMesh) Members() []membership.Member {
	var out []membership.Member
	for _, m := range f.members {
		if m.State == membership.Alive || m.State == membership.Suspect {
			out = append(out, m)
		}
	}
	return out
}

func (f *fakeMesh) AllMembers() []membership.Member { return f.members }

func (f *fakeMesh) Resolve(service, key string) (membership.Member, error) {
	return f.resolve(service, key)
}

var (
	memberA = membership.Member{
		Name: "node-a", GRPCAddr: "10.0.0.1:7400", GossipAddr: "10.0.0.1:7946",
		Services: []string{"mesh", "router"}, Peers: []membership.HostedPeer{{Name: "maya", Envs: []string{"vr", "web"}}},
		Rooms: []string{"6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"}, State: membership.Alive, Self: true, Since: since,
	}
	memberB = membership.Member{
		Name: "node-b", GRPCAddr: "10.0.0.2:7400", GossipAddr: "10.0.0.2:7946",
		Services: []string{"hippocampus"}, Peers: []membership.HostedPeer{{Name: "node-b"}}, State: membership.Dead, Since: since, MetaTruncated: true,
	}
	memberC = membership.Member{Name: "node-c", GRPCAddr: "10.0.0.3:7400", Services: []string{"hippocampus"}, State: membership.Left}

	protoA = &meshv1.Member{
		Name: "node-a", GrpcAddress: "10.0.0.1:7400", GossipAddress: "10.0.0.1:7946",
		Services: []string{"mesh", "router"}, Peers: []*meshv1.HostedPeer{{Name: "maya", Envs: []string{"vr", "web"}}},
		Rooms: []string{"6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"}, State: meshv1.MemberState_MEMBER_STATE_ALIVE, Self: true,
		StateSince: timestamppb.New(since),
	}
	protoB = &meshv1.Member{
		Name: "node-b", GrpcAddress: "10.0.0.2:7400", GossipAddress: "10.0.0.2:7946",
		Services: []string{"hippocampus"}, Peers: []*meshv1.HostedPeer{{Name: "node-b"}}, State: meshv1.MemberState_MEMBER_STATE_DEAD,
		StateSince: timestamppb.New(since), MetadataTruncated: true,
	}
	protoC = &meshv1.Member{Name: "node-c", GrpcAddress: "10.0.0.3:7400", Services: []string{"hippocampus"}, State: meshv1.MemberState_MEMBER_STATE_LEFT}
)

func newFake() *fakeMesh {
	return &fakeMesh{
		members: []membership.Member{memberA, memberB, memberC},
		resolve: func(service, key string) (membership.Member, error) {
			switch {
			case service == "hippocampus" && key == "persona-b":
				return membership.Member{}, &membership.ErrOwnerDown{Service: service, Key: key, Member: memberB}
			case service == "hippocampus":
				return memberA, nil
			case service == "router":
				return memberA, nil
			case service == "broken":
				return membership.Member{}, errors.New("disk on fire")
			}
			return membership.Member{}, &membership.ErrServiceUnavailable{Service: service}
		},
	}
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func start(t *testing.T, m Membership, g gate.Gate) *rpctest.Server {
	t.Helper()
	svc, err := New(Config{}, Deps{Mesh: m, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	return rpctest.Start(t, rpctest.Options{Gate: g}, svc.Register)
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Error("New without a mesh succeeded")
	}
	if _, err := New(Config{MaxKeyBytes: -1}, Deps{Mesh: newFake()}); err == nil {
		t.Error("New with a negative key bound succeeded")
	}
}

func TestMembers(t *testing.T) {
	t.Parallel()
	srv := start(t, newFake(), nil)
	client := meshv1.NewMeshServiceClient(srv.Dial(rpctest.AdminToken))
	tests := []struct {
		name string
		req  *meshv1.MembersRequest
		want *meshv1.MembersResponse
	}{
		{"live", &meshv1.MembersRequest{}, &meshv1.MembersResponse{Members: []*meshv1.Member{protoA}}},
		{"include gone", &meshv1.MembersRequest{IncludeGone: true}, &meshv1.MembersResponse{Members: []*meshv1.Member{protoA, protoB, protoC}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := client.Members(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Members (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	srv := start(t, newFake(), nil)
	client := meshv1.NewMeshServiceClient(srv.Dial(rpctest.UserToken))
	tests := []struct {
		name   string
		req    *meshv1.ResolveRequest
		want   *meshv1.ResolveResponse
		code   codes.Code
		reason string
		md     map[string]string
	}{
		{name: "service", req: &meshv1.ResolveRequest{Service: "router"}, want: &meshv1.ResolveResponse{Member: protoA}},
		{name: "key", req: &meshv1.ResolveRequest{Service: "hippocampus", Key: "persona-a"}, want: &meshv1.ResolveResponse{Member: protoA}},
		{
			name: "owner down", req: &meshv1.ResolveRequest{Service: "hippocampus", Key: "persona-b"}, code: codes.Unavailable, reason: membership.ReasonOwnerDown,
			md: map[string]string{"service": "hippocampus", "key": "persona-b", "member": "node-b", "state": "DEAD"},
		},
		{
			name: "nobody serves it", req: &meshv1.ResolveRequest{Service: "audit"}, code: codes.Unavailable, reason: membership.ReasonServiceUnavailable,
			md: map[string]string{"service": "audit"},
		},
		{name: "empty service", req: &meshv1.ResolveRequest{}, code: codes.InvalidArgument, reason: ReasonInvalidService, md: map[string]string{"field": "service"}},
		{name: "upper-case service", req: &meshv1.ResolveRequest{Service: "Router"}, code: codes.InvalidArgument, reason: ReasonInvalidService, md: map[string]string{"field": "service"}},
		{name: "long service", req: &meshv1.ResolveRequest{Service: strings.Repeat("a", 65)}, code: codes.InvalidArgument, reason: ReasonInvalidService, md: map[string]string{"field": "service"}},
		{name: "control chars", req: &meshv1.ResolveRequest{Service: "ro\x00uter"}, code: codes.InvalidArgument, reason: ReasonInvalidService, md: map[string]string{"field": "service"}},
		{name: "long key", req: &meshv1.ResolveRequest{Service: "hippocampus", Key: strings.Repeat("k", 1025)}, code: codes.InvalidArgument, reason: ReasonInvalidKey, md: map[string]string{"field": "key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := client.Resolve(context.Background(), tc.req)
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
					t.Errorf("Resolve (-want +got):\n%s", diff)
				}
				return
			}
			if status.Code(err) != tc.code || rpcerr.Reason(err) != tc.reason {
				t.Fatalf("err = %v, want %v %s", err, tc.code, tc.reason)
			}
			if diff := cmp.Diff(tc.md, rpcerr.Info(err).GetMetadata()); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveInternalError(t *testing.T) {
	t.Parallel()
	srv := start(t, newFake(), nil)
	_, err := meshv1.NewMeshServiceClient(srv.Dial(rpctest.AdminToken)).Resolve(context.Background(), &meshv1.ResolveRequest{Service: "broken"})
	if status.Code(err) != codes.Internal || rpcerr.Reason(err) != ReasonInternal || rpcerr.Info(err).GetMetadata()["error_id"] == "" {
		t.Fatalf("err = %v, want INTERNAL with an error_id", err)
	}
	if strings.Contains(status.Convert(err).Message(), "disk on fire") {
		t.Errorf("internal cause leaked to the caller: %v", err)
	}
}

func TestAuthAndGate(t *testing.T) {
	t.Parallel()
	// The gate refuses mesh/resolve to the plain user.
	g := gate.Func(func(_ context.Context, caller auth.Principal, uri string) (*routerv1.Verdict, error) {
		if uri == "mesh/resolve" && caller.Name == "user" {
			return &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_FORBIDDEN, Reason: "no-permission"}, nil
		}
		return &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_ALLOWED}, nil
	})
	srv := start(t, newFake(), g)
	tests := []struct {
		name   string
		conn   func() *grpc.ClientConn
		call   func(meshv1.MeshServiceClient) error
		code   codes.Code
		reason string
	}{
		{"anonymous members", func() *grpc.ClientConn { return srv.Dial("") }, members, codes.Unauthenticated, "AUTH_REQUIRED"},
		{"user resolve refused", func() *grpc.ClientConn { return srv.Dial(rpctest.UserToken) }, resolve, codes.PermissionDenied, "FORBIDDEN_NO_PERMISSION"},
		{"user members allowed", func() *grpc.ClientConn { return srv.Dial(rpctest.UserToken) }, members, codes.OK, ""},
		{"admin resolve allowed", func() *grpc.ClientConn { return srv.Dial(rpctest.AdminToken) }, resolve, codes.OK, ""},
		{"mesh peer is not gated", srv.DialMeshPeer, resolve, codes.OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.call(meshv1.NewMeshServiceClient(tc.conn()))
			if status.Code(err) != tc.code || rpcerr.Reason(err) != tc.reason {
				t.Errorf("err = %v, want %v %q", err, tc.code, tc.reason)
			}
		})
	}
}

func members(c meshv1.MeshServiceClient) error {
	_, err := c.Members(context.Background(), &meshv1.MembersRequest{})
	return err
}

func resolve(c meshv1.MeshServiceClient) error {
	_, err := c.Resolve(context.Background(), &meshv1.ResolveRequest{Service: "router"})
	return err
}

// TestWithRealMesh serves a real single-node pkg/mesh.
func TestWithRealMesh(t *testing.T) {
	t.Parallel()
	m, err := membership.New(membership.Config{
		Node: "solo", GossipAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:7400",
		Services: []string{"mesh", "router"}, Profile: membership.ProfileLocal,
	}, membership.Deps{Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	srv := start(t, m, nil)
	client := meshv1.NewMeshServiceClient(srv.Dial(rpctest.AdminToken))
	resp, err := client.Members(context.Background(), &meshv1.MembersRequest{IncludeGone: true})
	if err != nil {
		t.Fatal(err)
	}
	want := &meshv1.MembersResponse{Members: []*meshv1.Member{{
		Name: "solo", GrpcAddress: "127.0.0.1:7400", GossipAddress: m.Self().GossipAddr, Services: []string{"mesh", "router"},
		Peers: []*meshv1.HostedPeer{{Name: "solo"}}, State: meshv1.MemberState_MEMBER_STATE_ALIVE, Self: true,
	}}}
	if diff := cmp.Diff(want, resp, protocmp.Transform(), protocmp.IgnoreFields(&meshv1.Member{}, "state_since")); diff != "" {
		t.Errorf("Members (-want +got):\n%s", diff)
	}
	r, err := client.Resolve(context.Background(), &meshv1.ResolveRequest{Service: "hippocampus", Key: "maya"})
	if status.Code(err) != codes.Unavailable || rpcerr.Reason(err) != membership.ReasonServiceUnavailable {
		t.Errorf("Resolve(hippocampus) = %v, %v; want SERVICE_UNAVAILABLE", r, err)
	}
	if r, err := client.Resolve(context.Background(), &meshv1.ResolveRequest{Service: "router", Key: "maya"}); err != nil || r.GetMember().GetName() != "solo" {
		t.Errorf("Resolve(router, maya) = %v, %v", r, err)
	}
}
