// Package node assembles one process of the mesh: the gRPC server with its
// interceptors, memberlist membership, telemetry, and the services this
// node runs, each wired to the others only through generated gRPC clients
// over mesh connections (in-process ones when the peer service is here).
// `continuum up`, `continuum serve` and the multi-node tests all build
// their nodes here, so every shape runs the same code.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/mesh"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	"github.com/continuum-mesh/continuum/pkg/telemetry"
)

// component is one service as the node runs it.
type component struct {
	name string
	// run is the service's background work, if any.
	run func(ctx context.Context) error
	// beforeLeave runs while the server still serves and before the node
	// leaves the mesh (hand-offs).
	beforeLeave func(ctx context.Context) error
	// close releases stores; it runs last, after the server stopped.
	close func() error
}

// Node is a running process of the mesh.
type Node struct {
	cfg       Config
	log       *slog.Logger
	tel       *telemetry.Telemetry
	server    *rpc.Server
	mesh      *mesh.Mesh
	local     *grpc.ClientConn
	channel   *rpc.Channel
	clientTLS *tls.Config
	tokens    *auth.Tokens

	components []component
	crashed    atomic.Bool
	closeOnce  sync.Once
	// Wired services, for tests and the binary.
	Services Services
}

// New builds a node: it binds the gRPC and gossip listeners and constructs
// every service, but starts nothing until Run.
func New(cfg Config, log *slog.Logger) (_ *Node, err error) {
	if err := cfg.validate(knownServices()); err != nil {
		return nil, err
	}
	if cfg.Level == nil {
		cfg.Level = new(slog.LevelVar)
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("node", cfg.Node)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	n := &Node{cfg: cfg, log: log, tel: telemetry.New(cfg.Node, cfg.Level)}
	defer func() {
		if err != nil {
			n.closeAll()
		}
	}()

	if cfg.TokensFile != "" {
		if n.tokens, err = auth.LoadTokens(cfg.TokensFile); err != nil {
			return nil, err
		}
	}
	serverTLS, clientTLS, err := loadTLS(cfg)
	if err != nil {
		return nil, err
	}
	n.clientTLS = clientTLS
	n.server, err = rpc.New(rpc.Config{Node: cfg.Node, Listen: cfg.Listen, TLS: serverTLS, DrainTimeout: cfg.DrainTimeout},
		rpc.Deps{Logger: log, Tokens: n.tokens, Telemetry: n.tel})
	if err != nil {
		return nil, err
	}
	n.local, err = n.server.DialInproc(n.tel.DialOptions()...)
	if err != nil {
		return nil, err
	}
	n.channel = n.server.Channel(n.local)
	advertise := cfg.Advertise
	if advertise == "" {
		advertise = n.server.Addr()
	}
	if advertise, err = resolveAdvertise(advertise); err != nil {
		return nil, err
	}
	gossipAdvertise, err := resolveAdvertise(cfg.GossipAdvertise)
	if err != nil {
		return nil, err
	}
	gossip := cfg.GossipListen
	if gossip == "" {
		gossip = "127.0.0.1:0"
	}
	n.mesh, err = mesh.New(mesh.Config{
		Node: cfg.Node, GossipAddr: gossip, AdvertiseAddr: gossipAdvertise, GRPCAddr: advertise,
		Services: cfg.services(), Peers: cfg.Peers, Rooms: cfg.Rooms, Join: cfg.Join,
		Profile: cfg.MeshProfile, SecretKey: cfg.GossipKey,
	}, mesh.Deps{Logger: log, Dial: n.dialMember, Local: n.channel, Now: time.Now})
	if err != nil {
		return nil, err
	}
	if err := n.wire(); err != nil {
		return nil, err
	}
	n.server.EndOnDrain(longLivedStreams...)
	n.server.SetFallback(n.proxy)
	return n, nil
}

// dialMember opens a mesh connection to another member: mTLS naming that
// member when the node has mesh certificates, plaintext otherwise (such a
// hop is not a mesh peer to the far side, which then refuses identities it
// carries).
func (n *Node) dialMember(_ context.Context, m mesh.Member) (grpc.ClientConnInterface, error) {
	creds := insecure.NewCredentials()
	if n.clientTLS != nil {
		creds = credentials.NewTLS(expectNode(n.clientTLS, m.Name))
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithInitialWindowSize(rpc.WindowSize), grpc.WithInitialConnWindowSize(rpc.WindowSize),
	}, n.tel.DialOptions()...)
	cc, err := grpc.NewClient(m.GRPCAddr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial member %s at %s: %w", m.Name, m.GRPCAddr, err)
	}
	return cc, nil
}

// Addr is the gRPC address the node listens on.
func (n *Node) Addr() string { return n.server.Addr() }

// GossipAddr is the memberlist address of the node.
func (n *Node) GossipAddr() string { return n.mesh.Self().GossipAddr }

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Node }

// Mesh is the node's membership.
func (n *Node) Mesh() *mesh.Mesh { return n.mesh }

// Local is an in-process client connection to this node, authenticated as
// the node itself.
func (n *Node) Local() *grpc.ClientConn { return n.local }

// Channel is the direct in-process channel to this node's server (see
// rpc.Channel): unary calls to the services it runs skip HTTP/2 but not
// the interceptors. The mesh uses it for every call to this node.
func (n *Node) Channel() grpc.ClientConnInterface { return n.channel }

// Run serves until ctx ends, then drains in order: health NOT_SERVING,
// hand-offs, leave the mesh, stop background loops, GracefulStop with a
// forced Stop after the drain timeout, close stores last.
func (n *Node) Run(ctx context.Context) error {
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServe()
	serveDone := make(chan error, 1)
	go func() { serveDone <- n.server.Serve(serveCtx) }()

	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBg()
	g, gctx := errgroup.WithContext(bgCtx)
	g.Go(func() error { return n.mesh.Run(gctx) })
	for _, c := range n.components {
		if c.run != nil {
			g.Go(func() error {
				if err := c.run(gctx); err != nil && !errors.Is(err, context.Canceled) {
					return fmt.Errorf("%s: %w", c.name, err)
				}
				return nil
			})
		}
	}
	joinErr := make(chan error, 1)
	go func() { joinErr <- n.mesh.Start(gctx) }()
	n.log.Info("node serving", "grpc", n.Addr(), "gossip", n.GossipAddr(), "services", strings.Join(n.cfg.services(), ","))

	var runErr error
	select {
	case <-ctx.Done():
	case <-gctx.Done():
		runErr = g.Wait()
	case err := <-serveDone:
		runErr = err
		serveDone <- nil
	case err := <-joinErr:
		if err != nil && ctx.Err() == nil {
			n.log.Warn("join failed; serving alone until a member is reachable", "error", err)
		}
		select {
		case <-ctx.Done():
		case <-gctx.Done():
			runErr = g.Wait()
		case err := <-serveDone:
			runErr = err
			serveDone <- nil
		}
	}
	n.drain(stopBg, g, stopServe, serveDone)
	return runErr
}

func (n *Node) drain(stopBg context.CancelFunc, g *errgroup.Group, stopServe context.CancelFunc, serveDone chan error) {
	n.log.Info("draining")
	n.server.Health().Shutdown()
	if !n.crashed.Load() {
		// Draining first: from here on no member counts this node as the
		// owner of a sharded key, so the hand-offs below go to the members
		// that will own the keys once it is gone, also when several nodes
		// stop at once (a scale-down).
		if err := n.mesh.Drain(time.Second); err != nil {
			n.log.Warn("announce draining", "error", err)
		}
		hctx, cancel := context.WithTimeout(context.Background(), n.drainTimeout())
		for i := len(n.components) - 1; i >= 0; i-- {
			if c := n.components[i]; c.beforeLeave != nil {
				if err := c.beforeLeave(hctx); err != nil {
					n.log.Error("hand-off before leaving failed", "service", c.name, "error", err)
				}
			}
		}
		cancel()
		if err := n.mesh.Leave(3 * time.Second); err != nil {
			n.log.Warn("leave mesh", "error", err)
		}
	}
	stopBg()
	if err := g.Wait(); err != nil {
		n.log.Error("background work ended with an error", "error", err)
	}
	stopServe()
	if err := <-serveDone; err != nil {
		n.log.Error("serve ended with an error", "error", err)
	}
	n.closeAll()
	n.log.Info("stopped")
}

func (n *Node) drainTimeout() time.Duration {
	if n.cfg.DrainTimeout > 0 {
		return n.cfg.DrainTimeout
	}
	return 10 * time.Second
}

// closeAll closes stores (reverse start order), connections and telemetry,
// once.
func (n *Node) closeAll() {
	n.closeOnce.Do(n.doClose)
}

func (n *Node) doClose() {
	for i := len(n.components) - 1; i >= 0; i-- {
		if c := n.components[i]; c.close != nil {
			if err := c.close(); err != nil {
				n.log.Error("close", "service", c.name, "error", err)
			}
		}
	}
	if n.mesh != nil {
		_ = n.mesh.Close()
	}
	if n.local != nil {
		_ = n.local.Close()
	}
	if n.tel != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.tel.Shutdown(ctx)
		cancel()
	}
}

// Crash cuts the node off abruptly, as a kill would: gossip stops without
// a leave and every connection drops. Run then returns (once its context
// ends) without hand-off or leave, only releasing what the process holds.
// For failure tests.
func (n *Node) Crash() {
	n.crashed.Store(true)
	_ = n.mesh.Shutdown()
	n.server.GRPC().Stop()
}

// IsLoopback reports whether a listen address is on the loopback range.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
