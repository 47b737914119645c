// Package sweep is the bad-input sweep: it sends every RPC of every
// continuum service malformed, oversized, truncated and wrongly typed
// requests, and checks that each gets a typed error and that the server
// keeps serving.
//
// The services and their request types come from the server's reflection,
// not from a compiled-in list, and requests are built with dynamicpb and
// sent as raw bytes, so the sweep can send what the protobuf library would
// refuse to marshal. Per call it checks: the code is never UNKNOWN or
// INTERNAL; a refusal by a service carries a google.rpc.ErrorInfo reason
// (refusals by gRPC itself, such as RESOURCE_EXHAUSTED for an oversized
// frame or a request the codec cannot decode, are counted separately);
// cases with a known answer get it (no credentials is UNAUTHENTICATED
// AUTH_REQUIRED, a list as a filter value is INVALID_ARGUMENT); and the
// server answers before the deadline. After each method's batch, a health
// check and a known-good call (MeshService/Members) must succeed.
//
// tools/badinput is the command; Run is what it and the package's test
// call.
package sweep

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/continuum-mesh/continuum/pkg/auth"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
)

// Config shapes a sweep.
type Config struct {
	// Addr is the server to sweep; empty starts an embedded node in this
	// process (and Token and UserToken are ignored).
	Addr string
	// Token is an admin bearer token: bad input must reach validation,
	// not stop at the gate.
	Token string
	// UserToken is a non-admin token for the forged-identity cases; empty
	// uses Token (the forgery must be refused whoever presents it).
	UserToken string
	// TLS, when set, dials Addr with TLS.
	TLS *tls.Config
	// Seed makes the random bytes and the per-method sample repeatable.
	Seed uint64
	// PerMethod caps the cases per method (sampled across every kind of
	// bad input); zero sends them all.
	PerMethod int
	// Prefix selects the services to sweep; empty is "continuum.".
	Prefix string
	// Match, when set, sweeps only methods whose full name
	// ("/continuum.debug.v1.DebugService/SetLogLevel") matches this
	// regular expression.
	Match string
	// MaxRecvBytes is the server's receive limit; zero is 16 MiB, the
	// default of pkg/rpc. The oversized frame is 1 KiB more.
	MaxRecvBytes int
	// CallTimeout bounds each call; zero is 15 s. A call that gets no
	// answer in time is a violation (the server hangs on that input).
	CallTimeout time.Duration
	// StreamWindow is how long a server stream may stay quiet before it
	// counts as open (a valid subscription); zero is 300 ms.
	StreamWindow time.Duration
	// JSON writes every output line as a JSON object.
	JSON bool
	// Verbose writes a line per case.
	Verbose bool

	// recoverWait is how long a server that failed its checks after a
	// batch gets to recover before the sweep gives up; zero is 10 s.
	recoverWait time.Duration
	// refusalWait is how long a server stream that must be refused may
	// stay silent before it counts as accepted; zero is 5 s (at most half
	// the call timeout).
	refusalWait time.Duration
	// keep, when set, sends only the cases it keeps.
	keep func(Case) bool
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "continuum."
	}
	if c.MaxRecvBytes == 0 {
		c.MaxRecvBytes = 16 << 20
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 15 * time.Second
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = 300 * time.Millisecond
	}
	if c.UserToken == "" {
		c.UserToken = c.Token
	}
	if c.recoverWait == 0 {
		c.recoverWait = 10 * time.Second
	}
	if c.refusalWait == 0 {
		c.refusalWait = 5 * time.Second
	}
	return c
}

// knownGood is the call that must succeed after every batch.
const knownGood = "/continuum.mesh.v1.MeshService/Members"

// ErrStoppedServing is returned when the server stops answering the health
// check and the known-good call and does not recover.
var ErrStoppedServing = errors.New("the server stopped serving")

// Run sweeps the server cfg names (or an embedded node), writing a line
// per method, the violations and a last-line JSON summary to out. The
// error is for a sweep that could not run or finish; violations are in
// the report.
func Run(ctx context.Context, cfg Config, out io.Writer) (rep Report, err error) {
	cfg = cfg.withDefaults()
	var logs *logCapture
	var peerConn *grpc.ClientConn
	if cfg.Addr == "" {
		e, err := startEmbedded(ctx)
		if err != nil {
			return Report{}, err
		}
		defer func() {
			if stopErr := e.stop(); err == nil {
				err = stopErr
			}
		}()
		cfg.Addr, cfg.Token, cfg.UserToken, logs = e.node.Addr(), e.adminToken, e.userToken, e.logs
		peerConn = e.node.Local()
	}
	if cfg.Token == "" {
		return Report{}, errors.New("sweep: an admin token is required")
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	cc, err := grpc.NewClient(cfg.Addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return Report{}, fmt.Errorf("sweep: dial %s: %w", cfg.Addr, err)
	}
	defer cc.Close()
	s := &sweeper{
		cfg: cfg,
		c: &caller{
			cc: cc, addr: cfg.Addr, tls: cfg.TLS, adminToken: cfg.Token, userToken: cfg.UserToken,
			callTimeout: cfg.CallTimeout, window: cfg.StreamWindow, refusalWait: cfg.refusalWait,
		},
		logs:    logs,
		p:       &printer{out: out, json: cfg.JSON},
		rep:     Report{ByCode: map[string]int{}},
		structs: newStructCache(),
	}
	if peerConn != nil {
		s.peer = &caller{cc: peerConn, peer: true, addr: cfg.Addr, callTimeout: cfg.CallTimeout, window: cfg.StreamWindow, refusalWait: cfg.refusalWait}
	}
	err = s.run(ctx)
	s.p.finish(s.rep)
	if err == nil {
		err = s.p.err
	}
	return s.rep, err
}

type sweeper struct {
	cfg   Config
	c     *caller
	logs  *logCapture
	p     *printer
	rep   Report
	guard *policyGuard
	// dispatch is nil when the server runs no router.
	dispatch *dispatcher
	// peer calls an embedded node as a mesh peer, for the methods only
	// mesh peers may call; nil for a remote server.
	peer    *caller
	structs *structCache
	// members is false when the server has no MeshService to call.
	members bool
}

func (s *sweeper) admin(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, auth.AuthorizationHeader, "Bearer "+s.cfg.Token)
}

func (s *sweeper) run(ctx context.Context) error {
	if err := s.waitServing(ctx, 30*time.Second); err != nil {
		return fmt.Errorf("sweep: %s is not serving: %w", s.cfg.Addr, err)
	}
	dctx, cancel := context.WithTimeout(s.admin(ctx), s.cfg.CallTimeout)
	d, err := discover(dctx, s.c.cc, s.cfg.Prefix)
	cancel()
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	methods := d.methods()
	if len(methods) == 0 {
		return fmt.Errorf("sweep: %s serves no service named %s* (it serves %s)", s.cfg.Addr, s.cfg.Prefix, strings.Join(d.all, ", "))
	}
	for _, m := range methods {
		if m.full == knownGood {
			s.members = true
		}
	}
	s.dispatch = newDispatcher(d)
	if s.guard, err = newPolicyGuard(ctx, s, d); err != nil {
		s.rep.Notes = append(s.rep.Notes, err.Error())
	}
	var match *regexp.Regexp
	if s.cfg.Match != "" {
		if match, err = regexp.Compile(s.cfg.Match); err != nil {
			return fmt.Errorf("sweep: method pattern: %w", err)
		}
	}
	for _, m := range methods {
		if match != nil && !match.MatchString(m.full) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		if err := s.sweepMethod(ctx, m, d); err != nil {
			return err
		}
	}
	if s.guard != nil && s.guard.restored > 0 {
		s.rep.Notes = append(s.rep.Notes, fmt.Sprintf("%s accepted %d of the sweep's requests; the node's original policy was put back after each",
			putPolicy, s.guard.restored))
	}
	return nil
}

// sweepMethod sends one method its batch, then checks the server still
// serves.
func (s *sweeper) sweepMethod(ctx context.Context, m method, d *discovery) error {
	seed, err := seedFor(m, d.files)
	if err != nil {
		s.rep.Notes = append(s.rep.Notes, err.Error())
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(m.full))
	rng := rand.New(rand.NewPCG(s.cfg.Seed, h.Sum64())) //nolint:gosec // repeatable test input, not secrets
	cases := buildCases(m, seed, caseOptions{rng: rng, maxRecvBytes: s.cfg.MaxRecvBytes, dispatch: s.dispatch, structs: s.structs})
	if s.cfg.keep != nil {
		cases = slices.DeleteFunc(cases, func(c Case) bool { return !s.cfg.keep(c) })
	}
	cases = sample(cases, s.cfg.PerMethod, rng)

	start := time.Now()
	mr := MethodReport{Method: strings.TrimPrefix(m.full, "/"), Kind: m.kind(), ByCode: map[string]int{}, ByClass: map[string]int{}}
	if s.cfg.Verbose && !s.cfg.JSON {
		s.p.line("== %s (%s, %d cases)", mr.Method, mr.Kind, len(cases))
	}
	refusedAdmin, sent, err := s.sendAll(ctx, m, s.c, cases, &mr, "")
	if err != nil {
		return err
	}
	if s.peer != nil && sent > 0 && 2*refusedAdmin >= sent {
		// The admin token may not call this method (a mesh-internal one):
		// its validation is only reached by a mesh peer, so the request
		// cases are sent again through the node's in-process connection.
		var asPeer []Case
		for _, cs := range cases {
			if cs.auth == authAdmin && cs.padHeader == 0 && cs.tokenBytes == 0 && !cs.rawHTTP2 && cs.via == nil {
				asPeer = append(asPeer, cs)
			}
		}
		if _, _, err := s.sendAll(ctx, m, s.peer, asPeer, &mr, "as mesh peer: "); err != nil {
			return err
		}
	}
	mr.Serving = true
	err = s.checkServing(ctx)
	mr.Seconds = time.Since(start).Seconds()
	if err != nil {
		mr.Serving = false
		s.rep.Violations = append(s.rep.Violations, Violation{
			Method: mr.Method, Case: "(health and known-good checks after the batch)", Code: "NOT_SERVING",
			Message: err.Error(), Problem: "the server stopped serving after this method's batch",
		})
		s.rep.Methods = append(s.rep.Methods, mr)
		s.p.method(mr)
		if err := s.waitServing(ctx, s.cfg.recoverWait); err != nil {
			return fmt.Errorf("sweep: after %s: %w: %w", m.full, ErrStoppedServing, err)
		}
		return nil
	}
	s.rep.Methods = append(s.rep.Methods, mr)
	s.p.method(mr)
	return nil
}

// sendAll sends cases (skipping duplicates) through c and tallies them
// into mr. It returns how many request cases (sent with the admin token)
// were refused with PERMISSION_DENIED, and how many were sent.
func (s *sweeper) sendAll(ctx context.Context, m method, c *caller, cases []Case, mr *MethodReport, prefix string) (refused, sent int, err error) {
	seen := map[[sha256.Size]byte]bool{}
	for _, cs := range cases {
		if cs.auth == authUser && c.userToken == c.adminToken {
			continue // no user token: these would repeat the admin cases
		}
		cs.Name = prefix + cs.Name
		var payload []byte
		if !cs.noMessage {
			if payload, err = cs.build(); err != nil {
				return 0, 0, fmt.Errorf("sweep: %s: build %q: %w", m.full, cs.Name, err)
			}
		}
		// Hashed in place: copying multi-megabyte payloads is what the race
		// detector makes slowest.
		h := sha256.New()
		fmt.Fprintf(h, "%d|%d|%d|%t|%t|%v|%d|", cs.auth, cs.padHeader, cs.tokenBytes, cs.rawHTTP2, cs.noMessage, cs.via != nil, cs.repeat)
		h.Write(payload)
		var key [sha256.Size]byte
		h.Sum(key[:0])
		if seen[key] {
			continue
		}
		seen[key] = true

		began := time.Now()
		o := classify(cs, c.send(ctx, m, cs, payload))
		took := time.Since(began)
		if ctx.Err() != nil {
			return 0, 0, fmt.Errorf("sweep: %w", ctx.Err())
		}
		mr.Calls++
		mr.ByCode[o.Code]++
		mr.ByClass[o.Class]++
		s.rep.Calls++
		s.rep.ByCode[o.Code]++
		if cs.auth == authAdmin && cs.via == nil && cs.padHeader == 0 && cs.tokenBytes == 0 && !cs.rawHTTP2 {
			sent++
			if o.Code == CodeName(codes.PermissionDenied) {
				refused++
			}
		}
		if s.cfg.Verbose {
			s.verbose(m, cs, o, took)
		}
		if o.Class == ClassViolation {
			s.rep.Violations = append(s.rep.Violations, Violation{
				Method: mr.Method, Case: cs.Name, Code: o.Code, Reason: o.Reason, Message: o.Message,
				Problem: o.Problem, ServerLog: s.logs.lookup(o.ErrorID),
			})
		}
		if s.guard != nil && m.full == putPolicy && cs.via == nil && o.Class == ClassAccepted {
			if err := s.guard.restore(ctx, s); err != nil {
				return 0, 0, err
			}
		}
	}
	return refused, sent, nil
}

func (s *sweeper) verbose(m method, cs Case, o Outcome, took time.Duration) {
	if s.cfg.JSON {
		s.p.object(struct {
			Type    string  `json:"type"`
			Method  string  `json:"method"`
			Case    string  `json:"case"`
			Seconds float64 `json:"seconds"`
			Outcome
		}{"call", strings.TrimPrefix(m.full, "/"), cs.Name, took.Seconds(), o})
		return
	}
	detail := o.Reason
	if o.Transport != "" {
		detail = "transport: " + o.Transport
	}
	if o.Problem != "" {
		detail += "  VIOLATION: " + o.Problem
	}
	s.p.line("    %-60s %-18s %6.3fs %s", truncateMsg(cs.Name), o.Code, took.Seconds(), detail)
}

// checkServing runs the health check and the known-good call once.
func (s *sweeper) checkServing(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(s.admin(ctx), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(s.c.cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health check: %s", resp.GetStatus())
	}
	if !s.members {
		return nil
	}
	if _, err := meshv1.NewMeshServiceClient(s.c.cc).Members(ctx, &meshv1.MembersRequest{}); err != nil {
		return fmt.Errorf("%s: %w", knownGood, err)
	}
	return nil
}

// waitServing polls checkServing until it passes or the limit passes.
func (s *sweeper) waitServing(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := s.checkServing(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
