package audit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
)

// Reasons the CLI prints for a checkpoint that the log does not match.
const (
	// ReasonLogTruncated: the log has fewer entries than a checkpoint it
	// once signed.
	ReasonLogTruncated = "LOG_TRUNCATED"
	// ReasonCheckpointMismatch: the log's first entries do not hash to the
	// checkpoint's root: they were rewritten since it was signed.
	ReasonCheckpointMismatch = "CHECKPOINT_MISMATCH"
)

// CLIError is how RunCLI fails: the process should exit with Code, after
// printing Msg to stderr when it is not empty (a verdict has already been
// written to out). Err is the cause (a *auditlog.VerifyError for a broken
// chain), for errors.As.
type CLIError struct {
	Code int
	Msg  string
	Err  error
}

func (e *CLIError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

func (e *CLIError) Unwrap() error { return e.Err }

// CLIUsage is the help of `continuum audit`.
const CLIUsage = `Usage:
  continuum audit verify FILE [--checkpoint NOTE_FILE --key VERIFIER_KEY|@KEY_FILE]

Verifies an audit log offline, with every core, and prints
  ok <size> <head chainHash>
or the failure, e.g. "CHAIN_BROKEN seq=12: ..." or
"SEQUENCE_GAP seq=12 expected=12 got=13: ...", and exits 1.

With --checkpoint (a signed checkpoint note, as AuditService.Checkpoint
returns in "note") and --key (the verifier key AuditService.PublicKey
returns), it also checks the log still holds the entries the checkpoint
committed to: LOG_TRUNCATED if it has fewer, CHECKPOINT_MISMATCH if they
were rewritten.
`

// RunCLI runs `continuum audit ARGS` offline, without a server: args are
// what follows "audit" ("verify", FILE, flags). It writes its verdict to
// out. Exit codes: 0 ok; 1 the log (or checkpoint) fails, or the file cannot
// be read; 2 usage.
func RunCLI(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		return &CLIError{Code: 2, Msg: CLIUsage}
	}
	switch args[0] {
	case "verify":
		return cliVerify(ctx, args[1:], out)
	}
	return &CLIError{Code: 2, Msg: fmt.Sprintf("continuum audit: unknown command %q\n\n%s", args[0], CLIUsage)}
}

func cliVerify(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("continuum audit verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	checkpointFile := fs.String("checkpoint", "", "a signed checkpoint note the log must still match")
	key := fs.String("key", "", "the checkpoint verifier key, or @FILE holding it")
	usage := func(msg string) error {
		return &CLIError{Code: 2, Msg: "continuum audit verify: " + msg + "\n\n" + CLIUsage}
	}
	// Flags may come before or after FILE.
	if err := fs.Parse(args); err != nil {
		return usage(err.Error())
	}
	if fs.NArg() == 0 {
		return usage("name the log file")
	}
	file := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return usage(err.Error())
	}
	if fs.NArg() > 0 {
		return usage(fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if (*checkpointFile == "") != (*key == "") {
		return usage("--checkpoint and --key go together")
	}

	var cp *auditlog.Checkpoint
	if *checkpointFile != "" {
		c, err := readCheckpoint(*checkpointFile, *key)
		if err != nil {
			return &CLIError{Code: 1, Msg: "continuum audit verify: " + err.Error(), Err: err}
		}
		cp = &c
	}

	var tree auditlog.TreeBuilder
	var rootAtCheckpoint tlog.Hash
	visit := func(li auditlog.LineInfo) error {
		if cp == nil {
			return nil
		}
		tree.Add(li.Leaf)
		if tree.Size() == cp.Size {
			rootAtCheckpoint = tree.Root()
		}
		return nil
	}
	if cp != nil && cp.Size == 0 {
		rootAtCheckpoint = tree.Root()
	}
	res, err := auditlog.VerifyFile(ctx, file, auditlog.ScanOptions{Visit: visit})
	var ve *auditlog.VerifyError
	switch {
	case errors.As(err, &ve):
		_, _ = fmt.Fprintln(out, ve.Error())
		return &CLIError{Code: 1, Err: ve}
	case err != nil:
		return &CLIError{Code: 1, Msg: "continuum audit verify: " + err.Error(), Err: err}
	}
	if _, err := fmt.Fprintf(out, "ok %d %s\n", res.Size, res.Head); err != nil {
		return &CLIError{Code: 1, Err: err}
	}
	if res.TornBytes > 0 {
		_, _ = fmt.Fprintf(out, "note: ignored a torn last line (%d bytes at offset %d): a write that never completed; the recorder cuts it when it opens the log\n",
			res.TornBytes, res.End)
	}
	if cp == nil {
		return nil
	}
	switch {
	case res.Size < cp.Size:
		msg := fmt.Sprintf("%s size=%d checkpoint_size=%d: the log has fewer entries than the checkpoint committed to", ReasonLogTruncated, res.Size, cp.Size)
		_, _ = fmt.Fprintln(out, msg)
		return &CLIError{Code: 1, Err: errors.New(msg)}
	case rootAtCheckpoint != cp.Root:
		msg := fmt.Sprintf("%s checkpoint_size=%d: the log's first %d entries do not hash to the checkpoint's root (rewritten since it was signed)", ReasonCheckpointMismatch, cp.Size, cp.Size)
		_, _ = fmt.Fprintln(out, msg)
		return &CLIError{Code: 1, Err: errors.New(msg)}
	}
	_, _ = fmt.Fprintf(out, "checkpoint ok %s %d\n", cp.Origin, cp.Size)
	return nil
}

// readCheckpoint reads and opens a signed checkpoint note. key is a
// verifier key or @FILE holding one.
func readCheckpoint(path, key string) (auditlog.Checkpoint, error) {
	if f, ok := strings.CutPrefix(key, "@"); ok {
		b, err := os.ReadFile(f)
		if err != nil {
			return auditlog.Checkpoint{}, fmt.Errorf("read key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return auditlog.Checkpoint{}, fmt.Errorf("read checkpoint: %w", err)
	}
	return auditlog.OpenCheckpoint(b, key)
}
