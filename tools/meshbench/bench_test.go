package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestMeshbenchSmall(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--nodes", "3", "--runs", "1"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"convergence", "first survivor sees DEAD", "all survivors see DEAD", "see LEFT"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := run(context.Background(), []string{"--nodes", "1"}, &out); err == nil {
		t.Error("accepted --nodes 1")
	}
}
