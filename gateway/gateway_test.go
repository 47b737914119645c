package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/continuum-mesh/continuum/gateway"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// TestGatewayAgainstNode runs a real node and the gateway in front of it
// and checks the HTTP face end to end: the real interceptors, the real
// default policy, the real router.
func TestGatewayAgainstNode(t *testing.T) {
	n := startNode(t)
	_, base := startGateway(t, gateway.Config{MaxBodyBytes: 64 << 10}, plainDial(n.Addr()))

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name, method, path, token, body string
			hdr                             []string
			chunked                         bool
			status                          int
			code, reason                    string
		}{
			{
				name: "no token is refused by the mesh", method: "POST", path: "/v1/router/dispatch", body: `{"uri":"mesh/members"}`,
				status: 401, code: "UNAUTHENTICATED", reason: "AUTH_REQUIRED",
			},
			{
				name: "a wrong token", method: "POST", path: "/v1/router/dispatch", token: "nope", body: `{"uri":"mesh/members"}`,
				status: 401, code: "UNAUTHENTICATED", reason: "TOKEN_INVALID",
			},
			{
				name: "a user may not dispatch debug commands", method: "POST", path: "/v1/router/dispatch", token: userToken,
				body: `{"uri":"debug/get-log-level"}`, status: 403, code: "PERMISSION_DENIED", reason: "FORBIDDEN_NO_PERMISSION",
			},
			{
				name: "nor call the debug service directly", method: "GET", path: "/v1/debug/log-level", token: userToken,
				status: 403, code: "PERMISSION_DENIED", reason: "FORBIDDEN_NO_PERMISSION",
			},
			{
				name: "nor open a probe stream", method: "GET", path: "/v1/debug/probes", token: userToken,
				hdr: []string{"Accept", "text/event-stream"}, status: 403, code: "PERMISSION_DENIED", reason: "FORBIDDEN_NO_PERMISSION",
			},
			{
				name: "the router's own reasons pass through", method: "POST", path: "/v1/router/dispatch", token: adminToken,
				body: `{"uri":"airc://maya"}`, status: 400, code: "INVALID_ARGUMENT", reason: "URI_EMPTY_PATH",
			},
			{
				name: "a body that is not JSON", method: "POST", path: "/v1/router/dispatch", token: adminToken,
				body: `{"uri":`, status: 400, code: "INVALID_ARGUMENT", reason: "REQUEST_INVALID",
			},
			{
				name: "an unknown field", method: "POST", path: "/v1/router/dispatch", token: adminToken,
				body: `{"uri":"mesh/members","paramz":{}}`, status: 400, code: "INVALID_ARGUMENT", reason: "REQUEST_INVALID",
			},
			{
				name: "a body over the limit", method: "POST", path: "/v1/router/dispatch", token: adminToken,
				body: `{"uri":"` + strings.Repeat("a", 70<<10) + `"}`, status: 413, code: "INVALID_ARGUMENT", reason: "BODY_TOO_LARGE",
			},
			{
				name: "a chunked body over the limit", method: "POST", path: "/v1/router/dispatch", token: adminToken, chunked: true,
				body: `{"uri":"` + strings.Repeat("a", 70<<10) + `"}`, status: 413, code: "INVALID_ARGUMENT", reason: "BODY_TOO_LARGE",
			},
			{
				name: "no such route", method: "GET", path: "/v1/nothing/here", token: adminToken,
				status: 404, code: "NOT_FOUND", reason: "ROUTE_NOT_FOUND",
			},
			{
				name: "no such route outside the API", method: "GET", path: "/nothing", token: adminToken,
				status: 404, code: "NOT_FOUND", reason: "ROUTE_NOT_FOUND",
			},
			{
				name: "the wrong method", method: "DELETE", path: "/v1/router/dispatch", token: adminToken,
				status: 405, code: "UNIMPLEMENTED", reason: "METHOD_NOT_ALLOWED",
			},
			{
				name: "a token in the URL of a POST", method: "POST", path: "/v1/router/dispatch?access_token=" + adminToken,
				body: `{"uri":"mesh/members"}`, status: 400, code: "INVALID_ARGUMENT", reason: "QUERY_INVALID",
			},
			{
				name: "a wrong token in the URL", method: "GET", path: "/v1/mesh/members?access_token=nope",
				status: 401, code: "UNAUTHENTICATED", reason: "TOKEN_INVALID",
			},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				var resp *http.Response
				if tc.chunked {
					resp = callChunked(t, tc.method, base+tc.path, tc.token, tc.body)
				} else {
					resp = call(t, tc.method, base+tc.path, tc.token, tc.body, tc.hdr...)
				}
				if resp.StatusCode != tc.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
				}
				if tc.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
				}
				b := errorOf(t, resp)
				if b.Code != tc.code || b.Reason != tc.reason {
					t.Errorf("got %s %s (%q), want %s %s", b.Code, b.Reason, b.Message, tc.code, tc.reason)
				}
			})
		}
	})

	t.Run("dispatch as admin", func(t *testing.T) {
		t.Parallel()
		resp := call(t, "POST", base+"/v1/router/dispatch", adminToken, `{"uri":"mesh/members","params":{}}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %+v", resp.StatusCode, errorOf(t, resp))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		var got routerv1.DispatchResponse
		if err := protojson.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if got.GetRouteKind() != routerv1.RouteKind_ROUTE_KIND_LOCAL || got.GetServedBy() != "gw" {
			t.Errorf("route %v served by %q", got.GetRouteKind(), got.GetServedBy())
		}
		members := got.GetResult().GetStructValue().GetFields()["members"].GetListValue().GetValues()
		if len(members) != 1 || members[0].GetStructValue().GetFields()["name"].GetStringValue() != "gw" {
			t.Errorf("result %s", got.GetResult())
		}
	})

	t.Run("members", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct{ name, path, token string }{
			{"header token", "/v1/mesh/members", userToken},
			{"token in the URL", "/v1/mesh/members?access_token=" + userToken, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				resp := call(t, "GET", base+tc.path, tc.token, "")
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d: %+v", resp.StatusCode, errorOf(t, resp))
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var got meshv1.MembersResponse
				if err := protojson.Unmarshal(body, &got); err != nil {
					t.Fatalf("%s: %v", body, err)
				}
				want := &meshv1.MembersResponse{Members: []*meshv1.Member{{
					Name: "gw", GrpcAddress: n.Addr(),
					Peers: []*meshv1.HostedPeer{{Name: "gw"}}, State: meshv1.MemberState_MEMBER_STATE_ALIVE, Self: true,
				}}}
				if diff := cmp.Diff(want, &got, protocmp.Transform(),
					protocmp.IgnoreFields(&meshv1.Member{}, "gossip_address", "state_since", "services")); diff != "" {
					t.Errorf("members (-want +got):\n%s", diff)
				}
				if len(got.GetMembers()) == 1 && !slices.Contains(got.GetMembers()[0].GetServices(), "router") {
					t.Errorf("services %v", got.GetMembers()[0].GetServices())
				}
			})
		}
	})

	t.Run("route explains a URI by GET and by POST", func(t *testing.T) {
		t.Parallel()
		for _, r := range []*http.Response{
			call(t, "GET", base+"/v1/router/route?uri=airc://maya:vr/scene/spawn", userToken, ""),
			call(t, "POST", base+"/v1/router/route", userToken, `{"uri":"airc://maya:vr/scene/spawn"}`),
		} {
			var got struct {
				Decision struct{ Kind, Peer, Env, Path string }
			}
			decode(t, r, &got)
			if got.Decision.Kind != "ROUTE_KIND_PEER" || got.Decision.Peer != "maya" || got.Decision.Env != "vr" || got.Decision.Path != "scene/spawn" {
				t.Errorf("decision %+v", got.Decision)
			}
		}
	})

	t.Run("other routes", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			method, path, token, body string
			contains                  string
		}{
			{"GET", "/v1/router/authorize?uri=debug/get-log-level", userToken, "", `"kind":"VERDICT_KIND_FORBIDDEN"`},
			{"POST", "/v1/router/authorize", adminToken, `{"uri":"debug/get-log-level"}`, `"kind":"VERDICT_KIND_ALLOWED"`},
			{"GET", "/v1/mesh/resolve?service=router", adminToken, "", `"name":"gw"`},
			{"PUT", "/v1/debug/log-level", adminToken, `{"level":"info"}`, `"level":"info"`},
			{"GET", "/v1/debug/log-level", adminToken, "", `"level":"info"`},
			{"GET", "/v1/mesh/members?include_gone=true", adminToken, "", `"self":true`},
		}
		for _, tc := range tests {
			resp := call(t, tc.method, base+tc.path, tc.token, tc.body)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), tc.contains) {
				t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, body)
			}
		}
	})

	t.Run("policy as admin", func(t *testing.T) {
		t.Parallel()
		resp := call(t, "GET", base+"/v1/router/policy", adminToken, "")
		var got struct {
			Version string
			YAML    string `json:"yaml"`
		}
		decode(t, resp, &got)
		if resp.StatusCode != 200 || got.Version == "" || !strings.Contains(got.YAML, "debug/**") {
			t.Errorf("status %d, policy %+v", resp.StatusCode, got)
		}
	})

	t.Run("probes as SSE", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/debug/probes?class=decision", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		events := readSSE(resp.Body)
		// The subscription is live some time after the headers; dispatch
		// until a decision probe arrives.
		deadline := time.Now().Add(20 * time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			dispatch := call(t, "POST", base+"/v1/router/dispatch", adminToken, `{"uri":"mesh/members"}`)
			dispatch.Body.Close()
			select {
			case ev, ok := <-events.events:
				if !ok {
					t.Fatalf("stream ended: %v", events.err)
				}
				if ev.name == "comment" {
					continue
				}
				if ev.name != "probe" {
					t.Fatalf("event %q, want probe: %s", ev.name, ev.data)
				}
				var got debugv1.StreamProbesResponse
				if err := protojson.Unmarshal([]byte(ev.data), &got); err != nil {
					t.Fatalf("%s: %v", ev.data, err)
				}
				if got.GetProbe().GetClass() != "decision" || got.GetProbe().GetNode() != "gw" {
					t.Errorf("probe %v", got.GetProbe())
				}
				return
			case <-tick.C:
			}
			if time.Now().After(deadline) {
				t.Fatal("no probe arrived")
			}
		}
	})

	t.Run("probes as newline-delimited JSON", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/debug/probes?classes=decision", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != gateway.ContentTypeNDJSON {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, ct)
		}
		lines := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		deadline := time.Now().Add(20 * time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			dispatch := call(t, "POST", base+"/v1/router/dispatch", adminToken, `{"uri":"mesh/members"}`)
			dispatch.Body.Close()
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatal("stream ended")
				}
				var got struct{ Result json.RawMessage }
				if err := json.Unmarshal([]byte(line), &got); err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				var msg debugv1.StreamProbesResponse
				if err := protojson.Unmarshal(got.Result, &msg); err != nil || msg.GetProbe().GetClass() != "decision" {
					t.Fatalf("line %s (%v)", line, err)
				}
				return
			case <-tick.C:
			}
			if time.Now().After(deadline) {
				t.Fatal("no probe arrived")
			}
		}
	})

	t.Run("refusals arrive live over SSE", func(t *testing.T) {
		t.Parallel()
		if !slices.Contains(n.Mesh().Self().Services, "events") {
			t.Skip("this node runs no events service")
		}
		// As EventSource would: the token in the URL, the filter in the query.
		resp := openSSE(t, t.Context(), http.DefaultClient, "GET",
			base+gateway.EventsSubscribePath+"?topic=audit:refusal&filter.caller=user&access_token="+adminToken, "", "")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %+v", resp.StatusCode, errorOf(t, resp))
		}
		r := readSSE(resp.Body)
		if ev := r.nextEvent(t, 20*time.Second); ev.name != "ack" {
			t.Fatalf("first event %+v", ev)
		}
		const uri = "debug/get-log-level?from=gateway-sse-test"
		refused := call(t, "POST", base+"/v1/router/dispatch", userToken, `{"uri":"`+uri+`"}`)
		if b := errorOf(t, refused); b.Reason != "FORBIDDEN_NO_PERMISSION" {
			t.Fatalf("dispatch: %+v", b)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			ev := r.nextEvent(t, time.Until(deadline))
			if ev.name != "delivery" {
				continue
			}
			var m struct {
				Delivery struct {
					Topic   string
					Payload map[string]any
				}
			}
			if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
				t.Fatalf("%s: %v", ev.data, err)
			}
			if m.Delivery.Payload["uri"] != uri {
				continue // another subtest's refusal
			}
			if ev.id == "" || m.Delivery.Topic != "audit:refusal" || m.Delivery.Payload["caller"] != "user" ||
				m.Delivery.Payload["verdict"] != "forbidden" || m.Delivery.Payload["reason"] != "no-permission" {
				t.Errorf("delivery id %q: %s", ev.id, ev.data)
			}
			return
		}
	})

	t.Run("status page", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			path, contentType, contains string
		}{
			{"/", "text/html; charset=utf-8", "<title>Continuum mesh"},
			{"/ui/app.js", "text/javascript; charset=utf-8", "AUDIT_VERIFY_URL"},
			{"/ui/style.css", "text/css; charset=utf-8", ".pill"},
		} {
			resp := call(t, "GET", base+tc.path, "", "")
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType || !strings.Contains(string(body), tc.contains) {
				t.Errorf("%s: status %d, Content-Type %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("%s: CSP %q", tc.path, csp)
			}
		}
		for _, p := range []string{"/ui/", "/ui/nope.js", "/ui/index.html"} {
			resp := call(t, "GET", base+p, "", "")
			resp.Body.Close()
			if resp.StatusCode != 404 {
				t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
			}
		}
	})

	t.Run("healthz", func(t *testing.T) {
		t.Parallel()
		var got struct{ Status string }
		decode(t, call(t, "GET", base+"/healthz", "", ""), &got)
		if got.Status != "SERVING" {
			t.Errorf("healthz %+v", got)
		}
	})
}
