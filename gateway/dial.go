package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// ReasonServiceUnavailable: the gateway's resolver knows no member serving
// the service (a resolver that returns a typed status keeps its own).
const ReasonServiceUnavailable = "SERVICE_UNAVAILABLE"

// NodeDialer returns a Deps.Dial that reaches every service at one node's
// external gRPC address (in `continuum up`, the node's own listener) over
// one shared connection: plaintext when tlsCfg is nil, else TLS with it.
//
// tlsCfg must not present a client certificate. With one the gateway
// would be an authenticated mesh peer, whose calls run as the node itself
// whatever token the HTTP caller sent; NodeDialer refuses such a config
// (see ExternalClientTLS). Dialing does no I/O: connections are made on
// first use.
func NodeDialer(target string, tlsCfg *tls.Config) (func(service string) (grpc.ClientConnInterface, error), error) {
	if target == "" {
		return nil, errors.New("gateway: a target address is required")
	}
	return MeshDialer(func(string) (string, error) { return target, nil }, tlsCfg)
}

// MeshDialer returns a Deps.Dial for a gateway whose own node does not run
// the services it serves (`continuum serve gateway`): every call asks
// resolve for the gRPC address of a member serving the service (for
// example Mesh.Resolve(service, "").GRPCAddr), so calls follow a service
// when members come and go. Connections are shared per address; one that
// sees no calls goes idle (gRPC's idle mode) instead of redialing a member
// that left. An error from resolve that is a gRPC status is returned as it
// is; any other is UNAVAILABLE SERVICE_UNAVAILABLE. The tlsCfg rule of
// NodeDialer applies.
func MeshDialer(resolve func(service string) (string, error), tlsCfg *tls.Config) (func(service string) (grpc.ClientConnInterface, error), error) {
	if resolve == nil {
		return nil, errors.New("gateway: a resolve function is required")
	}
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		if len(tlsCfg.Certificates) > 0 || tlsCfg.GetClientCertificate != nil {
			return nil, errors.New("gateway: the TLS config presents a client certificate; " +
				"the gateway must reach the mesh as an ordinary client, never as a mesh peer (see ExternalClientTLS)")
		}
		creds = credentials.NewTLS(tlsCfg)
	}
	pool := &connPool{conns: map[string]*grpc.ClientConn{}, opts: []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}}
	return func(service string) (grpc.ClientConnInterface, error) {
		return &resolvingConn{service: service, resolve: resolve, pool: pool}, nil
	}, nil
}

// ExternalClientTLS returns a copy of a mesh member's client TLS config
// (it verifies that the server is a node of the mesh) that presents no
// client certificate, for the gateway to reach members as an ordinary
// external client.
func ExternalClientTLS(meshClient *tls.Config) *tls.Config {
	c := meshClient.Clone()
	c.Certificates = nil
	c.GetClientCertificate = nil
	return c
}

// connPool holds one client connection per address.
type connPool struct {
	opts []grpc.DialOption

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

func (p *connPool) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, status.Error(codes.Unavailable, "the gateway is closing its connections to the mesh")
	}
	if cc, ok := p.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial %s: %v", addr, err)
	}
	p.conns[addr] = cc
	return cc, nil
}

// Close closes every connection, once.
func (p *connPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for addr, cc := range p.conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}

// resolvingConn sends each call to the address resolve names for its
// service.
type resolvingConn struct {
	service string
	resolve func(string) (string, error)
	pool    *connPool
}

var _ grpc.ClientConnInterface = (*resolvingConn)(nil)

func (c *resolvingConn) conn() (*grpc.ClientConn, error) {
	addr, err := c.resolve(c.service)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, newError(codes.Unavailable, ReasonServiceUnavailable, "no member serving "+c.service+" is known: "+err.Error(),
			"service", c.service)
	}
	return c.pool.get(addr)
}

// Invoke implements grpc.ClientConnInterface.
func (c *resolvingConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	cc, err := c.conn()
	if err != nil {
		return err
	}
	return cc.Invoke(ctx, method, args, reply, opts...)
}

// NewStream implements grpc.ClientConnInterface.
func (c *resolvingConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc, err := c.conn()
	if err != nil {
		return nil, err
	}
	return cc.NewStream(ctx, desc, method, opts...)
}

// Close closes the connections shared by every service of the dialer.
func (c *resolvingConn) Close() error { return c.pool.Close() }
