// Command continuum is the one binary of the Continuum mesh: `up` runs every
// service in one process, `serve` runs some of them joined to a mesh, and
// the other commands are clients (call, tail, pub, health, ...) and tools
// (certs, audit verify).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			if ex.msg != "" {
				fmt.Fprintln(os.Stderr, ex.msg)
			}
			os.Exit(ex.code)
		}
		fmt.Fprintln(os.Stderr, "continuum:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a code and an optional message.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

const usage = `continuum — the Continuum mesh

Usage:
  continuum up [flags]                      every service in one process (the embedded default)
  continuum serve <service>... [flags]      some services, joined to a mesh
  continuum call <uri> [json-params]        dispatch a command through the router and print the result
  continuum route <uri>                     explain a URI's route without running it
  continuum health [--service NAME]         check a node's health (exit 0 when serving)
  continuum certs init|issue ...            create a mesh CA and node certificates
  continuum tokens init [--dir DIR]         write admin/user bearer tokens and their tokens file
  continuum generate service <name> ...     scaffold a new service (proto, package, test, wiring, compose)
  continuum mesh members|resolve            the mesh as a node sees it
  continuum tail <topic|artifact|airc://..>  stream events (like nats sub)
  continuum pub <topic> <json>              publish an event (like nats pub)
  continuum genome put|page-in|tiers|...    the genome paging manager
  continuum hippo remember|peek|recall      the hippocampus
  continuum audit verify FILE               verify an audit log offline
  continuum gateway [--http ADDR]           the HTTP gateway alone, in front of a node
  continuum version

Run 'continuum <command> --help' for a command's flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{code: 2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "up":
		return cmdUp(ctx, rest, stdout, stderr)
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr)
	case "call":
		return cmdCall(ctx, rest, stdout, stderr)
	case "route":
		return cmdRoute(ctx, rest, stdout, stderr)
	case "health":
		return cmdHealth(ctx, rest, stdout, stderr)
	case "certs":
		return cmdCerts(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	if c, ok := serviceCommands()[cmd]; ok {
		return c(ctx, rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "continuum: unknown command %q\n\n%s", cmd, usage)
	return exitError{code: 2}
}

// command is one subcommand.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) error

func newLogger(w io.Writer, level *slog.LevelVar, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
