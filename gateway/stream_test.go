package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/gateway"
	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// fakeEvents is an EventsService whose Subscribe behaves as its pattern
// says: "ok" (an ack, two deliveries and a lag notice, then it waits),
// "refuse" (PERMISSION_DENIED before anything), "fail" (an ack, then
// UNAVAILABLE), "end" (an ack, then a clean end), "burst" (burst deliveries
// at once, then a clean end), "wait" (nothing until the
// client goes away; any pattern starting with "wait").
type fakeEvents struct {
	eventsv1.UnimplementedEventsServiceServer
	mu      sync.Mutex
	reqs    []*eventsv1.SubscribeRequest
	callers []string
	// gone receives the pattern of every subscription whose client left.
	gone chan string
}

// burst is how many deliveries the "burst" pattern sends.
const burst = 500

func newFakeEvents() *fakeEvents { return &fakeEvents{gone: make(chan string, 64)} }

func (f *fakeEvents) Subscribe(req *eventsv1.SubscribeRequest, stream grpc.ServerStreamingServer[eventsv1.SubscribeResponse]) error {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.callers = append(f.callers, auth.Caller(stream.Context()).Name)
	f.mu.Unlock()
	ack := &eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Ack{Ack: &eventsv1.SubscribeAck{SubscriptionId: "sub-1"}}}
	wait := func() error {
		<-stream.Context().Done()
		f.gone <- req.GetPattern()
		return nil
	}
	switch p := req.GetPattern(); {
	case strings.HasPrefix(p, "wait"):
		return wait()
	case p == "refuse":
		return rpcerr.New(codes.PermissionDenied, "FORBIDDEN_AUDIT_TOPIC", "no", "uri", "events/refuse/subscribe")
	case p == "fail":
		if err := stream.Send(ack); err != nil {
			return err
		}
		return rpcerr.New(codes.Unavailable, "SHUTTING_DOWN", "draining")
	case p == "end":
		return stream.Send(ack)
	case p == "burst":
		for i := range uint64(burst) {
			d := &eventsv1.Delivery{SubscriptionId: "sub-1", Topic: "data:x", Sequence: i + 1}
			if err := stream.Send(&eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Delivery{Delivery: d}}); err != nil {
				return err
			}
		}
		return nil
	}
	payload, _ := structpb.NewStruct(map[string]any{"verdict": "forbidden", "caller": "user"})
	for _, m := range []*eventsv1.SubscribeResponse{
		ack,
		{Kind: &eventsv1.SubscribeResponse_Delivery{Delivery: &eventsv1.Delivery{
			SubscriptionId: "sub-1", Topic: "audit:refusal", Sequence: 1, StreamSequence: 41, Publisher: "peer:gw", Payload: payload,
		}}},
		{Kind: &eventsv1.SubscribeResponse_Delivery{Delivery: &eventsv1.Delivery{
			SubscriptionId: "sub-1", Topic: "audit:refusal", Sequence: 2, StreamSequence: 42, Publisher: "peer:gw", Payload: payload,
		}}},
		{Kind: &eventsv1.SubscribeResponse_Lag{Lag: &eventsv1.Lag{SubscriptionId: "sub-1", Missed: 3, ResumeAfterSequence: 42}}},
	} {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return wait()
}

func (f *fakeEvents) requests() ([]*eventsv1.SubscribeRequest, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*eventsv1.SubscribeRequest(nil), f.reqs...), append([]string(nil), f.callers...)
}

// fakeRouter answers RouterService.Subscribe with an ack and one delivery
// naming its node, and records the request.
type fakeRouter struct {
	routerv1.UnimplementedRouterServiceServer
	reqs chan *routerv1.SubscribeRequest
}

func (f *fakeRouter) Subscribe(req *routerv1.SubscribeRequest, stream grpc.ServerStreamingServer[routerv1.SubscribeResponse]) error {
	f.reqs <- req
	for _, m := range []*routerv1.SubscribeResponse{
		{Node: "n1", Kind: &routerv1.SubscribeResponse_Ack{Ack: &eventsv1.SubscribeAck{SubscriptionId: "s"}}},
		{Node: "n1", Kind: &routerv1.SubscribeResponse_Delivery{Delivery: &eventsv1.Delivery{Topic: "data:x", Sequence: 7}}},
	} {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// openSSE opens an event stream and returns the response (the body is
// closed when the test ends).
func openSSE(t *testing.T, ctx context.Context, client *http.Client, method, url, token, body string) *http.Response {
	t.Helper()
	var req *http.Request
	var err error
	if body != "" {
		req, err = http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	} else {
		req, err = http.NewRequestWithContext(ctx, method, url, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestEventStreams(t *testing.T) {
	events := newFakeEvents()
	router := &fakeRouter{reqs: make(chan *routerv1.SubscribeRequest, 8)}
	srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) {
		eventsv1.RegisterEventsServiceServer(r, events)
		routerv1.RegisterRouterServiceServer(r, router)
	})
	_, base := startGateway(t, gateway.Config{Heartbeat: 100 * time.Millisecond}, plainDial(srv.Addr()))
	subscribe := base + gateway.EventsSubscribePath

	t.Run("ack, deliveries and lag as SSE events", func(t *testing.T) {
		t.Parallel()
		// The token travels in the URL, as EventSource must send it.
		resp := openSSE(t, t.Context(), http.DefaultClient, "GET",
			subscribe+"?topic=ok&last_n=5&filter.kind=created&filter.n=3&access_token="+rpctest.AdminToken, "", "")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("Cache-Control %q", cc)
		}
		r := readSSE(resp.Body)
		type got struct{ name, id, topic string }
		var seen []got
		for range 4 {
			ev := r.nextEvent(t, 10*time.Second)
			var m eventsv1.SubscribeResponse
			if err := protojson.Unmarshal([]byte(ev.data), &m); err != nil {
				t.Fatalf("%s: %v", ev.data, err)
			}
			seen = append(seen, got{ev.name, ev.id, m.GetDelivery().GetTopic()})
		}
		want := []got{{"ack", "", ""}, {"delivery", "1", "audit:refusal"}, {"delivery", "2", "audit:refusal"}, {"lag", "", ""}}
		if diff := cmp.Diff(want, seen, cmp.AllowUnexported(got{})); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		reqs, callers := events.requests()
		var sub *eventsv1.SubscribeRequest
		for i, rq := range reqs {
			if rq.GetPattern() == "ok" {
				sub = rq
				if callers[i] != "admin" {
					t.Errorf("caller %q, want admin", callers[i])
				}
			}
		}
		wantReq := &eventsv1.SubscribeRequest{
			Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "ok"}, LastN: 5,
			Filter: &structpb.Struct{Fields: map[string]*structpb.Value{
				"kind": structpb.NewStringValue("created"), "n": structpb.NewNumberValue(3),
			}},
		}
		if diff := cmp.Diff(wantReq, sub, protocmp.Transform()); diff != "" {
			t.Errorf("request (-want +got):\n%s", diff)
		}
	})

	t.Run("a refusal before the stream is an HTTP error", func(t *testing.T) {
		t.Parallel()
		resp := openSSE(t, t.Context(), http.DefaultClient, "GET", subscribe+"?topic=refuse", rpctest.UserToken, "")
		b := errorOf(t, resp)
		want := gateway.ErrorBody{
			Code: "PERMISSION_DENIED", HTTPStatus: 403, Message: "no", Reason: "FORBIDDEN_AUDIT_TOPIC",
			Metadata: map[string]string{"uri": "events/refuse/subscribe"},
		}
		if diff := cmp.Diff(want, b); diff != "" {
			t.Errorf("error (-want +got):\n%s", diff)
		}
	})

	t.Run("no token is refused by the mesh", func(t *testing.T) {
		t.Parallel()
		b := errorOf(t, openSSE(t, t.Context(), http.DefaultClient, "GET", subscribe+"?topic=ok", "", ""))
		if b.HTTPStatus != 401 || b.Reason != "AUTH_REQUIRED" {
			t.Errorf("error %+v", b)
		}
	})

	t.Run("a failure inside the stream is an error event", func(t *testing.T) {
		t.Parallel()
		resp := openSSE(t, t.Context(), http.DefaultClient, "GET", subscribe+"?topic=fail", rpctest.AdminToken, "")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		r := readSSE(resp.Body)
		if ev := r.nextEvent(t, 10*time.Second); ev.name != "ack" {
			t.Fatalf("first event %+v", ev)
		}
		ev := r.nextEvent(t, 10*time.Second)
		var b gateway.ErrorBody
		if err := json.Unmarshal([]byte(ev.data), &b); err != nil {
			t.Fatal(err)
		}
		want := gateway.ErrorBody{Code: "UNAVAILABLE", HTTPStatus: 503, Message: "draining", Reason: "SHUTTING_DOWN", Metadata: map[string]string{}}
		if diff := cmp.Diff(want, b); ev.name != "error" || diff != "" {
			t.Errorf("event %q (-want +got):\n%s", ev.name, diff)
		}
		r.ended(t, 10*time.Second)
	})

	t.Run("a clean end is an end event", func(t *testing.T) {
		t.Parallel()
		r := readSSE(openSSE(t, t.Context(), http.DefaultClient, "GET", subscribe+"?topic=end", rpctest.AdminToken, "").Body)
		for _, want := range []string{"ack", "end"} {
			if ev := r.nextEvent(t, 10*time.Second); ev.name != want {
				t.Fatalf("event %+v, want %s", ev, want)
			}
		}
		r.ended(t, 10*time.Second)
	})

	t.Run("a burst that ends at once loses nothing", func(t *testing.T) {
		t.Parallel()
		r := readSSE(openSSE(t, t.Context(), http.DefaultClient, "GET", subscribe+"?topic=burst", rpctest.AdminToken, "").Body)
		for i := 1; i <= burst; i++ {
			if ev := r.nextEvent(t, 10*time.Second); ev.name != "delivery" || ev.id != strconv.Itoa(i) {
				t.Fatalf("event %d: %+v", i, ev)
			}
		}
		if ev := r.nextEvent(t, 10*time.Second); ev.name != "end" {
			t.Fatalf("last event %+v", ev)
		}
	})

	t.Run("an idle stream gets heartbeats", func(t *testing.T) {
		t.Parallel()
		resp := openSSE(t, t.Context(), http.DefaultClient, "GET", subscribe+"?topic=wait&prefix=", rpctest.AdminToken, "")
		if b := errorOf(t, resp); b.Reason != gateway.ReasonQueryInvalid {
			t.Fatalf("an empty prefix: %+v", b)
		}
		resp = openSSE(t, t.Context(), http.DefaultClient, "GET", subscribe+"?topic=wait", rpctest.AdminToken, "")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if ev := readSSE(resp.Body).next(t, 10*time.Second); ev.name != "comment" || ev.data != "ping" {
			t.Errorf("got %+v, want a ping comment", ev)
		}
	})

	t.Run("the client leaving ends the subscription", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		resp := openSSE(t, ctx, http.DefaultClient, "GET", subscribe+"?topic=wait-leave&start_after_sequence=9", rpctest.AdminToken, "")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		cancel()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case p := <-events.gone:
				if p == "wait-leave" {
					return
				}
				events.gone <- p // another subtest's
			case <-deadline:
				t.Fatal("the upstream subscription outlived its client")
			}
		}
	})

	t.Run("a malformed query never reaches the mesh", func(t *testing.T) {
		t.Parallel()
		if resp := call(t, "HEAD", subscribe+"?topic=bad", rpctest.AdminToken, ""); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("HEAD: status %d", resp.StatusCode)
		}
		for _, q := range []string{"", "topic=bad&topic=b", "topic=bad&artifact=b", "topic=bad&last_n=-1", "topic=bad&nope=1", "topic=bad&filter.=1"} {
			resp := openSSE(t, t.Context(), http.DefaultClient, "GET", subscribe+"?"+q, rpctest.AdminToken, "")
			b := errorOf(t, resp)
			if b.HTTPStatus != 400 || b.Reason != gateway.ReasonQueryInvalid || b.Metadata["param"] == "" {
				t.Errorf("%q: %+v", q, b)
			}
		}
		reqs, _ := events.requests()
		for _, rq := range reqs {
			if rq.GetPattern() == "bad" || rq.GetArtifact() != nil {
				t.Errorf("a malformed query reached the mesh: %v", rq)
			}
		}
	})

	t.Run("any stream route serves SSE, with a filter from the query", func(t *testing.T) {
		t.Parallel()
		r := readSSE(openSSE(t, t.Context(), http.DefaultClient, "GET",
			base+"/v1/router/subscribe?uri="+url.QueryEscape("airc://maya/events/data:>")+"&filter.kind=x&last_n=2", rpctest.AdminToken, "").Body)
		for _, want := range []struct{ name, id string }{{"ack", ""}, {"delivery", "7"}, {"end", ""}} {
			ev := r.nextEvent(t, 10*time.Second)
			if ev.name != want.name || ev.id != want.id {
				t.Errorf("event %+v, want %+v", ev, want)
			}
			if want.name != "end" && !strings.Contains(ev.data, `"node":"n1"`) {
				t.Errorf("data %s lacks the node", ev.data)
			}
		}
		want := &routerv1.SubscribeRequest{
			Uri: "airc://maya/events/data:>", LastN: 2,
			Filter: &structpb.Struct{Fields: map[string]*structpb.Value{"kind": structpb.NewStringValue("x")}},
		}
		select {
		case got := <-router.reqs:
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no request")
		}
	})
}

// TestStreamBodyRoute covers a stream bound to POST with body "*".
func TestStreamBodyRoute(t *testing.T) {
	t.Parallel()
	router := &fakeRouter{reqs: make(chan *routerv1.SubscribeRequest, 8)}
	srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) { routerv1.RegisterRouterServiceServer(r, router) })
	_, base := startGateway(t, gateway.Config{}, plainDial(srv.Addr()))

	resp := openSSE(t, t.Context(), http.DefaultClient, "POST", base+"/v1/router/subscribe", rpctest.AdminToken,
		`{"uri":"events/data:>","filter":{"n":1},"startAfterSequence":"4"}`)
	r := readSSE(resp.Body)
	if ev := r.nextEvent(t, 10*time.Second); ev.name != "ack" {
		t.Fatalf("event %+v", ev)
	}
	want := &routerv1.SubscribeRequest{
		Uri: "events/data:>", StartAfterSequence: 4,
		Filter: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(1)}},
	}
	if diff := cmp.Diff(want, <-router.reqs, protocmp.Transform()); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}

	b := errorOf(t, openSSE(t, t.Context(), http.DefaultClient, "POST", base+"/v1/router/subscribe", rpctest.AdminToken, `{"uri":1}`))
	if b.HTTPStatus != 400 || b.Reason != gateway.ReasonBodyInvalid {
		t.Errorf("a bad body: %+v", b)
	}
}

// TestStreamLimitAndDrain checks that the gateway bounds its streams and
// that draining ends them with GATEWAY_SHUTTING_DOWN, leaving no goroutine
// behind.
func TestStreamLimitAndDrain(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	events := newFakeEvents()
	srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) { eventsv1.RegisterEventsServiceServer(r, events) })
	g, err := gateway.New(gateway.Config{Listen: "127.0.0.1:0", MaxStreams: 1, Heartbeat: 50 * time.Millisecond},
		gateway.Deps{Dial: plainDial(srv.Addr()), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	subscribe := "http://" + g.Addr() + gateway.EventsSubscribePath + "?topic=wait"

	first := openSSE(t, t.Context(), client, "GET", subscribe, rpctest.AdminToken, "")
	if first.StatusCode != 200 {
		t.Fatalf("status %d", first.StatusCode)
	}
	r := readSSE(first.Body)
	r.next(t, 10*time.Second) // a ping: the stream holds its slot

	b := errorOf(t, openSSE(t, t.Context(), client, "GET", subscribe, rpctest.AdminToken, ""))
	if b.HTTPStatus != http.StatusTooManyRequests || b.Reason != gateway.ReasonStreamLimit {
		t.Errorf("a second stream: %+v", b)
	}

	cancel()
	ev := r.nextEvent(t, 10*time.Second)
	var eb gateway.ErrorBody
	if err := json.Unmarshal([]byte(ev.data), &eb); err != nil || ev.name != "error" || eb.Reason != gateway.ReasonShuttingDown {
		t.Errorf("at drain: %+v (%v)", ev, err)
	}
	r.ended(t, 10*time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
