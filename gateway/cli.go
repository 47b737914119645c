package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
)

// CLIUsage documents `continuum gateway`.
const CLIUsage = `usage: continuum gateway [flags]

Serves the HTTP/JSON gateway and the status page alone, in front of one
node's gRPC address (for a gateway container beside the mesh; "continuum up
--http ADDR" runs the same gateway inside the node).

flags:
  --http ADDR             HTTP listen address (default 127.0.0.1:8080)
  --target ADDR           the node's gRPC address (default 127.0.0.1:7400)
  --tls-ca FILE           reach the node over TLS, verifying its certificate
                          against this CA (the mesh CA, ca.crt)
  --tls-server-name NAME  the name the node's certificate must carry
                          (default: the target's host)
  --http-tls-cert FILE    serve HTTPS with this certificate ...
  --http-tls-key FILE     ... and key
  --insecure              allow plaintext to a non-loopback target, and
                          plain HTTP on a non-loopback address (bearer
                          tokens then cross the network in the clear)`

// ErrUsage is returned (wrapped) for a command line RunCLI cannot parse.
var ErrUsage = errors.New("usage")

// RunCLI is `continuum gateway` (args exclude "gateway"): it serves until
// ctx ends, then drains. It prints where it serves to out.
func RunCLI(ctx context.Context, args []string, out io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("http", "127.0.0.1:8080", "")
	target := fs.String("target", "127.0.0.1:7400", "")
	caFile := fs.String("tls-ca", "", "")
	serverName := fs.String("tls-server-name", "", "")
	certFile := fs.String("http-tls-cert", "", "")
	keyFile := fs.String("http-tls-key", "", "")
	insecure := fs.Bool("insecure", false, "")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w\n%s", ErrUsage, err, CLIUsage)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q\n%s", ErrUsage, fs.Args(), CLIUsage)
	}
	if (*certFile == "") != (*keyFile == "") {
		return fmt.Errorf("%w: --http-tls-cert and --http-tls-key go together\n%s", ErrUsage, CLIUsage)
	}
	if *serverName != "" && *caFile == "" {
		return fmt.Errorf("%w: --tls-server-name needs --tls-ca\n%s", ErrUsage, CLIUsage)
	}
	if *caFile == "" && !*insecure && !isLoopback(*target) {
		return fmt.Errorf("%w: refusing plaintext gRPC to %s: give --tls-ca, use a loopback target, or pass --insecure", ErrUsage, *target)
	}
	if *certFile == "" && !*insecure && !isLoopback(*listen) {
		return fmt.Errorf("%w: refusing plain HTTP on %s: give --http-tls-cert/--http-tls-key, listen on loopback, or pass --insecure", ErrUsage, *listen)
	}

	var clientTLS *tls.Config
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("gateway: no certificate in %s", *caFile)
		}
		clientTLS = &tls.Config{RootCAs: pool, ServerName: *serverName, MinVersion: tls.VersionTLS12}
	}
	var serverTLS *tls.Config
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	dial, err := NodeDialer(*target, clientTLS)
	if err != nil {
		return err
	}
	g, err := New(Config{Listen: *listen, TLS: serverTLS}, Deps{Dial: dial, Logger: log})
	if err != nil {
		return err
	}
	scheme := "http"
	if serverTLS != nil {
		scheme = "https"
	}
	fmt.Fprintf(out, "gateway: %s://%s/ (status page), API under /v1/, in front of %s\n", scheme, g.Addr(), *target)
	return g.Run(ctx)
}

// isLoopback reports whether addr ("host:port") names only this machine.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
