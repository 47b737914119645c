package generate

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Usage is the help text of `continuum generate`.
const Usage = `Usage:
  continuum generate service <name> [--method Name]... [--force] [--root DIR]

Scaffolds a new service of the mesh the way the others are built, and wires it
into 'continuum up'/'serve' and docker-compose.yml:

  proto/continuum/<name>/v1/<name>.proto   package continuum.<name>.v1, service <Name>Service
  services/<name>/<name>.go                New, Register, one handler per method
  services/<name>/config.go, errors.go     Config; domain errors -> gRPC statuses with reasons
  services/<name>/<name>_test.go           a table test through the real interceptor chain
  pkg/node/wiring.go, pkg/node/config.go   the service's case in wire() and its name in AllServices
  docker-compose.yml                       a container for it, and its data volume

<name> is lower-case letters and digits, starting with a letter, at most 32
characters: it is also the Go package, the proto package segment and the first
segment of the service's command paths (<name>/<method-in-kebab-case>).

Flags:
  --method Name   an RPC, in Pascal case (repeatable; default Ping)
  --force         overwrite the files of an existing generated service (its
                  wiring entries are kept)
  --root DIR      the repository root (default: the nearest directory above
                  the working directory that holds go.mod)

It runs nothing itself; afterwards run 'make generate && make test'.
`

// RunCLI runs `continuum generate` with the arguments after "generate",
// writing what it does to out. It returns a *UsageError for a bad command
// line, and *InvalidNameError, *InvalidMethodError, *ExistsError or
// *BusyError when it refuses.
func RunCLI(args []string, out io.Writer) error {
	if len(args) == 0 {
		return &UsageError{Msg: "name what to generate: continuum generate service <name>"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		_, err := io.WriteString(out, Usage)
		return err
	case "service":
	default:
		return &UsageError{Msg: fmt.Sprintf("unknown generator %q: only 'service' exists", args[0])}
	}
	opts, help, err := parseServiceArgs(args[1:])
	if err != nil {
		return err
	}
	if help {
		_, err := io.WriteString(out, Usage)
		return err
	}
	if opts.Root == "" {
		if opts.Root, err = findRoot(); err != nil {
			return err
		}
	}
	res, err := Service(opts)
	if err != nil {
		return err
	}
	report(out, opts, res)
	return nil
}

// parseServiceArgs parses "<name> [flags]", flags before or after the name.
func parseServiceArgs(args []string) (Options, bool, error) {
	var (
		opts    Options
		methods listFlag
	)
	fs := flag.NewFlagSet("continuum generate service", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Var(&methods, "method", "an RPC name in Pascal case (repeatable)")
	fs.BoolVar(&opts.Force, "force", false, "overwrite an existing generated service's files")
	fs.StringVar(&opts.Root, "root", "", "the repository root")
	var names []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return opts, true, nil
			}
			return opts, false, &UsageError{Msg: err.Error()}
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		names, rest = append(names, rest[0]), rest[1:]
	}
	switch len(names) {
	case 0:
		return opts, false, &UsageError{Msg: "name the service: continuum generate service <name>"}
	case 1:
	default:
		return opts, false, &UsageError{Msg: fmt.Sprintf("one service per run; got %s", strings.Join(names, ", "))}
	}
	opts.Name, opts.Methods = names[0], methods
	return opts, false, nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// findRoot is the nearest directory at or above the working directory
// holding go.mod.
func findRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("generate: no go.mod at or above %s; run inside the repository or pass --root", wd)
		}
	}
}

// report names every file the run wrote and what comes next.
func report(out io.Writer, opts Options, res *Result) {
	methods := opts.Methods
	if len(methods) == 0 {
		methods = []string{DefaultMethod}
	}
	fmt.Fprintf(out, "continuum generate service %s (methods %s)\n", opts.Name, strings.Join(methods, ", "))
	for _, f := range res.Wrote {
		fmt.Fprintf(out, "  wrote    %s\n", f)
	}
	for _, c := range res.Updated {
		fmt.Fprintf(out, "  updated  %s: %s\n", c.File, c.What)
	}
	for _, c := range res.Kept {
		fmt.Fprintf(out, "  kept     %s: %s\n", c.File, c.What)
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(out, "  skipped  %s\n", s)
	}
	fmt.Fprintf(out, `
Command paths: %s. The default policy lets only the admin use them; add
rules for other callers to the policy (docs/policy.md).

Next steps:
  make generate && make test
or, without regenerating everyone's protos:
  bin/buf generate --path proto/continuum/%s
  go build ./... && go test -race ./services/%s/...
`, strings.Join(res.Paths, ", "), opts.Name, opts.Name)
}
