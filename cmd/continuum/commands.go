package main

import (
	"context"
	"io"

	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/pkg/certs"
	meshsvc "github.com/continuum-mesh/continuum/services/mesh"
)

func cmdCerts(_ context.Context, args []string, stdout, _ io.Writer) error {
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

// serviceCommands are the clients and tools of the services.
func serviceCommands() map[string]command {
	return map[string]command{
		"mesh": remote("mesh", meshsvc.RunCLI),
	}
}
