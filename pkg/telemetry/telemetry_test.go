package telemetry_test

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/continuum-mesh/continuum/pkg/telemetry"
)

// TestSpansRecordedOnlyWhenConsumed: with nobody subscribed to probes and
// no exporter, spans are not recorded but still carry trace context; with
// a probe subscriber they are recorded and become probes; with an extra
// span processor they are always recorded.
func TestSpansRecordedOnlyWhenConsumed(t *testing.T) {
	t.Parallel()
	tel := telemetry.New("n1", nil)
	tr := tel.Tracer("test")

	ctx, span := tr.Start(context.Background(), "unwatched")
	if span.IsRecording() {
		t.Fatal("a span nobody consumes is recorded")
	}
	if !span.SpanContext().IsValid() {
		t.Fatal("an unrecorded span lost its trace context")
	}
	parent := span.SpanContext()
	_, child := tr.Start(ctx, "child")
	if child.SpanContext().TraceID() != parent.TraceID() {
		t.Fatal("a child of an unrecorded span started a new trace")
	}
	child.End()
	span.End()

	sub, cancel := tel.Probes.Subscribe(nil, 16)
	defer cancel()
	// A node with a subscriber records the spans of calls it serves even
	// when the caller's span was not recorded.
	cctx := telemetry.WithCommand(trace.ContextWithSpanContext(context.Background(), parent), "airc://maya/debug/get-log-level", "ROUTE_KIND_PEER")
	_, watched := tr.Start(cctx, "watched")
	if !watched.IsRecording() {
		t.Fatal("a span with a probe subscriber is not recorded")
	}
	if watched.SpanContext().TraceID() != parent.TraceID() {
		t.Fatal("the recorded span left its caller's trace")
	}
	watched.End()
	select {
	case p := <-sub.C:
		if p.Name != "watched" || p.Class != "latency" || p.Node != "n1" {
			t.Fatalf("probe = %+v", p)
		}
		if len(p.Ancestry) != 1 || p.Ancestry[0] != "airc://maya/debug/get-log-level" {
			t.Fatalf("probe ancestry = %q, want the caller's command", p.Ancestry)
		}
	default:
		t.Fatal("no probe for a recorded span")
	}
	cancel()
	_, after := tr.Start(context.Background(), "after")
	if after.IsRecording() {
		t.Fatal("spans are still recorded after the last subscriber left")
	}
	after.End()

	rec := tracetest.NewSpanRecorder()
	exported := telemetry.New("n2", nil, sdktrace.SpanProcessor(rec))
	_, s := exported.Tracer("test").Start(context.Background(), "exported")
	s.End()
	if got := len(rec.Ended()); got != 1 {
		t.Fatalf("exporter got %d spans, want 1: with an exporter every span is recorded", got)
	}
}

// TestAncestryCrossesTheWire: the ancestry WithCommand records in the
// context leaves with a call as the W3C baggage member continuum.ancestry,
// beside any other baggage, and the next hop reads and extends it.
func TestAncestryCrossesTheWire(t *testing.T) {
	t.Parallel()
	other, err := baggage.NewMemberRaw("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	b, err := baggage.New(other)
	if err != nil {
		t.Fatal(err)
	}
	ctx := baggage.ContextWithBaggage(context.Background(), b)
	ctx = telemetry.WithCommand(ctx, "airc://maya/genome/page-in", "ROUTE_KIND_PEER")
	ctx = telemetry.WithCommand(ctx, "airc://ada/debug/get-log-level", "ROUTE_KIND_PEER")
	if got := telemetry.Ancestry(ctx); !slices.Equal(got, []string{"airc://maya/genome/page-in", "airc://ada/debug/get-log-level"}) {
		t.Fatalf("in-process ancestry = %q", got)
	}

	carrier := propagation.MapCarrier{}
	telemetry.Propagator.Inject(ctx, carrier)
	far := telemetry.Propagator.Extract(context.Background(), carrier)
	if got := baggage.FromContext(far).Member("tenant").Value(); got != "acme" {
		t.Fatalf("other baggage lost on the wire: tenant = %q (header %q)", got, carrier.Get("baggage"))
	}
	if got := telemetry.Ancestry(far); !slices.Equal(got, []string{"airc://maya/genome/page-in", "airc://ada/debug/get-log-level"}) {
		t.Fatalf("ancestry after the wire = %q (header %q)", got, carrier.Get("baggage"))
	}
	next := telemetry.WithCommand(far, "airc://bo/mesh/members", "ROUTE_KIND_PEER")
	if got := telemetry.Ancestry(next); len(got) != 3 || got[2] != "airc://bo/mesh/members" {
		t.Fatalf("extended ancestry = %q", got)
	}
	// Extending one context twice must not let the branches share storage.
	a := telemetry.WithCommand(ctx, "airc://x/a/b", "ROUTE_KIND_PEER")
	c := telemetry.WithCommand(ctx, "airc://x/c/d", "ROUTE_KIND_PEER")
	if telemetry.Ancestry(a)[2] != "airc://x/a/b" || telemetry.Ancestry(c)[2] != "airc://x/c/d" {
		t.Fatalf("sibling ancestries share storage: %q, %q", telemetry.Ancestry(a), telemetry.Ancestry(c))
	}
	// Without a command, nothing is injected but the other baggage.
	plain := propagation.MapCarrier{}
	telemetry.Propagator.Inject(baggage.ContextWithBaggage(context.Background(), b), plain)
	if h := plain.Get("baggage"); h != "tenant=acme" {
		t.Fatalf("baggage header without a command = %q", h)
	}
}
