package mesh

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/continuum-mesh/continuum/pkg/uri"
)

// Config says who this node is, what it serves and whom it gossips with.
type Config struct {
	// Node is the node name (the memberlist node name): ASCII letters,
	// digits, '-', '_' and '.', at most 64 bytes. Required.
	Node string
	// GossipAddr is the host:port the gossip (UDP and TCP) listener binds.
	// Port 0 binds an ephemeral port; Self().GossipAddr reports the real
	// one. Empty is "0.0.0.0:7946".
	GossipAddr string
	// AdvertiseAddr is the optional host:port others should use to reach
	// this node's gossip listener (behind NAT or in compose). A host name
	// is resolved once, in New.
	AdvertiseAddr string
	// GRPCAddr is this node's advertised gRPC address. Required.
	GRPCAddr string
	// Services are the short names served here: "router", "events",
	// "genome", "hippocampus", "audit", "mesh", "debug", ... Lower-case
	// letters, digits and '-'.
	Services []string
	// Peers are the peers hosted here. Nil means one peer named Node with
	// no envs.
	Peers []HostedPeer
	// Rooms are the room UUIDs this node is a member of.
	Rooms []string
	// Join are gossip addresses (host:port) to join.
	Join []string
	// Profile is "lan" (the default) or "local" (loopback tests: a killed
	// node is declared dead within about 1-2 s).
	Profile string
	// SecretKey, when set, encrypts gossip (16, 24 or 32 bytes: AES-128,
	// -192 or -256). Every node of a mesh needs the same key.
	SecretKey []byte
	// DeadMemberTTL is how long a failed (not left) member is remembered
	// as DEAD. Zero is 24h.
	DeadMemberTTL time.Duration
}

// HostedPeer is a peer this node hosts and the envs it runs in.
type HostedPeer struct {
	Name string
	Envs []string
}

// Profiles.
const (
	ProfileLAN   = "lan"
	ProfileLocal = "local"
)

// DefaultDeadMemberTTL is how long a failed member is remembered by default.
const DefaultDeadMemberTTL = 24 * time.Hour

// DefaultGossipAddr is where gossip binds when Config.GossipAddr is empty.
const DefaultGossipAddr = "0.0.0.0:7946"

const (
	maxNameLen    = 64
	maxServiceLen = 64
	maxAddrLen    = 255
)

// normalize validates cfg and returns a copy in canonical form: services
// sorted and de-duplicated, peer names and rooms in their canonical
// spelling (UUIDs lower-case), envs sorted and de-duplicated.
func (cfg Config) normalize() (Config, error) {
	if err := checkNodeName(cfg.Node); err != nil {
		return cfg, err
	}
	if cfg.GossipAddr == "" {
		cfg.GossipAddr = DefaultGossipAddr
	}
	if _, _, err := splitHostPort(cfg.GossipAddr); err != nil {
		return cfg, fmt.Errorf("mesh: gossip address: %w", err)
	}
	if cfg.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(cfg.AdvertiseAddr); err != nil {
			return cfg, fmt.Errorf("mesh: advertise address: %w", err)
		}
	}
	if err := checkGRPCAddr(cfg.GRPCAddr); err != nil {
		return cfg, err
	}
	svcs, err := normalizeServices(cfg.Services)
	if err != nil {
		return cfg, err
	}
	cfg.Services = svcs
	if cfg.Peers == nil {
		cfg.Peers = []HostedPeer{{Name: cfg.Node}}
	}
	peers, err := normalizePeers(cfg.Peers)
	if err != nil {
		return cfg, err
	}
	cfg.Peers = peers
	rooms, err := normalizeRooms(cfg.Rooms)
	if err != nil {
		return cfg, err
	}
	cfg.Rooms = rooms
	for _, j := range cfg.Join {
		if _, _, err := splitHostPort(j); err != nil {
			return cfg, fmt.Errorf("mesh: join address: %w", err)
		}
	}
	switch cfg.Profile {
	case "":
		cfg.Profile = ProfileLAN
	case ProfileLAN, ProfileLocal:
	default:
		return cfg, fmt.Errorf("mesh: profile %q is not %q or %q", cfg.Profile, ProfileLAN, ProfileLocal)
	}
	if len(cfg.SecretKey) > 0 {
		if err := memberlist.ValidateKey(cfg.SecretKey); err != nil {
			return cfg, fmt.Errorf("mesh: secret key: %w", err)
		}
	}
	switch {
	case cfg.DeadMemberTTL < 0:
		return cfg, errors.New("mesh: dead member TTL must not be negative")
	case cfg.DeadMemberTTL == 0:
		cfg.DeadMemberTTL = DefaultDeadMemberTTL
	}
	return cfg, nil
}

func checkNodeName(n string) error {
	if n == "" {
		return errors.New("mesh: node name is required")
	}
	if len(n) > maxNameLen {
		return fmt.Errorf("mesh: node name %.20q... is longer than %d bytes", n, maxNameLen)
	}
	// The node alphabet is the URI's (airc://peer@node/...).
	u, err := uri.Parse("airc://p@" + n + "/x")
	if err != nil || u.Node != n {
		return fmt.Errorf("mesh: node name %q has characters outside [A-Za-z0-9._-]", n)
	}
	return nil
}

func checkGRPCAddr(a string) error {
	if a == "" {
		return errors.New("mesh: gRPC address is required")
	}
	if len(a) > maxAddrLen {
		return fmt.Errorf("mesh: gRPC address is longer than %d bytes", maxAddrLen)
	}
	if _, _, err := splitHostPort(a); err != nil {
		return fmt.Errorf("mesh: gRPC address: %w", err)
	}
	return nil
}

func splitHostPort(a string) (string, int, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %w", a, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%q: port %q is not 0-65535", a, port)
	}
	return host, p, nil
}

// ValidService reports whether s is a valid service short name:
// lower-case [a-z][a-z0-9-]*, at most 64 bytes.
func ValidService(s string) bool { return checkService(s) == nil }

// checkService validates a service short name.
func checkService(s string) error {
	if s == "" || len(s) > maxServiceLen {
		return fmt.Errorf("mesh: service name %q must be 1-%d bytes", s, maxServiceLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z':
		case i > 0 && ('0' <= c && c <= '9' || c == '-'):
		default:
			return fmt.Errorf("mesh: service name %q is not lower-case [a-z][a-z0-9-]*", s)
		}
	}
	return nil
}

func normalizeServices(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if err := checkService(s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// CanonicalPeer returns the canonical spelling of a peer name (UUIDs in
// lower case) and whether it is valid as URI.md defines peers.
func CanonicalPeer(p string) (string, bool) {
	if p == "" || len(p) > maxNameLen {
		return "", false
	}
	u, err := uri.Parse("airc://" + p + "/x")
	if err != nil || u.Kind != uri.KindPeer || u.Node != "" || u.Env != "" {
		return "", false
	}
	return u.Peer, true
}

// CanonicalRoom returns the canonical (lower-case) spelling of a room UUID.
func CanonicalRoom(r string) (string, bool) {
	if len(r) != 36 {
		return "", false
	}
	u, err := uri.Parse("airc://room:" + r + "/x")
	if err != nil || u.Kind != uri.KindRoom {
		return "", false
	}
	return u.Room, true
}

func checkEnv(e string) error {
	if e == "*" || e == "" || len(e) > maxNameLen {
		return fmt.Errorf("mesh: env %q is not web, tty, cli, vr, ar, headless or x-<vendor>", e)
	}
	if _, err := uri.Parse("airc://p:" + e + "/x"); err != nil {
		return fmt.Errorf("mesh: env %q is not web, tty, cli, vr, ar, headless or x-<vendor>", e)
	}
	return nil
}

func normalizePeers(in []HostedPeer) ([]HostedPeer, error) {
	out := make([]HostedPeer, 0, len(in))
	seen := map[string]bool{}
	for _, p := range in {
		name, ok := CanonicalPeer(p.Name)
		if !ok {
			return nil, fmt.Errorf("mesh: hosted peer %q is not a peer name or UUID (see URI.md)", p.Name)
		}
		if seen[name] {
			return nil, fmt.Errorf("mesh: hosted peer %q is listed twice", name)
		}
		seen[name] = true
		envs := make([]string, 0, len(p.Envs))
		for _, e := range p.Envs {
			if err := checkEnv(e); err != nil {
				return nil, fmt.Errorf("hosted peer %q: %w", name, err)
			}
			envs = append(envs, e)
		}
		slices.Sort(envs)
		out = append(out, HostedPeer{Name: name, Envs: slices.Compact(envs)})
	}
	return out, nil
}

func normalizeRooms(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, r := range in {
		c, ok := CanonicalRoom(r)
		if !ok {
			return nil, fmt.Errorf("mesh: room %q is not a UUID", r)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// Failure detection tuning of the "local" profile: a 3-node loopback mesh
// declares a killed node dead in about 1-2 s (see docs/mesh.md for the
// measured figures).
const (
	localProbeInterval   = 300 * time.Millisecond
	localProbeTimeout    = 200 * time.Millisecond
	localSuspicionMult   = 3
	localGossipInterval  = 50 * time.Millisecond
	localRetransmitMult  = 4 // the LAN value: DefaultLocalConfig's 2 leaves joiners unseen until a push/pull
	localPushPull        = 2 * time.Second
	localGossipToTheDead = 5 * time.Second
)

// lanSuspicionMult replaces DefaultLANConfig's 4. With memberlist's LAN
// timing (1 s probe interval, 500 ms probe timeout) a 3-member mesh took
// 6.3 s from a crash to DEAD at 4 once the confirming probe (confirm.go)
// adds its timeout, over the 6 s goal; at 3 the suspicion timeout is 3 s
// instead of 4. The confirming probe is what makes the shorter timeout
// safe: a member the timeout wrongly kills still has to miss a direct
// probe before the mesh says DEAD.
const (
	lanSuspicionMult = 3
	lanProbeInterval = 800 * time.Millisecond
)

// memberlistConfig builds the memberlist configuration of a profile.
func memberlistConfig(cfg Config) (*memberlist.Config, error) {
	var mc *memberlist.Config
	switch cfg.Profile {
	case ProfileLocal:
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = localProbeInterval
		mc.ProbeTimeout = localProbeTimeout
		mc.SuspicionMult = localSuspicionMult
		mc.GossipInterval = localGossipInterval
		mc.RetransmitMult = localRetransmitMult
		mc.PushPullInterval = localPushPull
		mc.GossipToTheDeadTime = localGossipToTheDead
	default:
		mc = memberlist.DefaultLANConfig()
		mc.SuspicionMult = lanSuspicionMult
		mc.ProbeInterval = lanProbeInterval
	}
	mc.Name = cfg.Node
	host, port, err := splitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertisePort = port
	if cfg.AdvertiseAddr != "" {
		ahost, aport, err := splitHostPort(cfg.AdvertiseAddr)
		if err != nil {
			return nil, err
		}
		ip := net.ParseIP(ahost)
		if ip == nil {
			ips, err := net.LookupIP(ahost)
			if err != nil || len(ips) == 0 {
				return nil, fmt.Errorf("mesh: resolve advertise host %q: %w", ahost, err)
			}
			ip = ips[0]
		}
		mc.AdvertiseAddr = ip.String()
		mc.AdvertisePort = aport
	}
	// A failed member's name may be taken over by a new address as soon as
	// it is declared dead: a container restarted with a new IP must not be
	// refused as a conflict.
	mc.DeadNodeReclaimTime = time.Nanosecond
	if len(cfg.SecretKey) > 0 {
		mc.SecretKey = slices.Clone(cfg.SecretKey)
	}
	return mc, nil
}
