package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// procCluster runs each node as a real `continuum up` process on loopback,
// behind the harness's fabric (netproxy.go), with mTLS between members
// (a mesh CA from `continuum certs init`; every node issues its own
// certificate from it) and shared bearer tokens (`continuum tokens init`).
type procCluster struct {
	dir, bin string
	log      *slog.Logger
	fab      *fabric
	tls      *tls.Config
	admin    string
	user     string
	nodes    []*procNode
	byName   map[string]*procNode
}

type procNode struct {
	name             string
	grpcReal, gossip string // real addresses
	proxy            *nodeProxy
	args             []string
	logPath          string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

type procOptions struct {
	Nodes   int
	Binary  string // built when empty
	Dir     string
	Profile string
	Log     *slog.Logger
}

func newProcCluster(ctx context.Context, o procOptions) (*procCluster, error) {
	c := &procCluster{dir: o.Dir, bin: o.Binary, log: o.Log, fab: newFabric(o.Log), byName: map[string]*procNode{}}
	if c.bin == "" {
		c.bin = filepath.Join(o.Dir, "continuum")
		o.Log.Info("building the continuum binary", "out", c.bin)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", c.bin, "./cmd/continuum")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("build continuum (run from the repository root, or pass --binary): %w", err)
		}
	}
	certs := filepath.Join(o.Dir, "certs")
	tokens := filepath.Join(o.Dir, "tokens")
	for _, args := range [][]string{{"certs", "init", "--dir", certs}, {"tokens", "init", "--dir", tokens}} {
		if out, err := exec.CommandContext(ctx, c.bin, args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("continuum %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	var err error
	if c.tls, err = clientTLS(filepath.Join(certs, "ca.crt")); err != nil {
		return nil, err
	}
	if c.admin, err = readToken(filepath.Join(tokens, "admin.token")); err != nil {
		return nil, err
	}
	if c.user, err = readToken(filepath.Join(tokens, "user.token")); err != nil {
		return nil, err
	}
	// The nodes' ports stay reserved until every proxy has bound its own
	// (on :0): released at once, the kernel could hand one to a proxy and
	// the node would fail to bind it.
	var held []func()
	defer func() {
		for _, release := range held {
			release()
		}
	}()
	for i := range o.Nodes {
		name := "n" + strconv.Itoa(i+1)
		grpcPort, release, err := reservePort(false)
		if err != nil {
			return nil, err
		}
		held = append(held, release)
		gossipPort, release, err := reservePort(true)
		if err != nil {
			return nil, err
		}
		held = append(held, release)
		n := &procNode{
			name: name, grpcReal: "127.0.0.1:" + strconv.Itoa(grpcPort), gossip: "127.0.0.1:" + strconv.Itoa(gossipPort),
			logPath: filepath.Join(o.Dir, "logs", name+".log"),
		}
		if n.proxy, err = c.fab.newProxy(name, n.grpcReal, n.gossip); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		c.byName[name] = n
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o750); err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		n.args = []string{
			"up", "--node", n.name,
			"--listen", n.grpcReal, "--advertise", n.proxy.GRPCAddr(),
			"--gossip", n.gossip, "--gossip-advertise", n.proxy.GossipAddr(),
			"--http", "", "--data", filepath.Join(o.Dir, "data", "{node}"),
			"--mesh-profile", o.Profile, "--certs-dir", certs, "--tokens", filepath.Join(tokens, "tokens.yaml"),
			"--log-format", "json",
			// A small memory tier and file tiers below it: what the load
			// keeps resident is bounded, so the leak check sees leaks, not
			// a cache filling up.
			"--genome-tiers", "fast=256KiB,bench=64MiB,frozen=256MiB",
		}
		for _, m := range c.nodes {
			if m != n {
				n.args = append(n.args, "--join", m.proxy.GossipAddr())
			}
		}
	}
	for _, release := range held {
		release()
	}
	held = nil
	for _, n := range c.nodes {
		if err := c.Start(n.name); err != nil {
			_ = c.Close(context.Background())
			return nil, err
		}
	}
	return c, nil
}

// freePort finds a loopback port free now (for TCP, and UDP too when
// both): the node binds it a moment later.
func freePort(udpToo bool) (int, error) {
	port, release, err := reservePort(udpToo)
	if err != nil {
		return 0, err
	}
	release()
	return port, nil
}

// reservePort binds a free loopback port (for TCP, and UDP too when
// both) and holds it until release is called, so that nothing else this
// process binds on :0 meanwhile can be given it.
//
// It picks below the kernel's ephemeral range when it can: a port from
// that range, once released, may be handed to any outgoing connection
// (a node dialling its peers) before the node that should listen on it
// starts, and that node would fail to bind.
func reservePort(udpToo bool) (port int, release func(), err error) {
	lo, hi := belowEphemeral()
	for i := range 100 {
		addr := "127.0.0.1:0"
		if i < 50 && hi > lo {
			addr = "127.0.0.1:" + strconv.Itoa(lo+rand.IntN(hi-lo))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if addr == "127.0.0.1:0" {
				return 0, nil, err
			}
			continue
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if !udpToo {
			return port, func() { _ = ln.Close() }, nil
		}
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			_ = ln.Close()
			continue
		}
		return port, func() { _ = ln.Close(); _ = u.Close() }, nil
	}
	return 0, nil, errors.New("no free loopback port")
}

// belowEphemeral is a port range under the kernel's ephemeral ports
// (Linux: /proc/sys/net/ipv4/ip_local_port_range), or an empty one where
// that is unknown or leaves no room above 10000.
func belowEphemeral() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	first, err := strconv.Atoi(f[0])
	if err != nil || first <= 11000 {
		return 0, 0
	}
	return 10000, first
}

func clientTLS(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", caFile)
	}
	// Every node certificate carries localhost and 127.0.0.1.
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: "localhost"}, nil
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (c *procCluster) node(name string) (*procNode, error) {
	n, ok := c.byName[name]
	if !ok {
		return nil, fmt.Errorf("no node %q", name)
	}
	return n, nil
}

func (c *procCluster) Nodes() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.name
	}
	return out
}

func (c *procCluster) ClientAddr(node string) string {
	if n, err := c.node(node); err == nil {
		return n.proxy.GRPCAddr()
	}
	return ""
}

func (c *procCluster) WatchAddr(node string) string {
	if n, err := c.node(node); err == nil {
		return n.grpcReal
	}
	return ""
}

func (c *procCluster) TLS() *tls.Config   { return c.tls }
func (c *procCluster) AdminToken() string { return c.admin }
func (c *procCluster) UserToken() string  { return c.user }

// Start starts the node's process (it must not be running).
func (c *procCluster) Start(name string) error {
	n, err := c.node(name)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("%s is already running (pid %d)", name, n.cmd.Process.Pid)
	}
	lf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, n.args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Its own process group: a ^C to the harness does not reach the nodes
	// before the harness stops them in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	n.cmd = cmd
	n.done = make(chan struct{})
	c.fab.setPID(name, 0, cmd.Process.Pid)
	done := n.done
	go func() {
		_ = cmd.Wait()
		_ = lf.Close()
		c.fab.setPID(name, cmd.Process.Pid, 0)
		n.mu.Lock()
		if n.cmd == cmd {
			n.cmd = nil
		}
		n.mu.Unlock()
		close(done)
	}()
	c.log.Debug("started", "node", name, "pid", cmd.Process.Pid)
	return nil
}

func (c *procCluster) signal(name string, sig syscall.Signal) (chan struct{}, error) {
	n, err := c.node(name)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil, fmt.Errorf("%s is not running", name)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return nil, fmt.Errorf("signal %s: %w", name, err)
	}
	return n.done, nil
}

// Kill is kill -9; it returns once the process is gone.
func (c *procCluster) Kill(name string) error {
	done, err := c.signal(name, syscall.SIGKILL)
	if err != nil {
		return err
	}
	<-done
	return nil
}

func (c *procCluster) Pause(name string) error {
	_, err := c.signal(name, syscall.SIGSTOP)
	return err
}

func (c *procCluster) Resume(name string) error {
	_, err := c.signal(name, syscall.SIGCONT)
	return err
}

// Stop is a graceful stop (SIGTERM: drain, hand-off, leave), then kill -9
// when ctx ends first.
func (c *procCluster) Stop(ctx context.Context, name string) error {
	_, _ = c.signal(name, syscall.SIGCONT) // a paused node cannot drain
	done, err := c.signal(name, syscall.SIGTERM)
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		_ = c.Kill(name)
		return fmt.Errorf("%s did not stop within the deadline; killed", name)
	}
}

func (c *procCluster) Cut(name string) error {
	if _, err := c.node(name); err != nil {
		return err
	}
	c.fab.Cut(name)
	return nil
}

func (c *procCluster) Heal(name string) error {
	if _, err := c.node(name); err != nil {
		return err
	}
	c.fab.Heal(name)
	return nil
}

// running reports whether the node's process is up.
func (c *procCluster) running(name string) bool {
	n, err := c.node(name)
	if err != nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Close stops every node gracefully (in parallel) and the fabric.
func (c *procCluster) Close(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i, n := range c.nodes {
		_ = c.fab // heal first, so a node can leave the mesh cleanly
		c.fab.Heal(n.name)
		if !c.running(n.name) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Stop(ctx, n.name)
		}()
	}
	wg.Wait()
	c.fab.Close()
	return errors.Join(errs...)
}
