package telemetry_test

import (
	"context"
	"testing"

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
