package rpc

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	grpcauth "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/uri"
)

// Reasons of the identity layer.
const (
	ReasonAuthRequired   = "AUTH_REQUIRED"
	ReasonTokenInvalid   = "TOKEN_INVALID"
	ReasonIdentityForged = "IDENTITY_FORGED"
	ReasonInternal       = "INTERNAL"
)

// anonymousAllowed are the methods a caller that presented nothing may use.
func anonymousAllowed(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.v1.ServerReflection/") ||
		strings.HasPrefix(fullMethod, "/grpc.reflection.v1alpha.ServerReflection/")
}

// Ungated reports whether a method is exempt from the gate the server
// applies to direct external calls: health and reflection, the router (it
// gates every command itself, by URI), and the events calls that gate
// themselves by topic (publish, subscribe) or are never gated (unsubscribe).
func Ungated(fullMethod string) bool {
	if anonymousAllowed(fullMethod) {
		return true
	}
	switch {
	case strings.HasPrefix(fullMethod, "/continuum.router.v1.RouterService/"),
		fullMethod == "/continuum.events.v1.EventsService/Publish",
		fullMethod == "/continuum.events.v1.EventsService/PublishStream",
		fullMethod == "/continuum.events.v1.EventsService/Subscribe",
		fullMethod == "/continuum.events.v1.EventsService/Unsubscribe":
		return true
	}
	return false
}

type authenticator struct {
	node   string
	tokens *auth.Tokens
	server *Server
}

// authenticate puts the hop and the caller in the context, refuses
// anonymous callers outside health and reflection, refuses caller metadata
// that does not come from an authenticated mesh peer, and gates direct
// external calls by their command path.
func (a *authenticator) authenticate(ctx context.Context) (context.Context, error) {
	fullMethod, _ := grpc.Method(ctx)
	hop, err := a.hop(ctx)
	if err != nil {
		return nil, err
	}
	caller := hop
	if st, ok := grpc.ServerTransportStreamFromContext(ctx).(*inprocStream); ok && st.hasCaller {
		// Channel.Call named the caller for this very call; only code in
		// this process can.
		caller = st.caller
	} else if vals := metadata.ValueFromIncomingContext(ctx, auth.CallerHeader); len(vals) > 0 {
		if !hop.IsMeshPeer() {
			return nil, rpcerr.New(codes.Unauthenticated, ReasonIdentityForged,
				"a caller identity in metadata is believed only from an authenticated mesh peer",
				"hop", hop.Name)
		}
		c, ok := auth.DecodeCaller(vals[0])
		if !ok || len(vals) > 1 {
			return nil, rpcerr.New(codes.Unauthenticated, ReasonIdentityForged, "malformed caller identity", "hop", hop.Name)
		}
		caller = c
	}
	if hop.Kind == auth.KindAnonymous && !anonymousAllowed(fullMethod) {
		return nil, rpcerr.New(codes.Unauthenticated, ReasonAuthRequired,
			"present a bearer token (authorization: Bearer <token>) or a mesh certificate", "method", fullMethod)
	}
	ctx = auth.WithIdentity(ctx, hop, caller)
	if hop.IsMeshPeer() || Ungated(fullMethod) {
		return ctx, nil
	}
	g := a.server.currentGate()
	if g == nil {
		return ctx, nil
	}
	path, ok := uri.CommandPathFor(fullMethod)
	if !ok {
		return ctx, nil
	}
	if _, err := gate.Check(ctx, g, caller, path); err != nil {
		return nil, err
	}
	return ctx, nil
}

func (a *authenticator) hop(ctx context.Context) (auth.Principal, error) {
	if p, ok := peer.FromContext(ctx); ok {
		if _, ok := p.Addr.(InprocAddr); ok {
			return auth.MeshPeer(a.node), nil
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			if node := NodeFromCert(ti.State.VerifiedChains[0][0]); node != "" {
				return auth.MeshPeer(node), nil
			}
		}
	}
	token, err := grpcauth.AuthFromMD(ctx, "bearer")
	if err != nil {
		if vals := metadata.ValueFromIncomingContext(ctx, auth.AuthorizationHeader); len(vals) > 0 {
			return auth.Principal{}, rpcerr.New(codes.Unauthenticated, ReasonTokenInvalid, "authorization must be 'Bearer <token>'")
		}
		return auth.AnonymousPrincipal, nil
	}
	p, err := a.tokens.Lookup(token)
	if err != nil {
		return auth.Principal{}, rpcerr.New(codes.Unauthenticated, ReasonTokenInvalid, "unknown bearer token")
	}
	return p, nil
}

// NodeFromCert returns the mesh node name a verified certificate names: its
// URI SAN continuum://node/<name>, else its common name. Only certificates
// for client authentication count.
func NodeFromCert(cert *x509.Certificate) string {
	okUsage := false
	for _, u := range cert.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth {
			okUsage = true
		}
	}
	if !okUsage {
		return ""
	}
	for _, u := range cert.URIs {
		if u.Scheme == "continuum" && u.Host == "node" {
			return strings.TrimPrefix(u.Path, "/")
		}
	}
	return cert.Subject.CommonName
}

// logger adapts slog to the logging interceptor.
func logger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// logOpts log each finished call: successes at debug (a busy node would
// otherwise spend more on its log than on its work), client errors at
// info, server errors at warn and error.
var logOpts = []logging.Option{
	logging.WithLogOnEvents(logging.FinishCall),
	logging.WithLevels(func(c codes.Code) logging.Level {
		if c == codes.OK {
			return logging.LevelDebug
		}
		return logging.DefaultServerCodeToLevel(c)
	}),
}

// logUnary logs each finished unary call with the fields and levels of
// the logging middleware's stream twin (logStream), but builds the line
// only when the level is enabled: most calls succeed, at debug, and a
// node at info would otherwise spend a fifth of an in-process call's CPU
// on fields nobody reads.
func logUnary(l *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		code := status.Code(err)
		lvl := slog.LevelDebug
		if code != codes.OK {
			lvl = slog.Level(logging.DefaultServerCodeToLevel(code))
		}
		if !l.Enabled(ctx, lvl) {
			return resp, err
		}
		service, method := splitMethod(info.FullMethod)
		attrs := []any{
			"protocol", "grpc", "grpc.component", "server", "grpc.service", service, "grpc.method", method,
			"grpc.method_type", "unary", "grpc.start_time", start.Format(time.RFC3339),
			"grpc.code", code.String(), "grpc.time_ms", fmt.Sprintf("%.3f", float64(time.Since(start).Microseconds())/1000),
		}
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			attrs = append(attrs, "peer.address", p.Addr.String())
		}
		if err != nil {
			attrs = append(attrs, "grpc.error", err.Error())
		}
		l.Log(ctx, lvl, "finished call", attrs...)
		return resp, err
	}
}

func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}

func logStream(l *slog.Logger) grpc.StreamServerInterceptor {
	return logging.StreamServerInterceptor(logger(l), logOpts...)
}

// panicHandler turns a panic into Internal with an id that is also logged.
func panicHandler(l *slog.Logger) recovery.Option {
	return recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		id := errorID()
		method, _ := grpc.Method(ctx)
		l.ErrorContext(ctx, "panic in handler", "error_id", id, "method", method, "panic", p, "stack", string(debug.Stack()))
		return rpcerr.New(codes.Internal, ReasonInternal, "internal error (id "+id+")", "error_id", id)
	})
}

func recoverUnary(l *slog.Logger) grpc.UnaryServerInterceptor {
	return recovery.UnaryServerInterceptor(panicHandler(l))
}

func recoverStream(l *slog.Logger) grpc.StreamServerInterceptor {
	return recovery.StreamServerInterceptor(panicHandler(l))
}

// mapError makes sure callers see a gRPC status: context errors keep their
// codes, and a bare Go error becomes Internal with a neutral message and an
// id that is logged with the real error.
func mapError(ctx context.Context, l *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if ce := rpcerr.FromContext(err); ce != nil {
		return ce
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Err()
	}
	id := errorID()
	method, _ := grpc.Method(ctx)
	l.ErrorContext(ctx, "unmapped error", "error_id", id, "method", method, "error", err)
	return rpcerr.New(codes.Internal, ReasonInternal, "internal error (id "+id+")", "error_id", id)
}

func mapErrorsUnary(l *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		return resp, mapError(ctx, l, err)
	}
}

func mapErrorsStream(l *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return mapError(ss.Context(), l, h(srv, ss))
	}
}

func errorID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
