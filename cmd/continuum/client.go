package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	addr, token, tokenFile, tlsCA, tlsCert, tlsKey, serverName string
	timeout                                                    time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", envOr("CONTINUUM_ADDR", "127.0.0.1:7400"), "node gRPC address ($CONTINUUM_ADDR)")
	fs.StringVar(&c.token, "token", os.Getenv("CONTINUUM_TOKEN"), "bearer token ($CONTINUUM_TOKEN)")
	fs.StringVar(&c.tokenFile, "token-file", envOr("CONTINUUM_TOKEN_FILE", "./data/admin.token"), "file holding the bearer token, used when --token is empty and the file exists ($CONTINUUM_TOKEN_FILE)")
	fs.StringVar(&c.tlsCA, "tls-ca", os.Getenv("CONTINUUM_TLS_CA"), "CA certificate to verify the server with (enables TLS; $CONTINUUM_TLS_CA)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "client certificate (mTLS)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "client key (mTLS)")
	fs.StringVar(&c.serverName, "tls-server-name", os.Getenv("CONTINUUM_TLS_SERVER_NAME"), "server name to verify (default: the host of --addr; $CONTINUUM_TLS_SERVER_NAME)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "call timeout (0: none, for streams)")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (c *clientFlags) bearer() string {
	if c.token != "" {
		return c.token
	}
	if b, err := os.ReadFile(c.tokenFile); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

// dial connects to a node with the client's credentials.
func (c *clientFlags) dial() (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if c.tlsCA != "" || c.tlsCert != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.serverName}
		if c.tlsCA != "" {
			pem, err := os.ReadFile(c.tlsCA)
			if err != nil {
				return nil, fmt.Errorf("read --tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--tls-ca %s holds no certificate", c.tlsCA)
			}
			cfg.RootCAs = pool
		}
		if c.tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
			if err != nil {
				return nil, fmt.Errorf("load client certificate: %w", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		creds = credentials.NewTLS(cfg)
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, rpc.ClientWindowOptions()...)
	if tok := c.bearer(); tok != "" {
		md := metadata.Pairs("authorization", "Bearer "+tok)
		opts = append(opts,
			grpc.WithUnaryInterceptor(func(ctx context.Context, m string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, o ...grpc.CallOption) error {
				return inv(metadata.NewOutgoingContext(ctx, metadata.Join(outgoing(ctx), md)), m, req, reply, cc, o...)
			}),
			grpc.WithStreamInterceptor(func(ctx context.Context, d *grpc.StreamDesc, cc *grpc.ClientConn, m string, st grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
				return st(metadata.NewOutgoingContext(ctx, metadata.Join(outgoing(ctx), md)), d, cc, m, o...)
			}))
	}
	cc, err := grpc.NewClient(c.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", c.addr, err)
	}
	return cc, nil
}

func outgoing(ctx context.Context) metadata.MD {
	md, _ := metadata.FromOutgoingContext(ctx)
	return md
}

func (c *clientFlags) context(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// printJSON prints a message as indented protobuf JSON.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// callError renders a gRPC error with its reason and metadata, exit 1.
func callError(err error) error {
	st := status.Convert(err)
	msg := fmt.Sprintf("error: %s: %s", st.Code(), st.Message())
	if r := rpcerr.Reason(err); r != "" {
		msg += "\nreason: " + r
	}
	for _, kv := range rpcerr.Metadata(err) {
		msg += "\n  " + kv
	}
	return exitError{code: 1, msg: msg}
}

func cmdCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("call", stderr)
	var c clientFlags
	c.register(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError("%v", err)
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError("usage: continuum call <uri> [json-params]")
	}
	req := &routerv1.DispatchRequest{Uri: pos[0]}
	if len(pos) == 2 {
		var m map[string]any
		if err := json.Unmarshal([]byte(pos[1]), &m); err != nil {
			return usageError("params must be a JSON object: %v", err)
		}
		if req.Params, err = structpb.NewStruct(m); err != nil {
			return usageError("params: %v", err)
		}
	}
	cc, err := c.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	cctx, cancel := c.context(ctx)
	defer cancel()
	resp, err := routerv1.NewRouterServiceClient(cc).Dispatch(cctx, req)
	if err != nil {
		return callError(err)
	}
	return printJSON(stdout, resp)
}

func cmdRoute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("route", stderr)
	var c clientFlags
	c.register(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError("%v", err)
	}
	if len(pos) != 1 {
		return usageError("usage: continuum route <uri>")
	}
	cc, err := c.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	cctx, cancel := c.context(ctx)
	defer cancel()
	resp, err := routerv1.NewRouterServiceClient(cc).Route(cctx, &routerv1.RouteRequest{Uri: pos[0]})
	if err != nil {
		return callError(err)
	}
	return printJSON(stdout, resp)
}

func cmdHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("health", stderr)
	var c clientFlags
	c.register(fs)
	service := fs.String("service", "", "proto service name to check (default: the whole node)")
	c.timeout = 5 * time.Second
	if _, err := parseInterleaved(fs, args); err != nil {
		return usageError("%v", err)
	}
	cc, err := c.dial()
	if err != nil {
		return err
	}
	defer cc.Close()
	cctx, cancel := c.context(ctx)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(cctx, &healthpb.HealthCheckRequest{Service: *service})
	if err != nil {
		return callError(err)
	}
	fmt.Fprintln(stdout, resp.GetStatus().String())
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return exitError{code: 1}
	}
	return nil
}

func version() string {
	if bi, ok := debugBuildInfo(); ok {
		return "continuum " + bi
	}
	return "continuum (devel)"
}
