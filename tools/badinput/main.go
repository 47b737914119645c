// Command badinput is the bad-input sweep: it sends every RPC of every
// continuum service malformed, oversized, truncated and wrongly typed
// requests and checks that each gets a typed error and that the server
// keeps serving. See docs/RELIABILITY.md and package sweep.
//
//	go run ./tools/badinput                       # an embedded node (the default)
//	go run ./tools/badinput --addr 127.0.0.1:7400 --token-file data/admin.token
//
// It exits 1 when it found a violation, 2 when the sweep could not run.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/continuum-mesh/continuum/tools/badinput/sweep"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("badinput", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr      = fs.String("addr", "", "server to sweep (host:port); empty starts an embedded node")
		tokenFile = fs.String("token-file", "data/admin.token", "file holding an admin bearer token (with --addr)")
		userFile  = fs.String("user-token-file", "", "file holding a non-admin token for the forged-identity cases (default: the admin token)")
		embedded  = fs.Bool("embedded", false, "start a real node in this process and sweep it (the default without --addr)")
		tlsCA     = fs.String("tls-ca", "", "dial --addr with TLS, verifying the server against this CA file")
		seed      = fs.Uint64("seed", 1, "seed for random bytes and the per-method sample")
		perMethod = fs.Int("per-method", 0, "at most this many cases per method, sampled over every kind of bad input (0: all)")
		match     = fs.String("method", "", "only methods whose full name matches this regular expression")
		maxRecv   = fs.Int("max-recv", 16<<20, "the server's max receive message size in bytes")
		timeout   = fs.Duration("timeout", 15*time.Second, "deadline of each call; no answer by then is a violation")
		window    = fs.Duration("stream-window", 300*time.Millisecond, "a server stream quiet this long counts as open")
		jsonOut   = fs.Bool("json", false, "write every line as a JSON object (the summary stays last)")
		verbose   = fs.Bool("verbose", false, "write a line per case")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "badinput: unexpected arguments %q\n", fs.Args())
		return 2
	}
	cfg := sweep.Config{
		Seed: *seed, PerMethod: *perMethod, Match: *match, MaxRecvBytes: *maxRecv,
		CallTimeout: *timeout, StreamWindow: *window, JSON: *jsonOut, Verbose: *verbose,
	}
	if _, err := regexp.Compile(*match); err != nil {
		fmt.Fprintf(stderr, "badinput: --method: %v\n", err)
		return 2
	}
	if *embedded && *addr != "" {
		fmt.Fprintln(stderr, "badinput: --embedded and --addr exclude each other")
		return 2
	}
	if *addr != "" {
		cfg.Addr = *addr
		var err error
		if cfg.Token, err = readToken(*tokenFile); err != nil {
			fmt.Fprintf(stderr, "badinput: %v\n", err)
			return 2
		}
		if *userFile != "" {
			if cfg.UserToken, err = readToken(*userFile); err != nil {
				fmt.Fprintf(stderr, "badinput: %v\n", err)
				return 2
			}
		}
		if *tlsCA != "" {
			if cfg.TLS, err = caConfig(*tlsCA); err != nil {
				fmt.Fprintf(stderr, "badinput: %v\n", err)
				return 2
			}
		}
	}
	rep, err := sweep.Run(ctx, cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "badinput: %v\n", err)
		if errors.Is(err, sweep.ErrStoppedServing) || len(rep.Violations) > 0 {
			return 1
		}
		return 2
	}
	if len(rep.Violations) > 0 {
		return 1
	}
	return 0
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // the operator names the file
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("read token: %s is empty", path)
	}
	return tok, nil
}

func caConfig(path string) (*tls.Config, error) {
	pem, err := os.ReadFile(path) //nolint:gosec // the operator names the file
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read CA: no certificate in %s", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
