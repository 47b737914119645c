package rpc

import (
	"context"
	"errors"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"
)

// InprocAddr is the address of connections made through a server's
// in-process listener. Only code in this process can create one, so the
// auth interceptor trusts such a connection as this node itself.
type InprocAddr struct{ Node string }

// Network implements net.Addr.
func (InprocAddr) Network() string { return "inproc" }

func (a InprocAddr) String() string { return "inproc:" + a.Node }

// inprocListener is a net.Listener fed by in-memory pipes.
type inprocListener struct {
	addr   InprocAddr
	conns  chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newInprocListener(node string) *inprocListener {
	return &inprocListener{addr: InprocAddr{Node: node}, conns: make(chan net.Conn), closed: make(chan struct{})}
}

var errListenerClosed = errors.New("in-process listener closed")

func (l *inprocListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *inprocListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *inprocListener) Addr() net.Addr { return l.addr }

// dial connects a new in-memory pipe to the listener.
func (l *inprocListener) dial(ctx context.Context) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- &inprocConn{Conn: server, addr: l.addr}:
		return &inprocConn{Conn: client, addr: l.addr}, nil
	case <-l.closed:
		return nil, errListenerClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// inprocConn reports InprocAddr as both ends' address.
type inprocConn struct {
	net.Conn
	addr InprocAddr
}

func (c *inprocConn) LocalAddr() net.Addr  { return c.addr }
func (c *inprocConn) RemoteAddr() net.Addr { return c.addr }

// inprocAwareCreds serves TLS to network connections and skips the
// handshake on in-process ones, which never leave this process and are
// authenticated by their address type instead.
type inprocAwareCreds struct {
	credentials.TransportCredentials
}

func (c inprocAwareCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if _, ok := raw.RemoteAddr().(InprocAddr); ok {
		return raw, inprocAuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
	}
	return c.TransportCredentials.ServerHandshake(raw)
}

func (c inprocAwareCreds) Clone() credentials.TransportCredentials {
	return inprocAwareCreds{TransportCredentials: c.TransportCredentials.Clone()}
}

// inprocAuthInfo marks an in-process connection.
type inprocAuthInfo struct {
	credentials.CommonAuthInfo
}

func (inprocAuthInfo) AuthType() string { return "inproc" }
