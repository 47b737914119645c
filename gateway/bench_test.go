package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/gateway"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
)

// benchMesh answers Members with three members.
type benchMesh struct {
	meshv1.UnimplementedMeshServiceServer
}

func (benchMesh) Members(context.Context, *meshv1.MembersRequest) (*meshv1.MembersResponse, error) {
	out := &meshv1.MembersResponse{}
	for _, n := range []string{"a", "b", "c"} {
		out.Members = append(out.Members, &meshv1.Member{
			Name: n, GrpcAddress: "10.0.0.1:7400", Services: []string{"mesh", "debug", "router", "events"},
			Peers: []*meshv1.HostedPeer{{Name: n, Envs: []string{"web", "cli"}}}, State: meshv1.MemberState_MEMBER_STATE_ALIVE,
		})
	}
	return out, nil
}

// benchEvents streams as many deliveries as the subscription's last_n.
type benchEvents struct {
	eventsv1.UnimplementedEventsServiceServer
}

func (benchEvents) Subscribe(req *eventsv1.SubscribeRequest, stream grpc.ServerStreamingServer[eventsv1.SubscribeResponse]) error {
	payload, _ := structpb.NewStruct(map[string]any{"uri": "debug/set-log-level", "caller": "user", "verdict": "forbidden", "reason": "no-permission"})
	for i := range uint64(req.GetLastN()) {
		if err := stream.Send(&eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Delivery{Delivery: &eventsv1.Delivery{
			SubscriptionId: "b", Topic: "audit:refusal", Sequence: i + 1, StreamSequence: i + 1, Publisher: "peer:n", Payload: payload,
		}}}); err != nil {
			return err
		}
	}
	return nil
}

func benchServer(b *testing.B) (*rpctest.Server, string) {
	b.Helper()
	srv := rpctest.Start(b, rpctest.Options{}, func(r grpc.ServiceRegistrar) {
		meshv1.RegisterMeshServiceServer(r, benchMesh{})
		eventsv1.RegisterEventsServiceServer(r, benchEvents{})
	})
	g, err := gateway.New(gateway.Config{Listen: "127.0.0.1:0"}, gateway.Deps{Dial: plainDial(srv.Addr()), Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("gateway run: %v", err)
		}
	})
	return srv, "http://" + g.Addr()
}

// BenchmarkMembers compares GET /v1/mesh/members through the gateway with
// the same call over gRPC, against an in-test MeshService (three members).
func BenchmarkMembers(b *testing.B) {
	srv, base := benchServer(b)
	b.Run("grpc", func(b *testing.B) {
		cc, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Close()
		client := meshv1.NewMeshServiceClient(cc)
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+rpctest.AdminToken)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := client.Members(ctx, &meshv1.MembersRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("http-gateway", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		defer client.CloseIdleConnections()
		req, _ := http.NewRequest("GET", base+"/v1/mesh/members", nil)
		req.Header.Set("Authorization", "Bearer "+rpctest.AdminToken)
		b.ReportAllocs()
		for b.Loop() {
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.Run("http-gateway-parallel", func(b *testing.B) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		defer client.CloseIdleConnections()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req, _ := http.NewRequest("GET", base+"/v1/mesh/members", nil)
			req.Header.Set("Authorization", "Bearer "+rpctest.AdminToken)
			for pb.Next() {
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	})
}

// BenchmarkSSEDeliveries measures deliveries per second relayed from an
// EventsService stream to an SSE client: one subscription of b.N events.
func BenchmarkSSEDeliveries(b *testing.B) {
	_, base := benchServer(b)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest("GET", base+gateway.EventsSubscribePath+"?topic=audit:refusal&last_n="+strconv.Itoa(b.N), nil)
	req.Header.Set("Authorization", "Bearer "+rpctest.AdminToken)
	b.ReportAllocs()
	b.ResetTimer()
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	got := 0
	for sc.Scan() {
		if bytes.Equal(sc.Bytes(), []byte("event: delivery")) {
			got++
		}
	}
	b.StopTimer()
	if got != b.N {
		b.Fatalf("%d deliveries, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
