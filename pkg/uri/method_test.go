package uri_test

import (
	"errors"
	"testing"

	"github.com/continuum-mesh/continuum/pkg/uri"
)

func TestMethodFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, full, service, method string
	}{
		{"genome/page-in", "/continuum.genome.v1.GenomeService/PageIn", "continuum.genome.v1.GenomeService", "PageIn"},
		{"hippocampus/peek", "/continuum.hippocampus.v1.HippocampusService/Peek", "continuum.hippocampus.v1.HippocampusService", "Peek"},
		{"mesh/members", "/continuum.mesh.v1.MeshService/Members", "continuum.mesh.v1.MeshService", "Members"},
		{"debug/set-log-level", "/continuum.debug.v1.DebugService/SetLogLevel", "continuum.debug.v1.DebugService", "SetLogLevel"},
		{"event-bus/publish", "/continuum.event_bus.v1.EventBusService/Publish", "continuum.event_bus.v1.EventBusService", "Publish"},
		{"inference2/generate-v2", "/continuum.inference2.v1.Inference2Service/GenerateV2", "continuum.inference2.v1.Inference2Service", "GenerateV2"},
		{"a/b", "/continuum.a.v1.AService/B", "continuum.a.v1.AService", "B"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			full, service, method, err := uri.MethodFor(tt.path)
			if err != nil {
				t.Fatalf("MethodFor(%q): %v", tt.path, err)
			}
			if full != tt.full || service != tt.service || method != tt.method {
				t.Errorf("MethodFor(%q) = %q, %q, %q; want %q, %q, %q", tt.path, full, service, method, tt.full, tt.service, tt.method)
			}
			for _, in := range []string{full, full[1:]} {
				if back, ok := uri.CommandPathFor(in); !ok || back != tt.path {
					t.Errorf("CommandPathFor(%q) = %q, %v; want %q", in, back, ok, tt.path)
				}
			}
		})
	}
}

func TestMethodForNotACommand(t *testing.T) {
	t.Parallel()
	for _, path := range []string{
		"",
		"genome",
		"genome/",
		"/page-in",
		"genome/page-in/",
		"genome/page-in/extra",
		"inference/llm/generate",
		"Genome/page-in",
		"genome/PageIn",
		"genome/page_in",
		"genome/page--in",
		"genome/-page",
		"genome/page-",
		"genome/2page",
		"genome/page-2", // a digit cannot start a word: page-2 and page2 would both be Page2
		"genome/page.in",
		"genome/page in",
		"genome/page-in?x",
		"data:chat/created",
	} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			_, _, _, err := uri.MethodFor(path)
			var pe *uri.ParseError
			if !errors.As(err, &pe) || pe.Reason != uri.ReasonNotACommand {
				t.Errorf("MethodFor(%q) error = %v, want %s", path, err, uri.ReasonNotACommand)
			}
		})
	}
}

func TestCommandPathForRejects(t *testing.T) {
	t.Parallel()
	for _, full := range []string{
		"",
		"/",
		"/grpc.health.v1.Health/Check",
		"/continuum.genome.v2.GenomeService/PageIn",
		"/continuum.genome.v1.GenomeSvc/PageIn",
		"/continuum.genome.v1.MeshService/PageIn",
		"/continuum.genome.v1.GenomeService/pageIn",
		"/continuum.genome.v1.GenomeService/Page_In",
		"/continuum.genome.v1.GenomeService/",
		"/continuum.genome.v1.GenomeService",
		"/continuum.genome.v1.GenomeService/PageIn/x",
		"/continuum.Genome.v1.GenomeService/PageIn",
		"/continuum.event__bus.v1.EventBusService/Publish",
		"/continuum.a.b.v1.ABService/C",
		"//continuum.genome.v1.GenomeService/PageIn",
	} {
		t.Run(full, func(t *testing.T) {
			t.Parallel()
			if got, ok := uri.CommandPathFor(full); ok {
				t.Errorf("CommandPathFor(%q) = %q, true; want false", full, got)
			}
		})
	}
}

// TestCommandPathForAcronyms: every upper-case letter starts a word, which
// keeps the mapping exact even for methods spelled with acronyms.
func TestCommandPathForAcronyms(t *testing.T) {
	t.Parallel()
	const full = "/continuum.debug.v1.DebugService/GetHTTPStatus"
	path, ok := uri.CommandPathFor(full)
	if !ok || path != "debug/get-h-t-t-p-status" {
		t.Fatalf("CommandPathFor(%q) = %q, %v", full, path, ok)
	}
	if back, _, _, err := uri.MethodFor(path); err != nil || back != full {
		t.Errorf("MethodFor(%q) = %q, %v; want %q", path, back, err, full)
	}
}
