package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/continuum-mesh/continuum/tools/badinput/sweep"
)

func TestRunFlags(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no-such.token")
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"unknown flag", []string{"--nope"}, 2},
		{"stray argument", []string{"extra"}, 2},
		{"embedded and addr", []string{"--embedded", "--addr", "127.0.0.1:1"}, 2},
		{"missing token file", []string{"--addr", "127.0.0.1:1", "--token-file", missing}, 2},
		{"bad method pattern", []string{"--method", "("}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			if got := run(context.Background(), tt.args, &out, &errOut); got != tt.want {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", got, tt.want, out.String(), errOut.String())
			}
		})
	}
}

// TestRunEmbeddedJSON sweeps one method of an embedded node in JSON mode:
// every line is a JSON object and the last is the summary.
func TestRunEmbeddedJSON(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--embedded", "--method", `MeshService/Members$`, "--per-method", "3", "--json"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("not a JSON line: %q", l)
		}
	}
	var sum sweep.Summary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Methods != 1 || sum.Calls == 0 || sum.Violations != 0 {
		t.Errorf("summary %+v", sum)
	}
}
