package node_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/node/nodetest"
	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
	hippocampusv1 "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// TestSplitTopology runs the services split over two nodes, as compose
// does: every call enters through the router-only node, which proxies
// calls for services it does not run (unary, server- and client-streaming)
// and routes commands by URI; the router's refusals reach the audit log on
// the other node through the events service.
func TestSplitTopology(t *testing.T) {
	m := nodetest.New(t)
	r := m.Start("r", nodetest.Options{Services: []string{"router"}})
	m.Start("s", nodetest.Options{Services: []string{"events", "audit", "genome", "hippocampus"}})
	m.WaitMembers(2, 15*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := m.Dial(r, nodetest.AdminToken)

	// A server stream through the proxy receives a publish made through it.
	sub, err := eventsv1.NewEventsServiceClient(admin).Subscribe(ctx, &eventsv1.SubscribeRequest{
		Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "split:>"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := sub.Recv(); err != nil || msg.GetAck() == nil {
		t.Fatalf("first message %v, %v; want the ack", msg, err)
	}
	payload, _ := structpb.NewStruct(map[string]any{"n": 1})
	if _, err := eventsv1.NewEventsServiceClient(admin).Publish(ctx, &eventsv1.PublishRequest{Topic: "split:hello", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.Recv()
	if err != nil || msg.GetDelivery().GetTopic() != "split:hello" || msg.GetDelivery().GetSequence() != 1 {
		t.Fatalf("delivery %v, %v", msg, err)
	}

	// A client stream through the proxy, then a fault and a hit.
	data := []byte("split topology artifact")
	sum := sha256.Sum256(data)
	put, err := genomev1.NewGenomeServiceClient(admin).PutArtifact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := put.Send(&genomev1.PutArtifactRequest{Part: &genomev1.PutArtifactRequest_Header{Header: &genomev1.PutArtifactHeader{
		Name: "t", Sha256: hex.EncodeToString(sum[:]), SizeBytes: uint64(len(data)),
	}}}); err != nil {
		t.Fatal(err)
	}
	if err := put.Send(&genomev1.PutArtifactRequest{Part: &genomev1.PutArtifactRequest_Chunk{Chunk: data}}); err != nil {
		t.Fatal(err)
	}
	art, err := put.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	g := genomev1.NewGenomeServiceClient(admin)
	persona := "11111111-2222-4333-8444-555555555555"
	if _, err := g.RegisterPersona(ctx, &genomev1.RegisterPersonaRequest{PersonaId: persona, CapacityBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	page := &genomev1.PageRef{Kind: genomev1.PageKind_PAGE_KIND_WHOLE, ArtifactId: art.GetArtifactId()}
	first, err := g.PageIn(ctx, &genomev1.PageInRequest{PersonaId: persona, Page: page})
	if err != nil || first.GetFault() == nil {
		t.Fatalf("first page-in %v, %v; want a fault", first, err)
	}
	second, err := g.PageIn(ctx, &genomev1.PageInRequest{PersonaId: persona, Page: page})
	if err != nil || second.GetFault() != nil {
		t.Fatalf("second page-in %v, %v; want a hit", second, err)
	}

	// The sharded hippocampus by URI through the router, and directly.
	params, _ := structpb.NewStruct(map[string]any{"persona": "maya", "channel": "c", "engram": map[string]any{"content": "hello"}})
	resp, err := routerv1.NewRouterServiceClient(admin).Dispatch(ctx, &routerv1.DispatchRequest{Uri: "hippocampus/remember", Params: params})
	if err != nil || resp.GetServedBy() != "s" {
		t.Fatalf("remember by URI: %v, %v", resp, err)
	}
	rec, err := hippocampusv1.NewHippocampusServiceClient(admin).Recall(ctx, &hippocampusv1.RecallRequest{Persona: "maya", Channel: "c", Cue: "hello", K: 3})
	if err != nil || len(rec.GetItems()) != 1 {
		t.Fatalf("recall %v, %v", rec, err)
	}

	// A refusal by the router lands in the audit log on the other node.
	_, err = routerv1.NewRouterServiceClient(m.Dial(r, nodetest.UserToken)).Dispatch(ctx, &routerv1.DispatchRequest{Uri: "debug/get-log-level"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("user debug call: %v", err)
	}
	audit := auditv1.NewAuditServiceClient(admin)
	nodetest.Eventually(t, 20*time.Second, func() bool {
		v, err := audit.Verify(ctx, &auditv1.VerifyRequest{})
		return err == nil && v.GetOk() && v.GetSize() >= 1
	}, "the refusal to be recorded")
}
