package recall

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/continuum-mesh/continuum/services/hippocampus"
	"github.com/continuum-mesh/continuum/tools/bench/recallgen"
)

func smallTrace(t *testing.T) []byte {
	t.Helper()
	o := recallgen.DefaultOptions()
	o.Personas, o.Days, o.Ceiling = 2, 3, false
	var buf bytes.Buffer
	if _, _, err := recallgen.Generate(o, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReplayDeterministic: two replays of one trace agree on everything
// but the tick timings.
func TestReplayDeterministic(t *testing.T) {
	t.Parallel()
	trace := smallTrace(t)
	run := func(scorer string) *Result {
		turns, err := ReadTrace(bytes.NewReader(trace))
		if err != nil {
			t.Fatal(err)
		}
		res, err := Replay(context.Background(), turns, Options{Scorer: scorer})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	timing := cmpopts.IgnoreFields(Result{}, "TickP50us", "TickP99us", "TickMaxus")
	for _, scorer := range hippocampus.Scorers {
		a, b := run(scorer), run(scorer)
		if diff := cmp.Diff(a, b, timing); diff != "" {
			t.Errorf("%s: two replays differ:\n%s", scorer, diff)
		}
		if a.Needs == 0 || a.Hits == 0 || a.Ticks == 0 || len(a.Kinds) != len(recallgen.Kinds) {
			t.Errorf("%s: a replay that measured nothing: %+v", scorer, a)
		}
	}
}

// TestRunOutput: the last line printed is JSON with the fields the issue
// names, and per-kind results.
func TestRunOutput(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	if err := os.WriteFile(path, smallTrace(t), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Run([]string{"--trace", path, "--k", "4"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("last line is not JSON: %v", err)
	}
	for _, k := range []string{"turns", "needs", "hits", "hit_at_k", "timeliness", "consumption_fraction", "ticks", "tick_p50_us", "tick_p99_us", "kinds"} {
		if _, ok := last[k]; !ok {
			t.Errorf("the result has no %q", k)
		}
	}
	if last["k"].(float64) != 4 {
		t.Errorf("k = %v", last["k"])
	}
	for _, bad := range [][]string{{}, {"--trace", path, "--scorer", "magic"}, {"--trace", filepath.Join(t.TempDir(), "none")}} {
		if err := Run(bad, &out); err == nil {
			t.Errorf("Run(%v) succeeded", bad)
		}
	}
}

func TestReadTraceRejects(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		`{"t": 1, "persona": "", "channel": "c", "engram": "e"}`,
		`{"t": 1, "persona": "p", "channel": "c"}`,
		`not json`,
	} {
		if _, err := ReadTrace(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadTrace(%q) succeeded", bad)
		}
	}
	turns, err := ReadTrace(strings.NewReader(`{"t": 5, "persona": "p", "channel": "c", "engram": "b"}` + "\n\n" + `{"t": 1, "persona": "p", "channel": "c", "engram": "a"}`))
	if err != nil || len(turns) != 2 || turns[0].Engram != "a" {
		t.Errorf("ReadTrace did not order by time: %+v, %v", turns, err)
	}
}
