package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/node/nodetest"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// TestDispatchProbes: with a probe subscriber on the node, an in-process
// dispatch shows the router's Dispatch span with the command URI and the
// span of the service that ran it, in the same trace, naming the command
// as its ancestry. (Without a subscriber the router's own call skips its
// unrecorded span; this is what must survive that.)
func TestDispatchProbes(t *testing.T) {
	t.Parallel()
	m := nodetest.New(t)
	n := m.Start("solo", nodetest.Options{Services: []string{"router", "debug"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stream, err := debugv1.NewDebugServiceClient(n.Channel()).StreamProbes(auth.OnBehalfOf(ctx, auth.Principal{Name: "admin", Kind: auth.KindToken}),
		&debugv1.StreamProbesRequest{Classes: []string{"latency"}})
	if err != nil {
		t.Fatal(err)
	}
	probes := make(chan *debugv1.Probe, 64)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				close(probes)
				return
			}
			probes <- r.GetProbe()
		}
	}()

	router := routerv1.NewRouterServiceClient(n.Channel())
	admin := auth.OnBehalfOf(ctx, auth.Principal{Name: "admin", Kind: auth.KindToken})
	var dispatch, served *debugv1.Probe
	for dispatch == nil || served == nil {
		// The subscription may start after the first dispatch; dispatch
		// until both spans of one arrive.
		if _, err := router.Dispatch(admin, &routerv1.DispatchRequest{Uri: "debug/get-log-level"}); err != nil {
			t.Fatal(err)
		}
		dispatch, served = nil, nil
		deadline := time.After(time.Second)
	collect:
		for {
			select {
			case p, ok := <-probes:
				if !ok {
					t.Fatal("probe stream ended")
				}
				switch p.GetName() {
				case "continuum.router.v1.RouterService/Dispatch":
					dispatch = p
				case "continuum.debug.v1.DebugService/GetLogLevel":
					served = p
				}
				if dispatch != nil && served != nil {
					break collect
				}
			case <-deadline:
				break collect
			case <-ctx.Done():
				t.Fatal("no Dispatch and GetLogLevel spans")
			}
		}
	}
	if dispatch.GetUri() != "debug/get-log-level" {
		t.Errorf("Dispatch span uri = %q", dispatch.GetUri())
	}
	if served.GetTraceId() == "" || served.GetTraceId() != dispatch.GetTraceId() {
		t.Errorf("trace ids: Dispatch %q, GetLogLevel %q; want one trace", dispatch.GetTraceId(), served.GetTraceId())
	}
	if a := served.GetAncestry(); len(a) != 1 || a[0] != "debug/get-log-level" {
		t.Errorf("GetLogLevel span ancestry = %q, want the command", a)
	}
}
