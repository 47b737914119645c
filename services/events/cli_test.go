package events

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCLIPubAndTail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	conn := e.srv.Dial(rpctest.AdminToken)
	var tailOut syncBuffer
	tailed := make(chan error, 1)
	go func() {
		tailed <- RunTail(ctxT(t), conn, []string{"cli:>", "--count", "3", "--filter", `{"keep":true}`}, &tailOut)
	}()
	waitUntil(t, "tail to subscribe", func() bool { return strings.Contains(tailOut.String(), "subscribed") })

	var pubOut bytes.Buffer
	for _, args := range [][]string{
		{"cli:a", `{"keep":true,"x":1}`, "--msg-id", "m1", "--header", "trace=t1"},
		{"--msg-id", "m1", "cli:a", `{"keep":true,"x":1}`},
		{"cli:b", `{"keep":false}`},
		{"--count", "2", "--msg-id", "n", "cli:c", `{"keep":true}`},
	} {
		if err := RunPub(ctxT(t), conn, args, &pubOut); err != nil {
			t.Fatalf("pub %v: %v", args, err)
		}
	}
	wantPub := "published cli:a stream_sequence=1 delivered=1\n" +
		"duplicate cli:a stream_sequence=1 (msg_id m1 already published)\n" +
		"published cli:b stream_sequence=1 delivered=0\n" +
		"published cli:c stream_sequence=1 delivered=1\n" +
		"published cli:c stream_sequence=2 delivered=1\n"
	if pubOut.String() != wantPub {
		t.Errorf("pub printed:\n%s\nwant:\n%s", pubOut.String(), wantPub)
	}
	if err := <-tailed; err != nil {
		t.Fatalf("tail: %v", err)
	}
	want := regexp.MustCompile(`^subscribed sub_[0-9a-f]{32} to cli:>
\[1\] cli:a stream_sequence=1 publisher=admin node=test-node at=\S+ \{"keep":true,"x":1\}
\[2\] cli:c stream_sequence=1 publisher=admin node=test-node at=\S+ \{"keep":true\}
\[3\] cli:c stream_sequence=2 publisher=admin node=test-node at=\S+ \{"keep":true\}
$`)
	if !want.MatchString(tailOut.String()) {
		t.Errorf("tail printed:\n%s", tailOut.String())
	}

	// Replay as JSON lines, by artifact key.
	publish(t, e.admin, "genome/working_set.page_fault", map[string]any{"page": 7})
	var jsonOut syncBuffer
	if err := RunTail(ctxT(t), conn, []string{"--json", "--last", "1", "--count", "1", "genome/working_set.page_fault"}, &jsonOut); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(jsonOut.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"ack"`) || !strings.Contains(lines[1], `"page":7`) {
		t.Errorf("tail --json printed:\n%s", jsonOut.String())
	}
}

func TestCLIErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	conn := e.srv.Dial(rpctest.AdminToken)
	var out bytes.Buffer
	for _, args := range [][]string{
		{},
		{"a", "b"},
		{"--last", "1", "--after", "2", "a"},
		{"--filter", "[1]", "a"},
		{"--bogus", "a"},
		{"a:>:b"},
	} {
		if err := RunTail(ctxT(t), conn, args, &out); err == nil {
			t.Errorf("tail %v succeeded", args)
		}
	}
	for _, args := range [][]string{
		{},
		{"a", "{}", "extra"},
		{"a", "[1]"},
		{"--header", "novalue", "a"},
		{"data:*"},
	} {
		if err := RunPub(ctxT(t), conn, args, &out); err == nil {
			t.Errorf("pub %v succeeded", args)
		}
	}
	// An interrupted tail is not an error.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var tailOut syncBuffer
	go func() { done <- RunTail(ctx, conn, []string{"quiet:x"}, &tailOut) }()
	waitUntil(t, "tail to subscribe", func() bool { return strings.Contains(tailOut.String(), "subscribed") })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("interrupted tail returned %v", err)
	}
}

// fakeRouter answers RouterService.Subscribe the way the router relays a
// remote subscription: an ack and deliveries, with the node they live on.
type fakeRouter struct {
	routerv1.UnimplementedRouterServiceServer
	got chan *routerv1.SubscribeRequest
}

func (f *fakeRouter) Subscribe(req *routerv1.SubscribeRequest, stream grpc.ServerStreamingServer[routerv1.SubscribeResponse]) error {
	f.got <- req
	if err := stream.Send(&routerv1.SubscribeResponse{Node: "maya-rig", Kind: &routerv1.SubscribeResponse_Ack{
		Ack: &eventsv1.SubscribeAck{SubscriptionId: "sub_remote"},
	}}); err != nil {
		return err
	}
	if err := stream.Send(&routerv1.SubscribeResponse{Node: "maya-rig", Kind: &routerv1.SubscribeResponse_Lag{
		Lag: &eventsv1.Lag{Missed: 3, ResumeAfterSequence: 9, Stream: "cognition", Topic: "cognition:analyze:complete"},
	}}); err != nil {
		return err
	}
	return stream.Send(&routerv1.SubscribeResponse{Node: "maya-rig", Kind: &routerv1.SubscribeResponse_Delivery{Delivery: &eventsv1.Delivery{
		SubscriptionId: "sub_remote", Topic: "cognition:analyze:complete", Sequence: 1, StreamSequence: 13,
		Publisher: "maya", PublisherNode: "maya-rig",
	}}})
}

func TestCLITailThroughTheRouter(t *testing.T) {
	t.Parallel()
	router := &fakeRouter{got: make(chan *routerv1.SubscribeRequest, 1)}
	srv := rpctest.Start(t, rpctest.Options{Logger: quietLogger()}, func(r grpc.ServiceRegistrar) {
		routerv1.RegisterRouterServiceServer(r, router)
	})
	var out syncBuffer
	uri := "airc://maya/events/cognition:analyze:complete"
	if err := RunTail(ctxT(t), srv.Dial(rpctest.AdminToken), []string{uri, "--after", "9", "--count", "1"}, &out); err != nil {
		t.Fatal(err)
	}
	req := <-router.got
	if req.GetUri() != uri || req.GetStartAfterSequence() != 9 {
		t.Errorf("router got %v", req)
	}
	want := regexp.MustCompile(`^subscribed sub_remote to airc://maya/events/cognition:analyze:complete on maya-rig
lag: missed 3 events of stream cognition \(first cognition:analyze:complete\); resume with --after 9
\[1\] cognition:analyze:complete stream_sequence=13 publisher=maya node=maya-rig at=\S+ \{\}
$`)
	if !want.MatchString(out.String()) {
		t.Errorf("tail printed:\n%s", out.String())
	}
}
