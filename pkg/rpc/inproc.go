package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/test/bufconn"
)

// InprocAddr is the address of connections made through a server's
// in-process listener. Only code in this process can create one, so the
// auth interceptor trusts such a connection as this node itself.
type InprocAddr struct{ Node string }

// Network implements net.Addr.
func (InprocAddr) Network() string { return "inproc" }

func (a InprocAddr) String() string { return "inproc:" + a.Node }

// inprocListener is a net.Listener fed by buffered in-memory pipes
// (grpc's bufconn), whose connections report InprocAddr.
type inprocListener struct {
	addr InprocAddr
	lis  *bufconn.Listener
}

// inprocBuffer is each direction's buffer; large enough that HTTP/2 frames
// of ordinary calls never wait for the reader.
const inprocBuffer = 1 << 20

func newInprocListener(node string) *inprocListener {
	return &inprocListener{addr: InprocAddr{Node: node}, lis: bufconn.Listen(inprocBuffer)}
}

var errListenerClosed = errors.New("in-process listener closed")

func (l *inprocListener) Accept() (net.Conn, error) {
	c, err := l.lis.Accept()
	if err != nil {
		return nil, net.ErrClosed
	}
	return &inprocConn{Conn: c, addr: l.addr}, nil
}

func (l *inprocListener) Close() error { return l.lis.Close() }

func (l *inprocListener) Addr() net.Addr { return l.addr }

// dial connects a new in-memory pipe to the listener.
func (l *inprocListener) dial(ctx context.Context) (net.Conn, error) {
	c, err := l.lis.DialContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errListenerClosed, err)
	}
	return &inprocConn{Conn: c, addr: l.addr}, nil
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
