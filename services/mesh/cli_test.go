package mesh

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

func TestCLI(t *testing.T) {
	t.Parallel()
	srv := start(t, newFake(), nil)
	conn := srv.Dial(rpctest.AdminToken)
	tests := []struct {
		name     string
		args     []string
		contains []string
		absent   []string
		errHas   []string
		usage    bool
	}{
		{
			name: "members", args: []string{"members"},
			contains: []string{"NAME", "node-a *", "ALIVE", "2026-05-01T12:00:00Z", "10.0.0.1:7400", "mesh,router", "maya:vr|web", "6f1c2a3b-"},
			absent:   []string{"node-b", "node-c"},
		},
		{name: "members --all", args: []string{"members", "--all"}, contains: []string{"node-b", "DEAD", "(truncated)", "node-c", "LEFT"}},
		{name: "members json", args: []string{"members", "--json"}, contains: []string{`"node-a"`, `"MEMBER_STATE_ALIVE"`, `"stateSince"`}},
		{name: "resolve", args: []string{"resolve", "router"}, contains: []string{"node-a *", "ALIVE"}},
		{name: "resolve with key, flag last", args: []string{"resolve", "hippocampus", "persona-a", "--json"}, contains: []string{`"node-a"`, `"grpcAddress"`}},
		{
			name: "owner down", args: []string{"resolve", "hippocampus", "persona-b"},
			errHas: []string{"Unavailable", "OWNER_DOWN", "member=node-b", "state=DEAD"},
		},
		{name: "no command", args: nil, usage: true},
		{name: "unknown command", args: []string{"join"}, usage: true},
		{name: "resolve without service", args: []string{"resolve"}, usage: true},
		{name: "members with an argument", args: []string{"members", "x"}, usage: true},
		{name: "unknown flag", args: []string{"members", "--nope"}, usage: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := RunCLI(context.Background(), tc.args, conn, &out)
			switch {
			case tc.usage:
				if !errors.Is(err, ErrUsage) {
					t.Fatalf("err = %v, want ErrUsage", err)
				}
				return
			case len(tc.errHas) > 0:
				if err == nil {
					t.Fatalf("no error; output:\n%s", out.String())
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				if status.Code(err) != codes.Unavailable || rpcerr.Reason(err) == "" {
					t.Errorf("the status is not reachable through the CLI error: %v", err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			for _, s := range tc.contains {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(out.String(), s) {
					t.Errorf("output has %q:\n%s", s, out.String())
				}
			}
		})
	}
}
