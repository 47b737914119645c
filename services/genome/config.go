package genome

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Eviction policies a tier may use (see policy.go and docs/genome.md).
const (
	// PolicyWTinyLFU is a 1% LRU window in front of a segmented LRU main
	// space, with admission by a TinyLFU frequency sketch.
	PolicyWTinyLFU = "w-tinylfu"
	// PolicySLRU is a segmented LRU: new pages on probation, pages used
	// again protected.
	PolicySLRU = "slru"
	// PolicyLRU evicts the least recently used page.
	PolicyLRU = "lru"
	// PolicyFIFO evicts the page that entered the tier first.
	PolicyFIFO = "fifo"
	// PolicyHome is the lowest tier's: it holds every artifact's durable
	// copy and never evicts.
	PolicyHome = "home"
)

// Policies are the eviction policies an upper tier may use.
func Policies() []string { return []string{PolicyWTinyLFU, PolicySLRU, PolicyLRU, PolicyFIFO} }

// TierConfig is one tier of the chain.
type TierConfig struct {
	Role Role
	// CapacityBytes is enforced: the tier never holds more.
	CapacityBytes uint64
	// Policy is the eviction policy; "" is the role's canonical one. The
	// lowest tier of a chain is the home tier and never evicts.
	Policy string
}

// Config is the genome service's configuration.
type Config struct {
	// Node is this node's name, stamped on events.
	Node string
	// DataDir is the node's data directory; file tiers live under
	// <DataDir>/genome/<role>/ and the catalog in <DataDir>/genome/. Empty
	// runs memory tiers only, with nothing persisted.
	DataDir string
	// Tiers is the chain, fastest first; nil is DefaultTiers(). A role not
	// listed is not configured on this node.
	Tiers []TierConfig
	// EventQueue bounds the outbox of page-fault and eviction events; zero
	// is 4096. When it is full new events are dropped, counted and logged.
	EventQueue int
	// DenialQueue bounds the outbox of access-denied events, which are
	// retried until published; zero is 16384.
	DenialQueue int
	// PrefetchQueue bounds queued prefetches; zero is 1024.
	PrefetchQueue int
	// PrefetchWorkers is how many prefetches run at once; zero is 1.
	PrefetchWorkers int
	// ReadChunkBytes is the chunk size of ReadPage; zero is 256 KiB.
	ReadChunkBytes int
	// PublishTimeout bounds one publish attempt; zero is 5 s.
	PublishTimeout time.Duration
}

// DefaultTiers is the chain a node gets when it configures none: Fast
// 256 MiB and Warm 1 GiB in memory, Bench 4 GiB and Cold 16 GiB in files,
// Frozen 64 GiB compressed (the home tier).
func DefaultTiers() []TierConfig {
	return []TierConfig{
		{Role: RoleFast, CapacityBytes: 256 << 20},
		{Role: RoleWarm, CapacityBytes: 1 << 30},
		{Role: RoleBench, CapacityBytes: 4 << 30},
		{Role: RoleCold, CapacityBytes: 16 << 30},
		{Role: RoleFrozen, CapacityBytes: 64 << 30},
	}
}

// DefaultTiersFlag is DefaultTiers in the --genome-tiers syntax.
const DefaultTiersFlag = "fast=256MiB,warm=1GiB,bench=4GiB,cold=16GiB,frozen=64GiB"

// ParseTiers parses a tier chain flag such as
//
//	fast=256MiB,warm=1GiB:slru,bench=4GiB,cold=16GiB,frozen=64GiB
//
// Each item is role=size[:policy]; roles may appear in any order but at most
// once, and the result is fastest first. Sizes take B, KB, MB, GB, TB
// (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024). The empty string
// is DefaultTiers().
func ParseTiers(s string) ([]TierConfig, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultTiers(), nil
	}
	var out []TierConfig
	seen := map[Role]bool{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		name, rest, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("genome tiers: %q is not role=size[:policy]", item)
		}
		role, err := ParseRole(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("genome tiers: %w", err)
		}
		if seen[role] {
			return nil, fmt.Errorf("genome tiers: role %s is listed twice", role)
		}
		seen[role] = true
		size, policy, _ := strings.Cut(rest, ":")
		n, err := ParseBytes(strings.TrimSpace(size))
		if err != nil {
			return nil, fmt.Errorf("genome tiers: %s: %w", role, err)
		}
		policy = strings.TrimSpace(policy)
		if policy != "" && !slices.Contains(Policies(), policy) && policy != PolicyHome {
			return nil, fmt.Errorf("genome tiers: %s: unknown policy %q (want one of %s)", role, policy, strings.Join(Policies(), ", "))
		}
		out = append(out, TierConfig{Role: role, CapacityBytes: n, Policy: policy})
	}
	slices.SortFunc(out, func(a, b TierConfig) int { return int(a.Role) - int(b.Role) })
	return out, nil
}

// FormatTiers renders a chain in the ParseTiers syntax.
func FormatTiers(tiers []TierConfig) string {
	parts := make([]string, 0, len(tiers))
	for _, t := range tiers {
		p := t.Role.String() + "=" + FormatBytes(t.CapacityBytes)
		if t.Policy != "" {
			p += ":" + t.Policy
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

var byteUnits = []struct {
	suffix string
	mult   uint64
}{
	{"KiB", 1 << 10},
	{"MiB", 1 << 20},
	{"GiB", 1 << 30},
	{"TiB", 1 << 40},
	{"KB", 1e3},
	{"MB", 1e6},
	{"GB", 1e9},
	{"TB", 1e12},
	{"B", 1},
}

// ParseBytes parses a positive byte size: digits and an optional unit
// (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB; units are case-sensitive so
// that "mb" is not silently a megabyte or a mebibyte).
func ParseBytes(s string) (uint64, error) {
	num, mult := s, uint64(1)
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	if num == "" || strings.IndexFunc(num, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("%w: %q is not a size like 256MiB", ErrCapacityInvalid, s)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %w", ErrCapacityInvalid, s, err)
	}
	hi, lo := bits.Mul64(n, mult)
	if hi != 0 {
		return 0, fmt.Errorf("%w: %q overflows", ErrCapacityInvalid, s)
	}
	if lo == 0 {
		return 0, fmt.Errorf("%w: %q is zero", ErrCapacityInvalid, s)
	}
	return lo, nil
}

// FormatBytes renders n in the largest binary unit that divides it.
func FormatBytes(n uint64) string {
	for _, u := range []struct {
		s string
		m uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatUint(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatUint(n, 10) + "B"
}

// withDefaults fills zero fields and validates the chain.
func (c Config) withDefaults(given map[Role]TierStore) (Config, error) {
	if c.Tiers == nil {
		c.Tiers = DefaultTiers()
	}
	if len(c.Tiers) == 0 {
		return c, errors.New("genome: the tier chain is empty")
	}
	c.Tiers = slices.Clone(c.Tiers)
	for i, t := range c.Tiers {
		if !t.Role.Valid() {
			return c, fmt.Errorf("genome: tier %d: %w", i, ErrRoleInvalid)
		}
		if i > 0 && t.Role <= c.Tiers[i-1].Role {
			return c, fmt.Errorf("genome: tiers must be listed fastest first, each role once (%s after %s)", t.Role, c.Tiers[i-1].Role)
		}
		if t.CapacityBytes == 0 || t.CapacityBytes > math.MaxInt64 {
			return c, fmt.Errorf("genome: tier %s: %w: capacity must be between 1 byte and 8 EiB", t.Role, ErrCapacityInvalid)
		}
		home := i == len(c.Tiers)-1
		switch {
		case home && (t.Policy == "" || t.Policy == PolicyHome):
			c.Tiers[i].Policy = PolicyHome
		case home:
			return c, fmt.Errorf("genome: tier %s is the home tier (the lowest): it never evicts, so it takes no policy (got %q)", t.Role, t.Policy)
		case t.Policy == "":
			c.Tiers[i].Policy = t.Role.CanonicalPolicy()
		case !slices.Contains(Policies(), t.Policy):
			return c, fmt.Errorf("genome: tier %s: unknown policy %q", t.Role, t.Policy)
		}
		if t.Role.Medium() != "memory" && c.DataDir == "" && given[t.Role] == nil {
			return c, fmt.Errorf("genome: tier %s keeps files, so a data directory is required", t.Role)
		}
	}
	if c.EventQueue <= 0 {
		c.EventQueue = 4096
	}
	if c.DenialQueue <= 0 {
		c.DenialQueue = 16384
	}
	if c.PrefetchQueue <= 0 {
		c.PrefetchQueue = 1024
	}
	if c.PrefetchWorkers <= 0 {
		c.PrefetchWorkers = 1
	}
	if c.ReadChunkBytes <= 0 {
		c.ReadChunkBytes = 256 << 10
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	return c, nil
}
