package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
)

// cliFixture is a closed log of 20 entries plus a signed checkpoint of
// its first 20 and the verifier key.
type cliFixture struct {
	dir, log, note, vkey string
	head                 string
}

func newCLIFixture(t *testing.T) cliFixture {
	t.Helper()
	cfg := testConfig(t)
	clk := newClock()
	s := open(t, cfg, Deps{Now: clk.Now})
	var last auditlog.Entry
	for i := range 20 {
		clk.Advance(1000)
		last = appendOne(t, s, auditlog.KindRefusal, map[string]any{"caller": fmt.Sprintf("user-%d", i)})
	}
	cp, err := s.Checkpoint(context.Background(), &auditv1.CheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := cliFixture{dir: dir, log: logPath(cfg), note: filepath.Join(dir, "checkpoint.note"), vkey: s.VerifierKey(), head: last.ChainHash.String()}
	if err := os.WriteFile(f.note, []byte(cp.GetNote()), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRunCLI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// prepare edits the fixture and returns the arguments.
		prepare func(t *testing.T, f cliFixture) []string
		code    int
		out     string // a regexp the output must match
		reason  string // the VerifyError reason, when the chain fails
	}{
		{
			name:    "ok",
			prepare: func(_ *testing.T, f cliFixture) []string { return []string{"verify", f.log} },
			out:     `^ok 20 [0-9a-f]{64}\n$`,
		},
		{
			name: "tampered payload",
			prepare: func(t *testing.T, f cliFixture) []string {
				ls := readLines(t, f.log)
				ls[6] = bytes.Replace(ls[6], []byte("user-6"), []byte("root"), 1)
				writeLines(t, f.log, ls)
				return []string{"verify", f.log}
			},
			code: 1, out: `^CHAIN_BROKEN seq=7: `, reason: auditlog.ReasonChainBroken,
		},
		{
			name: "deleted middle entry",
			prepare: func(t *testing.T, f cliFixture) []string {
				ls := readLines(t, f.log)
				writeLines(t, f.log, append(ls[:9], ls[10:]...))
				return []string{"verify", f.log}
			},
			code: 1, out: `^SEQUENCE_GAP seq=10 expected=10 got=11: `, reason: auditlog.ReasonSequenceGap,
		},
		{
			name: "reordered entries",
			prepare: func(t *testing.T, f cliFixture) []string {
				ls := readLines(t, f.log)
				ls[1], ls[2] = ls[2], ls[1]
				writeLines(t, f.log, ls)
				return []string{"verify", f.log}
			},
			code: 1, out: `^SEQUENCE_GAP seq=2 expected=2 got=3: `, reason: auditlog.ReasonSequenceGap,
		},
		{
			name: "backward timestamp",
			prepare: func(t *testing.T, f cliFixture) []string {
				es := parseAll(t, readLines(t, f.log))
				es[4].TimestampMs -= 5000
				writeLines(t, f.log, reseal(es))
				return []string{"verify", f.log}
			},
			code: 1, out: `^TIMESTAMP_WENT_BACKWARD seq=5: `, reason: auditlog.ReasonTimestampWentBackward,
		},
		{
			name: "torn tail is noted, not failed",
			prepare: func(t *testing.T, f cliFixture) []string {
				b, err := os.ReadFile(f.log)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(f.log, append(b, `{"seq":21,"time`...), 0o600); err != nil {
					t.Fatal(err)
				}
				return []string{"verify", f.log}
			},
			out: `^ok 20 [0-9a-f]{64}\nnote: ignored a torn last line \(15 bytes at offset \d+\)`,
		},
		{
			name: "checkpoint holds",
			prepare: func(_ *testing.T, f cliFixture) []string {
				return []string{"verify", "--checkpoint", f.note, "--key", f.vkey, f.log}
			},
			out: `^ok 20 [0-9a-f]{64}\ncheckpoint ok continuum.mesh/audit/n1 20\n$`,
		},
		{
			name: "key from a file, flags after the log",
			prepare: func(t *testing.T, f cliFixture) []string {
				kf := filepath.Join(f.dir, "key")
				if err := os.WriteFile(kf, []byte(f.vkey+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return []string{"verify", f.log, "--checkpoint", f.note, "--key", "@" + kf}
			},
			out: `checkpoint ok`,
		},
		{
			name: "truncated behind a checkpoint",
			prepare: func(t *testing.T, f cliFixture) []string {
				writeLines(t, f.log, readLines(t, f.log)[:12])
				return []string{"verify", "--checkpoint", f.note, "--key", f.vkey, f.log}
			},
			code: 1, out: `^ok 12 [0-9a-f]{64}\nLOG_TRUNCATED size=12 checkpoint_size=20: `,
		},
		{
			name: "tail rewritten behind a checkpoint",
			prepare: func(t *testing.T, f cliFixture) []string {
				es := parseAll(t, readLines(t, f.log))
				for _, e := range es[12:] {
					e.Payload["caller"] = "someone else"
				}
				writeLines(t, f.log, reseal(es))
				return []string{"verify", "--checkpoint", f.note, "--key", f.vkey, f.log}
			},
			code: 1, out: `^ok 20 [0-9a-f]{64}\nCHECKPOINT_MISMATCH checkpoint_size=20: `,
		},
		{
			name: "checkpoint signed by another key",
			prepare: func(_ *testing.T, f cliFixture) []string {
				other := newCLIFixture(t)
				return []string{"verify", "--checkpoint", f.note, "--key", other.vkey, f.log}
			},
			code: 1,
		},
		{name: "no command", prepare: func(*testing.T, cliFixture) []string { return nil }, code: 2},
		{name: "unknown command", prepare: func(*testing.T, cliFixture) []string { return []string{"frobnicate"} }, code: 2},
		{name: "no file", prepare: func(*testing.T, cliFixture) []string { return []string{"verify"} }, code: 2},
		{name: "two files", prepare: func(_ *testing.T, f cliFixture) []string { return []string{"verify", f.log, f.log} }, code: 2},
		{name: "checkpoint without key", prepare: func(_ *testing.T, f cliFixture) []string {
			return []string{"verify", "--checkpoint", f.note, f.log}
		}, code: 2},
		{name: "missing file", prepare: func(_ *testing.T, f cliFixture) []string {
			return []string{"verify", filepath.Join(f.dir, "nope.jsonl")}
		}, code: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newCLIFixture(t)
			var out bytes.Buffer
			err := RunCLI(context.Background(), tt.prepare(t, f), &out)
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("RunCLI: %v\noutput:\n%s", err, out.String())
				}
			} else {
				var ce *CLIError
				if !errors.As(err, &ce) || ce.Code != tt.code {
					t.Fatalf("RunCLI = %v, want a CLIError with code %d\noutput:\n%s", err, tt.code, out.String())
				}
			}
			if tt.out != "" && !regexp.MustCompile(tt.out).MatchString(out.String()) {
				t.Errorf("output %q does not match %q", out.String(), tt.out)
			}
			if tt.reason != "" {
				var ve *auditlog.VerifyError
				if !errors.As(err, &ve) || ve.Reason != tt.reason {
					t.Errorf("error %v, want a VerifyError with reason %s", err, tt.reason)
				}
			}
			if tt.name == "ok" && out.String() != "ok 20 "+f.head+"\n" {
				t.Errorf("output %q, want the head %s", out.String(), f.head)
			}
		})
	}
}
