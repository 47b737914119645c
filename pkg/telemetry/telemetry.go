// Package telemetry sets up a node's observability: an OpenTelemetry tracer
// provider whose spans also feed the node's probe hub, the propagators that
// carry trace context and command-URI ancestry across hops, and the
// run-time log level.
package telemetry

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Span and baggage keys of the mesh.
const (
	// AttrURI is the command URI a span handles.
	AttrURI = attribute.Key("continuum.uri")
	// AttrRouteKind is the route decision's kind.
	AttrRouteKind = attribute.Key("continuum.route.kind")
	// AttrAncestry is the URIs of the commands that led to this span.
	AttrAncestry = attribute.Key("continuum.uri.ancestry")
	// AttrProbeClass marks a span or span event as a probe of that class.
	AttrProbeClass = attribute.Key("continuum.probe.class")
	// AttrNode is the node that recorded the span.
	AttrNode = attribute.Key("continuum.node")

	baggageAncestry = "continuum.ancestry"
	ancestrySep     = " "
	maxAncestry     = 16
)

// Propagator carries W3C trace context and baggage, with the URI ancestry
// as the baggage member continuum.ancestry.
var Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, ancestryBaggage{})

// ancestryBaggage is the W3C baggage propagator, injecting the ancestry
// WithCommand recorded in the context as the continuum.ancestry member.
// Inside a process the ancestry is a plain context value; it becomes
// baggage (a map copy and a string join) only when a call leaves.
type ancestryBaggage struct{ propagation.Baggage }

func (p ancestryBaggage) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	if a, ok := ctx.Value(ancestryKey{}).(*ancestry); ok {
		if m, err := baggage.NewMemberRaw(baggageAncestry, strings.Join(a.uris, ancestrySep)); err == nil {
			if b, err := baggage.FromContext(ctx).SetMember(m); err == nil {
				ctx = baggage.ContextWithBaggage(ctx, b)
			}
		}
	}
	p.Baggage.Inject(ctx, carrier)
}

type ancestryKey struct{}

// ancestry is the command URIs that led to a context, outermost first.
type ancestry struct{ uris []string }

// Telemetry is a node's tracer provider, probe hub and log level.
type Telemetry struct {
	Node     string
	Provider *sdktrace.TracerProvider
	Probes   *Hub
	Level    *slog.LevelVar
	// exported: an extra span processor reads every span.
	exported bool
}

// Recording reports whether spans started now are recorded: an extra
// span processor (an exporter) reads them all, or a probe subscriber is
// listening (see consumerSampler).
func (t *Telemetry) Recording() bool { return t.exported || t.Probes.HasSubscribers() }

// New builds a node's telemetry. Extra span processors (an OTLP exporter,
// say) may be added by the caller.
func New(node string, level *slog.LevelVar, extra ...sdktrace.SpanProcessor) *Telemetry {
	hub := NewHub()
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(consumerSampler{hub: hub, always: len(extra) > 0}),
		sdktrace.WithSpanProcessor(&probeProcessor{node: node, hub: hub}),
	}
	for _, p := range extra {
		opts = append(opts, sdktrace.WithSpanProcessor(p))
	}
	if level == nil {
		level = new(slog.LevelVar)
	}
	return &Telemetry{Node: node, Provider: sdktrace.NewTracerProvider(opts...), Probes: hub, Level: level, exported: len(extra) > 0}
}

// Shutdown flushes and stops the tracer provider.
func (t *Telemetry) Shutdown(ctx context.Context) error { return t.Provider.Shutdown(ctx) }

// ServerHandler is the gRPC server stats handler option set.
func (t *Telemetry) ServerHandler() []otelgrpc.Option {
	return []otelgrpc.Option{otelgrpc.WithTracerProvider(t.Provider), otelgrpc.WithPropagators(Propagator)}
}

// DialOptions instrument a client connection so trace context and URI
// ancestry travel with every call.
func (t *Telemetry) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.Provider), otelgrpc.WithPropagators(Propagator)))}
}

// Tracer returns a tracer of the node.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.Provider.Tracer(name) }

// Ancestry returns the command URIs that led to ctx, outermost first: as
// WithCommand recorded them in this process, else as the baggage of the
// call that brought ctx here.
func Ancestry(ctx context.Context) []string {
	if a, ok := ctx.Value(ancestryKey{}).(*ancestry); ok {
		return slices.Clip(a.uris)
	}
	v := baggage.FromContext(ctx).Member(baggageAncestry).Value()
	if v == "" {
		return nil
	}
	return strings.Split(v, ancestrySep)
}

// WithCommand records that ctx now runs the command uri: the current span
// gets the URI, route kind and ancestry attributes, and calls made with the
// returned context carry the ancestry to the next hop (as baggage, once a
// call leaves the process).
func WithCommand(ctx context.Context, uri, routeKind string) context.Context {
	anc := append(Ancestry(ctx), uri)
	if len(anc) > maxAncestry {
		anc = anc[len(anc)-maxAncestry:]
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(AttrURI.String(uri), AttrRouteKind.String(routeKind), AttrAncestry.StringSlice(anc[:len(anc)-1]))
	}
	return context.WithValue(ctx, ancestryKey{}, &ancestry{uris: anc})
}

// Event records a probe of class on the current span (a span event), e.g. a
// gate decision. Attributes are strings for the probe stream.
func Event(ctx context.Context, class, name string, kv ...string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := make([]attribute.KeyValue, 0, len(kv)/2+1)
	attrs = append(attrs, AttrProbeClass.String(class))
	for i := 0; i+1 < len(kv); i += 2 {
		attrs = append(attrs, attribute.String(kv[i], kv[i+1]))
	}
	span.AddEvent(name, trace.WithAttributes(attrs...))
}

// consumerSampler records a span only when something will read it: a
// StreamProbes subscriber on this node, or an extra span processor (an
// exporter). Otherwise the span is not recorded, but it keeps its trace
// and span IDs, so trace context, log correlation and URI ancestry (which
// travels as baggage, not in the span) reach the next hop unchanged. A
// recorded span costs about 2 KB of allocation and a third of an
// in-process dispatch's CPU; nobody watching, nobody pays.
//
// The decision is local, not parent-based: a node with a probe subscriber
// records the spans of calls it serves even when the caller's node did not
// record its own, because probes are a per-node stream.
type consumerSampler struct {
	hub    *Hub
	always bool
}

func (s consumerSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	ts := trace.SpanContextFromContext(p.ParentContext).TraceState()
	if s.always || s.hub.HasSubscribers() {
		return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: ts}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: ts}
}

func (s consumerSampler) Description() string { return "ConsumerSampler" }

// probeProcessor turns ended spans into probes: every span is a "latency"
// probe unless it names another class, and every span event with a probe
// class is a probe of that class.
type probeProcessor struct {
	node string
	hub  *Hub
}

func (p *probeProcessor) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	s.SetAttributes(AttrNode.String(p.node))
	if anc := Ancestry(parent); len(anc) > 0 {
		s.SetAttributes(AttrAncestry.StringSlice(anc))
	}
}

func (p *probeProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !p.hub.HasSubscribers() {
		return
	}
	base := Probe{
		Node:    p.node,
		TraceID: s.SpanContext().TraceID().String(),
		SpanID:  s.SpanContext().SpanID().String(),
	}
	attrs := map[string]string{}
	class := "latency"
	for _, kv := range s.Attributes() {
		switch kv.Key {
		case AttrURI:
			base.URI = kv.Value.AsString()
		case AttrAncestry:
			base.Ancestry = kv.Value.AsStringSlice()
		case AttrProbeClass:
			class = kv.Value.AsString()
		case AttrNode:
		default:
			attrs[string(kv.Key)] = kv.Value.String()
		}
	}
	pr := base
	pr.Class, pr.Name, pr.Start, pr.Duration, pr.Attributes = class, s.Name(), s.StartTime(), s.EndTime().Sub(s.StartTime()), attrs
	if s.Status().Code.String() == "Error" {
		pr.Attributes["status"] = s.Status().Description
	}
	p.hub.Publish(pr)
	for _, ev := range s.Events() {
		evClass := ""
		evAttrs := map[string]string{}
		for _, kv := range ev.Attributes {
			if kv.Key == AttrProbeClass {
				evClass = kv.Value.AsString()
				continue
			}
			evAttrs[string(kv.Key)] = kv.Value.String()
		}
		if evClass == "" {
			continue
		}
		e := base
		e.Class, e.Name, e.Start, e.Attributes = evClass, ev.Name, ev.Time, evAttrs
		p.hub.Publish(e)
	}
}

func (p *probeProcessor) Shutdown(context.Context) error   { return nil }
func (p *probeProcessor) ForceFlush(context.Context) error { return nil }

// Probe is one observation fanned out to StreamProbes subscribers.
type Probe struct {
	Class      string
	Name       string
	URI        string
	Ancestry   []string
	Node       string
	Start      time.Time
	Duration   time.Duration
	Attributes map[string]string
	TraceID    string
	SpanID     string
}

// Hub fans probes out to subscribers. A subscriber that cannot keep up loses
// probes, never blocks the node, and is told how many it lost.
type Hub struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
	// n mirrors len(subs) for HasSubscribers, which every span start asks.
	n atomic.Int32
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[*Subscription]struct{}{}} }

// Subscription receives the probes of some classes.
type Subscription struct {
	C       chan Probe
	classes map[string]bool
	mu      sync.Mutex
	dropped uint64
}

// TakeDropped returns and resets how many probes were lost.
func (s *Subscription) TakeDropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dropped
	s.dropped = 0
	return d
}

// Subscribe returns a subscription to classes (every class when empty) and
// its cancel function.
func (h *Hub) Subscribe(classes []string, buffer int) (*Subscription, func()) {
	if buffer <= 0 {
		buffer = 256
	}
	s := &Subscription{C: make(chan Probe, buffer)}
	if len(classes) > 0 {
		s.classes = map[string]bool{}
		for _, c := range classes {
			s.classes[c] = true
		}
	}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.n.Store(int32(len(h.subs)))
	h.mu.Unlock()
	return s, func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.n.Store(int32(len(h.subs)))
		h.mu.Unlock()
	}
}

// HasSubscribers reports whether anyone listens.
func (h *Hub) HasSubscribers() bool { return h.n.Load() > 0 }

// Publish offers a probe to every interested subscriber without blocking.
func (h *Hub) Publish(p Probe) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		if s.classes != nil && !s.classes[p.Class] {
			continue
		}
		select {
		case s.C <- p:
		default:
			s.mu.Lock()
			s.dropped++
			s.mu.Unlock()
		}
	}
}
