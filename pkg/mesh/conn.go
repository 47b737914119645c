package mesh

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// pool holds one client connection per member, keyed by name and
// remembering the address it was dialled at.
type pool struct {
	// grace is how long a LEFT member's connection stays open after it
	// leaves the pool, so calls in flight while it drains can finish.
	grace time.Duration

	mu         sync.Mutex
	conns      map[string]pooledConn
	retiring   map[uint64]retiree
	nextRetire uint64
	closed     bool
}

type retiree struct {
	timer *time.Timer
	cc    grpc.ClientConnInterface
}

type pooledConn struct {
	addr string
	cc   grpc.ClientConnInterface
}

func newPool(grace time.Duration) *pool {
	return &pool{grace: grace, conns: map[string]pooledConn{}, retiring: map[uint64]retiree{}}
}

func (p *pool) get(name, addr string) (grpc.ClientConnInterface, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc, ok := p.conns[name]
	if !ok || pc.addr != addr {
		return nil, false
	}
	return pc.cc, true
}

// put stores cc unless a connection to the same address got there first,
// in which case cc is closed and the other one returned.
func (p *pool) put(name, addr string, cc grpc.ClientConnInterface) (grpc.ClientConnInterface, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		closeConn(cc)
		return nil, fmt.Errorf("mesh: connection pool is closed")
	}
	var stale grpc.ClientConnInterface
	if pc, ok := p.conns[name]; ok {
		if pc.addr == addr {
			p.mu.Unlock()
			closeConn(cc)
			return pc.cc, nil
		}
		stale = pc.cc
	}
	p.conns[name] = pooledConn{addr: addr, cc: cc}
	p.mu.Unlock()
	closeConn(stale)
	return cc, nil
}

// reconcile takes out of the pool the connections of members that are no
// longer live or moved to another gRPC address. Those of DEAD, forgotten
// or moved members close at once (their calls cannot complete); those of
// LEFT members close after the grace, as the member drains.
func (p *pool) reconcile(r *roster) {
	var stale []grpc.ClientConnInterface
	p.mu.Lock()
	for name, pc := range p.conns {
		m, ok := r.get(name)
		switch {
		case ok && m.State.live() && m.GRPCAddr == pc.addr:
			continue
		case ok && m.State == Left && m.GRPCAddr == pc.addr && p.grace > 0:
			p.retireLocked(pc.cc)
		default:
			stale = append(stale, pc.cc)
		}
		delete(p.conns, name)
	}
	p.mu.Unlock()
	for _, cc := range stale {
		closeConn(cc)
	}
}

// retireLocked closes cc after the grace. p.mu is held, so the timer's
// function cannot look up its entry before it is complete.
func (p *pool) retireLocked(cc grpc.ClientConnInterface) {
	id := p.nextRetire
	p.nextRetire++
	t := time.AfterFunc(p.grace, func() {
		p.mu.Lock()
		r, ok := p.retiring[id]
		delete(p.retiring, id)
		p.mu.Unlock()
		if ok {
			closeConn(r.cc)
		}
	})
	p.retiring[id] = retiree{timer: t, cc: cc}
}

func (p *pool) closeAll() {
	p.mu.Lock()
	conns := p.conns
	retiring := p.retiring
	p.conns = map[string]pooledConn{}
	p.retiring = map[uint64]retiree{}
	p.closed = true
	p.mu.Unlock()
	for _, pc := range conns {
		closeConn(pc.cc)
	}
	for _, r := range retiring {
		r.timer.Stop()
		closeConn(r.cc)
	}
}

func (p *pool) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

func closeConn(cc grpc.ClientConnInterface) {
	if c, ok := cc.(io.Closer); ok {
		_ = c.Close()
	}
}

// Conn returns a connection to the named member: Deps.Local for this node,
// else a pooled connection from Deps.Dial. The pool closes it when the
// member fails or moves (a call in flight then fails with CANCELED), and
// 10 s after the member leaves, so calls in flight while it drains can
// finish. An unknown member gives *ErrMemberUnknown; one that is not
// live (or gossips no readable gRPC address) *ErrMemberUnavailable.
func (m *Mesh) Conn(ctx context.Context, member string) (grpc.ClientConnInterface, error) {
	if member == m.cfg.Node && m.deps.Local != nil {
		return m.deps.Local, nil
	}
	mm, ok := m.roster.get(member)
	switch {
	case !ok:
		return nil, &ErrMemberUnknown{Name: rpcerr.Clip(member)}
	case !mm.State.live() || mm.GRPCAddr == "":
		return nil, &ErrMemberUnavailable{Member: mm}
	}
	if cc, ok := m.pool.get(member, mm.GRPCAddr); ok {
		return cc, nil
	}
	if m.deps.Dial == nil {
		return nil, fmt.Errorf("mesh: no Deps.Dial to reach member %q", member)
	}
	cc, err := m.deps.Dial(ctx, mm)
	if err != nil {
		return nil, fmt.Errorf("mesh: dial member %q at %s: %w", member, mm.GRPCAddr, err)
	}
	cc, err = m.pool.put(member, mm.GRPCAddr, cc)
	if err != nil {
		return nil, err
	}
	// The member may have gone while we dialled; reconcile again so a
	// connection to a gone member does not linger in the pool.
	m.pool.reconcile(m.roster)
	return cc, nil
}

// OwnerConn returns a connection to the Owner of key of a sharded service,
// and the owner.
func (m *Mesh) OwnerConn(ctx context.Context, service, key string) (grpc.ClientConnInterface, Member, error) {
	owner, err := m.Owner(service, key)
	if err != nil {
		return nil, Member{}, err
	}
	cc, err := m.Conn(ctx, owner.Name)
	if err != nil {
		return nil, owner, err
	}
	return cc, owner, nil
}

// ServiceConn returns a connection that, for every call and stream,
// resolves a live member serving service and invokes it there: this node
// when it serves the service (through Deps.Local, no network hop), else
// the rendezvous winner for this node's name among the live members
// serving it (see Resolve). With no live member the call fails with
// UNAVAILABLE, reason SERVICE_UNAVAILABLE. Calls are not retried on
// another member: the caller knows whether its call is idempotent.
func (m *Mesh) ServiceConn(service string) grpc.ClientConnInterface {
	return serviceConn{m: m, service: service}
}

type serviceConn struct {
	m       *Mesh
	service string
}

func (s serviceConn) target(ctx context.Context) (grpc.ClientConnInterface, error) {
	mm, err := s.m.pick(s.service)
	if err != nil {
		return nil, err
	}
	cc, err := s.m.Conn(ctx, mm.Name)
	if err != nil {
		return nil, fmt.Errorf("mesh: %s on member %q: %w", s.service, mm.Name, err)
	}
	return cc, nil
}

// Invoke implements grpc.ClientConnInterface.
func (s serviceConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	cc, err := s.target(ctx)
	if err != nil {
		return err
	}
	return cc.Invoke(ctx, method, args, reply, opts...)
}

// NewStream implements grpc.ClientConnInterface.
func (s serviceConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cc, err := s.target(ctx)
	if err != nil {
		return nil, err
	}
	return cc.NewStream(ctx, desc, method, opts...)
}
