package hippocampus

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/continuum-mesh/continuum/pkg/region"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	hippocampusv1 "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
)

// grpcService starts the service on a real pkg/rpc server with a manual
// clock and its Run loop going, and returns an admin client.
func grpcService(t *testing.T) (*testService, hippocampusv1.HippocampusServiceClient, *rpctest.Server) {
	t.Helper()
	s := newTestService(t, Config{}, Deps{})
	srv := rpctest.Start(t, rpctest.Options{}, s.Register)
	return s, hippocampusv1.NewHippocampusServiceClient(srv.Dial(rpctest.AdminToken)), srv
}

func TestValidationReasons(t *testing.T) {
	t.Parallel()
	_, client, _ := grpcService(t)
	ctx := context.Background()
	if _, err := client.Remember(ctx, &hippocampusv1.RememberRequest{Persona: "maya", Channel: "chat", Engram: &hippocampusv1.Engram{Id: "known", Content: "x"}}); err != nil {
		t.Fatal(err)
	}
	engram := func(mod func(e *hippocampusv1.Engram)) *hippocampusv1.RememberRequest {
		e := &hippocampusv1.Engram{Content: "hello"}
		mod(e)
		return &hippocampusv1.RememberRequest{Persona: "maya", Channel: "chat", Engram: e}
	}
	tests := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
	}{
		{"persona empty", func() error {
			_, err := client.Remember(ctx, &hippocampusv1.RememberRequest{Channel: "chat", Engram: &hippocampusv1.Engram{Content: "x"}})
			return err
		}, codes.InvalidArgument, ReasonPersonaEmpty},
		{"persona control character", func() error {
			_, err := client.Peek(ctx, &hippocampusv1.PeekRequest{Persona: "ma\x00ya", Channel: "chat"})
			return err
		}, codes.InvalidArgument, ReasonPersonaInvalid},
		{"channel empty", func() error {
			_, err := client.Peek(ctx, &hippocampusv1.PeekRequest{Persona: "maya"})
			return err
		}, codes.InvalidArgument, ReasonChannelEmpty},
		{"channel too long", func() error {
			_, err := client.Peek(ctx, &hippocampusv1.PeekRequest{Persona: "maya", Channel: strings.Repeat("c", 129)})
			return err
		}, codes.InvalidArgument, ReasonChannelInvalid},
		{"no engram", func() error {
			_, err := client.Remember(ctx, &hippocampusv1.RememberRequest{Persona: "maya", Channel: "chat"})
			return err
		}, codes.InvalidArgument, ReasonContentEmpty},
		{"content too large", func() error {
			_, err := client.Remember(ctx, engram(func(e *hippocampusv1.Engram) { e.Content = strings.Repeat("x", 65<<10) }))
			return err
		}, codes.InvalidArgument, ReasonContentTooLarge},
		{"importance 11", func() error {
			_, err := client.Remember(ctx, engram(func(e *hippocampusv1.Engram) { e.Importance = 11 }))
			return err
		}, codes.InvalidArgument, ReasonImportanceOutOfRange},
		{"bad id", func() error {
			_, err := client.Remember(ctx, engram(func(e *hippocampusv1.Engram) { e.Id = "no spaces" }))
			return err
		}, codes.InvalidArgument, ReasonEngramIDInvalid},
		{"bad timestamp", func() error {
			_, err := client.Remember(ctx, engram(func(e *hippocampusv1.Engram) { e.At = &timestamppb.Timestamp{Nanos: -1} }))
			return err
		}, codes.InvalidArgument, ReasonTimestampInvalid},
		{"too many entities", func() error {
			_, err := client.Remember(ctx, engram(func(e *hippocampusv1.Engram) { e.Entities = make([]string, 65) }))
			return err
		}, codes.InvalidArgument, ReasonFeatureInvalid},
		{"empty entity", func() error {
			_, err := client.Remember(ctx, engram(func(e *hippocampusv1.Engram) { e.Entities = []string{"  "} }))
			return err
		}, codes.InvalidArgument, ReasonFeatureInvalid},
		{"unknown reply_to", func() error {
			_, err := client.Remember(ctx, engram(func(e *hippocampusv1.Engram) { e.ReplyTo = "nope" }))
			return err
		}, codes.NotFound, ReasonEngramUnknown},
		{"consume nothing", func() error {
			_, err := client.Consume(ctx, &hippocampusv1.ConsumeRequest{Persona: "maya", Channel: "chat"})
			return err
		}, codes.InvalidArgument, ReasonEngramIDsEmpty},
		{"consume too many", func() error {
			_, err := client.Consume(ctx, &hippocampusv1.ConsumeRequest{Persona: "maya", Channel: "chat", EngramIds: make([]string, 257)})
			return err
		}, codes.InvalidArgument, ReasonTooManyEngrams},
		{"consume unknown", func() error {
			_, err := client.Consume(ctx, &hippocampusv1.ConsumeRequest{Persona: "maya", Channel: "chat", EngramIds: []string{"known", "nope"}})
			return err
		}, codes.NotFound, ReasonEngramUnknown},
		{"link kind", func() error {
			_, err := client.Link(ctx, &hippocampusv1.LinkRequest{Persona: "maya", From: "known", To: "x"})
			return err
		}, codes.InvalidArgument, ReasonEdgeKindInvalid},
		{"link weight", func() error {
			_, err := client.Link(ctx, &hippocampusv1.LinkRequest{Persona: "maya", From: "known", To: "x", Kind: hippocampusv1.EdgeKind_EDGE_KIND_CITED_IN, Weight: math.NaN()})
			return err
		}, codes.InvalidArgument, ReasonWeightInvalid},
		{"link self", func() error {
			_, err := client.Link(ctx, &hippocampusv1.LinkRequest{Persona: "maya", From: "known", To: "known", Kind: hippocampusv1.EdgeKind_EDGE_KIND_CITED_IN})
			return err
		}, codes.InvalidArgument, ReasonEdgeSelfLoop},
		{"link unknown", func() error {
			_, err := client.Link(ctx, &hippocampusv1.LinkRequest{Persona: "maya", From: "known", To: "nope", Kind: hippocampusv1.EdgeKind_EDGE_KIND_CITED_IN})
			return err
		}, codes.NotFound, ReasonEngramUnknown},
		{"recall k", func() error {
			_, err := client.Recall(ctx, &hippocampusv1.RecallRequest{Persona: "maya", K: 65})
			return err
		}, codes.InvalidArgument, ReasonKOutOfRange},
		{"recall cue", func() error {
			_, err := client.Recall(ctx, &hippocampusv1.RecallRequest{Persona: "maya", Cue: strings.Repeat("x", 4097)})
			return err
		}, codes.InvalidArgument, ReasonCueTooLarge},
		{"signal empty", func() error {
			_, err := client.Signal(ctx, &hippocampusv1.SignalRequest{Persona: "maya"})
			return err
		}, codes.InvalidArgument, ReasonSignalEmpty},
		{"signal unknown persona", func() error {
			_, err := client.Signal(ctx, &hippocampusv1.SignalRequest{Persona: "nobody", Signal: &hippocampusv1.SignalRequest_SleepPhase{SleepPhase: hippocampusv1.SleepPhase_SLEEP_PHASE_SLEEP}})
			return err
		}, codes.FailedPrecondition, ReasonSignalRejected},
		{"forget bad id", func() error {
			_, err := client.Forget(ctx, &hippocampusv1.ForgetRequest{Persona: "maya", EngramId: ""})
			return err
		}, codes.InvalidArgument, ReasonEngramIDInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantReason(t, tt.call(), tt.code, tt.reason)
		})
	}
}

func TestAnonymousIsRefused(t *testing.T) {
	t.Parallel()
	_, _, srv := grpcService(t)
	anon := hippocampusv1.NewHippocampusServiceClient(srv.Dial(""))
	_, err := anon.Peek(context.Background(), &hippocampusv1.PeekRequest{Persona: "maya", Channel: "chat"})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("anonymous peek = %v", err)
	}
}

func regionTarget(persona, channel string) region.Target {
	return region.Target{Persona: persona, Channel: channel}
}

// TestRPCRoundTrip walks the API as a client would: remember (idempotent
// with an id), peek with contents, consume, recall, link, forget, stats.
func TestRPCRoundTrip(t *testing.T) {
	t.Parallel()
	s, client, _ := grpcService(t)
	ctx := context.Background()
	first, err := client.Remember(ctx, &hippocampusv1.RememberRequest{Persona: "maya", Channel: "chat", Engram: &hippocampusv1.Engram{
		Id: "kickoff", Content: "Kickoff with Ada about the analytical engine", Entities: []string{"Ada"}, Topics: []string{"engine"}, Importance: 9,
	}})
	if err != nil || first.GetId() != "kickoff" || first.GetDuplicate() {
		t.Fatalf("remember = %v, %v", first, err)
	}
	again, err := client.Remember(ctx, &hippocampusv1.RememberRequest{Persona: "maya", Channel: "chat", Engram: &hippocampusv1.Engram{Id: "kickoff", Content: "other"}})
	if err != nil || !again.GetDuplicate() {
		t.Fatalf("retried remember = %v, %v; want duplicate", again, err)
	}
	second, err := client.Remember(ctx, &hippocampusv1.RememberRequest{Persona: "maya", Channel: "chat", Engram: &hippocampusv1.Engram{Content: "Budget for the engine"}})
	if err != nil || !strings.HasPrefix(second.GetId(), "e-") {
		t.Fatalf("remember without id = %v, %v", second, err)
	}
	s.advance(2 * time.Second)

	peek, err := client.Peek(ctx, &hippocampusv1.PeekRequest{Persona: "maya", Channel: "chat", WithContent: true})
	if err != nil {
		t.Fatal(err)
	}
	if peek.GetGeneration() == 0 || len(peek.GetItems()) != 2 || peek.GetEmptyReason() != "" {
		t.Fatalf("peek = %v", peek)
	}
	contents := map[string]string{}
	for _, it := range peek.GetItems() {
		contents[it.GetEngramId()] = it.GetContent()
	}
	if contents["kickoff"] != "Kickoff with Ada about the analytical engine" {
		t.Errorf("peek contents = %v", contents)
	}
	if got := peek.GetExpiresAt().AsTime().Sub(peek.GetPublishedAt().AsTime()); got != 120*time.Second {
		t.Errorf("slice lifetime = %v, want 120s", got)
	}

	cons, err := client.Consume(ctx, &hippocampusv1.ConsumeRequest{Persona: "maya", Channel: "chat", EngramIds: []string{"kickoff", "kickoff"}})
	if err != nil || cons.GetConsumed() != 1 || cons.GetHits() != 1 {
		t.Fatalf("consume = %v, %v", cons, err)
	}
	rec, err := client.Recall(ctx, &hippocampusv1.RecallRequest{Persona: "maya", Channel: "chat", Cue: "what did ada say?", WithContent: true})
	if err != nil || len(rec.GetItems()) != 1 || rec.GetItems()[0].GetEngramId() != "kickoff" {
		t.Fatalf("recall = %v, %v", rec, err)
	}
	link, err := client.Link(ctx, &hippocampusv1.LinkRequest{Persona: "maya", From: second.GetId(), To: "kickoff", Kind: hippocampusv1.EdgeKind_EDGE_KIND_TASK_OUTCOME, Weight: 2})
	if err != nil || link.GetWeight() != 2 {
		t.Fatalf("link = %v, %v", link, err)
	}
	stats, err := client.Stats(ctx, &hippocampusv1.StatsRequest{Persona: "maya"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&hippocampusv1.StatsResponse{Personas: 1, Engrams: 2, Edges: stats.GetEdges(), Ticks: stats.GetTicks(), Requests: stats.GetRequests(), Hits: 1, Channels: 1, Published: 2}, stats, protocmp.Transform()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	if stats.GetEdges() < 3 || stats.GetTicks() == 0 {
		t.Errorf("stats edges %d ticks %d", stats.GetEdges(), stats.GetTicks())
	}
	forgot, err := client.Forget(ctx, &hippocampusv1.ForgetRequest{Persona: "maya", EngramId: "kickoff"})
	if err != nil || !forgot.GetForgotten() {
		t.Fatalf("forget = %v, %v", forgot, err)
	}
	peek, _ = client.Peek(ctx, &hippocampusv1.PeekRequest{Persona: "maya", Channel: "chat"})
	for _, it := range peek.GetItems() {
		if it.GetEngramId() == "kickoff" {
			t.Error("peek returned a forgotten engram")
		}
	}
}

// TestTelemetryStream: a subscriber gets each tick's telemetry with the
// per-tick fields, filtered by persona.
func TestTelemetryStream(t *testing.T) {
	t.Parallel()
	s, client, _ := grpcService(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := client.Telemetry(ctx, &hippocampusv1.TelemetryRequest{Persona: "maya"})
	if err != nil {
		t.Fatal(err)
	}
	// The stream is registered once its first message could arrive; wait
	// for the subscription before ticking.
	waitUntil(t, func() bool {
		s.hub.mu.Lock()
		defer s.hub.mu.Unlock()
		return len(s.hub.subs) == 1
	})
	s.remember("ada", "chat", "other", EngramInput{Content: "x"})
	s.remember("maya", "chat", "a", EngramInput{Content: "a"})
	s.remember("maya", "chat", "b", EngramInput{Content: "b"})
	s.advance(2 * time.Second)
	msg, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	frac := 0.0
	want := &hippocampusv1.TelemetryResponse{
		Region: RegionID, Persona: "maya", Channel: "chat", Published: 2, Pressure: hippocampusv1.Pressure_PRESSURE_NOMINAL,
		Cadence: hippocampusv1.Cadence_CADENCE_HOLD, Generation: 1, ConsumptionFraction: &frac,
	}
	got := proto.Clone(msg).(*hippocampusv1.TelemetryResponse)
	got.Start, got.Duration, got.Interval = nil, nil, nil
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("telemetry (-want +got):\n%s", diff)
	}
	if msg.GetInterval().AsDuration() != time.Minute || !msg.GetStart().AsTime().Equal(epoch.Add(time.Second)) {
		t.Errorf("interval %v start %v", msg.GetInterval().AsDuration(), msg.GetStart().AsTime())
	}
}

// TestSignals: sleep phases, pressure and persona lifecycle.
func TestSignals(t *testing.T) {
	t.Parallel()
	s, client, _ := grpcService(t)
	ctx := context.Background()
	s.conversation("maya", "chat", 5)
	send := func(sig *hippocampusv1.SignalRequest) {
		t.Helper()
		if _, err := client.Signal(ctx, sig); err != nil {
			t.Fatalf("signal %v: %v", sig, err)
		}
	}
	send(&hippocampusv1.SignalRequest{Persona: "maya", Signal: &hippocampusv1.SignalRequest_SleepPhase{SleepPhase: hippocampusv1.SleepPhase_SLEEP_PHASE_SLEEP}})
	// The phase takes effect at the channel's next tick (its interval has
	// grown to 10 minutes: only ingests, no requests).
	s.advance(11 * time.Minute)
	if st, _ := s.Runner().State(RegionID, regionTarget("maya", "chat")); !st.Asleep {
		t.Errorf("a sleeping persona's channel ticks on: %+v", st)
	}
	send(&hippocampusv1.SignalRequest{Persona: "maya", Signal: &hippocampusv1.SignalRequest_SleepPhase{SleepPhase: hippocampusv1.SleepPhase_SLEEP_PHASE_ACTIVE}})
	if st, _ := s.Runner().State(RegionID, regionTarget("maya", "chat")); st.Asleep {
		t.Error("waking the persona did not wake its channels")
	}
	send(&hippocampusv1.SignalRequest{Signal: &hippocampusv1.SignalRequest_Pressure{Pressure: hippocampusv1.Pressure_PRESSURE_HIGH}})
	if got := s.gov.PressureFor(s.reg.Profile()); got.String() != "high" {
		t.Errorf("pressure = %v", got)
	}
	send(&hippocampusv1.SignalRequest{Persona: "newcomer", Signal: &hippocampusv1.SignalRequest_PersonaSignal{PersonaSignal: hippocampusv1.PersonaSignal_PERSONA_SIGNAL_CREATED}})
	if s.mem.get("newcomer") == nil {
		t.Error("a created persona does not exist")
	}
	send(&hippocampusv1.SignalRequest{Persona: "maya", Signal: &hippocampusv1.SignalRequest_PersonaSignal{PersonaSignal: hippocampusv1.PersonaSignal_PERSONA_SIGNAL_DESTROYED}})
	peek, err := client.Peek(ctx, &hippocampusv1.PeekRequest{Persona: "maya", Channel: "chat"})
	if err != nil || peek.GetEmptyReason() != EmptyNoEngrams {
		t.Errorf("peek of a destroyed persona = %v, %v", peek, err)
	}
	// Destroying again is fine (idempotent).
	send(&hippocampusv1.SignalRequest{Persona: "maya", Signal: &hippocampusv1.SignalRequest_PersonaSignal{PersonaSignal: hippocampusv1.PersonaSignal_PERSONA_SIGNAL_DESTROYED}})
}
