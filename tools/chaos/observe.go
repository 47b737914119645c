package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/continuum-mesh/continuum/pkg/wait"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
)

// bearer is per-call credentials carrying a token.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// contextDialer is a cluster whose addresses need its own dialer (compose:
// a member's container address changes when it restarts).
type contextDialer interface {
	DialContext(ctx context.Context, addr string) (net.Conn, error)
}

// dial opens a client connection to addr on c presenting token.
func dial(c Cluster, addr, token string) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if tlsCfg := c.TLS(); tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg.Clone())
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(bearer(token))}
	if d, ok := c.(contextDialer); ok {
		opts = append(opts, grpc.WithContextDialer(d.DialContext))
		addr = "passthrough:///" + addr
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return cc, nil
}

// observer polls every node's MeshService.Members (on the watch address,
// outside the fabric) and records each change of a member's state with
// the time the observing node gives for it (state_since).
type observer struct {
	log   *slog.Logger
	conns map[string]*grpc.ClientConn

	mu              sync.Mutex
	last            map[pair]Transition
	trans           []Transition
	polls, failures int
	// answers holds, per node, when its polls succeeded, in order.
	answers map[string][]time.Time
}

func newObserver(c Cluster, log *slog.Logger) (*observer, error) {
	o := &observer{log: log, conns: map[string]*grpc.ClientConn{}, last: map[pair]Transition{}, answers: map[string][]time.Time{}}
	for _, n := range c.Nodes() {
		cc, err := dial(c, c.WatchAddr(n), c.AdminToken())
		if err != nil {
			o.close()
			return nil, err
		}
		o.conns[n] = cc
	}
	return o, nil
}

func (o *observer) close() {
	for _, cc := range o.conns {
		_ = cc.Close()
	}
}

func stateName(s meshv1.MemberState) string {
	switch s {
	case meshv1.MemberState_MEMBER_STATE_ALIVE:
		return StateAlive
	case meshv1.MemberState_MEMBER_STATE_SUSPECT:
		return StateSuspect
	case meshv1.MemberState_MEMBER_STATE_DEAD:
		return StateDead
	case meshv1.MemberState_MEMBER_STATE_LEFT:
		return StateLeft
	}
	return s.String()
}

// run polls until ctx ends.
func (o *observer) run(ctx context.Context, every time.Duration) {
	var wg sync.WaitGroup
	for node, cc := range o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := meshv1.NewMeshServiceClient(cc)
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				o.poll(ctx, node, client)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
}

func (o *observer) poll(ctx context.Context, node string, client meshv1.MeshServiceClient) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := client.Members(pctx, &meshv1.MembersRequest{IncludeGone: true})
	o.mu.Lock()
	defer o.mu.Unlock()
	o.polls++
	if err != nil {
		o.failures++
		return
	}
	o.answers[node] = append(o.answers[node], time.Now())
	for _, m := range resp.GetMembers() {
		if m.GetName() == node {
			continue
		}
		t := Transition{Observer: node, Member: m.GetName(), State: stateName(m.GetState()), Since: m.GetStateSince().AsTime()}
		p := pair{node, m.GetName()}
		if prev, ok := o.last[p]; ok && prev.State == t.State && prev.Since.Equal(t.Since) {
			continue
		}
		o.last[p] = t
		o.trans = append(o.trans, t)
		if t.State != StateAlive {
			o.log.Info("member state", "observer", node, "member", t.Member, "state", t.State, "since", t.Since.Format("15:04:05.000"))
		}
	}
}

// answered reports whether node answered a poll between from and to.
func (o *observer) answered(node string, from, to time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	ts := o.answers[node]
	i, _ := slices.BinarySearchFunc(ts, from, func(a, b time.Time) int { return a.Compare(b) })
	return i < len(ts) && !ts[i].After(to)
}

// transitions returns what was recorded.
func (o *observer) transitions() []Transition {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Transition(nil), o.trans...)
}

// whole reports whether every node answers and holds every other node
// ALIVE.
func (o *observer) whole(ctx context.Context, nodes []string) error {
	for _, n := range nodes {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := meshv1.NewMeshServiceClient(o.conns[n]).Members(cctx, &meshv1.MembersRequest{IncludeGone: true})
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		alive := map[string]bool{}
		for _, m := range resp.GetMembers() {
			if m.GetState() == meshv1.MemberState_MEMBER_STATE_ALIVE {
				alive[m.GetName()] = true
			}
		}
		for _, m := range nodes {
			if !alive[m] {
				return fmt.Errorf("%s does not hold %s ALIVE", n, m)
			}
		}
	}
	return nil
}

// waitWhole polls whole until it holds or the deadline passes.
func (o *observer) waitWhole(ctx context.Context, nodes []string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := o.whole(ctx, nodes)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("mesh not whole after %s: %w", within, err)
		}
		if !wait.Sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// runtime samples every node's goroutines and heap after a GC.
func (o *observer) runtime(ctx context.Context, nodes []string) (map[string]RuntimeSample, error) {
	out := map[string]RuntimeSample{}
	for _, n := range nodes {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := debugv1.NewDebugServiceClient(o.conns[n]).GetRuntimeStats(cctx, &debugv1.GetRuntimeStatsRequest{})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("runtime stats of %s: %w", n, err)
		}
		out[n] = RuntimeSample{Goroutines: r.GetGoroutines(), HeapAlloc: r.GetHeapAllocBytes(), OpenFDs: r.GetOpenFds()}
	}
	return out, nil
}
