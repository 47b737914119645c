package router_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/policy"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/uri"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
	"github.com/continuum-mesh/continuum/services/router"
)

const testPolicy = `
default: forbid
rules:
  - callers: ["admin"]
    uris: ["**"]
    verdict: allow
  - callers: ["user"]
    uris: ["debug/set-log-level"]
    verdict: forbid
    reason: no-permission
  - callers: ["user"]
    uris: ["debug/get-log-level"]
    verdict: defer
    reason: ask-owner
    env: web
  - callers: ["user"]
    uris: ["router/route"]
    verdict: forbid
    reason: audit-mode
    dry_run: true
  - callers: ["user"]
    uris: ["router/**", "mesh/**"]
    verdict: allow
`

// levels is a tiny target service: the router invokes it by descriptor.
type levels struct {
	debugv1.UnimplementedDebugServiceServer
}

func (levels) GetLogLevel(ctx context.Context, _ *debugv1.GetLogLevelRequest) (*debugv1.GetLogLevelResponse, error) {
	return &debugv1.GetLogLevelResponse{Level: "seen-by:" + auth.Caller(ctx).Name}, nil
}

func (levels) SetLogLevel(_ context.Context, req *debugv1.SetLogLevelRequest) (*debugv1.SetLogLevelResponse, error) {
	if req.GetLevel() == "" {
		return nil, rpcerr.New(codes.InvalidArgument, "LOG_LEVEL_INVALID", "empty")
	}
	return &debugv1.SetLogLevelResponse{Level: req.GetLevel()}, nil
}

// oneNode is a directory of a single node whose services are all here.
type oneNode struct {
	conn grpc.ClientConnInterface
}

func (d *oneNode) Self() string { return rpctest.Node }
func (d *oneNode) PeerHosts(peer string) ([]router.PeerHost, error) {
	if peer == rpctest.Node {
		return []router.PeerHost{{Node: rpctest.Node, Envs: []string{"web", "cli"}}}, nil
	}
	return nil, rpcerr.New(codes.NotFound, router.ReasonPeerUnknown, "unknown peer", "peer", peer)
}

func (d *oneNode) RoomMembers(string) ([]string, error) { return []string{rpctest.Node}, nil }

func (d *oneNode) ServiceMember(string) (string, error) { return rpctest.Node, nil }

func (d *oneNode) Owner(_, _ string) (string, error) { return rpctest.Node, nil }

func (d *oneNode) Conn(context.Context, string) (grpc.ClientConnInterface, error) { return d.conn, nil }

// published records what the router publishes.
type published struct {
	mu   sync.Mutex
	reqs []*eventsv1.PublishRequest
}

func (p *published) DeclareClass(context.Context, *eventsv1.DeclareClassRequest, ...grpc.CallOption) (*eventsv1.DeclareClassResponse, error) {
	return &eventsv1.DeclareClassResponse{}, nil
}

func (p *published) Publish(_ context.Context, in *eventsv1.PublishRequest, _ ...grpc.CallOption) (*eventsv1.PublishResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = append(p.reqs, in)
	return &eventsv1.PublishResponse{StreamSequence: uint64(len(p.reqs))}, nil
}

func (p *published) all() []*eventsv1.PublishRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*eventsv1.PublishRequest(nil), p.reqs...)
}

type gatekeeper struct{ store *policy.Store }

func (g gatekeeper) Evaluate(caller auth.Principal, u uri.URI) (*routerv1.Verdict, *routerv1.Verdict) {
	p, _ := g.store.Get()
	ev := p.Evaluate(caller, u)
	var dry *routerv1.Verdict
	if ev.DryRun != nil {
		dry = ev.DryRun.Proto()
	}
	return ev.Effective.Proto(), dry
}

type admin struct{ store *policy.Store }

func (a admin) Get() (*routerv1.Policy, uint64, string, error) {
	p, v := a.store.Get()
	y, err := p.Marshal()
	return p.Proto(), v, string(y), err
}

func (a admin) Put(pb *routerv1.Policy, y string, expected uint64) (uint64, error) {
	var p *policy.Policy
	var err error
	if pb != nil {
		p, err = policy.FromProto(pb)
	} else {
		p, err = policy.Parse([]byte(y))
	}
	if err != nil {
		return 0, rpcerr.New(codes.InvalidArgument, router.ReasonPolicyInvalid, err.Error())
	}
	v, err := a.store.Put(p, expected)
	if err != nil {
		return 0, rpcerr.New(codes.Aborted, router.ReasonVersionMismatch, err.Error())
	}
	return v, nil
}

type admins struct{}

func (admins) IsAdmin(p auth.Principal) bool { return p.Name == "admin" && p.Kind == auth.KindToken }

type harness struct {
	admin, user routerv1.RouterServiceClient
	events      *published
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	p, err := policy.Parse([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	store := policy.NewStore(p)
	dir := &oneNode{}
	events := &published{}
	svc, err := router.New(router.Config{Node: rpctest.Node}, router.Deps{
		Directory: dir, Gate: gatekeeper{store}, Policy: admin{store}, Admins: admins{}, Events: events,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) {
		svc.Register(r)
		debugv1.RegisterDebugServiceServer(r, levels{})
	})
	dir.conn = srv.DialMeshPeer()
	return &harness{
		admin:  routerv1.NewRouterServiceClient(srv.Dial(rpctest.AdminToken)),
		user:   routerv1.NewRouterServiceClient(srv.Dial(rpctest.UserToken)),
		events: events,
	}
}

func TestRoute(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	room := "6f1c2a3b-1111-2222-3333-444455556666"
	tests := []struct {
		uri    string
		want   *routerv1.RouteDecision
		reason string
	}{
		{uri: "inference/llm/generate?model=x#f", want: &routerv1.RouteDecision{Kind: routerv1.RouteKind_ROUTE_KIND_LOCAL, Path: "inference/llm/generate", Query: "model=x", Fragment: "f", Uri: "inference/llm/generate?model=x#f"}},
		{uri: "airc://maya@5090-rig:vr/scene/spawn", want: &routerv1.RouteDecision{Kind: routerv1.RouteKind_ROUTE_KIND_PEER, Peer: "maya", Node: "5090-rig", Env: "vr", Path: "scene/spawn", Uri: "airc://maya@5090-rig:vr/scene/spawn"}},
		{uri: "airc://maya:*/notification/post", want: &routerv1.RouteDecision{Kind: routerv1.RouteKind_ROUTE_KIND_BROADCAST, Peer: "maya", Env: "*", Path: "notification/post", Uri: "airc://maya:*/notification/post"}},
		{uri: "airc://room:" + room + ":web/render/start", want: &routerv1.RouteDecision{Kind: routerv1.RouteKind_ROUTE_KIND_ROOM, Room: room, Env: "web", Path: "render/start", Uri: "airc://room:" + room + ":web/render/start"}},
		{uri: "airc://maya", reason: "URI_EMPTY_PATH"},
		{uri: "http://x/y", reason: "URI_UNKNOWN_SCHEME"},
		{uri: "airc://room:abc/x", reason: "URI_INVALID_ROOM_UUID"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			t.Parallel()
			resp, err := h.admin.Route(context.Background(), &routerv1.RouteRequest{Uri: tt.uri})
			if tt.reason != "" {
				if status.Code(err) != codes.InvalidArgument || rpcerr.Reason(err) != tt.reason {
					t.Fatalf("got %v (reason %q), want INVALID_ARGUMENT %s", err, rpcerr.Reason(err), tt.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, resp.GetDecision(), protocmp.Transform()); d != "" {
				t.Errorf("decision (-want +got):\n%s", d)
			}
		})
	}
}

func params(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDispatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tests := []struct {
		name   string
		client func(*harness) routerv1.RouterServiceClient
		req    *routerv1.DispatchRequest
		result string
		code   codes.Code
		reason string
		meta   map[string]string
	}{
		{
			name: "local by descriptor", client: func(h *harness) routerv1.RouterServiceClient { return h.admin },
			req: &routerv1.DispatchRequest{Uri: "debug/get-log-level"}, result: `{"level":"seen-by:admin"}`,
		},
		{
			name: "peer hosted here", client: func(h *harness) routerv1.RouterServiceClient { return h.admin },
			req: &routerv1.DispatchRequest{Uri: "airc://" + rpctest.Node + "/debug/get-log-level"}, result: `{"level":"seen-by:admin"}`,
		},
		{
			name: "params become the request", client: func(h *harness) routerv1.RouterServiceClient { return h.admin },
			req: &routerv1.DispatchRequest{Uri: "debug/set-log-level", Params: params(t, map[string]any{"level": "warn"})}, result: `{"level":"warn"}`,
		},
		{
			name: "target's typed error passes through", client: func(h *harness) routerv1.RouterServiceClient { return h.admin },
			req: &routerv1.DispatchRequest{Uri: "debug/set-log-level"}, code: codes.InvalidArgument, reason: "LOG_LEVEL_INVALID",
		},
		{
			name: "params that do not fit", client: func(h *harness) routerv1.RouterServiceClient { return h.admin },
			req: &routerv1.DispatchRequest{Uri: "debug/set-log-level", Params: params(t, map[string]any{"nope": 1})}, code: codes.InvalidArgument, reason: router.ReasonParamsInvalid,
		},
		{
			name: "unknown service", client: func(h *harness) routerv1.RouterServiceClient { return h.admin },
			req: &routerv1.DispatchRequest{Uri: "nosuch/thing"}, code: codes.NotFound, reason: router.ReasonServiceUnknown,
		},
		{
			name: "unknown method", client: func(h *harness) routerv1.RouterServiceClient { return h.admin },
			req: &routerv1.DispatchRequest{Uri: "debug/explode"}, code: codes.NotFound, reason: router.ReasonMethodUnknown,
		},
		{
			name: "streaming method", client: func(h *harness) routerv1.RouterServiceClient { return h.admin },
			req: &routerv1.DispatchRequest{Uri: "debug/stream-probes"}, code: codes.InvalidArgument, reason: router.ReasonMethodNotUnary,
		},
		{
			name: "not a command path", client: func(h *harness) routerv1.RouterServiceClient { return h.admin },
			req: &routerv1.DispatchRequest{Uri: "just-one-segment"}, code: codes.InvalidArgument, reason: "URI_NOT_A_COMMAND",
		},
		{
			name: "unknown peer", client: func(h *harness) routerv1.RouterServiceClient { return h.admin },
			req: &routerv1.DispatchRequest{Uri: "airc://nobody/debug/get-log-level"}, code: codes.NotFound, reason: router.ReasonPeerUnknown,
		},
		{
			name: "bad uri", client: func(h *harness) routerv1.RouterServiceClient { return h.admin },
			req: &routerv1.DispatchRequest{Uri: ""}, code: codes.InvalidArgument, reason: "URI_EMPTY",
		},
		{
			name: "forbidden", client: func(h *harness) routerv1.RouterServiceClient { return h.user },
			req:  &routerv1.DispatchRequest{Uri: "debug/set-log-level", Params: params(t, map[string]any{"level": "warn"})},
			code: codes.PermissionDenied, reason: "FORBIDDEN_NO_PERMISSION",
		},
		{
			name: "deferred", client: func(h *harness) routerv1.RouterServiceClient { return h.user },
			req:  &routerv1.DispatchRequest{Uri: "debug/get-log-level"},
			code: codes.FailedPrecondition, reason: "DEFERRED_ASK_OWNER", meta: map[string]string{"prompt_target_env": "web"},
		},
		{
			name: "default deny", client: func(h *harness) routerv1.RouterServiceClient { return h.user },
			req: &routerv1.DispatchRequest{Uri: "genome/tiers"}, code: codes.PermissionDenied, reason: "FORBIDDEN_NO_MATCHING_RULE",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := tt.client(h).Dispatch(context.Background(), tt.req)
			if tt.code != codes.OK {
				if status.Code(err) != tt.code || rpcerr.Reason(err) != tt.reason {
					t.Fatalf("got %v (reason %q), want %v %s", err, rpcerr.Reason(err), tt.code, tt.reason)
				}
				for k, v := range tt.meta {
					if got := rpcerr.Info(err).GetMetadata()[k]; got != v {
						t.Errorf("metadata %s = %q, want %q", k, got, v)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := resp.GetResult().MarshalJSON()
			if d := cmp.Diff(tt.result, strings.ReplaceAll(string(got), " ", "")); d != "" {
				t.Errorf("result (-want +got):\n%s", d)
			}
			if resp.GetServedBy() != rpctest.Node {
				t.Errorf("served_by = %q", resp.GetServedBy())
			}
		})
	}
}

func TestRefusalsArePublished(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, err := h.user.Dispatch(context.Background(), &routerv1.DispatchRequest{Uri: "debug/set-log-level"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("want a refusal, got %v", err)
	}
	// A dry-run rule lets the call through and publishes the would-be refusal.
	if _, err := h.user.Dispatch(context.Background(), &routerv1.DispatchRequest{Uri: "router/route", Params: params(t, map[string]any{"uri": "x/y"})}); err != nil {
		t.Fatalf("dry-run rule refused: %v", err)
	}
	evs := h.events.all()
	if len(evs) != 2 {
		t.Fatalf("published %d events, want 2", len(evs))
	}
	for i, want := range []struct {
		uri    string
		dryRun bool
		reason string
	}{{"debug/set-log-level", false, "no-permission"}, {"router/route", true, "audit-mode"}} {
		ev := evs[i]
		f := ev.GetPayload().GetFields()
		if ev.GetTopic() != "audit:refusal" || f["uri"].GetStringValue() != want.uri || f["dry_run"].GetBoolValue() != want.dryRun ||
			f["reason"].GetStringValue() != want.reason || f["caller"].GetStringValue() != "user" || ev.GetMsgId() == "" {
			t.Errorf("event %d = %v", i, ev)
		}
	}
}

func TestBroadcastFansOutPerEnv(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	resp, err := h.admin.Dispatch(context.Background(), &routerv1.DispatchRequest{Uri: "airc://" + rpctest.Node + ":*/debug/get-log-level"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetRouteKind() != routerv1.RouteKind_ROUTE_KIND_BROADCAST || len(resp.GetMemberResults()) != 2 {
		t.Fatalf("resp = %v", resp)
	}
	for _, mr := range resp.GetMemberResults() {
		if mr.GetError() != nil || mr.GetResult().GetStructValue().GetFields()["level"].GetStringValue() != "seen-by:admin" {
			t.Errorf("member result %v", mr)
		}
	}
}

func TestPolicyAdmin(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.user.GetPolicy(ctx, &routerv1.GetPolicyRequest{}); status.Code(err) != codes.PermissionDenied || rpcerr.Reason(err) != router.ReasonNotAdmin {
		t.Fatalf("user GetPolicy: %v", err)
	}
	got, err := h.admin.GetPolicy(ctx, &routerv1.GetPolicyRequest{})
	if err != nil || got.GetVersion() != 1 || !strings.Contains(got.GetYaml(), "no-permission") {
		t.Fatalf("GetPolicy = %v, %v", got, err)
	}
	if _, err := h.admin.PutPolicy(ctx, &routerv1.PutPolicyRequest{Source: &routerv1.PutPolicyRequest_Yaml{Yaml: "default: maybe"}}); status.Code(err) != codes.InvalidArgument || rpcerr.Reason(err) != router.ReasonPolicyInvalid {
		t.Fatalf("invalid policy: %v", err)
	}
	if _, err := h.admin.PutPolicy(ctx, &routerv1.PutPolicyRequest{Source: &routerv1.PutPolicyRequest_Yaml{Yaml: "default: allow\n"}, ExpectedVersion: 7}); status.Code(err) != codes.Aborted {
		t.Fatalf("stale version: %v", err)
	}
	put, err := h.admin.PutPolicy(ctx, &routerv1.PutPolicyRequest{Source: &routerv1.PutPolicyRequest_Yaml{Yaml: "default: allow\n"}, ExpectedVersion: 1})
	if err != nil || put.GetVersion() != 2 {
		t.Fatalf("PutPolicy = %v, %v", put, err)
	}
	// The new policy applies at once, and the change is published as drift.
	if _, err := h.user.Dispatch(ctx, &routerv1.DispatchRequest{Uri: "debug/get-log-level"}); err != nil {
		t.Fatalf("after allow-all: %v", err)
	}
	evs := h.events.all()
	if len(evs) != 1 || evs[0].GetTopic() != "audit:policy-drift" || evs[0].GetPayload().GetFields()["new_version"].GetNumberValue() != 2 {
		t.Fatalf("drift events = %v", evs)
	}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	resp, err := h.user.Authorize(context.Background(), &routerv1.AuthorizeRequest{Uri: "debug/set-log-level"})
	if err != nil || resp.GetVerdict().GetKind() != routerv1.VerdictKind_VERDICT_KIND_FORBIDDEN || resp.GetCaller() != "user" {
		t.Fatalf("Authorize = %v, %v", resp, err)
	}
	_, err = h.user.Authorize(context.Background(), &routerv1.AuthorizeRequest{Uri: "debug/set-log-level", Caller: "admin"})
	if status.Code(err) != codes.PermissionDenied || rpcerr.Reason(err) != router.ReasonCallerNotAllowed {
		t.Fatalf("caller override by a token holder: %v", err)
	}
}
