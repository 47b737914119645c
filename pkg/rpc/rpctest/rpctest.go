// Package rpctest starts a real pkg/rpc server on 127.0.0.1:0 for tests, with
// the whole interceptor chain, and hands out client connections as an admin
// token holder, a plain user, an anonymous caller or an in-process mesh peer.
package rpctest

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/rpc"
)

// Tokens of the test server.
const (
	AdminToken = "test-admin-token"
	UserToken  = "test-user-token"
	// Node is the test server's node name.
	Node = "test-node"
)

// Principals behind the tokens.
var (
	Admin = auth.Principal{Name: "admin", Kind: auth.KindToken}
	User  = auth.Principal{Name: "user", Kind: auth.KindToken}
)

// Server is a running test server.
type Server struct {
	*rpc.Server
	t testing.TB
}

// Options tune the test server.
type Options struct {
	// Gate gates direct external calls; nil allows everything.
	Gate gate.Gate
	// Logger; nil discards.
	Logger *slog.Logger
}

// Start builds a server, lets register mount services on it, serves it and
// stops it (with its drain) when the test ends.
func Start(t testing.TB, opts Options, register func(grpc.ServiceRegistrar)) *Server {
	t.Helper()
	tokens, err := auth.NewTokens([]auth.TokenEntry{
		{Principal: "admin", Token: AdminToken, Admin: true},
		{Principal: "user", Token: UserToken},
	})
	if err != nil {
		t.Fatal(err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := rpc.New(rpc.Config{Node: Node, Listen: "127.0.0.1:0"}, rpc.Deps{Logger: log, Tokens: tokens, Gate: opts.Gate})
	if err != nil {
		t.Fatal(err)
	}
	register(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &Server{Server: s, t: t}
}

// Dial returns a TCP client connection whose calls carry token (none when
// empty), closed when the test ends.
func (s *Server) Dial(token string) *grpc.ClientConn {
	s.t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts,
			grpc.WithUnaryInterceptor(func(ctx context.Context, m string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, o ...grpc.CallOption) error {
				return inv(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), m, req, reply, cc, o...)
			}),
			grpc.WithStreamInterceptor(func(ctx context.Context, d *grpc.StreamDesc, cc *grpc.ClientConn, m string, st grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
				return st(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), d, cc, m, o...)
			}))
	}
	cc, err := grpc.NewClient(s.Addr(), opts...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// DialMeshPeer returns an in-process connection: calls on it are made by the
// mesh peer "peer:test-node", which may carry another caller with
// auth.OnBehalfOf.
func (s *Server) DialMeshPeer() *grpc.ClientConn {
	s.t.Helper()
	cc, err := s.DialInproc()
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = cc.Close() })
	return cc
}
