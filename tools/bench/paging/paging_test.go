package paging

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/continuum-mesh/continuum/tools/bench/paging/gen"
)

func TestReadTrace(t *testing.T) {
	t.Parallel()
	tr, err := ReadTrace(strings.NewReader("# a trace\np1 a\n\np2 b\n  p1   a  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Len() != 3 || tr.Keys() != 2 || len(tr.personas) != 2 {
		t.Fatalf("trace: %d accesses, %d keys, %d personas", tr.Len(), tr.Keys(), len(tr.personas))
	}
	for _, bad := range []string{"", "# only a comment\n", "p1\n", "p1 a b\n"} {
		if _, err := ReadTrace(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadTrace(%q) accepted", bad)
		}
	}
}

func TestBaselinesOnAKnownTrace(t *testing.T) {
	t.Parallel()
	tr, err := ReadTrace(strings.NewReader("p a\np b\np c\np a\np b\np c\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := LRU(tr, 2); got != 0 {
		t.Errorf("LRU hits = %d, want 0 (a loop one over capacity)", got)
	}
	if got := Belady(tr, 2); got != 2 {
		t.Errorf("Belady hits = %d, want 2", got)
	}
	if got := BeladyBypass(tr, 2); got != 2 {
		t.Errorf("Belady with bypass hits = %d, want 2", got)
	}
	if got := LRU(tr, 3); got != 3 {
		t.Errorf("LRU with room for all = %d, want 3", got)
	}
}

func TestReplayBetweenLRUAndBelady(t *testing.T) {
	t.Parallel()
	for _, kind := range gen.Kinds() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			spec := gen.Spec{Kind: kind, Requests: 20000, Keys: 2000, Capacity: 100, Personas: 4}
			if err := gen.Write(&buf, spec); err != nil {
				t.Fatal(err)
			}
			tr, err := ReadTrace(&buf)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Compare(tr, 100, "w-tinylfu", true)
			if err != nil {
				t.Fatal(err)
			}
			if res.HitRatio > *res.BeladyHitRatio {
				t.Fatalf("the manager beat Belady's optimum: %.4f > %.4f", res.HitRatio, *res.BeladyHitRatio)
			}
			// Recency traffic is LRU's home ground: allow the window the
			// first samples it needs to grow.
			floor := *res.LRUHitRatio
			if kind == "recency" {
				floor *= 0.97
			}
			if res.HitRatio < floor {
				t.Fatalf("manager %.4f below LRU %.4f", res.HitRatio, *res.LRUHitRatio)
			}
		})
	}
}

func TestRunPrintsJSONLast(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "trace.txt")
	var trace bytes.Buffer
	if err := Run([]string{"gen", "--kind", "zipf", "--requests", "5000", "--keys", "500", "--seed", "7"}, &trace); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := Run([]string{"gen", "--kind", "zipf", "--requests", "5000", "--keys", "500", "--seed", "7"}, &again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(trace.Bytes(), again.Bytes()) {
		t.Fatal("the generator is not deterministic for a seed")
	}
	if err := os.WriteFile(path, trace.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Run([]string{"--trace", path, "--capacity", "50"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var res struct {
		Requests int     `json:"requests"`
		Hits     int     `json:"hits"`
		HitRatio float64 `json:"hit_ratio"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line %q: %v", lines[len(lines)-1], err)
	}
	if res.Requests != 5000 || res.Hits == 0 || res.HitRatio != float64(res.Hits)/5000 {
		t.Fatalf("result %+v", res)
	}
	for _, bad := range [][]string{{"--trace", path}, {"--capacity", "5"}, {"--trace", filepath.Join(dir, "missing"), "--capacity", "5"}, {"gen", "--kind", "nope"}} {
		if err := Run(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("Run(%v) succeeded", bad)
		}
	}
}
