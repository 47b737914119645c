package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The loopback fabric stands in for the network between the node
// processes, so that the harness can cut one node off for real without
// root, network namespaces or a change to the node.
//
// Every node advertises proxy addresses (--advertise, --gossip-advertise)
// that the harness owns, and binds its real gRPC and gossip ports
// elsewhere. Members learn addresses only from what others advertise, so
// every byte between nodes crosses a proxy: gRPC (TCP), memberlist's
// push/pull and reliable messages (TCP), and memberlist's probes and
// gossip (UDP). Cutting node X off drops, in both directions:
//
//   - everything arriving at X's proxies, from anyone (other nodes and the
//     harness's load clients);
//   - UDP packets other nodes' proxies receive from X: memberlist sends
//     every packet from its bound socket, so the source address names the
//     node; replies relayed back to X are dropped the same way;
//   - TCP connections other nodes' proxies accept from X: the proxy looks
//     up which process owns the client end of the connection (the
//     connection's inode in /proc/net/tcp, then /proc/<pid>/fd) and
//     refuses those from X's process.
//
// and it closes every relayed connection to or from X at once. Healing
// lets new connections and packets through again. The harness's own
// observation connections (Members polling, runtime stats) dial the real
// ports and are not cut: they watch the partition, they are not part of it.
type fabric struct {
	log *slog.Logger

	mu      sync.Mutex
	cut     map[string]bool
	relays  map[*relay]struct{}
	udpFrom map[string]string // a node's real gossip address -> node
	pids    map[int]string    // node process -> node
	proxies []*nodeProxy
}

func newFabric(log *slog.Logger) *fabric {
	return &fabric{log: log, cut: map[string]bool{}, relays: map[*relay]struct{}{}, udpFrom: map[string]string{}, pids: map[int]string{}}
}

// relay is one proxied TCP connection.
type relay struct {
	dst, src  string // node names; src is "" for the harness or unknown
	down, up  net.Conn
	closeOnce sync.Once
}

func (r *relay) close() {
	r.closeOnce.Do(func() {
		_ = r.down.Close()
		if r.up != nil {
			_ = r.up.Close()
		}
	})
}

// blocked reports whether traffic from src to dst is dropped now.
func (f *fabric) blocked(dst, src string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[dst] || (src != "" && f.cut[src])
}

// Cut drops every packet and connection to and from node until Heal.
func (f *fabric) Cut(node string) {
	f.mu.Lock()
	f.cut[node] = true
	var doomed []*relay
	for r := range f.relays {
		if r.dst == node || r.src == node {
			doomed = append(doomed, r)
		}
	}
	f.mu.Unlock()
	for _, r := range doomed {
		r.close()
	}
	f.log.Debug("cut", "node", node, "connections_closed", len(doomed))
}

// Heal lets node's traffic through again.
func (f *fabric) Heal(node string) {
	f.mu.Lock()
	delete(f.cut, node)
	f.mu.Unlock()
}

// setPID records the process now running node (0 forgets it).
func (f *fabric) setPID(node string, old, pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pids, old)
	if pid != 0 {
		f.pids[pid] = node
	}
}

func (f *fabric) Close() {
	f.mu.Lock()
	ps := f.proxies
	rs := make([]*relay, 0, len(f.relays))
	for r := range f.relays {
		rs = append(rs, r)
	}
	f.mu.Unlock()
	for _, p := range ps {
		p.close()
	}
	for _, r := range rs {
		r.close()
	}
}

// nodeProxy is the front of one node: a TCP proxy for its gRPC port and a
// TCP+UDP proxy for its gossip port.
type nodeProxy struct {
	f          *fabric
	node       string
	grpcLn     net.Listener
	gossipLn   net.Listener
	udp        *net.UDPConn
	grpcTarget string
	gossTarget string

	mu       sync.Mutex
	sessions map[string]*net.UDPConn
	closed   bool
}

// GRPCAddr and GossipAddr are the addresses the node advertises.
func (p *nodeProxy) GRPCAddr() string   { return p.grpcLn.Addr().String() }
func (p *nodeProxy) GossipAddr() string { return p.gossipLn.Addr().String() }

// newProxy binds a node's proxy ports (gossip TCP and UDP on the same
// port, as memberlist expects) and starts relaying to the real ports.
func (f *fabric) newProxy(node, grpcTarget, gossipTarget string) (*nodeProxy, error) {
	p := &nodeProxy{f: f, node: node, grpcTarget: grpcTarget, gossTarget: gossipTarget, sessions: map[string]*net.UDPConn{}}
	var err error
	if p.grpcLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	for range 20 {
		if p.gossipLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			continue
		}
		port := p.gossipLn.Addr().(*net.TCPAddr).Port
		if p.udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err == nil {
			break
		}
		_ = p.gossipLn.Close()
		p.gossipLn = nil
	}
	if p.udp == nil {
		_ = p.grpcLn.Close()
		return nil, fmt.Errorf("proxy for %s: no port free for both TCP and UDP: %w", node, err)
	}
	f.mu.Lock()
	f.udpFrom[gossipTarget] = node
	f.proxies = append(f.proxies, p)
	f.mu.Unlock()
	go p.serveTCP(p.grpcLn, grpcTarget)
	go p.serveTCP(p.gossipLn, gossipTarget)
	go p.serveUDP()
	return p, nil
}

func (p *nodeProxy) close() {
	p.mu.Lock()
	p.closed = true
	ss := p.sessions
	p.sessions = map[string]*net.UDPConn{}
	p.mu.Unlock()
	_ = p.grpcLn.Close()
	_ = p.gossipLn.Close()
	_ = p.udp.Close()
	for _, s := range ss {
		_ = s.Close()
	}
}

func (p *nodeProxy) serveTCP(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go p.relayTCP(c, ln, target)
	}
}

func (p *nodeProxy) relayTCP(c net.Conn, ln net.Listener, target string) {
	src := p.f.tcpOrigin(c.RemoteAddr(), ln.Addr())
	if p.f.blocked(p.node, src) {
		_ = c.Close()
		return
	}
	r := &relay{dst: p.node, src: src, down: c}
	up, err := net.DialTimeout("tcp", target, 2*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	r.up = up
	p.f.mu.Lock()
	// A cut may have begun while dialling.
	if p.f.cut[p.node] || (src != "" && p.f.cut[src]) {
		p.f.mu.Unlock()
		r.close()
		return
	}
	p.f.relays[r] = struct{}{}
	p.f.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, s net.Conn) {
		_, _ = io.Copy(dst, s)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
	r.close()
	p.f.mu.Lock()
	delete(p.f.relays, r)
	p.f.mu.Unlock()
}

func (p *nodeProxy) serveUDP() {
	buf := make([]byte, 65536)
	for {
		n, from, err := p.udp.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.f.mu.Lock()
		src := p.f.udpFrom[from.String()]
		p.f.mu.Unlock()
		if p.f.blocked(p.node, src) {
			continue
		}
		s, err := p.session(from, src)
		if err != nil {
			continue
		}
		_, _ = s.Write(buf[:n])
	}
}

// session is the upstream socket relaying packets from one source to the
// node and the node's replies back to that source.
func (p *nodeProxy) session(from *net.UDPAddr, src string) (*net.UDPConn, error) {
	key := from.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, net.ErrClosed
	}
	if s, ok := p.sessions[key]; ok {
		return s, nil
	}
	target, err := net.ResolveUDPAddr("udp", p.gossTarget)
	if err != nil {
		return nil, err
	}
	s, err := net.DialUDP("udp", nil, target)
	if err != nil {
		return nil, err
	}
	p.sessions[key] = s
	back := *from
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := s.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ICMP port unreachable while the node is down
			}
			if p.f.blocked(p.node, src) {
				continue
			}
			_, _ = p.udp.WriteToUDP(buf[:n], &back)
		}
	}()
	return s, nil
}

// tcpOrigin names the node whose process holds the client end of a
// connection accepted on local, or "" (the harness, or not found).
func (f *fabric) tcpOrigin(remote, local net.Addr) string {
	ra, ok1 := remote.(*net.TCPAddr)
	la, ok2 := local.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return ""
	}
	inode := socketInode(ra.Port, la.Port)
	if inode == "" {
		return ""
	}
	f.mu.Lock()
	pids := make(map[int]string, len(f.pids))
	for pid, n := range f.pids {
		pids[pid] = n
	}
	f.mu.Unlock()
	want := "socket:[" + inode + "]"
	for pid, node := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd"
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == want {
				return node
			}
		}
	}
	return ""
}

// socketInode finds, in /proc/net/tcp, the inode of the loopback socket
// whose local port is clientPort and whose peer port is serverPort.
func socketInode(clientPort, serverPort int) string {
	fh, err := os.Open("/proc/net/tcp")
	if err != nil {
		return ""
	}
	defer fh.Close()
	local := fmt.Sprintf("0100007F:%04X", clientPort)
	remote := fmt.Sprintf("0100007F:%04X", serverPort)
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 9 && fields[1] == local && fields[2] == remote {
			return fields[9]
		}
	}
	return ""
}
