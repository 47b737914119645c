package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/gateway"
	"github.com/continuum-mesh/continuum/internal/generate"
	"github.com/continuum-mesh/continuum/pkg/certs"
	"github.com/continuum-mesh/continuum/services/audit"
	"github.com/continuum-mesh/continuum/services/events"
	"github.com/continuum-mesh/continuum/services/genome"
	"github.com/continuum-mesh/continuum/services/hippocampus"
	meshsvc "github.com/continuum-mesh/continuum/services/mesh"
)

func cmdCerts(_ context.Context, args []string, stdout, _ io.Writer) error {
	// "certs init --if-missing" leaves an existing CA alone, so a one-shot
	// compose job can run on every `up`.
	if len(args) > 0 && args[0] == "init" {
		rest, ifMissing := withoutFlag(args[1:], "--if-missing")
		if ifMissing {
			dir := flagValue(rest, "--dir", "data/certs")
			if _, err := os.Stat(filepath.Join(dir, certs.CACertFile)); err == nil {
				fmt.Fprintf(stdout, "CA exists in %s; keeping it\n", dir)
				return nil
			}
		}
		args = append([]string{"init"}, rest...)
	}
	if err := certs.RunCLI(args, stdout); err != nil {
		return exitError{code: 1, msg: "continuum certs: " + err.Error()}
	}
	return nil
}

// remote adapts a service's client CLI, which takes a connection, to a
// command: the shared client flags (--addr, --token, TLS) come first.
func remote(name string, run func(ctx context.Context, args []string, conn grpc.ClientConnInterface, out io.Writer) error) command {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlags(name, stderr)
		var c clientFlags
		c.register(fs)
		c.timeout = 0
		// Client flags come before the service's own arguments.
		if err := fs.Parse(args); err != nil {
			return usageError("%v", err)
		}
		cc, err := c.dial()
		if err != nil {
			return err
		}
		defer cc.Close()
		if err := run(ctx, fs.Args(), cc, stdout); err != nil {
			return exitError{code: 1, msg: "continuum " + name + ": " + err.Error()}
		}
		return nil
	}
}

// cmdTokens implements "tokens init --dir D": admin.token, user.token and
// a tokens.yaml of their hashes, each written only when missing.
func cmdTokens(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tokens", stderr)
	dir := fs.String("dir", "./data", "directory for admin.token, user.token and tokens.yaml")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError("%v", err)
	}
	if len(pos) != 1 || pos[0] != "init" {
		return usageError("usage: continuum tokens init [--dir DIR]")
	}
	if err := os.MkdirAll(*dir, 0o750); err != nil {
		return err
	}
	return bootstrapTokens(*dir, filepath.Join(*dir, "tokens.yaml"), stdout)
}

// cmdGenerate scaffolds a new service ("generate service <name> ...").
func cmdGenerate(_ context.Context, args []string, stdout, _ io.Writer) error {
	err := generate.RunCLI(args, stdout)
	var usage *generate.UsageError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &usage):
		return exitError{code: 2, msg: "continuum generate: " + err.Error()}
	default:
		return exitError{code: 1, msg: "continuum generate: " + err.Error()}
	}
}

// cmdGateway runs the HTTP gateway alone, in front of a node.
func cmdGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := gateway.RunCLI(ctx, args, stdout, newLogger(stderr, new(slog.LevelVar), "text"))
	if errors.Is(err, gateway.ErrUsage) {
		return exitError{code: 2, msg: "continuum gateway: " + err.Error()}
	}
	return err
}

// flip adapts a client whose connection comes before its arguments.
func flip(run func(ctx context.Context, conn grpc.ClientConnInterface, args []string, out io.Writer) error) func(ctx context.Context, args []string, conn grpc.ClientConnInterface, out io.Writer) error {
	return func(ctx context.Context, args []string, conn grpc.ClientConnInterface, out io.Writer) error {
		return run(ctx, conn, args, out)
	}
}

// cmdAudit runs the offline audit tools ("audit verify FILE").
func cmdAudit(ctx context.Context, args []string, stdout, _ io.Writer) error {
	err := audit.RunCLI(ctx, args, stdout)
	var ce *audit.CLIError
	if errors.As(err, &ce) {
		return exitError{code: ce.Code, msg: ce.Msg}
	}
	return err
}

// serviceCommands are the clients and tools of the services.
func serviceCommands() map[string]command {
	return map[string]command{
		"tokens":   cmdTokens,
		"generate": cmdGenerate,
		"gateway":  cmdGateway,
		"genome":   remote("genome", genome.RunCLI),
		"hippo":    remote("hippo", hippocampus.RunCLI),
		"tail":     remote("tail", flip(events.RunTail)),
		"pub":      remote("pub", flip(events.RunPub)),
		"audit":    cmdAudit,
		"mesh":     remote("mesh", meshsvc.RunCLI),
	}
}

// withoutFlag removes a boolean flag from args and reports whether it was
// there.
func withoutFlag(args []string, flag string) ([]string, bool) {
	out := args[:0:0]
	found := false
	for _, a := range args {
		if a == flag || a == flag+"=true" {
			found = true
			continue
		}
		out = append(out, a)
	}
	return out, found
}

// flagValue returns the value of "--name v" or "--name=v" in args.
func flagValue(args []string, name, def string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return def
}
