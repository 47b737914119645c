// Package nodetest starts real nodes of the mesh in one test process, on
// 127.0.0.1 with ephemeral ports: mTLS between them from a throwaway CA,
// bearer tokens for external callers, memberlist with the fast "local"
// failure-detection profile. The same node code as `continuum serve` runs.
package nodetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/continuum-mesh/continuum/pkg/certs"
	"github.com/continuum-mesh/continuum/pkg/certs/certstest"
	"github.com/continuum-mesh/continuum/pkg/mesh"
	"github.com/continuum-mesh/continuum/pkg/node"
)

// Tokens every test mesh accepts.
const (
	AdminToken = "nodetest-admin"
	UserToken  = "nodetest-user"
)

// Mesh is a set of test nodes sharing a CA and a tokens file.
type Mesh struct {
	t      testing.TB
	ca     *certstest.CA
	dir    string
	tokens string
	mu     sync.Mutex
	nodes  map[string]*Node
	first  string
}

// Node is one running node.
type Node struct {
	*node.Node
	Config node.Config
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// New prepares a mesh; nodes are added with Start.
func New(t testing.TB) *Mesh {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	body := "tokens:\n  - principal: admin\n    token: " + AdminToken + "\n    admin: true\n  - principal: user\n    token: " + UserToken + "\n"
	if err := os.WriteFile(tokens, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &Mesh{t: t, ca: certstest.NewCA(t), dir: dir, tokens: tokens, nodes: map[string]*Node{}}
	t.Cleanup(m.StopAll)
	return m
}

// Options shape one node.
type Options struct {
	// Services run on the node; nil runs all.
	Services []string
	// Policy is the node's policy YAML; empty is the default policy.
	Policy string
	// Peers hosted; nil is one peer named after the node.
	Peers []mesh.HostedPeer
	Rooms []string
	// DataDir reuses a directory (for restarts); empty makes one.
	DataDir string
	// Logger; nil discards.
	Logger *slog.Logger
}

// Start starts a node named name and joins it to the first node started.
func (m *Mesh) Start(name string, opts Options) *Node {
	m.t.Helper()
	kp := m.ca.Issue(name)
	certFile := filepath.Join(m.dir, certs.NodeCertFile(name))
	keyFile := filepath.Join(m.dir, certs.NodeKeyFile(name))
	caFile := filepath.Join(m.dir, certs.CACertFile)
	for f, b := range map[string][]byte{certFile: kp.CertPEM, keyFile: kp.KeyPEM, caFile: m.ca.CertPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			m.t.Fatal(err)
		}
	}
	data := opts.DataDir
	if data == "" {
		data = m.t.TempDir()
	}
	cfg := node.Config{
		Node: name, Services: opts.Services, Listen: "127.0.0.1:0", GossipListen: "127.0.0.1:0",
		MeshProfile: "local", Peers: opts.Peers, Rooms: opts.Rooms, DataDir: data, TokensFile: m.tokens,
		TLSCert: certFile, TLSKey: keyFile, TLSCA: caFile, DrainTimeout: 5 * time.Second,
	}
	if opts.Policy != "" {
		cfg.PolicyFile = filepath.Join(data, "policy.yaml")
		if err := os.WriteFile(cfg.PolicyFile, []byte(opts.Policy), 0o600); err != nil {
			m.t.Fatal(err)
		}
	}
	m.mu.Lock()
	if m.first != "" {
		cfg.Join = []string{m.nodes[m.first].GossipAddr()}
	}
	m.mu.Unlock()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n, err := node.New(cfg, log)
	if err != nil {
		m.t.Fatalf("start node %s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tn := &Node{Node: n, Config: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { tn.done <- n.Run(ctx) }()
	m.mu.Lock()
	if m.first == "" || m.nodes[m.first] == nil {
		m.first = name
	}
	m.nodes[name] = tn
	m.mu.Unlock()
	return tn
}

// Stop drains a node gracefully (it leaves the mesh).
func (m *Mesh) Stop(name string) {
	m.mu.Lock()
	n := m.nodes[name]
	delete(m.nodes, name)
	if m.first == name {
		m.first = ""
		for k := range m.nodes {
			m.first = k
			break
		}
	}
	m.mu.Unlock()
	if n != nil {
		n.stop(m.t)
	}
}

// Crash stops a node abruptly: no hand-off, no leave.
func (m *Mesh) Crash(name string) {
	m.mu.Lock()
	n := m.nodes[name]
	m.mu.Unlock()
	if n != nil {
		n.Crash()
		m.Stop(name)
	}
}

func (n *Node) stop(t testing.TB) {
	n.once.Do(func() {
		n.cancel()
		select {
		case err := <-n.done:
			if err != nil {
				t.Errorf("node %s: %v", n.Name(), err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("node %s did not stop within 30 s", n.Name())
		}
	})
}

// StopAll stops every node.
func (m *Mesh) StopAll() {
	m.mu.Lock()
	names := make([]string, 0, len(m.nodes))
	for k := range m.nodes {
		names = append(names, k)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, k := range names {
		wg.Add(1)
		go func() { defer wg.Done(); m.Stop(k) }()
	}
	wg.Wait()
}

// Dial returns an external client connection to a node: TLS verified
// against the mesh CA, calls carrying token (none when empty).
func (m *Mesh) Dial(n *Node, token string) *grpc.ClientConn {
	m.t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(m.ca.CertPEM)
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}))}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	cc, err := grpc.NewClient(n.Addr(), opts...)
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// WithCaller returns ctx carrying raw caller metadata, for forgery tests.
func WithCaller(ctx context.Context, value string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-continuum-caller", value)
}

// WaitMembers polls until every node sees exactly want live members.
func (m *Mesh) WaitMembers(want int, timeout time.Duration) {
	m.t.Helper()
	Eventually(m.t, timeout, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, n := range m.nodes {
			if len(n.Mesh().Members()) != want {
				return false
			}
		}
		return true
	}, "every node to see %d members", want)
}

// Eventually polls cond until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for "+what, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
