package report

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestTinyReport runs every area once at tiny sizes, so the report and the
// benchmark packages it drives cannot rot: each area finishes, yields its
// rows with a figure, and the Markdown and JSON files are written and agree.
func TestTinyReport(t *testing.T) {
	dir := t.TempDir()
	rep, err := Measure(context.Background(), Tiny(), nil, dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if failed := rep.Failed(); len(failed) > 0 {
		for _, a := range rep.Areas {
			if a.Error != "" {
				t.Errorf("%s: %s", a.Name, a.Error)
			}
		}
		t.FailNow()
	}
	var got []string
	for _, a := range rep.Areas {
		got = append(got, a.Name)
	}
	if !slices.Equal(got, AreaNames()) {
		t.Errorf("areas run %v, want %v", got, AreaNames())
	}
	// The figures the issue asks for, each at least once.
	for _, want := range []struct{ area, figure string }{
		{"router", "overhead over a direct gRPC call, p50"},
		{"router", "overhead over a direct gRPC call, p99"},
		{"events", "publish-ack p50, plain"},
		{"events", "publish-ack p50, durable"},
		{"events", "publish→deliver at 1000 msg/s, 16 B, plain topic, PublishStream, p99"},
		{"events", "fan-out 1→10, 16 B"},
		{"events", "fan-out 1→10, 1 KB"},
		{"audit", "in process"},
		{"audit", "over loopback gRPC (unary Append)"},
		{"audit", "AppendStream"},
		{"audit", "verification"},
		{"genome", "zipf trace"},
		{"genome", "personas trace"},
		{"hippocampus", "hit@8"},
		{"mesh", "gossip convergence, 3 in-process members"},
		{"mesh", "failure detection"},
	} {
		i := slices.IndexFunc(rep.Rows, func(r Row) bool { return r.Area == want.area && strings.Contains(r.Figure, want.figure) })
		if i < 0 {
			t.Errorf("no %s row for %q", want.area, want.figure)
			continue
		}
		r := rep.Rows[i]
		if r.Ours == "" || r.Met == "" || r.Command == "" || r.Value == 0 {
			t.Errorf("%s %q: incomplete row %+v", r.Area, r.Figure, r)
		}
	}
	for _, r := range rep.Rows {
		if r.Met == MetFail {
			t.Errorf("%s %q failed: %s", r.Area, r.Figure, r.Ours)
		}
		if r.Anchor != "" && r.AnchorValue == 0 && !strings.Contains(r.Anchor, "published") {
			t.Errorf("%s %q: anchor %q has no measured value", r.Area, r.Figure, r.Anchor)
		}
	}

	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	figures, _, ok := strings.Cut(string(md), "| area | seconds |")
	if !ok {
		t.Fatalf("report.md has no table of areas:\n%s", md)
	}
	if n := strings.Count(figures, "\n| router |"); n != 3 {
		t.Errorf("report.md has %d router rows, want 3:\n%s", n, md)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != len(rep.Rows) || back.Mode != ModeTiny {
		t.Errorf("report.json: %d rows, mode %q; want %d rows, mode %q", len(back.Rows), back.Mode, len(rep.Rows), ModeTiny)
	}
	if _, err := os.Stat(filepath.Join(dir, "events.md")); err != nil {
		t.Errorf("the events report was not kept: %v", err)
	}
}

func TestUnknownArea(t *testing.T) {
	t.Parallel()
	if _, err := Measure(context.Background(), Tiny(), []string{"nope"}, t.TempDir(), io.Discard); err == nil {
		t.Fatal("accepted an unknown area")
	}
}

// TestMarkdownEscapes: a cell with a pipe or a newline stays one cell.
func TestMarkdownEscapes(t *testing.T) {
	t.Parallel()
	r := &Report{Mode: ModeFull, Rows: []Row{{Area: "a", Figure: "x | y\nz", Met: MetNone}}}
	md := r.Markdown()
	if !strings.Contains(md, `| a | x \| y z | — |`) {
		t.Errorf("row not escaped:\n%s", md)
	}
}
