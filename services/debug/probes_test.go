package debug

import (
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/telemetry"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
)

// TestStreamProbesRefusesBadClasses: a class no probe could carry is
// refused before the stream opens, with the class echoed clipped.
func TestStreamProbesRefusesBadClasses(t *testing.T) {
	t.Parallel()
	svc, err := New(Config{}, Deps{Probes: telemetry.NewHub(), Level: new(slog.LevelVar)})
	if err != nil {
		t.Fatal(err)
	}
	for _, class := range []string{"", "Latency", "a b", "x\n", strings.Repeat("a", 65), strings.Repeat("é", 300)} {
		// A nil stream: the refusal comes before the stream is touched.
		err := svc.StreamProbes(&debugv1.StreamProbesRequest{Classes: []string{"latency", class}}, nil)
		if status.Code(err) != codes.InvalidArgument || rpcerr.Reason(err) != ReasonProbeClassInvalid {
			t.Errorf("class %q: %v, want INVALID_ARGUMENT %s", class, err, ReasonProbeClassInvalid)
		}
		if got := rpcerr.Info(err).GetMetadata()["class"]; len(got) > 260 {
			t.Errorf("class %q echoed unclipped (%d bytes)", class, len(got))
		}
	}
	for _, class := range []string{"latency", "decision", "admission", "x.y_z-1"} {
		if !validClass(class) {
			t.Errorf("valid class %q refused", class)
		}
	}
}
