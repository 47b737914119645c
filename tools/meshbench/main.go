// Command meshbench measures the gossip layer of pkg/mesh on loopback (see
// tools/bench/meshbench): how long N in-process members take to converge
// after joining, how long the survivors take to declare a crashed member
// DEAD, and how long a graceful leave takes to reach everyone as LEFT. The
// last line printed is the result as JSON.
//
//	go run ./tools/meshbench --nodes 3 --runs 5
//	go run ./tools/meshbench --nodes 10 --profile lan --runs 3
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"github.com/continuum-mesh/continuum/tools/bench/meshbench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "meshbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("meshbench", flag.ContinueOnError)
	o := meshbench.Options{}
	fs.IntVar(&o.Nodes, "nodes", 3, "members to start (at least 2)")
	fs.IntVar(&o.Runs, "runs", 5, "repetitions; each starts a fresh mesh")
	fs.StringVar(&o.Profile, "profile", "local", `failure-detection profile: "local" or "lan"`)
	verbose := fs.Bool("v", false, "log the mesh at debug level to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Nodes < 2 || o.Runs < 1 {
		return fmt.Errorf("--nodes must be at least 2 and --runs at least 1")
	}
	if *verbose {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	res, err := meshbench.Measure(ctx, o)
	if err != nil {
		return err
	}
	return res.Print(out, o)
}
