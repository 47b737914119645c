package node_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/mesh"
	"github.com/continuum-mesh/continuum/pkg/node/nodetest"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// policyA forbids users the mesh on node A with A's own reason.
const policyA = `
default: forbid
rules:
  - callers: ["admin", "peer:*"]
    uris: ["**"]
    verdict: allow
  - callers: ["user"]
    uris: ["mesh/**"]
    verdict: forbid
    reason: not-on-a
`

// policyOpen lets users reach the mesh commands.
const policyOpen = `
default: forbid
rules:
  - callers: ["admin", "peer:*"]
    uris: ["**"]
    verdict: allow
  - callers: ["user"]
    uris: ["mesh/**", "airc://*/mesh/**"]
    verdict: allow
`

const (
	room  = "6f1c2a3b-1111-2222-3333-444455556666"
	room2 = "7a2d3b4c-1111-2222-3333-444455556666"
)

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestThreeNodeMesh(t *testing.T) {
	// Registered first, so it runs last: after the nodes stopped and the
	// test's connections closed.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	m := nodetest.New(t)
	a := m.Start("a", nodetest.Options{Policy: policyA, Rooms: []string{room2}})
	b := m.Start("b", nodetest.Options{
		Policy: policyOpen, Rooms: []string{room, room2},
		Peers: []mesh.HostedPeer{{Name: "b"}, {Name: "maya", Envs: []string{"web", "vr"}}},
	})
	m.Start("c", nodetest.Options{
		Policy: policyOpen, Rooms: []string{room},
		Peers: []mesh.HostedPeer{{Name: "c"}, {Name: "maya", Envs: []string{"cli"}}},
	})
	m.WaitMembers(3, 15*time.Second)
	ctx := context.Background()

	adminB := routerv1.NewRouterServiceClient(m.Dial(b, nodetest.AdminToken))
	userB := routerv1.NewRouterServiceClient(m.Dial(b, nodetest.UserToken))

	t.Run("B dispatches to the peer on A and gets A's answer", func(t *testing.T) {
		resp, err := adminB.Dispatch(ctx, &routerv1.DispatchRequest{Uri: "airc://a/mesh/members"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetServedBy() != "a" || resp.GetRouteKind() != routerv1.RouteKind_ROUTE_KIND_PEER {
			t.Fatalf("served_by %q kind %v", resp.GetServedBy(), resp.GetRouteKind())
		}
		members := resp.GetResult().GetStructValue().GetFields()["members"].GetListValue().GetValues()
		if len(members) != 3 {
			t.Fatalf("A reported %d members", len(members))
		}
		self := ""
		for _, mv := range members {
			f := mv.GetStructValue().GetFields()
			if f["self"].GetBoolValue() {
				self = f["name"].GetStringValue()
			}
		}
		if self != "a" {
			t.Fatalf("the answer's self member is %q, want a (it must be A's answer)", self)
		}
	})

	t.Run("A's forbid rule refuses with A's reason, seen at B", func(t *testing.T) {
		// B's own policy allows the user; A gates again with the user's identity.
		if _, err := userB.Dispatch(ctx, &routerv1.DispatchRequest{Uri: "airc://b/mesh/members"}); err != nil {
			t.Fatalf("B allows the user locally: %v", err)
		}
		_, err := userB.Dispatch(ctx, &routerv1.DispatchRequest{Uri: "airc://a/mesh/members"})
		if status.Code(err) != codes.PermissionDenied || rpcerr.Reason(err) != "FORBIDDEN_NOT_ON_A" {
			t.Fatalf("got %v (reason %q), want PERMISSION_DENIED FORBIDDEN_NOT_ON_A", err, rpcerr.Reason(err))
		}
	})

	t.Run("a room fans out to its members, one result each", func(t *testing.T) {
		resp, err := routerv1.NewRouterServiceClient(m.Dial(a, nodetest.AdminToken)).Dispatch(ctx,
			&routerv1.DispatchRequest{Uri: "airc://room:" + room + "/debug/get-log-level"})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, mr := range resp.GetMemberResults() {
			if mr.GetError() != nil {
				t.Fatalf("member %s failed: %v", mr.GetNode(), mr.GetError())
			}
			got[mr.GetNode()] = mr.GetResult().GetStructValue().GetFields()["level"].GetStringValue()
		}
		if d := cmp.Diff(map[string]string{"b": "info", "c": "info"}, got); d != "" {
			t.Fatalf("room results (-want +got):\n%s", d)
		}
	})

	t.Run("a broadcast reaches every env of the peer on every node", func(t *testing.T) {
		resp, err := adminB.Dispatch(ctx, &routerv1.DispatchRequest{Uri: "airc://maya:*/mesh/members"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, mr := range resp.GetMemberResults() {
			if mr.GetError() != nil {
				t.Fatalf("member %s/%s failed: %v", mr.GetNode(), mr.GetEnv(), mr.GetError())
			}
			got = append(got, mr.GetNode()+":"+mr.GetEnv())
		}
		sort.Strings(got)
		if d := cmp.Diff([]string{"b:vr", "b:web", "c:cli"}, got); d != "" {
			t.Fatalf("broadcast targets (-want +got):\n%s", d)
		}
	})

	t.Run("a partial failure is reported, never hidden", func(t *testing.T) {
		// room2 is a and b; A's policy forbids the user the mesh, B's allows it.
		resp, err := userB.Dispatch(ctx, &routerv1.DispatchRequest{Uri: "airc://room:" + room2 + "/mesh/members"})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, mr := range resp.GetMemberResults() {
			switch {
			case mr.GetError() != nil:
				got[mr.GetNode()] = mr.GetError().GetCode() + " " + mr.GetError().GetReason()
			case mr.GetResult() != nil:
				got[mr.GetNode()] = "ok"
			}
		}
		want := map[string]string{"a": "PermissionDenied FORBIDDEN_NOT_ON_A", "b": "ok"}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("per-member outcome (-want +got):\n%s", d)
		}
	})

	t.Run("a handle routes the command back to its owner node", func(t *testing.T) {
		resp, err := adminB.Dispatch(ctx, &routerv1.DispatchRequest{
			Uri:    "mesh/members",
			Handle: &routerv1.Handle{OwnerService: "mesh", OwnerNode: "a", Id: "x", TypeTag: "test"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetServedBy() != "a" {
			t.Fatalf("served_by %q, want a", resp.GetServedBy())
		}
	})

	t.Run("the log level is settable by URI", func(t *testing.T) {
		resp, err := adminB.Dispatch(ctx, &routerv1.DispatchRequest{
			Uri:    "airc://c/debug/set-log-level",
			Params: mustStruct(t, map[string]any{"level": "debug"}),
		})
		if err != nil {
			t.Fatal(err)
		}
		if lvl := resp.GetResult().GetStructValue().GetFields()["level"].GetStringValue(); lvl != "debug" || resp.GetServedBy() != "c" {
			t.Fatalf("set-log-level answered %v by %s", resp.GetResult(), resp.GetServedBy())
		}
	})

	t.Run("unauthenticated and forged calls are refused", func(t *testing.T) {
		anon := routerv1.NewRouterServiceClient(m.Dial(b, ""))
		_, err := anon.Dispatch(ctx, &routerv1.DispatchRequest{Uri: "airc://a/mesh/members"})
		if status.Code(err) != codes.Unauthenticated || rpcerr.Reason(err) != rpc.ReasonAuthRequired {
			t.Fatalf("anonymous: %v", err)
		}
		forged := nodetest.WithCaller(ctx, auth.EncodeCaller(auth.Principal{Name: "admin", Kind: auth.KindToken}))
		_, err = userB.Dispatch(forged, &routerv1.DispatchRequest{Uri: "airc://a/mesh/members"})
		if status.Code(err) != codes.Unauthenticated || rpcerr.Reason(err) != rpc.ReasonIdentityForged {
			t.Fatalf("forged: %v", err)
		}
		_, err = routerv1.NewRouterServiceClient(m.Dial(a, "")).Dispatch(forged, &routerv1.DispatchRequest{Uri: "mesh/members"})
		if status.Code(err) != codes.Unauthenticated || rpcerr.Reason(err) != rpc.ReasonIdentityForged {
			t.Fatalf("forged without a token: %v", err)
		}
	})

	t.Run("after A stops, PEER_UNREACHABLE and A leaves Members", func(t *testing.T) {
		m.Crash("a")
		start := time.Now()
		var last error
		nodetest.Eventually(t, 15*time.Second, func() bool {
			_, last = adminB.Dispatch(ctx, &routerv1.DispatchRequest{Uri: "airc://a/mesh/members"})
			return status.Code(last) == codes.Unavailable && rpcerr.Reason(last) == "PEER_UNREACHABLE"
		}, "PEER_UNREACHABLE (last: %v)", last)
		t.Logf("PEER_UNREACHABLE %v after the crash", time.Since(start).Round(time.Millisecond))
		nodetest.Eventually(t, 15*time.Second, func() bool {
			resp, err := meshv1.NewMeshServiceClient(m.Dial(b, nodetest.AdminToken)).Members(ctx, &meshv1.MembersRequest{})
			if err != nil {
				return false
			}
			for _, mm := range resp.GetMembers() {
				if mm.GetName() == "a" {
					return false
				}
			}
			return len(resp.GetMembers()) == 2
		}, "A to disappear from B's Members")
		t.Logf("A gone from Members %v after the crash", time.Since(start).Round(time.Millisecond))
	})
	m.StopAll()
}
