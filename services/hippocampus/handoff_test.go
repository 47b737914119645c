package hippocampus

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	hippocampusv1 "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
)

// node is one hippocampus instance of an in-process mesh: the service on a
// real pkg/rpc server (the whole interceptor chain), its ring view, and a
// client as the admin.
type node struct {
	name   string
	svc    *Service
	srv    *rpctest.Server
	client hippocampusv1.HippocampusServiceClient
	stop   func()
}

// startNode starts an instance named name in cluster c. With run set its
// Run loop runs (ticks, and pushes after membership changes).
func startNode(t *testing.T, c *fakeCluster, name string, run bool) *node {
	t.Helper()
	svc, err := New(Config{Node: name, DataDir: t.TempDir(), LocateWait: 5 * time.Second, MaintainInterval: time.Hour}, Deps{Ring: c.ring(name), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Errorf("close %s: %v", name, err)
		}
	})
	srv := rpctest.Start(t, rpctest.Options{}, svc.Register)
	c.setConn(name, srv.DialMeshPeer())
	n := &node{name: name, svc: svc, srv: srv, client: hippocampusv1.NewHippocampusServiceClient(srv.Dial(rpctest.AdminToken)), stop: func() {}}
	if run {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = svc.Run(ctx) }()
		n.stop = func() { cancel(); <-done }
		t.Cleanup(n.stop)
	}
	return n
}

func rememberN(t *testing.T, n *node, persona string, count int) []string {
	t.Helper()
	var ids []string
	for i := range count {
		resp, err := n.client.Remember(context.Background(), &hippocampusv1.RememberRequest{
			Persona: persona, Channel: "chat",
			Engram: &hippocampusv1.Engram{Content: fmt.Sprintf("%s says %d", persona, i), Entities: []string{"e" + fmt.Sprint(i%3)}, Topics: []string{"t"}},
		})
		if err != nil {
			t.Fatalf("remember on %s: %v", n.name, err)
		}
		ids = append(ids, resp.GetId())
	}
	return ids
}

// recallAll returns the ids a persona holds, by recalling its shared topic.
func recallAll(t *testing.T, n *node, persona string) ([]string, error) {
	t.Helper()
	resp, err := n.client.Recall(context.Background(), &hippocampusv1.RecallRequest{Persona: persona, Channel: "chat", Cue: "t", K: 64})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, it := range resp.GetItems() {
		ids = append(ids, it.GetEngramId())
	}
	slices.Sort(ids)
	return ids, nil
}

func wantReason(t *testing.T, err error, code codes.Code, reason string, meta ...string) {
	t.Helper()
	if status.Code(err) != code || rpcerr.Reason(err) != reason {
		t.Fatalf("error = %v (%s), want %v %s", err, rpcerr.Reason(err), code, reason)
	}
	info := rpcerr.Info(err)
	for i := 0; i+1 < len(meta); i += 2 {
		if got := info.GetMetadata()[meta[i]]; got != meta[i+1] {
			t.Errorf("metadata %s = %q, want %q", meta[i], got, meta[i+1])
		}
	}
}

// TestHandOffPullOnFirstRequest: a member joins; the first request for a
// persona it now owns pulls the persona from the member that held it, and
// answers from the full memory, never an empty one. The old holder answers
// PERSONA_NOT_OWNED.
func TestHandOffPullOnFirstRequest(t *testing.T) {
	t.Parallel()
	c := newFakeCluster("a")
	a := startNode(t, c, "a", false)
	b := startNode(t, c, "b", false)
	persona := personaOwnedBy("b", []string{"a", "b"}, "pull-")
	ids := rememberN(t, a, persona, 25)
	slices.Sort(ids)

	c.join("b")
	got, err := recallAll(t, b, persona)
	if err != nil {
		t.Fatalf("first request on the new owner: %v", err)
	}
	if diff := slices.Compare(ids, got); diff != 0 {
		t.Fatalf("the new owner recalls %d of %d engrams", len(got), len(ids))
	}
	if a.svc.mem.get(persona) != nil {
		t.Error("the old holder kept its copy after the hand-off")
	}
	_, err = a.client.Peek(context.Background(), &hippocampusv1.PeekRequest{Persona: persona, Channel: "chat"})
	wantReason(t, err, codes.Unavailable, ReasonPersonaNotOwned, "owner", "b")
	// The new owner keeps serving it, durably.
	rememberN(t, b, persona, 1)
}

// TestHandOffPushOnMembershipChange: without any request, a member that
// sees it no longer owns a persona pushes it to the new owner.
func TestHandOffPushOnMembershipChange(t *testing.T) {
	t.Parallel()
	c := newFakeCluster("a")
	a := startNode(t, c, "a", true)
	b := startNode(t, c, "b", true)
	persona := personaOwnedBy("b", []string{"a", "b"}, "push-")
	stays := personaOwnedBy("a", []string{"a", "b"}, "stay-")
	rememberN(t, a, persona, 15)
	rememberN(t, a, stays, 5)

	c.join("b")
	waitUntil(t, func() bool {
		p := b.svc.mem.get(persona)
		return p != nil && p.live.Load() == 15 && a.svc.mem.get(persona) == nil
	})
	if a.svc.mem.get(stays) == nil || b.svc.mem.get(stays) != nil {
		t.Error("a persona that did not change owner moved")
	}
}

// TestHandOffGracefulLeave: a leaving member hands every persona to the
// member that owns it once it is gone, before it stops.
func TestHandOffGracefulLeave(t *testing.T) {
	t.Parallel()
	c := newFakeCluster("a", "b")
	a := startNode(t, c, "a", false)
	b := startNode(t, c, "b", false)
	var personas []string
	for i := range 3 {
		p := personaOwnedBy("b", []string{"a", "b"}, fmt.Sprintf("leave%d-", i))
		personas = append(personas, p)
		rememberN(t, b, p, 10+i)
	}
	if err := b.svc.Leave(context.Background()); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	// Until gossip says b has gone, b answers with the new owner.
	_, err := b.client.Stats(context.Background(), &hippocampusv1.StatsRequest{Persona: personas[0]})
	wantReason(t, err, codes.Unavailable, ReasonPersonaNotOwned, "owner", "a")
	c.leave("b")
	for i, p := range personas {
		got, err := recallAll(t, a, p)
		if err != nil || len(got) != 10+i {
			t.Errorf("%s on the successor: %d engrams, %v; want %d", p, len(got), err, 10+i)
		}
	}
	if st, _ := b.svc.Stats(context.Background(), ""); st.Personas != 0 {
		t.Errorf("the leaving member still holds %d personas", st.Personas)
	}
}

// TestHandOffScaleDown: two of three members leave at the same moment (a
// scale-down from 3 to 1), with and without the others having seen them
// drain: a leaving member may first hand a persona to the other leaving
// one, which refuses it or passes it on. Every persona ends on the member
// that stays, with every engram, and the leaving members hold nothing.
func TestHandOffScaleDown(t *testing.T) {
	t.Parallel()
	for _, announced := range []bool{true, false} {
		t.Run(fmt.Sprintf("drain_announced=%v", announced), func(t *testing.T) {
			t.Parallel()
			members := []string{"a", "b", "c"}
			c := newFakeCluster(members...)
			nodes := map[string]*node{}
			for _, m := range members {
				nodes[m] = startNode(t, c, m, true)
			}
			want := map[string]int{}
			for i := range 12 {
				owner := members[i%3]
				p := personaOwnedBy(owner, members, fmt.Sprintf("scale%d-", i))
				want[p] = 3 + i
				rememberN(t, nodes[owner], p, 3+i)
			}
			if announced {
				c.drain("b", "c")
			}
			var wg sync.WaitGroup
			for _, m := range []string{"b", "c"} {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					if err := nodes[m].svc.Leave(ctx); err != nil {
						t.Errorf("%s Leave: %v", m, err)
					}
				})
			}
			wg.Wait()
			for _, m := range []string{"b", "c"} {
				if st, _ := nodes[m].svc.Stats(context.Background(), ""); st.Personas != 0 {
					t.Errorf("leaving member %s still holds %d personas", m, st.Personas)
				}
			}
			c.leave("b")
			c.leave("c")
			for p, n := range want {
				got, err := recallAll(t, nodes["a"], p)
				if err != nil || len(got) != n {
					t.Errorf("%s on the remaining member: %d engrams, %v; want %d", p, len(got), err, n)
				}
			}
		})
	}
}

// TestLeaveAsLastMember: the last member has no one to hand to; Leave
// returns at once (the personas stay on its disk) instead of retrying
// until the drain deadline.
func TestLeaveAsLastMember(t *testing.T) {
	t.Parallel()
	c := newFakeCluster("solo")
	n := startNode(t, c, "solo", false)
	rememberN(t, n, "alone", 2)
	if err := n.svc.Leave(context.Background()); err != nil {
		t.Fatalf("Leave of the last member: %v", err)
	}
	if n.svc.mem.get("alone") == nil {
		t.Fatal("the last member dropped a persona it could not hand off")
	}
}

// TestHandOffLosesNoAcknowledgedWrite writes to a persona, always to its
// owner of the moment like a router would, while it moves back and forth;
// every acknowledged engram is on the final owner, and every refusal was a
// typed, retryable one.
func TestHandOffLosesNoAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	c := newFakeCluster("a", "b")
	nodes := map[string]*node{"a": startNode(t, c, "a", true), "b": startNode(t, c, "b", true)}
	persona := "busy"
	ring := c.ring("a")

	var (
		mu    sync.Mutex
		acked []string
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			owner, err := ring.Owner(persona)
			if err != nil {
				continue
			}
			id := fmt.Sprintf("w%04d", i)
			_, err = nodes[owner].client.Remember(context.Background(), &hippocampusv1.RememberRequest{
				Persona: persona, Channel: "chat", Engram: &hippocampusv1.Engram{Id: id, Content: id, Topics: []string{"t"}},
			})
			switch {
			case err == nil:
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			case status.Code(err) == codes.Unavailable && slices.Contains([]string{ReasonPersonaMoving, ReasonPersonaNotOwned}, rpcerr.Reason(err)):
			default:
				t.Errorf("write %s: %v", id, err)
				return
			}
		}
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	for round := range 4 {
		waitUntil(t, func() bool { return count() >= 20*(round+1) })
		target := []string{"b", "a"}[round%2]
		c.change(func(c *fakeCluster) { c.pin[persona] = target })
	}
	waitUntil(t, func() bool { return count() >= 100 })
	close(stop)
	<-done
	owner, _ := ring.Owner(persona)
	other := map[string]string{"a": "b", "b": "a"}[owner]
	waitUntil(t, func() bool { return nodes[other].svc.mem.get(persona) == nil })
	p := nodes[owner].svc.mem.get(persona)
	if p == nil {
		t.Fatal("the final owner does not hold the persona")
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	mu.Lock()
	defer mu.Unlock()
	for _, id := range acked {
		if _, ok := p.byID[id]; !ok {
			t.Errorf("acknowledged engram %s is lost", id)
		}
	}
	t.Logf("%d writes acknowledged across 4 moves", len(acked))
}

// TestOwnerDownAndRoutingRaces: a crashed owner's personas answer
// PERSONA_OWNER_DOWN; a call that reached a member that does not own the
// persona answers PERSONA_NOT_OWNED with the owner; never an empty memory.
func TestOwnerDownAndRoutingRaces(t *testing.T) {
	t.Parallel()
	c := newFakeCluster("a", "b")
	a := startNode(t, c, "a", false)
	b := startNode(t, c, "b", false)
	onB := personaOwnedBy("b", []string{"a", "b"}, "down-")
	rememberN(t, b, onB, 3)

	_, err := a.client.Peek(context.Background(), &hippocampusv1.PeekRequest{Persona: onB, Channel: "chat"})
	wantReason(t, err, codes.Unavailable, ReasonPersonaNotOwned, "owner", "b", "persona", onB)

	c.crash("b")
	for _, call := range []func() error{
		func() error {
			_, err := a.client.Peek(context.Background(), &hippocampusv1.PeekRequest{Persona: onB, Channel: "chat"})
			return err
		},
		func() error {
			_, err := a.client.Remember(context.Background(), &hippocampusv1.RememberRequest{Persona: onB, Channel: "chat", Engram: &hippocampusv1.Engram{Content: "x"}})
			return err
		},
	} {
		wantReason(t, call(), codes.Unavailable, ReasonPersonaOwnerDown, "owner", "b")
	}
	// A persona a crashed member held before this one joined is not
	// answered as empty either.
	c2 := newFakeCluster("x")
	x := startNode(t, c2, "x", false)
	y := startNode(t, c2, "y", false)
	held := personaOwnedBy("y", []string{"x", "y"}, "held-")
	rememberN(t, x, held, 2)
	c2.join("y")
	c2.crash("x")
	_, err = y.client.Recall(context.Background(), &hippocampusv1.RecallRequest{Persona: held, Channel: "chat", Cue: "t"})
	wantReason(t, err, codes.Unavailable, ReasonPersonaOwnerDown, "owner", "x")
}

// TestMeshInternalCalls: only a mesh peer may import or export personas.
func TestMeshInternalCalls(t *testing.T) {
	t.Parallel()
	c := newFakeCluster("a")
	a := startNode(t, c, "a", false)
	_, err := a.client.ExportPersona(context.Background(), &hippocampusv1.ExportPersonaRequest{Persona: "p", To: "a"})
	wantReason(t, err, codes.PermissionDenied, ReasonMeshPeerRequired)
	stream, err := a.client.ImportPersona(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&hippocampusv1.ImportPersonaRequest{Persona: "p", Chunk: []byte("x")})
	_, err = stream.CloseAndRecv()
	wantReason(t, err, codes.PermissionDenied, ReasonMeshPeerRequired)

	peer := hippocampusv1.NewHippocampusServiceClient(a.srv.DialMeshPeer())
	_, err = peer.ExportPersona(context.Background(), &hippocampusv1.ExportPersonaRequest{Persona: "nobody", To: "a"})
	wantReason(t, err, codes.NotFound, ReasonPersonaUnknown)
	bad, err := peer.ImportPersona(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = bad.Send(&hippocampusv1.ImportPersonaRequest{Persona: "p", Chunk: []byte("HPS\x01not a snapshot"), From: "z"})
	_, err = bad.CloseAndRecv()
	wantReason(t, err, codes.InvalidArgument, ReasonSnapshotInvalid)
}

// closingRing's Watch channel is closed, as pkg/mesh's is at shutdown.
type closingRing struct{ *fakeRing }

func (r closingRing) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{})
	close(ch)
	return ch, func() {}
}

// TestWatchClosed: a closed membership watch ends the rebalancing, not the
// service, and does not spin.
func TestWatchClosed(t *testing.T) {
	t.Parallel()
	s := newTestService(t, Config{}, Deps{Ring: closingRing{newFakeRing("solo")}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.maintain(ctx) }()
	s.remember("maya", "chat", "a", EngramInput{Content: "a"})
	before := s.epoch.Load()
	cancel()
	<-done
	if s.epoch.Load() > before+1 {
		t.Errorf("the loop spun on a closed watch: %d changes", s.epoch.Load()-before)
	}
}
