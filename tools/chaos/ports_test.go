package main

import (
	"net"
	"strconv"
	"testing"
)

// TestReservePort: a reserved port is held until released (nothing else
// can bind it, TCP or UDP), and comes from below the kernel's ephemeral
// range when that range is known, where no outgoing connection can take
// it before its node listens.
func TestReservePort(t *testing.T) {
	lo, hi := belowEphemeral()
	port, release, err := reservePort(true)
	if err != nil {
		t.Fatal(err)
	}
	if hi > lo && (port < lo || port >= hi) {
		t.Errorf("port %d is not in [%d, %d), below the ephemeral range", port, lo, hi)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if ln, err := net.Listen("tcp", addr); err == nil {
		_ = ln.Close()
		t.Fatalf("%s could be bound while reserved", addr)
	}
	if u, err := net.ListenPacket("udp", addr); err == nil {
		_ = u.Close()
		t.Fatalf("udp %s could be bound while reserved", addr)
	}
	release()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("%s still held after release: %v", addr, err)
	}
	_ = ln.Close()
}
