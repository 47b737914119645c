package routerbench

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/node"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
	"github.com/continuum-mesh/continuum/tools/bench/cputime"
)

// BenchmarkDispatchInProcess is the in-process dispatch of the headline
// figure (debug/get-log-level through RouterService.Dispatch on the node's
// in-process connection, every interceptor on both hops), for CPU and
// allocation profiles:
//
//	go test -run '^$' -bench DispatchInProcess -benchmem -cpuprofile cpu.out ./tools/bench/routerbench
func BenchmarkDispatchInProcess(b *testing.B) {
	benchDispatch(b, &routerv1.DispatchRequest{Uri: "debug/get-log-level"})
}

// BenchmarkDispatchInProcessParams is the same with params to convert
// into the request (router/route explaining a URI) and a larger result.
func BenchmarkDispatchInProcessParams(b *testing.B) {
	params, err := structpb.NewStruct(map[string]any{"uri": "airc://maya@node-2:web/genome/page-in?x=1#f"})
	if err != nil {
		b.Fatal(err)
	}
	benchDispatch(b, &routerv1.DispatchRequest{Uri: "router/route", Params: params})
}

func benchDispatch(b *testing.B, req *routerv1.DispatchRequest) {
	dir := b.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("tokens:\n  - principal: admin\n    token: t\n    admin: true\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	n, err := node.New(node.Config{
		Node: "bench", Services: []string{"router"}, Listen: "127.0.0.1:0", DataDir: dir, TokensFile: tokens,
		MeshProfile: "local",
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("node: %v", err)
		}
	})
	local := routerv1.NewRouterServiceClient(n.Channel())
	actx := auth.OnBehalfOf(ctx, auth.Principal{Name: "admin", Kind: auth.KindToken})
	for range 200 { // warm-up: first calls build descriptors and pools
		if _, err := local.Dispatch(actx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cputime.Process()
	for b.Loop() {
		if _, err := local.Dispatch(actx, req); err != nil {
			b.Fatal(err)
		}
	}
	// The process's CPU time per dispatch (the node's background loops
	// included) holds up when the machine is busy; wall ns/op does not.
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op")
}
