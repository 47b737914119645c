package node

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/continuum-mesh/continuum/pkg/mesh"
)

// Config is everything a node needs to know before it starts.
type Config struct {
	// Node is this node's name. Required.
	Node string
	// Services to run here (short names); nil runs every service.
	Services []string
	// Listen is the gRPC address (":0" for an ephemeral port).
	Listen string
	// Advertise is the gRPC address other members dial; empty is the
	// address Listen bound.
	Advertise string
	// GossipListen is the memberlist bind address; empty is 127.0.0.1:0
	// for an embedded single node.
	GossipListen string
	// GossipAdvertise is the gossip address others use, when it differs.
	GossipAdvertise string
	// Join lists gossip addresses of members to join.
	Join []string
	// MeshProfile is "lan" or "local".
	MeshProfile string
	// GossipKey encrypts gossip when set.
	GossipKey []byte
	// Peers hosted here; nil is one peer named after the node.
	Peers []mesh.HostedPeer
	// Rooms this node is a member of.
	Rooms []string
	// DataDir holds every service's files.
	DataDir string
	// PolicyFile is the router's policy (YAML); empty uses the default
	// policy.
	PolicyFile string
	// TokensFile maps bearer tokens to principals (YAML).
	TokensFile string
	// TLS: the node's certificate and key and the mesh CA. With all three,
	// the node serves TLS, recognises mesh peers by client certificate and
	// dials members with mTLS.
	TLSCert, TLSKey, TLSCA string
	// TLSServerOnly serves TLS with TLSCert/TLSKey but without a mesh CA
	// (a single node that only needs to encrypt its external callers).
	TLSServerOnly bool
	// HTTPListen serves the HTTP gateway and status page there (the
	// "gateway" service); empty serves none unless "gateway" is named, which
	// then listens on 127.0.0.1:8080.
	HTTPListen string
	// GenomeTiers is the genome tier chain ("fast=256MiB,warm=1GiB,...").
	GenomeTiers string
	// DrainTimeout bounds the graceful part of shutdown; zero is 10 s.
	DrainTimeout time.Duration
	// Level is the node's run-time log level; nil makes one.
	Level *slog.LevelVar
}

// AllServices are the services a node runs when none are named, in start
// order (what others depend on first).
var AllServices = []string{
	"mesh", "debug", "router", "events", "audit", "genome", "hippocampus",
	// continuum:generate:services (continuum generate service inserts names above)
}

// Gateway is the HTTP face, run by naming "gateway" or setting HTTPListen;
// it is not among AllServices, so test nodes do not bind port 8080.
const Gateway = "gateway"

// Has reports whether the node runs service.
func (c Config) Has(service string) bool {
	return slices.Contains(c.services(), service)
}

func (c Config) services() []string {
	if len(c.Services) == 0 {
		out := slices.Clone(AllServices)
		if c.HTTPListen != "" {
			out = append(out, Gateway)
		}
		return out
	}
	out := []string{"mesh", "debug"}
	for _, s := range c.Services {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if c.HTTPListen != "" && !slices.Contains(out, Gateway) {
		out = append(out, Gateway)
	}
	return out
}

func (c Config) validate(known []string) error {
	if c.Node == "" {
		return fmt.Errorf("node: a node name is required")
	}
	if c.DataDir == "" {
		return fmt.Errorf("node: a data directory is required")
	}
	for _, s := range c.services() {
		if !slices.Contains(known, s) {
			return fmt.Errorf("node: unknown service %q (known: %v)", s, known)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("node: --tls-cert and --tls-key go together")
	}
	if c.TLSCA != "" && c.TLSCert == "" {
		return fmt.Errorf("node: --tls-ca needs --tls-cert and --tls-key")
	}
	return nil
}
