package hippocampus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/uri"
	hippocampusv1 "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// fakeRouter dispatches hippocampus/<method> the way the router does:
// params JSON to the request message, the method by its command path, the
// answer back as JSON.
type fakeRouter struct {
	routerv1.UnimplementedRouterServiceServer
	conn grpc.ClientConnInterface
	reqs map[string]func() (proto.Message, proto.Message)
}

func (r *fakeRouter) Dispatch(ctx context.Context, req *routerv1.DispatchRequest) (*routerv1.DispatchResponse, error) {
	full, _, method, err := uri.MethodFor(req.GetUri())
	if err != nil {
		return nil, err
	}
	mk := r.reqs[method]
	if mk == nil {
		return nil, errors.New("unknown method " + method)
	}
	in, out := mk()
	b, _ := protojson.Marshal(req.GetParams())
	if err := protojson.Unmarshal(b, in); err != nil {
		return nil, err
	}
	if err := r.conn.Invoke(ctx, full, in, out); err != nil {
		return nil, err
	}
	b, _ = protojson.Marshal(out)
	v := &structpb.Value{}
	if err := protojson.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return &routerv1.DispatchResponse{Result: v, RouteKind: routerv1.RouteKind_ROUTE_KIND_LOCAL}, nil
}

func TestCLI(t *testing.T) {
	t.Parallel()
	s := newTestService(t, Config{}, Deps{})
	var router *fakeRouter
	srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) {
		s.Register(r)
		router = &fakeRouter{reqs: cliMessages()}
		routerv1.RegisterRouterServiceServer(r, router)
	})
	router.conn = srv.DialMeshPeer()
	conn := srv.Dial(rpctest.AdminToken)
	ctx := context.Background()
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := RunCLI(ctx, args, conn, &out)
		return out.String(), err
	}

	for _, direct := range []string{"", "--direct"} {
		args := []string{"remember", "--persona", "maya", "--channel", "chat", "--entity", "Ada", "--topic", "engines", "--importance", "8", "--id", "kick" + direct, "Kickoff", "with", "Ada"}
		if direct != "" {
			args = append(args, direct)
		}
		out, err := run(args...)
		if err != nil || out != "remembered kick"+direct+"\n" {
			t.Fatalf("remember %s = %q, %v", direct, out, err)
		}
	}
	out, err := run("remember", "--persona", "maya", "--channel", "chat", "--id", "kick", "again")
	if err != nil || out != "already remembered kick\n" {
		t.Errorf("repeated remember = %q, %v", out, err)
	}
	out, err = run("peek", "--persona", "maya", "--channel", "chat")
	if err != nil || !strings.HasPrefix(out, "nothing staged (never-ticked)") {
		t.Errorf("first peek = %q, %v", out, err)
	}
	s.advance(2 * time.Second)
	out, err = run("peek", "--persona", "maya", "--channel", "chat", "--content")
	if err != nil || !strings.Contains(out, "generation 1") || !strings.Contains(out, `"Kickoff with Ada"`) {
		t.Errorf("peek = %q, %v", out, err)
	}
	out, err = run("recall", "--persona", "maya", "--k", "1", "what", "about", "ada")
	if err != nil || !strings.Contains(out, "kick") || strings.Count(out, "\n") != 1 {
		t.Errorf("recall = %q, %v", out, err)
	}
	out, err = run("peek", "--persona", "maya", "--channel", "chat", "--json", "--direct")
	var peek map[string]any
	if err != nil || json.Unmarshal([]byte(out), &peek) != nil || peek["generation"] != "1" {
		t.Errorf("peek --json = %q, %v", out, err)
	}

	var usage *UsageError
	for _, bad := range [][]string{{"peek", "--channel", "chat"}, {"remember", "--persona", "p", "--channel", "c"}, {"fly"}, {"recall", "--persona", "p", "--k", "x"}} {
		if _, err := run(bad...); !errors.As(err, &usage) {
			t.Errorf("%v = %v, want a usage error", bad, err)
		}
	}
	_, err = run("remember", "--persona", "maya", "--channel", "chat", "--importance", "11", "x")
	wantReason(t, err, codes.InvalidArgument, ReasonImportanceOutOfRange)
	if out, err := run("help"); err != nil || !strings.Contains(out, "continuum hippo remember") {
		t.Errorf("help = %q, %v", out, err)
	}
}

func cliMessages() map[string]func() (proto.Message, proto.Message) {
	return map[string]func() (proto.Message, proto.Message){
		"Remember": func() (proto.Message, proto.Message) {
			return new(hippocampusv1.RememberRequest), new(hippocampusv1.RememberResponse)
		},
		"Peek": func() (proto.Message, proto.Message) {
			return new(hippocampusv1.PeekRequest), new(hippocampusv1.PeekResponse)
		},
		"Recall": func() (proto.Message, proto.Message) {
			return new(hippocampusv1.RecallRequest), new(hippocampusv1.RecallResponse)
		},
	}
}
