package mesh

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigNormalize(t *testing.T) {
	t.Parallel()
	in := Config{
		Node:     "node-1",
		GRPCAddr: "127.0.0.1:7400",
		Services: []string{"router", "mesh", "router"},
		Peers:    []HostedPeer{{Name: "6F1C2A3B-4D5E-4F60-8A7B-9C0D1E2F3A4B", Envs: []string{"web", "vr", "web"}}},
		Rooms:    []string{"6F1C2A3B-4D5E-4F60-8A7B-9C0D1E2F3A4B", uuidA},
	}
	got, err := in.normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Node:          "node-1",
		GossipAddr:    DefaultGossipAddr,
		GRPCAddr:      "127.0.0.1:7400",
		Services:      []string{"mesh", "router"},
		Peers:         []HostedPeer{{Name: uuidA, Envs: []string{"vr", "web"}}},
		Rooms:         []string{uuidA},
		Profile:       ProfileLAN,
		DeadMemberTTL: DefaultDeadMemberTTL,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("normalize (-want +got):\n%s", diff)
	}
	def, err := Config{Node: "n", GRPCAddr: "h:1"}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]HostedPeer{{Name: "n", Envs: []string{}}}, def.Peers); diff != "" {
		t.Errorf("default peers (-want +got):\n%s", diff)
	}
}

func TestConfigRejects(t *testing.T) {
	t.Parallel()
	base := func() Config { return Config{Node: "n", GRPCAddr: "127.0.0.1:7400"} }
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"no node", func(c *Config) { c.Node = "" }},
		{"node with space", func(c *Config) { c.Node = "a b" }},
		{"long node", func(c *Config) { c.Node = strings.Repeat("n", 65) }},
		{"no grpc address", func(c *Config) { c.GRPCAddr = "" }},
		{"grpc address without port", func(c *Config) { c.GRPCAddr = "localhost" }},
		{"bad gossip address", func(c *Config) { c.GossipAddr = "127.0.0.1:99999" }},
		{"bad advertise address", func(c *Config) { c.AdvertiseAddr = "nope" }},
		{"bad join address", func(c *Config) { c.Join = []string{"x"} }},
		{"upper-case service", func(c *Config) { c.Services = []string{"Router"} }},
		{"empty service", func(c *Config) { c.Services = []string{""} }},
		{"peer named room", func(c *Config) { c.Peers = []HostedPeer{{Name: "room"}} }},
		{"peer with bad uuid", func(c *Config) { c.Peers = []HostedPeer{{Name: "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4z"}} }},
		{"duplicate peer", func(c *Config) { c.Peers = []HostedPeer{{Name: "a"}, {Name: "a"}} }},
		{"env star", func(c *Config) { c.Peers = []HostedPeer{{Name: "a", Envs: []string{"*"}}} }},
		{"unknown env", func(c *Config) { c.Peers = []HostedPeer{{Name: "a", Envs: []string{"holo"}}} }},
		{"room not uuid", func(c *Config) { c.Rooms = []string{"lobby"} }},
		{"unknown profile", func(c *Config) { c.Profile = "wan" }},
		{"short key", func(c *Config) { c.SecretKey = []byte("short") }},
		{"negative ttl", func(c *Config) { c.DeadMemberTTL = -time.Second }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			tc.edit(&c)
			if _, err := c.normalize(); err == nil {
				t.Errorf("normalize accepted %+v", c)
			}
			if _, err := New(c, Deps{}); err == nil {
				t.Errorf("New accepted %+v", c)
			}
		})
	}
}

func TestLeaveNotice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []byte
		name string
		ok   bool
	}{
		{leaveNotice("node-1"), "node-1", true},
		{[]byte("continuum-mesh/leave/v1:"), "", false},
		{[]byte("continuum-mesh/leave/v1:a b"), "", false},
		{[]byte("something else"), "", false},
		{nil, "", false},
	}
	for _, tc := range tests {
		name, ok := parseLeaveNotice(tc.in)
		if name != tc.name || ok != tc.ok {
			t.Errorf("parseLeaveNotice(%q) = %q %v, want %q %v", tc.in, name, ok, tc.name, tc.ok)
		}
	}
}
