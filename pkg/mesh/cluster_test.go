package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// testLogger discards, unless MESH_TEST_LOG=1 asks for debug output.
func testLogger() *slog.Logger {
	if os.Getenv("MESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// node is one in-process mesh member of a test, with its Run loop.
type node struct {
	*Mesh
	cancel context.CancelFunc
	done   chan error
}

type nodeOpts struct {
	services []string
	peers    []HostedPeer
	rooms    []string
	join     []string
	key      []byte
	deps     Deps
}

// startNode starts a member on 127.0.0.1:0 with the local profile, joins
// it and runs its maintenance loop until the test ends.
func startNode(t *testing.T, name string, o nodeOpts) *node {
	t.Helper()
	deps := o.deps
	if deps.Logger == nil {
		deps.Logger = testLogger()
	}
	m, err := New(Config{
		Node:       name,
		GossipAddr: "127.0.0.1:0",
		GRPCAddr:   "127.0.0.1:1", // not dialled unless the test sets Deps.Dial
		Services:   o.services,
		Peers:      o.peers,
		Rooms:      o.rooms,
		Join:       o.join,
		Profile:    ProfileLocal,
		SecretKey:  o.key,
	}, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{Mesh: m, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- m.Run(ctx) }()
	t.Cleanup(n.stop)
	jctx, jcancel := context.WithTimeout(ctx, 10*time.Second)
	defer jcancel()
	if err := m.Start(jctx); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return n
}

// stop ends Run and closes the mesh; safe to call twice.
func (n *node) stop() {
	n.cancel()
	if n.done != nil {
		<-n.done
		n.done = nil
	}
	_ = n.Close()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		<-tick.C
	}
}

// view is what a test compares of a member.
type view struct {
	Name     string
	Services []string
	Peers    []HostedPeer
	Rooms    []string
	State    State
}

func views(ms []Member) []view {
	out := make([]view, len(ms))
	for i, m := range ms {
		out[i] = view{m.Name, m.Services, m.Peers, m.Rooms, m.State}
	}
	return out
}

func stateOf(m *Mesh, name string) State {
	mm, _ := m.Member(name)
	return mm.State
}

func wantState(m *Mesh, name string, st State) func() error {
	return func() error {
		if got := stateOf(m, name); got != st {
			return fmt.Errorf("%s sees %s as %s, want %s", m.cfg.Node, name, got, st)
		}
		return nil
	}
}

// Detection bound of the local profile in these tests: the design target
// is 1-2 s (see docs/perf-mesh.md), the bound leaves room for a loaded
// machine running the race detector.
const detectWithin = 8 * time.Second

// TestThreeNodes runs three members on loopback through join, a crash and
// a return, and a graceful leave, checking that all agree on members,
// hosts and owners at every step.
func TestThreeNodes(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef") // gossip encryption on, as in production
	svc := []string{"hippocampus", "mesh", "router"}
	a := startNode(t, "node-a", nodeOpts{services: svc, key: key, peers: []HostedPeer{{Name: "alice", Envs: []string{"web"}}}, rooms: []string{uuidA}})
	join := []string{a.Self().GossipAddr}
	b := startNode(t, "node-b", nodeOpts{services: svc, key: key, join: join, peers: []HostedPeer{{Name: "bob", Envs: []string{"tty", "vr"}}}})
	c := startNode(t, "node-c", nodeOpts{services: []string{"hippocampus", "mesh"}, key: key, join: join, rooms: []string{uuidA}})
	nodes := []*node{a, b, c}

	want := []view{
		{"node-a", svc, []HostedPeer{{Name: "alice", Envs: []string{"web"}}}, []string{uuidA}, Alive},
		{"node-b", svc, []HostedPeer{{Name: "bob", Envs: []string{"tty", "vr"}}}, []string{}, Alive},
		{"node-c", []string{"hippocampus", "mesh"}, []HostedPeer{{Name: "node-c", Envs: []string{}}}, []string{uuidA}, Alive},
	}
	converged := eventually(t, 10*time.Second, "convergence", func() error {
		for _, n := range nodes {
			if diff := cmp.Diff(want, views(n.Members()), cmpopts.EquateEmpty()); diff != "" {
				return fmt.Errorf("%s's members (-want +got):\n%s", n.cfg.Node, diff)
			}
		}
		return nil
	})
	t.Logf("3 nodes converged in %v", converged)
	for _, n := range nodes {
		if self := n.Self(); !self.Self || self.Name != n.cfg.Node {
			t.Errorf("%s: Self() = %+v", n.cfg.Node, self)
		}
		if h, err := n.HostOf("bob"); err != nil || h.Name != "node-b" {
			t.Errorf("%s: HostOf(bob) = %q, %v", n.cfg.Node, h.Name, err)
		}
		if diff := cmp.Diff([]string{"node-a", "node-c"}, names(n.RoomMembers(uuidA))); diff != "" {
			t.Errorf("%s: room members (-want +got):\n%s", n.cfg.Node, diff)
		}
		if diff := cmp.Diff([]string{"node-a", "node-b"}, names(n.Serving("router"))); diff != "" {
			t.Errorf("%s: router servers (-want +got):\n%s", n.cfg.Node, diff)
		}
	}

	ks := keys(200)
	owners := ownersOn(t, a.Mesh, ks)
	for _, n := range nodes[1:] {
		if diff := cmp.Diff(owners, ownersOn(t, n.Mesh, ks)); diff != "" {
			t.Fatalf("%s disagrees on owners (-a +%s):\n%s", n.cfg.Node, n.cfg.Node, diff)
		}
	}

	// A crash: b stops without a goodbye. Both others record it DEAD,
	// its keys answer OWNER_DOWN and its peer is unreachable.
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}
	detected := eventually(t, detectWithin, "failure detection", func() error {
		return errors.Join(wantState(a.Mesh, "node-b", Dead)(), wantState(c.Mesh, "node-b", Dead)())
	})
	t.Logf("crash of node-b detected as DEAD by both others in %v", detected)
	for _, n := range []*node{a, c} {
		for _, k := range ks {
			o, err := n.Owner("hippocampus", k)
			if owners[k] != "node-b" {
				if err != nil || o.Name != owners[k] {
					t.Fatalf("%s: key %q moved to %q (%v) after b's crash", n.cfg.Node, k, o.Name, err)
				}
				continue
			}
			var down *ErrOwnerDown
			if !errors.As(err, &down) || down.Member.Name != "node-b" || status.Code(err) != codes.Unavailable || rpcerr.Reason(err) != ReasonOwnerDown {
				t.Fatalf("%s: key %q: %v, want OWNER_DOWN node-b", n.cfg.Node, k, err)
			}
		}
		_, err := n.HostOf("bob")
		if status.Code(err) != codes.Unavailable || rpcerr.Reason(err) != ReasonPeerUnreachable {
			t.Errorf("%s: HostOf(bob) after the crash: %v", n.cfg.Node, err)
		}
		if got := names(n.Members()); slices.Contains(got, "node-b") {
			t.Errorf("%s: Members() still lists node-b: %v", n.cfg.Node, got)
		}
		if got := names(n.AllMembers()); !slices.Contains(got, "node-b") {
			t.Errorf("%s: AllMembers() forgot node-b: %v", n.cfg.Node, got)
		}
	}
	b.stop()

	// b comes back under the same name, on a new port: ALIVE again, and
	// its keys are its again.
	b2 := startNode(t, "node-b", nodeOpts{services: svc, key: key, join: join, peers: []HostedPeer{{Name: "bob", Envs: []string{"tty", "vr"}}}})
	back := eventually(t, 10*time.Second, "return", func() error {
		return errors.Join(wantState(a.Mesh, "node-b", Alive)(), wantState(c.Mesh, "node-b", Alive)(), func() error {
			if got := len(b2.Members()); got != 3 {
				return fmt.Errorf("node-b sees %d members", got)
			}
			return nil
		}())
	})
	t.Logf("node-b ALIVE again everywhere %v after restarting", back)
	for _, n := range []*node{a, b2, c} {
		if diff := cmp.Diff(owners, ownersOn(t, n.Mesh, ks)); diff != "" {
			t.Fatalf("%s after b's return (-before +now):\n%s", n.cfg.Node, diff)
		}
	}

	// A graceful leave: c leaves, both others record LEFT, and c's keys
	// move to where PreviousOwner said they would.
	moveTo := map[string]string{}
	for _, k := range ks {
		if owners[k] == "node-c" {
			p, ok := a.PreviousOwner("hippocampus", k, "node-c")
			if !ok {
				t.Fatalf("no previous owner for %q", k)
			}
			moveTo[k] = p.Name
		}
	}
	if len(moveTo) == 0 {
		t.Fatal("node-c owns none of the keys; the test proves nothing")
	}
	if err := c.Leave(5 * time.Second); err != nil {
		t.Fatalf("leave: %v", err)
	}
	left := eventually(t, 10*time.Second, "leave", func() error {
		return errors.Join(wantState(a.Mesh, "node-c", Left)(), wantState(b2.Mesh, "node-c", Left)())
	})
	t.Logf("node-c LEFT everywhere in %v", left)
	for _, n := range []*node{a, b2} {
		for k, to := range moveTo {
			if o, err := n.Owner("hippocampus", k); err != nil || o.Name != to {
				t.Fatalf("%s: left c's key %q: owner %q, %v; want %q", n.cfg.Node, k, o.Name, err, to)
			}
		}
	}
	if st := c.Self().State; st != Left {
		t.Errorf("node-c sees itself as %s after leaving", st)
	}
}

func names(ms []Member) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func ownersOn(t *testing.T, m *Mesh, ks []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range ks {
		o, err := m.Owner("hippocampus", k)
		if err != nil {
			t.Fatalf("%s: Owner(%q): %v", m.cfg.Node, k, err)
		}
		out[k] = o.Name
	}
	return out
}

// TestMetadataUpdate: peers and rooms changed at run time reach the others.
func TestMetadataUpdate(t *testing.T) {
	t.Parallel()
	a := startNode(t, "upd-a", nodeOpts{services: []string{"mesh"}})
	b := startNode(t, "upd-b", nodeOpts{services: []string{"mesh"}, join: []string{a.Self().GossipAddr}})
	ch, cancel := a.Watch()
	defer cancel()
	if err := b.UpdatePeers([]HostedPeer{{Name: "maya", Envs: []string{"vr"}}, {Name: uuidB}}); err != nil {
		t.Fatal(err)
	}
	if err := b.UpdateRooms([]string{uuidA}); err != nil {
		t.Fatal(err)
	}
	if err := b.UpdateServices([]string{"mesh", "genome"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "update", func() error {
		h, err := a.HostOf(uuidB)
		if err != nil || h.Name != "upd-b" {
			return fmt.Errorf("HostOf = %q, %v", h.Name, err)
		}
		if got := names(a.RoomMembers(uuidA)); !slices.Equal(got, []string{"upd-b"}) {
			return fmt.Errorf("room members %v", got)
		}
		if got := names(a.Serving("genome")); !slices.Equal(got, []string{"upd-b"}) {
			return fmt.Errorf("genome servers %v", got)
		}
		return nil
	})
	select {
	case <-ch:
	default:
		t.Error("Watch did not fire on the update")
	}
	if err := b.UpdateRooms([]string{"not-a-room"}); err == nil {
		t.Error("UpdateRooms accepted a non-UUID")
	}
	if self := b.Self(); !slices.Equal(self.Rooms, []string{uuidA}) {
		t.Errorf("b's own rooms = %v", self.Rooms)
	}
}

// TestDrain: a draining member still serves and is still a member, but no
// member (itself at once, the others through gossip) counts it as the
// owner of a key any more; its keys go where they will go once it leaves.
// When every member serving a service drains, they keep their keys.
func TestDrain(t *testing.T) {
	t.Parallel()
	svc := []string{"hippocampus"}
	a := startNode(t, "drain-a", nodeOpts{services: svc})
	b := startNode(t, "drain-b", nodeOpts{services: svc, join: []string{a.Self().GossipAddr}})
	c := startNode(t, "drain-c", nodeOpts{services: svc, join: []string{a.Self().GossipAddr}})
	all := []*node{a, b, c}
	eventually(t, 10*time.Second, "three members", func() error {
		for _, n := range all {
			if got := len(n.Serving("hippocampus")); got != 3 {
				return fmt.Errorf("%s sees %d members", n.cfg.Node, got)
			}
		}
		return nil
	})
	var keys []string
	for i := range 60 {
		keys = append(keys, fmt.Sprintf("persona-%d", i))
	}
	// Where c's keys go once c is gone.
	after := map[string]string{}
	for _, k := range keys {
		m, ok := a.PreviousOwner("hippocampus", k, "drain-c")
		if !ok {
			t.Fatal("no previous owner")
		}
		after[k] = m.Name
	}
	if !slices.Contains(slices.Collect(maps.Values(ownersOn(t, a.Mesh, keys))), "drain-c") {
		t.Fatal("c owns none of the test keys; pick more keys")
	}
	if c.Draining() {
		t.Fatal("Draining before Drain")
	}
	if err := c.Drain(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(time.Second); err != nil {
		t.Fatalf("second Drain: %v", err)
	}
	if !c.Draining() || !c.Self().Draining {
		t.Fatal("c does not say it is draining")
	}
	if diff := cmp.Diff(after, ownersOn(t, c.Mesh, keys)); diff != "" {
		t.Errorf("c's own view right after Drain (-want +got):\n%s", diff)
	}
	eventually(t, 10*time.Second, "the others see c draining", func() error {
		for _, n := range []*node{a, b} {
			m, ok := n.Member("drain-c")
			if !ok || !m.Draining || m.State != Alive {
				return fmt.Errorf("%s sees c as %+v", n.cfg.Node, m)
			}
			if diff := cmp.Diff(after, ownersOn(t, n.Mesh, keys)); diff != "" {
				return fmt.Errorf("%s's owners (-want +got):\n%s", n.cfg.Node, diff)
			}
		}
		return nil
	})
	if got := len(a.Serving("hippocampus")); got != 3 {
		t.Errorf("a draining member left Serving: %d members", got)
	}
	// Everyone draining: every key still has an owner.
	for _, n := range []*node{a, b} {
		if err := n.Drain(time.Second); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "all draining", func() error {
		for _, n := range all {
			for _, k := range keys {
				if _, err := n.Owner("hippocampus", k); err != nil {
					return fmt.Errorf("%s: Owner(%s): %w", n.cfg.Node, k, err)
				}
			}
			for _, m := range n.Members() {
				if !m.Draining {
					return fmt.Errorf("%s sees %s not draining", n.cfg.Node, m.Name)
				}
			}
		}
		return nil
	})
}

// TestStartRetriesUntilASeedAppears: a node whose seed is not up yet keeps
// trying, and joins once the seed listens.
func TestStartRetriesUntilASeedAppears(t *testing.T) {
	t.Parallel()
	// Reserve an address for the seed: bind it with a mesh, note the
	// port, close it, and start the seed there later.
	probe, err := New(Config{Node: "probe", GossipAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:1", Profile: ProfileLocal}, Deps{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	seedAddr := probe.Self().GossipAddr
	_ = probe.Close()

	failures := &countingHandler{match: "join attempt failed"}
	joiner, err := New(Config{Node: "late-joiner", GossipAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:1", Profile: ProfileLocal, Join: []string{seedAddr}}, Deps{Logger: slog.New(failures)})
	if err != nil {
		t.Fatal(err)
	}
	defer joiner.Close()
	var wg sync.WaitGroup
	started := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		started <- joiner.Start(ctx)
	}()
	// The seed appears only after the joiner has failed twice.
	eventually(t, 10*time.Second, "failed join attempts", func() error {
		if n := failures.count(); n < 2 {
			return fmt.Errorf("%d failed attempts", n)
		}
		return nil
	})
	seed, err := New(Config{Node: "seed", GossipAddr: seedAddr, GRPCAddr: "127.0.0.1:1", Profile: ProfileLocal}, Deps{Logger: testLogger()})
	if err != nil {
		t.Skipf("could not rebind the reserved port %s: %v", seedAddr, err)
	}
	defer seed.Close()
	if err := <-started; err != nil {
		t.Fatalf("Start: %v", err)
	}
	wg.Wait()
	eventually(t, 10*time.Second, "seed sees joiner", wantState(seed, "late-joiner", Alive))

	// Start gives up when its context ends.
	lone, err := New(Config{Node: "lone", GossipAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:1", Profile: ProfileLocal, Join: []string{"127.0.0.1:1"}}, Deps{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer lone.Close()
	sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer scancel()
	if err := lone.Start(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start with no seed: %v, want DeadlineExceeded", err)
	}
}

// countingHandler counts log records whose message is match.
type countingHandler struct {
	match string
	mu    sync.Mutex
	n     int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.match {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
	return nil
}

func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h *countingHandler) WithGroup(string) slog.Handler { return h }

func (h *countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// TestRunRejoinsWhileAlone: a node that joined, then lost every other
// member, keeps trying its join list and finds the mesh again.
func TestRunRejoinsWhileAlone(t *testing.T) {
	t.Parallel()
	a := startNode(t, "alone-a", nodeOpts{services: []string{"mesh"}})
	seedAddr := a.Self().GossipAddr
	b := startNode(t, "alone-b", nodeOpts{services: []string{"mesh"}, join: []string{seedAddr}})
	eventually(t, 10*time.Second, "join", wantState(a.Mesh, "alone-b", Alive))
	// a crashes and is replaced by a new a on the same address.
	a.stop()
	eventually(t, detectWithin, "b alone", wantState(b.Mesh, "alone-a", Dead))
	a2, err := New(Config{Node: "alone-a", GossipAddr: seedAddr, GRPCAddr: "127.0.0.1:1", Profile: ProfileLocal, Services: []string{"mesh"}}, Deps{Logger: testLogger()})
	if err != nil {
		t.Skipf("could not rebind %s: %v", seedAddr, err)
	}
	defer a2.Close()
	// a2 joins no one; b's Run loop must find it.
	eventually(t, 10*time.Second, "b rejoins", wantState(b.Mesh, "alone-a", Alive))
	eventually(t, 10*time.Second, "a2 sees b", wantState(a2, "alone-b", Alive))
}

// TestJoinListNamingSelf: in compose every container may get the same join
// list, the first one included; joining only itself succeeds at once.
func TestJoinListNamingSelf(t *testing.T) {
	t.Parallel()
	probe, err := New(Config{Node: "probe-self", GossipAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:1", Profile: ProfileLocal}, Deps{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Self().GossipAddr
	_ = probe.Close()
	m, err := New(Config{Node: "self-seed", GossipAddr: addr, GRPCAddr: "127.0.0.1:1", Profile: ProfileLocal, Join: []string{addr}}, Deps{Logger: testLogger()})
	if err != nil {
		t.Skipf("could not rebind %s: %v", addr, err)
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got := names(m.Members()); !slices.Equal(got, []string{"self-seed"}) {
		t.Errorf("members %v", got)
	}
}
