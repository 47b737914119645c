package main

import (
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// echoTCP and echoUDP stand in for a node's gRPC and gossip ports.
func echoTCP(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	return ln
}

func echoUDP(t *testing.T, port int) *net.UDPConn {
	t.Helper()
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := u.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = u.WriteToUDP(buf[:n], from)
		}
	}()
	return u
}

func roundTrip(c net.Conn, msg string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return "", err
	}
	return string(buf), nil
}

// TestFabricCut checks both directions of a cut: connections and packets
// to the cut node's proxy, and those its process sends to another node's
// proxy (found by process for TCP, by source address for UDP).
func TestFabricCut(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the fabric finds a connection's process in /proc")
	}
	t.Parallel()
	f := newFabric(slog.New(slog.DiscardHandler))
	t.Cleanup(f.Close)
	tcp := echoTCP(t)
	gossipPort, err := freePort(true)
	if err != nil {
		t.Fatal(err)
	}
	echoUDP(t, gossipPort)
	p, err := f.newProxy("b", tcp.Addr().String(), "127.0.0.1:"+strconv.Itoa(gossipPort))
	if err != nil {
		t.Fatal(err)
	}
	// This test process plays node a: its TCP connections are a's.
	f.setPID("a", 0, os.Getpid())
	// And this socket is a's gossip socket.
	aGossip, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer aGossip.Close()
	f.mu.Lock()
	f.udpFrom[aGossip.LocalAddr().String()] = "a"
	f.mu.Unlock()

	tcpWorks := func() bool {
		c, err := net.Dial("tcp", p.GRPCAddr())
		if err != nil {
			return false
		}
		defer c.Close()
		got, err := roundTrip(c, "ping")
		return err == nil && got == "ping"
	}
	udpWorks := func() bool {
		to, _ := net.ResolveUDPAddr("udp", p.GossipAddr())
		_ = aGossip.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := aGossip.WriteToUDP([]byte("probe"), to); err != nil {
			return false
		}
		buf := make([]byte, 16)
		n, _, err := aGossip.ReadFromUDP(buf)
		return err == nil && string(buf[:n]) == "probe"
	}
	if !tcpWorks() || !udpWorks() {
		t.Fatal("the proxy does not relay before any cut")
	}
	held, err := net.Dial("tcp", p.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := roundTrip(held, "x"); err != nil {
		t.Fatal(err)
	}
	// The relays of the probes above end on their own goroutines after
	// the probes closed; wait for them, so only the held connection's is
	// left.
	var srcs []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		f.mu.Lock()
		srcs = srcs[:0]
		for r := range f.relays {
			srcs = append(srcs, r.src)
		}
		f.mu.Unlock()
		if len(srcs) <= 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(srcs) != 1 || srcs[0] != "a" {
		t.Fatalf("relay sources = %v, want [a]: the client's process was not found", srcs)
	}

	for _, cut := range []string{"a", "b"} {
		f.Cut(cut)
		if tcpWorks() {
			t.Fatalf("cut %s: a new TCP connection from a to b went through", cut)
		}
		if udpWorks() {
			t.Fatalf("cut %s: a packet from a to b went through", cut)
		}
		f.Heal(cut)
		if !tcpWorks() || !udpWorks() {
			t.Fatalf("healed %s: traffic does not flow again", cut)
		}
	}
	if _, err := roundTrip(held, "y"); err == nil {
		t.Fatal("a connection open across the cut survived it")
	}
}
