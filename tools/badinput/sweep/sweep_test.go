package sweep

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// TestEmbeddedSweep runs a short sweep against a real node started in
// process, with every service the node runs, and fails on any violation.
func TestEmbeddedSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and sends a few hundred requests")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := Run(ctx, Config{Seed: 1, PerMethod: 6}, &out)
	if err != nil {
		t.Fatalf("sweep: %v\n%s", err, out.String())
	}
	for _, v := range rep.Violations {
		t.Errorf("violation: %s: %s: got %s %s %q: %s\n%s", v.Method, v.Case, v.Code, v.Reason, v.Message, v.Problem, v.ServerLog)
	}
	var methods []string
	for _, m := range rep.Methods {
		methods = append(methods, m.Method)
		if !m.Serving {
			t.Errorf("%s: the node stopped serving after its batch", m.Method)
		}
	}
	for _, want := range []string{
		"continuum.mesh.v1.MeshService/Members",
		"continuum.router.v1.RouterService/Dispatch",
		"continuum.debug.v1.DebugService/SetLogLevel",
	} {
		if !contains(methods, want) {
			t.Errorf("%s was not swept (swept: %v)", want, methods)
		}
	}
	sum := lastLineSummary(t, out.String())
	if diff := cmp.Diff(rep.Summary(), sum); diff != "" {
		t.Errorf("last line differs from the report (-report +line):\n%s", diff)
	}
	if sum.Calls == 0 || sum.Methods != len(rep.Methods) {
		t.Errorf("summary %+v", sum)
	}
}

// fakeDebug is a DebugService with planted bugs, one per input value, so
// the test can tell exactly which violations the sweep must report.
type fakeDebug struct {
	debugv1.UnimplementedDebugServiceServer
	health interface {
		SetServingStatus(string, healthpb.HealthCheckResponse_ServingStatus)
	}
	// stopServing makes one input take the server out of service.
	stopServing bool
}

func (f *fakeDebug) SetLogLevel(ctx context.Context, req *debugv1.SetLogLevelRequest) (*debugv1.SetLogLevelResponse, error) {
	switch req.GetLevel() {
	case "info":
		return &debugv1.SetLogLevelResponse{Level: "info"}, nil
	case "../../etc/passwd":
		panic("planted: a panic on a path")
	case "http://x":
		return nil, errors.New("planted: a bare error")
	case "airc://maya":
		return nil, status.Error(codes.InvalidArgument, "planted: a refusal without a reason")
	case "not-a-uuid":
		return nil, status.Error(codes.Unknown, "planted: unknown")
	case "00000000-0000-0000-0000-000000000000":
		<-ctx.Done() // planted: a hang
		return nil, rpcerr.FromContext(ctx.Err())
	case "{6f1c2a3b-1111-2222-3333-444455556666}":
		if f.stopServing {
			f.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		}
	}
	return nil, rpcerr.New(codes.InvalidArgument, "LOG_LEVEL_INVALID", "no such level")
}

func (f *fakeDebug) GetLogLevel(context.Context, *debugv1.GetLogLevelRequest) (*debugv1.GetLogLevelResponse, error) {
	return &debugv1.GetLogLevelResponse{Level: "info"}, nil
}

// StreamProbes holds every stream open: a valid-looking subscription.
func (f *fakeDebug) StreamProbes(_ *debugv1.StreamProbesRequest, stream grpc.ServerStreamingServer[debugv1.StreamProbesResponse]) error {
	<-stream.Context().Done()
	return nil
}

// fakeRouter refuses everything with a reason, except Subscribe, which
// silently accepts any filter (the planted bug: list and object values
// must be refused).
type fakeRouter struct {
	routerv1.UnimplementedRouterServiceServer
}

func refuse() error {
	return rpcerr.New(codes.InvalidArgument, "PARAMS_INVALID", "fake router refuses")
}

func (fakeRouter) Route(context.Context, *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
	return nil, refuse()
}

func (fakeRouter) Dispatch(context.Context, *routerv1.DispatchRequest) (*routerv1.DispatchResponse, error) {
	return nil, refuse()
}

func (fakeRouter) Authorize(context.Context, *routerv1.AuthorizeRequest) (*routerv1.AuthorizeResponse, error) {
	return nil, refuse()
}

func (fakeRouter) GetPolicy(context.Context, *routerv1.GetPolicyRequest) (*routerv1.GetPolicyResponse, error) {
	return nil, refuse()
}

func (fakeRouter) PutPolicy(context.Context, *routerv1.PutPolicyRequest) (*routerv1.PutPolicyResponse, error) {
	return nil, refuse()
}

func (fakeRouter) Subscribe(_ *routerv1.SubscribeRequest, stream grpc.ServerStreamingServer[routerv1.SubscribeResponse]) error {
	<-stream.Context().Done()
	return nil
}

func startFakes(t *testing.T, debug *fakeDebug) *rpctest.Server {
	t.Helper()
	srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) {
		debugv1.RegisterDebugServiceServer(r, debug)
		routerv1.RegisterRouterServiceServer(r, fakeRouter{})
	})
	debug.health = srv.Health()
	return srv
}

type found struct{ Method, Case, Code string }

// TestSweepFindsViolations sweeps services with planted bugs and checks
// that the sweep reports exactly them: a panic and a bare error (both
// INTERNAL), a refusal without ErrorInfo, UNKNOWN, a hang, and a filter
// that silently accepts list and object values and values with no JSON
// form.
func TestSweepFindsViolations(t *testing.T) {
	t.Parallel()
	srv := startFakes(t, &fakeDebug{})
	var out bytes.Buffer
	rep, err := Run(context.Background(), Config{
		Addr: srv.Addr(), Token: rpctest.AdminToken, UserToken: rpctest.UserToken,
		Match:       `DebugService/SetLogLevel$|RouterService/Subscribe$`,
		CallTimeout: 4 * time.Second, StreamWindow: 100 * time.Millisecond, refusalWait: 500 * time.Millisecond,
		// The planted bugs answer the level's string values and the
		// filter's struct values; every kind of input is covered against
		// the real node.
		keep: func(c Case) bool {
			return c.Category == catStruct || strings.HasPrefix(c.Name, "empty: level: ")
		},
	}, &out)
	if err != nil {
		t.Fatalf("sweep: %v\n%s", err, out.String())
	}
	var got []found
	for _, v := range rep.Violations {
		got = append(got, found{v.Method, v.Case, v.Code})
	}
	const setLevel = "continuum.debug.v1.DebugService/SetLogLevel"
	const subscribe = "continuum.router.v1.RouterService/Subscribe"
	want := []found{
		{setLevel, "empty: level: path traversal ../../etc/passwd", "INTERNAL"},
		{setLevel, "empty: level: bad URI http://x", "INTERNAL"},
		{setLevel, "empty: level: bad URI airc://maya (empty path)", "INVALID_ARGUMENT"},
		{setLevel, "empty: level: invalid UUID", "UNKNOWN"},
		{setLevel, "empty: level: nil UUID", CodeTimeout},
		{subscribe, "empty: filter: filter value is a list", CodeOpen},
		{subscribe, "empty: filter: filter value is an object", CodeOpen},
		{subscribe, "seed: filter: filter value is a list", CodeOpen},
		{subscribe, "seed: filter: filter value is an object", CodeOpen},
		// Values with no JSON form.
		{subscribe, "empty: filter: struct with a NaN", CodeOpen},
		{subscribe, "empty: filter: struct with a Value of no kind", CodeOpen},
		{subscribe, "empty: filter: struct with a non-finite number", CodeOpen},
		{subscribe, "seed: filter: struct with a NaN", CodeOpen},
		{subscribe, "seed: filter: struct with a Value of no kind", CodeOpen},
		{subscribe, "seed: filter: struct with a non-finite number", CodeOpen},
	}
	sortFound(got)
	sortFound(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("violations (-want +got):\n%s\n%s", diff, out.String())
	}
	if sum := lastLineSummary(t, out.String()); sum.Violations != len(want) {
		t.Errorf("summary counts %d violations, want %d", sum.Violations, len(want))
	}
	// The fake router's GetPolicy refuses, so the policy guard is off, and
	// the note says so.
	if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "policy guard") {
		t.Errorf("notes = %q, want the policy guard's", rep.Notes)
	}
}

// TestSweepStopsWhenTheServerStopsServing: a batch after which the health
// check fails is a violation, and the sweep ends with ErrStoppedServing
// when the server does not recover.
func TestSweepStopsWhenTheServerStopsServing(t *testing.T) {
	t.Parallel()
	srv := startFakes(t, &fakeDebug{stopServing: true})
	var out bytes.Buffer
	rep, err := Run(context.Background(), Config{
		Addr: srv.Addr(), Token: rpctest.AdminToken, Match: "SetLogLevel", CallTimeout: 3 * time.Second,
		recoverWait: time.Second, keep: func(c Case) bool { return c.Category == catString },
	}, &out)
	if !errors.Is(err, ErrStoppedServing) {
		t.Fatalf("err = %v, want ErrStoppedServing\n%s", err, out.String())
	}
	var notServing []string
	for _, v := range rep.Violations {
		if v.Code == "NOT_SERVING" {
			notServing = append(notServing, v.Method)
		}
	}
	if diff := cmp.Diff([]string{"continuum.debug.v1.DebugService/SetLogLevel"}, notServing); diff != "" {
		t.Errorf("NOT_SERVING violations (-want +got):\n%s", diff)
	}
}

func TestRunNeedsAToken(t *testing.T) {
	t.Parallel()
	if _, err := Run(context.Background(), Config{Addr: "127.0.0.1:1"}, &bytes.Buffer{}); err == nil {
		t.Fatal("a remote sweep without a token ran")
	}
}

func sortFound(f []found) {
	sort.Slice(f, func(i, j int) bool {
		if f[i].Method != f[j].Method {
			return f[i].Method < f[j].Method
		}
		return f[i].Case < f[j].Case
	})
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// lastLineSummary parses the output's last line.
func lastLineSummary(t *testing.T, out string) Summary {
	t.Helper()
	var last string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		last = sc.Text()
	}
	var s Summary
	if err := json.Unmarshal([]byte(last), &s); err != nil {
		t.Fatalf("last line %q is not the JSON summary: %v", last, err)
	}
	return s
}
