package hippocampus

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/region"
	hippocampusv1 "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
)

// server is the gRPC face of the Service: it converts messages and maps
// errors (toStatus), nothing more.
type server struct {
	hippocampusv1.UnimplementedHippocampusServiceServer
	s *Service
}

func (g *server) fail(ctx context.Context, err error) error { return toStatus(ctx, g.s.log, err) }

func (g *server) Remember(ctx context.Context, req *hippocampusv1.RememberRequest) (*hippocampusv1.RememberResponse, error) {
	e := req.GetEngram()
	if e.GetContent() == "" {
		return nil, g.fail(ctx, invalid(ReasonContentEmpty, "engram.content", "content is required"))
	}
	in := EngramInput{
		ID:         e.GetId(),
		Content:    e.GetContent(),
		Entities:   e.GetEntities(),
		Topics:     e.GetTopics(),
		Importance: e.GetImportance(),
		ReplyTo:    e.GetReplyTo(),
	}
	if e.GetAt() != nil {
		if err := e.GetAt().CheckValid(); err != nil {
			return nil, g.fail(ctx, invalid(ReasonTimestampInvalid, "engram.at", "%v", err))
		}
		in.At = e.GetAt().AsTime()
	}
	id, dup, err := g.s.Remember(ctx, req.GetPersona(), req.GetChannel(), in)
	if err != nil {
		return nil, g.fail(ctx, err)
	}
	return &hippocampusv1.RememberResponse{Id: id, Duplicate: dup}, nil
}

func (g *server) Link(ctx context.Context, req *hippocampusv1.LinkRequest) (*hippocampusv1.LinkResponse, error) {
	w, err := g.s.Link(ctx, req.GetPersona(), req.GetFrom(), req.GetTo(), EdgeKind(req.GetKind()), req.GetWeight())
	if err != nil {
		return nil, g.fail(ctx, err)
	}
	return &hippocampusv1.LinkResponse{Weight: w}, nil
}

func (g *server) Consume(ctx context.Context, req *hippocampusv1.ConsumeRequest) (*hippocampusv1.ConsumeResponse, error) {
	res, err := g.s.Consume(ctx, req.GetPersona(), req.GetChannel(), req.GetEngramIds())
	if err != nil {
		return nil, g.fail(ctx, err)
	}
	return &hippocampusv1.ConsumeResponse{Consumed: uint32(res.Consumed), Hits: uint32(res.Hits)}, nil
}

func (g *server) Peek(ctx context.Context, req *hippocampusv1.PeekRequest) (*hippocampusv1.PeekResponse, error) {
	res, err := g.s.Peek(ctx, req.GetPersona(), req.GetChannel(), req.GetAllowStale())
	if err != nil {
		return nil, g.fail(ctx, err)
	}
	out := &hippocampusv1.PeekResponse{EmptyReason: res.EmptyReason, Stale: res.Stale}
	if sl := res.Slice; sl != nil {
		out.Generation = sl.Generation
		out.Age = durationpb.New(sl.Age(g.s.clock.Now()))
		out.PublishedAt = timestamppb.New(sl.PublishedAt)
		out.ExpiresAt = timestamppb.New(sl.ExpiresAt)
	}
	out.Items = g.items(req.GetPersona(), res.Items, req.GetWithContent())
	return out, nil
}

func (g *server) items(persona string, items []Item, withContent bool) []*hippocampusv1.ReadyItem {
	if len(items) == 0 {
		return nil
	}
	var contents []string
	if withContent {
		ids := make([]string, len(items))
		for i, it := range items {
			ids[i] = it.ID
		}
		contents = g.s.Contents(persona, ids)
	}
	out := make([]*hippocampusv1.ReadyItem, len(items))
	for i, it := range items {
		out[i] = &hippocampusv1.ReadyItem{EngramId: it.ID, Score: it.Score, Pool: hippocampusv1.Pool(it.Pool)}
		if withContent {
			out[i].Content = contents[i]
		}
	}
	return out
}

func (g *server) Recall(ctx context.Context, req *hippocampusv1.RecallRequest) (*hippocampusv1.RecallResponse, error) {
	res, err := g.s.Recall(ctx, req.GetPersona(), req.GetChannel(), req.GetCue(), int(req.GetK()))
	if err != nil {
		return nil, g.fail(ctx, err)
	}
	return &hippocampusv1.RecallResponse{Items: g.items(req.GetPersona(), res.Items, req.GetWithContent()), Partial: res.Partial}, nil
}

func (g *server) Forget(ctx context.Context, req *hippocampusv1.ForgetRequest) (*hippocampusv1.ForgetResponse, error) {
	ok, err := g.s.Forget(ctx, req.GetPersona(), req.GetEngramId())
	if err != nil {
		return nil, g.fail(ctx, err)
	}
	return &hippocampusv1.ForgetResponse{Forgotten: ok}, nil
}

func (g *server) Signal(ctx context.Context, req *hippocampusv1.SignalRequest) (*hippocampusv1.SignalResponse, error) {
	sig, err := signalFromProto(req)
	if err != nil {
		return nil, g.fail(ctx, err)
	}
	if err := g.s.Signal(ctx, sig); err != nil {
		return nil, g.fail(ctx, err)
	}
	return &hippocampusv1.SignalResponse{}, nil
}

func signalFromProto(req *hippocampusv1.SignalRequest) (region.Signal, error) {
	sig := region.Signal{Persona: req.GetPersona()}
	switch v := req.GetSignal().(type) {
	case *hippocampusv1.SignalRequest_PersonaSignal:
		switch v.PersonaSignal {
		case hippocampusv1.PersonaSignal_PERSONA_SIGNAL_CREATED:
			sig.Kind = region.SignalPersonaCreated
		case hippocampusv1.PersonaSignal_PERSONA_SIGNAL_DESTROYED:
			sig.Kind = region.SignalPersonaDestroyed
		}
	case *hippocampusv1.SignalRequest_SleepPhase:
		sig.Kind = region.SignalSleepPhase
		switch v.SleepPhase {
		case hippocampusv1.SleepPhase_SLEEP_PHASE_ACTIVE:
			sig.Phase = region.PhaseActive
		case hippocampusv1.SleepPhase_SLEEP_PHASE_IDLE:
			sig.Phase = region.PhaseIdle
		case hippocampusv1.SleepPhase_SLEEP_PHASE_SLEEP:
			sig.Phase = region.PhaseSleep
		default:
			sig.Kind = 0
		}
	case *hippocampusv1.SignalRequest_Pressure:
		sig.Kind = region.SignalPressure
		switch v.Pressure {
		case hippocampusv1.Pressure_PRESSURE_NOMINAL:
			sig.Pressure = region.PressureNominal
		case hippocampusv1.Pressure_PRESSURE_MODERATE:
			sig.Pressure = region.PressureModerate
		case hippocampusv1.Pressure_PRESSURE_HIGH:
			sig.Pressure = region.PressureHigh
		case hippocampusv1.Pressure_PRESSURE_CRITICAL:
			sig.Pressure = region.PressureCritical
		default:
			sig.Kind = 0
		}
	}
	if sig.Kind == 0 {
		return sig, invalid(ReasonSignalEmpty, "signal", "give one of persona_signal, sleep_phase or pressure, with a value")
	}
	return sig, nil
}

func (g *server) Telemetry(req *hippocampusv1.TelemetryRequest, stream grpc.ServerStreamingServer[hippocampusv1.TelemetryResponse]) error {
	ctx := stream.Context()
	if p := req.GetPersona(); p != "" {
		if err := checkPersona(p); err != nil {
			return g.fail(ctx, err)
		}
	}
	sub, unsubscribe := g.s.hub.subscribe(req.GetPersona())
	defer unsubscribe()
	for {
		select {
		case <-ctx.Done():
			return g.fail(ctx, ctx.Err())
		case <-g.s.hub.done:
			return g.fail(ctx, ErrClosed)
		case t := <-sub.ch:
			if err := stream.Send(telemetryToProto(t, sub.dropped.Load())); err != nil {
				return err
			}
		}
	}
}

func telemetryToProto(t region.Telemetry, dropped uint64) *hippocampusv1.TelemetryResponse {
	out := &hippocampusv1.TelemetryResponse{
		Region:          t.Region,
		Persona:         t.Persona,
		Channel:         t.Channel,
		Start:           timestamppb.New(t.Start),
		Duration:        durationpb.New(t.Duration),
		Published:       uint32(t.Published),
		Consumed:        uint32(t.Consumed),
		BufferMisses:    uint32(t.BufferMisses),
		Pressure:        hippocampusv1.Pressure(t.Pressure + 1),
		HadBufferMisses: t.HadBufferMisses(),
		Cadence:         cadenceToProto(t.Cadence),
		Interval:        durationpb.New(t.Interval),
		Requests:        uint32(t.Requests),
		LateMisses:      uint32(t.LateMisses),
		Generation:      t.Generation,
		Dropped:         dropped,
		Deferred:        t.Deferred,
	}
	if f, ok := t.ConsumptionFraction(); ok {
		out.ConsumptionFraction = &f
	}
	return out
}

func cadenceToProto(c region.Cadence) hippocampusv1.Cadence {
	switch c {
	case region.Faster:
		return hippocampusv1.Cadence_CADENCE_FASTER
	case region.Hold:
		return hippocampusv1.Cadence_CADENCE_HOLD
	case region.Slower:
		return hippocampusv1.Cadence_CADENCE_SLOWER
	case region.Sleep:
		return hippocampusv1.Cadence_CADENCE_SLEEP
	}
	return hippocampusv1.Cadence_CADENCE_UNSPECIFIED
}

func (g *server) Stats(ctx context.Context, req *hippocampusv1.StatsRequest) (*hippocampusv1.StatsResponse, error) {
	st, err := g.s.Stats(ctx, req.GetPersona())
	if err != nil {
		return nil, g.fail(ctx, err)
	}
	return &hippocampusv1.StatsResponse{
		Personas:   st.Personas,
		Engrams:    st.Engrams,
		Edges:      st.Edges,
		Ticks:      st.Ticks,
		Requests:   st.Requests,
		Hits:       st.Hits,
		Misses:     st.Misses,
		LateMisses: st.LateMisses,
		Channels:   st.Channels,
		Published:  st.Published,
	}, nil
}

// meshPeerOnly refuses mesh-internal calls from anyone but a mesh peer
// acting for itself (a router forwarding a user's call carries the user).
func meshPeerOnly(ctx context.Context) error {
	if c := auth.Caller(ctx); !c.IsMeshPeer() {
		return ErrMeshPeerRequired
	}
	return nil
}

func (g *server) ImportPersona(stream grpc.ClientStreamingServer[hippocampusv1.ImportPersonaRequest, hippocampusv1.ImportPersonaResponse]) error {
	ctx := stream.Context()
	if err := meshPeerOnly(ctx); err != nil {
		return g.fail(ctx, err)
	}
	engrams, edges, err := g.s.importChunks(stream.Recv)
	if err != nil {
		return g.fail(ctx, err)
	}
	return stream.SendAndClose(&hippocampusv1.ImportPersonaResponse{Engrams: uint64(engrams), Edges: uint64(edges)})
}

func (g *server) ExportPersona(ctx context.Context, req *hippocampusv1.ExportPersonaRequest) (*hippocampusv1.ExportPersonaResponse, error) {
	if err := meshPeerOnly(ctx); err != nil {
		return nil, g.fail(ctx, err)
	}
	if err := checkPersona(req.GetPersona()); err != nil {
		return nil, g.fail(ctx, err)
	}
	engrams, size, err := g.s.exportTo(ctx, req.GetPersona(), req.GetTo())
	if err != nil {
		return nil, g.fail(ctx, err)
	}
	return &hippocampusv1.ExportPersonaResponse{Engrams: uint64(engrams), Bytes: uint64(size)}, nil
}
