package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/certs"
	"github.com/continuum-mesh/continuum/pkg/mesh"
	"github.com/continuum-mesh/continuum/pkg/node"
	"github.com/continuum-mesh/continuum/services/debug"
)

// nodeFlags are the flags `up` and `serve` share.
type nodeFlags struct {
	node, listen, advertise, data, policy, tokens            string
	gossip, gossipAdvertise, profile, gossipKeyFile          string
	tlsCert, tlsKey, tlsCA, logLevel, logFormat, genomeTiers string
	certsDir, http                                           string
	insecure                                                 bool
	gcPercent                                                int
	join, peers, rooms                                       listFlag
}

func (f *nodeFlags) register(fs *flag.FlagSet, defaults nodeFlags) {
	fs.StringVar(&f.node, "node", defaults.node, "this node's name")
	fs.StringVar(&f.listen, "listen", defaults.listen, "gRPC listen address")
	fs.StringVar(&f.advertise, "advertise", "", "gRPC address other members dial (default: the listen address; ':PORT' uses this host's first non-loopback IP)")
	fs.StringVar(&f.data, "data", defaults.data, "data directory ('{node}' is replaced by the node name)")
	fs.StringVar(&f.policy, "policy", "", "policy YAML file (default: <data>/policy.yaml, written with the default policy when missing)")
	fs.StringVar(&f.tokens, "tokens", "", "bearer tokens YAML file (default: <data>/tokens.yaml)")
	fs.StringVar(&f.gossip, "gossip", defaults.gossip, "memberlist bind address")
	fs.StringVar(&f.gossipAdvertise, "gossip-advertise", "", "memberlist address other members use (':PORT' uses this host's first non-loopback IP)")
	fs.StringVar(&f.profile, "mesh-profile", "lan", "failure detection profile: lan or local")
	fs.StringVar(&f.gossipKeyFile, "gossip-key-file", "", "file holding a 16/24/32-byte gossip encryption key")
	fs.Var(&f.join, "join", "gossip address of a member to join (repeatable)")
	fs.Var(&f.peers, "peers", "peers hosted here, as name or name:env+env (repeatable; default: one peer named after the node)")
	fs.Var(&f.rooms, "rooms", "room UUIDs this node is a member of (repeatable)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate (node certificate from 'continuum certs issue')")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS key")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "mesh CA certificate: enables mTLS between members")
	fs.StringVar(&f.certsDir, "certs-dir", "", "mesh certificates directory: uses ca.crt and <node>.crt/.key there, or issues this node's certificate from ca.key into <data>/certs when it has none (for scaled replicas)")
	fs.BoolVar(&f.insecure, "insecure", false, "allow plaintext gRPC on a non-loopback address")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.http, "http", defaults.http, "HTTP gateway and status page address (empty: none)")
	fs.StringVar(&f.genomeTiers, "genome-tiers", "", "genome tier chain, e.g. fast=256MiB,warm=1GiB,bench=4GiB,cold=16GiB,frozen=64GiB")
	fs.IntVar(&f.gcPercent, "gc-percent", node.DefaultGCPercent, "garbage collector target (GOGC), unless the GOGC environment variable is set; a soft memory limit of 90% of the container's follows unless GOMEMLIMIT is set")
}

// config turns flags into a node config, bootstrapping the data directory
// (admin token, tokens file, default policy) when asked to.
func (f *nodeFlags) config(services []string, stdout io.Writer, bootstrap bool) (node.Config, *slog.LevelVar, error) {
	level := new(slog.LevelVar)
	l, ok := debug.ParseLevel(f.logLevel)
	if !ok {
		return node.Config{}, nil, usageError("--log-level must be debug, info, warn or error")
	}
	level.Set(l)
	if f.gcPercent < -1 {
		return node.Config{}, nil, usageError("--gc-percent must be -1 (collector off) or at least 0")
	}
	f.data = strings.ReplaceAll(f.data, "{node}", f.node)
	if f.certsDir != "" {
		if err := f.useCertsDir(); err != nil {
			return node.Config{}, nil, err
		}
	}
	if f.tlsCert == "" && !f.insecure && !node.IsLoopback(f.listen) {
		return node.Config{}, nil, usageError("refusing plaintext gRPC on %s: give --tls-cert/--tls-key, listen on loopback, or pass --insecure", f.listen)
	}
	peers, err := parsePeers(f.peers)
	if err != nil {
		return node.Config{}, nil, usageError("--peers: %v", err)
	}
	cfg := node.Config{
		Node: f.node, Services: services, Listen: f.listen, Advertise: f.advertise,
		GossipListen: f.gossip, GossipAdvertise: f.gossipAdvertise, Join: f.join, MeshProfile: f.profile,
		Peers: peers, Rooms: f.rooms, DataDir: f.data, PolicyFile: f.policy, TokensFile: f.tokens,
		TLSCert: f.tlsCert, TLSKey: f.tlsKey, TLSCA: f.tlsCA, TLSServerOnly: f.tlsCert != "" && f.tlsCA == "",
		GenomeTiers: f.genomeTiers, Level: level, HTTPListen: f.http,
	}
	if f.gossipKeyFile != "" {
		key, err := os.ReadFile(f.gossipKeyFile)
		if err != nil {
			return node.Config{}, nil, fmt.Errorf("gossip key: %w", err)
		}
		cfg.GossipKey = []byte(strings.TrimSpace(string(key)))
	}
	if err := os.MkdirAll(f.data, 0o750); err != nil {
		return node.Config{}, nil, fmt.Errorf("data dir: %w", err)
	}
	if cfg.TokensFile == "" {
		cfg.TokensFile = filepath.Join(f.data, "tokens.yaml")
		if bootstrap {
			if err := bootstrapTokens(f.data, cfg.TokensFile, stdout); err != nil {
				return node.Config{}, nil, err
			}
		} else if _, err := os.Stat(cfg.TokensFile); errors.Is(err, fs.ErrNotExist) {
			cfg.TokensFile = ""
		}
	}
	if cfg.PolicyFile == "" {
		// The router opens it and writes the default policy when missing.
		cfg.PolicyFile = filepath.Join(f.data, "policy.yaml")
	}
	return cfg, level, nil
}

// parsePeers parses "maya" or "maya:web+vr".
func parsePeers(in []string) ([]mesh.HostedPeer, error) {
	var out []mesh.HostedPeer
	for _, p := range in {
		name, envs, _ := strings.Cut(p, ":")
		if name == "" {
			return nil, fmt.Errorf("empty peer name in %q", p)
		}
		hp := mesh.HostedPeer{Name: name}
		if envs != "" {
			hp.Envs = strings.Split(envs, "+")
		}
		out = append(out, hp)
	}
	return out, nil
}

// bootstrapTokens writes <data>/admin.token and <data>/user.token when
// missing and a tokens file holding only their SHA-256.
func bootstrapTokens(dir, tokensFile string, stdout io.Writer) error {
	admin, err := ensureToken(filepath.Join(dir, "admin.token"))
	if err != nil {
		return err
	}
	user, err := ensureToken(filepath.Join(dir, "user.token"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(tokensFile); err == nil {
		return nil
	}
	f := auth.TokensFile{Tokens: []auth.TokenEntry{
		{Principal: "admin", SHA256: sha(admin), Admin: true},
		{Principal: "user", SHA256: sha(user)},
	}}
	b, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	head := "# Bearer tokens and the principals they stand for. Only hashes are kept\n# here; the tokens are in admin.token and user.token.\n"
	if err := os.WriteFile(tokensFile, append([]byte(head), b...), 0o600); err != nil {
		return fmt.Errorf("write tokens: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s, %s and %s\n", filepath.Join(dir, "admin.token"), filepath.Join(dir, "user.token"), tokensFile)
	return nil
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func ensureToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	}
	t, err := auth.NewToken()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write token: %w", err)
	}
	return t, nil
}

func cmdUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("up", stderr)
	var f nodeFlags
	f.register(fs, nodeFlags{node: "local", listen: "127.0.0.1:7400", data: "./data", gossip: "127.0.0.1:0", http: "127.0.0.1:8080"})
	if _, err := parseInterleaved(fs, args); err != nil {
		return usageError("%v", err)
	}
	cfg, level, err := f.config(nil, stdout, true)
	if err != nil {
		return err
	}
	log := newLogger(stderr, level, f.logFormat)
	node.TuneRuntime(f.gcPercent, log)
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	plain := "-plaintext "
	if cfg.TLSCert != "" {
		plain = "-insecure "
	}
	fmt.Fprintf(stdout, "continuum up: every service on %s (node %s, data %s)\n", n.Addr(), cfg.Node, cfg.DataDir)
	fmt.Fprintf(stdout, "try:\n  grpcurl %s-H \"authorization: Bearer $(cat %s)\" %s list\n",
		plain, filepath.Join(cfg.DataDir, "admin.token"), n.Addr())
	fmt.Fprintf(stdout, "  grpcurl %s-H \"authorization: Bearer $(cat %s)\" -d '{\"uri\":\"mesh/members\"}' %s continuum.router.v1.RouterService/Dispatch\n",
		plain, filepath.Join(cfg.DataDir, "admin.token"), n.Addr())
	if gw := n.Services.Gateway; gw != nil {
		// The bound address, so --http 127.0.0.1:0 names its port.
		fmt.Fprintf(stdout, "status page: http://%s/ (paste the token from %s)\n", gw.Addr(), filepath.Join(cfg.DataDir, "admin.token"))
	}
	return n.Run(ctx)
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	var f nodeFlags
	host, _ := os.Hostname()
	f.register(fs, nodeFlags{node: host, listen: "127.0.0.1:7400", data: "./data", gossip: "0.0.0.0:7946"})
	services, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError("%v", err)
	}
	if len(services) == 0 {
		return usageError("name the services to serve: %s", strings.Join(node.AllServices, " "))
	}
	if len(services) == 1 && services[0] == "all" {
		services = nil
	}
	cfg, level, err := f.config(services, stdout, false)
	if err != nil {
		return err
	}
	log := newLogger(stderr, level, f.logFormat)
	node.TuneRuntime(f.gcPercent, log)
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	return n.Run(ctx)
}

// useCertsDir points the TLS flags at a mesh certificates directory. A
// node without a certificate of its own there gets one issued from the CA
// key into <data>/certs: scaled replicas cannot be named ahead of time.
func (f *nodeFlags) useCertsDir() error {
	f.tlsCA = filepath.Join(f.certsDir, certs.CACertFile)
	cert := filepath.Join(f.certsDir, certs.NodeCertFile(f.node))
	key := filepath.Join(f.certsDir, certs.NodeKeyFile(f.node))
	if _, err := os.Stat(cert); err == nil {
		f.tlsCert, f.tlsKey = cert, key
		return nil
	}
	own := filepath.Join(f.data, "certs")
	f.tlsCert = filepath.Join(own, certs.NodeCertFile(f.node))
	f.tlsKey = filepath.Join(own, certs.NodeKeyFile(f.node))
	if fresh(f.tlsCert) {
		return nil
	}
	ca, err := certs.LoadCA(f.certsDir)
	if err != nil {
		return fmt.Errorf("--certs-dir: no certificate for node %s and no CA to issue one: %w", f.node, err)
	}
	hosts := []string{}
	if h, err := os.Hostname(); err == nil && h != f.node {
		hosts = append(hosts, h)
	}
	kp, err := ca.Issue(f.node, hosts, certs.Options{})
	if err != nil {
		return fmt.Errorf("--certs-dir: %w", err)
	}
	if err := os.MkdirAll(own, 0o700); err != nil {
		return fmt.Errorf("--certs-dir: %w", err)
	}
	if err := os.WriteFile(f.tlsKey, kp.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("--certs-dir: %w", err)
	}
	if err := os.WriteFile(f.tlsCert, kp.CertPEM, 0o600); err != nil {
		return fmt.Errorf("--certs-dir: %w", err)
	}
	return nil
}

// fresh reports whether a certificate file exists and stays valid for at
// least another 30 days; an auto-issued one is reissued before it expires.
func fresh(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false
	}
	return time.Until(cert.NotAfter) > 30*24*time.Hour
}
