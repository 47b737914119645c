package jitter

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestRunReportsTheFloor: a short run prints one line per fixed loop and,
// last, a Result whose loops grow with their size and whose percentiles
// are ordered.
func TestRunReportsTheFloor(t *testing.T) {
	var out bytes.Buffer
	if err := Run([]string{"--duration", "50ms", "--calls", "300"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var res Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not the JSON result: %v\n%s", err, out.String())
	}
	if len(res.Loops) != 6 || len(lines) != 8 {
		t.Fatalf("%d loops, %d lines:\n%s", len(res.Loops), len(lines), out.String())
	}
	for i, l := range res.Loops {
		if l.Iterations <= 0 || l.P50us <= 0 || l.P99us < l.P50us || l.P999us < l.P99us {
			t.Fatalf("loop %d = %+v", i, l)
		}
		if i > 0 && l.Iterations <= res.Loops[i-1].Iterations {
			t.Fatalf("loop %d is not longer than loop %d: %+v", i, i-1, res.Loops)
		}
	}
	if res.Gaps.MinUs != 10 || res.Gaps.StolenPct < 0 || res.Gaps.StolenPct > 100 {
		t.Fatalf("gaps = %+v", res.Gaps)
	}
}
