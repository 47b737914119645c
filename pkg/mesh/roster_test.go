package mesh

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// offlineMesh is a Mesh without gossip, whose roster the test feeds
// directly, for the resolution logic.
func offlineMesh(self string, clock *fakeClock) *Mesh {
	m := &Mesh{
		cfg:      Config{Node: self, DeadMemberTTL: time.Hour},
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		deps:     Deps{Now: clock.Now},
		roster:   newRoster(self, clock.Now, time.Hour),
		pool:     newPool(time.Second),
		watchers: map[int]chan struct{}{},
		done:     make(chan struct{}),
	}
	m.roster.changed = m.changed
	return m
}

func addMember(m *Mesh, name string, services []string, peers ...string) {
	hp := []HostedPeer{}
	for _, p := range peers {
		hp = append(hp, HostedPeer{Name: p, Envs: []string{}})
	}
	m.roster.alive(name, "127.0.0.1:1", &localInfo{GRPCAddr: name + ":7400", Services: services, Peers: hp, Rooms: []string{}})
}

func states(ms []Member) map[string]State {
	out := map[string]State{}
	for _, m := range ms {
		out[m.Name] = m.State
	}
	return out
}

func TestRosterStates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps func(r *roster)
		want  map[string]State
	}{
		{"join", func(r *roster) { r.alive("b", "x", nil) }, map[string]State{"a": Alive, "b": Alive}},
		{"failure is DEAD", func(r *roster) { r.alive("b", "x", nil); r.gone("b") }, map[string]State{"a": Alive, "b": Dead}},
		{"announced leave is LEFT", func(r *roster) {
			r.alive("b", "x", nil)
			r.announceLeave("b")
			r.gone("b")
		}, map[string]State{"a": Alive, "b": Left}},
		{"notice after the gossip is LEFT", func(r *roster) {
			r.alive("b", "x", nil)
			r.gone("b")
			r.announceLeave("b")
		}, map[string]State{"a": Alive, "b": Left}},
		{"back after a failure is ALIVE", func(r *roster) {
			r.alive("b", "x", nil)
			r.gone("b")
			r.alive("b", "y", nil)
		}, map[string]State{"a": Alive, "b": Alive}},
		{"a rejoin forgets an old notice", func(r *roster) {
			r.alive("b", "x", nil)
			r.announceLeave("b")
			r.gone("b")
			r.alive("b", "x", nil)
			r.gone("b")
		}, map[string]State{"a": Alive, "b": Dead}},
		{"notice for an unknown member is ignored", func(r *roster) { r.announceLeave("zz") }, map[string]State{"a": Alive}},
		{"self leaving", func(r *roster) { r.announceLeave("a"); r.gone("a") }, map[string]State{"a": Left}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRoster("a", newFakeClock().Now, time.Hour)
			r.alive("a", "self", nil)
			tc.steps(r)
			if diff := cmp.Diff(tc.want, states(r.snapshot(nil))); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRosterChecks covers the checks of members memberlist reported gone
// (confirm.go): the member keeps its state while checked, and the check
// ends with the first news.
func TestRosterChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps func(t *testing.T, r *roster)
		want  map[string]State
	}{
		{"unanswered probe is DEAD", func(t *testing.T, r *roster) {
			_, tok := mustCheck(t, r, "b")
			if st, ok := r.checkFailed("b", tok); !ok || st != Dead {
				t.Errorf("checkFailed = %s, %v; want DEAD, true", st, ok)
			}
		}, map[string]State{"a": Alive, "b": Dead}},
		{"refutation ends the check ALIVE", func(t *testing.T, r *roster) {
			_, tok := mustCheck(t, r, "b")
			r.alive("b", "x", nil)
			if r.checking("b", tok) {
				t.Error("still checking after the member was reported back")
			}
			if _, ok := r.checkFailed("b", tok); ok {
				t.Error("a late probe failure of an ended check changed the state")
			}
		}, map[string]State{"a": Alive, "b": Alive}},
		{"notice during the check is LEFT", func(t *testing.T, r *roster) {
			_, tok := mustCheck(t, r, "b")
			r.announceLeave("b")
			if _, ok := r.checkFailed("b", tok); ok {
				t.Error("the probe failure of an ended check changed the state")
			}
		}, map[string]State{"a": Alive, "b": Left}},
		{"second report joins the check", func(t *testing.T, r *roster) {
			_, tok := mustCheck(t, r, "b")
			if _, tok2, check := r.goneOrCheck("b"); check || tok2 != tok {
				t.Errorf("second report: token %d, new check %v; want %d, false", tok2, check, tok)
			}
		}, map[string]State{"a": Alive, "b": Alive}},
		{"after a notice no check", func(t *testing.T, r *roster) {
			r.announceLeave("b")
			if st, _, check := r.goneOrCheck("b"); check || st != Left {
				t.Errorf("goneOrCheck = %s, check %v; want LEFT, false", st, check)
			}
		}, map[string]State{"a": Alive, "b": Left}},
		{"self is never checked", func(t *testing.T, r *roster) {
			r.announceLeave("a")
			if _, _, check := r.goneOrCheck("a"); check {
				t.Error("checking this node itself")
			}
		}, map[string]State{"a": Left, "b": Alive}},
		{"abandoned check changes nothing", func(t *testing.T, r *roster) {
			_, tok := mustCheck(t, r, "b")
			r.checkAbandoned("b", tok)
			if r.checking("b", tok) {
				t.Error("still checking after abandoning")
			}
		}, map[string]State{"a": Alive, "b": Alive}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRoster("a", newFakeClock().Now, time.Hour)
			r.alive("a", "self", nil)
			r.alive("b", "x", nil)
			tc.steps(t, r)
			if diff := cmp.Diff(tc.want, states(r.snapshot(nil))); diff != "" {
				t.Errorf("states (-want +got):\n%s", diff)
			}
		})
	}
}

func mustCheck(t *testing.T, r *roster, name string) (State, uint64) {
	t.Helper()
	st, tok, check := r.goneOrCheck(name)
	if !check || st != Alive {
		t.Fatalf("goneOrCheck(%s) = %s, check %v; want ALIVE, a new check", name, st, check)
	}
	if !r.checking(name, tok) {
		t.Fatalf("not checking %s", name)
	}
	return st, tok
}

func TestRosterExpiry(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	r := newRoster("a", clock.Now, time.Hour)
	r.alive("a", "self", nil)
	r.alive("dead", "x", nil)
	r.alive("left", "x", nil)
	r.alive("live", "x", nil)
	r.gone("dead")
	clock.Advance(30 * time.Minute)
	r.announceLeave("left")
	r.gone("left")
	if got := r.expire(); len(got) != 0 {
		t.Fatalf("expired %v before the TTL", got)
	}
	clock.Advance(30 * time.Minute)
	if diff := cmp.Diff([]string{"dead"}, r.expire()); diff != "" {
		t.Errorf("expired after 1h (-want +got):\n%s", diff)
	}
	clock.Advance(30 * time.Minute)
	if diff := cmp.Diff([]string{"left"}, r.expire()); diff != "" {
		t.Errorf("expired after 1h30 (-want +got):\n%s", diff)
	}
	clock.Advance(100 * time.Hour)
	if diff := cmp.Diff(map[string]State{"a": Alive, "live": Alive}, states(r.snapshot(nil))); diff != "" {
		t.Errorf("left over (-want +got):\n%s", diff)
	}
}

func reasonOf(t *testing.T, err error) (codes.Code, string) {
	t.Helper()
	return status.Code(err), rpcerr.Reason(err)
}

func TestOwner(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := offlineMesh("a", clock)
	for _, n := range []string{"a", "b", "c"} {
		addMember(m, n, []string{"hippocampus", "mesh"})
	}
	addMember(m, "d", []string{"mesh"})
	ks := keys(300)
	owners := map[string]string{}
	for _, k := range ks {
		o, err := m.Owner("hippocampus", k)
		if err != nil {
			t.Fatal(err)
		}
		if o.Name == "d" {
			t.Fatalf("key %q owned by d, which does not serve hippocampus", k)
		}
		owners[k] = o.Name
	}

	// b fails: its keys report OWNER_DOWN naming b; the others stay.
	m.roster.gone("b")
	for _, k := range ks {
		o, err := m.Owner("hippocampus", k)
		if owners[k] != "b" {
			if err != nil || o.Name != owners[k] {
				t.Fatalf("key %q: owner %q, %v; want %q", k, o.Name, err, owners[k])
			}
			continue
		}
		var down *ErrOwnerDown
		if !errors.As(err, &down) || down.Member.Name != "b" || down.Member.State != Dead {
			t.Fatalf("key %q: err = %v, want ErrOwnerDown{b DEAD}", k, err)
		}
		if c, r := reasonOf(t, err); c != codes.Unavailable || r != ReasonOwnerDown {
			t.Fatalf("key %q: %v %v, want UNAVAILABLE OWNER_DOWN", k, c, r)
		}
		if md := rpcerr.Info(err).GetMetadata(); md["member"] != "b" || md["state"] != "DEAD" {
			t.Fatalf("metadata %v", md)
		}
		// Where the key would go without b.
		if p, ok := m.PreviousOwner("hippocampus", k, "b"); !ok || p.Name == "b" {
			t.Fatalf("PreviousOwner(%q without b) = %v %v", k, p.Name, ok)
		}
	}

	// c leaves: its keys move to the rendezvous winner among a and the
	// failed b (which keeps answering OWNER_DOWN for what it wins).
	m.roster.announceLeave("c")
	m.roster.gone("c")
	for _, k := range ks {
		if owners[k] != "c" {
			continue
		}
		o, err := m.Owner("hippocampus", k)
		switch Rendezvous(k, []string{"a", "b"}) {
		case "a":
			if err != nil || o.Name != "a" {
				t.Fatalf("left c's key %q: %q %v, want a", k, o.Name, err)
			}
		case "b":
			if rpcerr.Reason(err) != ReasonOwnerDown {
				t.Fatalf("left c's key %q: %q %v, want OWNER_DOWN (b)", k, o.Name, err)
			}
		}
	}

	// b comes back: its keys are its again.
	addMember(m, "b", []string{"hippocampus", "mesh"})
	for _, k := range ks {
		if owners[k] == "b" {
			if o, err := m.Owner("hippocampus", k); err != nil || o.Name != "b" {
				t.Fatalf("key %q after b's return: %q %v", k, o.Name, err)
			}
		}
	}

	_, err := m.Owner("nothing", "k")
	if c, r := reasonOf(t, err); c != codes.Unavailable || r != ReasonServiceUnavailable {
		t.Errorf("no servers: %v %v, want UNAVAILABLE SERVICE_UNAVAILABLE", c, r)
	}
}

func TestOwnerForgetsAfterTTL(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := offlineMesh("a", clock)
	addMember(m, "a", []string{"hippocampus"})
	addMember(m, "b", []string{"hippocampus"})
	var key string
	for _, k := range keys(100) {
		if Rendezvous(k, []string{"a", "b"}) == "b" {
			key = k
			break
		}
	}
	m.roster.gone("b")
	if _, err := m.Owner("hippocampus", key); rpcerr.Reason(err) != ReasonOwnerDown {
		t.Fatalf("err = %v, want OWNER_DOWN", err)
	}
	clock.Advance(time.Hour)
	m.roster.expire()
	if o, err := m.Owner("hippocampus", key); err != nil || o.Name != "a" {
		t.Fatalf("after the TTL: %q %v, want a", o.Name, err)
	}
}

func TestHostOf(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := offlineMesh("a", clock)
	addMember(m, "a", []string{"mesh"}, "alice", "shared")
	addMember(m, "b", []string{"mesh"}, "bob", "shared", uuidA)
	addMember(m, "c", []string{"mesh"}, "carol", "zed")
	addMember(m, "d", []string{"mesh"}, "dave", "zed")
	m.roster.gone("c")
	m.roster.announceLeave("d")
	m.roster.gone("d")

	tests := []struct {
		peer       string
		want       string
		code       codes.Code
		reason     string
		downMember string
	}{
		{peer: "alice", want: "a"},
		{peer: "bob", want: "b"},
		{peer: "shared", want: "a"}, // self first
		{peer: "6F1C2A3B-4D5E-4F60-8A7B-9C0D1E2F3A4B", want: "b"},
		{peer: "carol", code: codes.Unavailable, reason: ReasonPeerUnreachable, downMember: "c"},
		{peer: "dave", code: codes.Unavailable, reason: ReasonPeerUnreachable, downMember: "d"},
		{peer: "zed", code: codes.Unavailable, reason: ReasonPeerUnreachable, downMember: "c"}, // DEAD before LEFT
		{peer: "nobody", code: codes.NotFound, reason: ReasonPeerUnknown},
		{peer: "not a name", code: codes.NotFound, reason: ReasonPeerUnknown},
		{peer: "", code: codes.NotFound, reason: ReasonPeerUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.peer, func(t *testing.T) {
			t.Parallel()
			got, err := m.HostOf(tc.peer)
			if tc.reason == "" {
				if err != nil || got.Name != tc.want {
					t.Fatalf("HostOf(%q) = %q, %v; want %q", tc.peer, got.Name, err, tc.want)
				}
				return
			}
			if c, r := reasonOf(t, err); c != tc.code || r != tc.reason {
				t.Fatalf("HostOf(%q) err = %v (%v %v), want %v %v", tc.peer, err, c, r, tc.code, tc.reason)
			}
			var un *ErrPeerUnreachable
			if tc.downMember != "" && (!errors.As(err, &un) || un.Member.Name != tc.downMember) {
				t.Fatalf("HostOf(%q) err = %v, want unreachable via %s", tc.peer, err, tc.downMember)
			}
		})
	}
}

func TestPickAndResolve(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := offlineMesh("a", clock)
	addMember(m, "a", []string{"mesh", "router"})
	for _, n := range []string{"b", "c", "d"} {
		addMember(m, n, []string{"mesh", "genome"})
	}
	if got, err := m.Resolve("router", ""); err != nil || got.Name != "a" || !got.Self {
		t.Errorf("self-served: %+v %v", got, err)
	}
	want := Rendezvous("a", []string{"b", "c", "d"})
	if got, err := m.Resolve("genome", ""); err != nil || got.Name != want {
		t.Errorf("remote: %q %v, want %q", got.Name, err, want)
	}
	m.roster.gone(want)
	if got, err := m.Resolve("genome", ""); err != nil || got.Name == want {
		t.Errorf("after %s failed: %q %v", want, got.Name, err)
	}
	_, err := m.Resolve("audit", "")
	var su *ErrServiceUnavailable
	if !errors.As(err, &su) || su.Service != "audit" {
		t.Errorf("err = %v, want ErrServiceUnavailable", err)
	}
}

func TestRoomMembers(t *testing.T) {
	t.Parallel()
	m := offlineMesh("a", newFakeClock())
	m.roster.alive("a", "x", &localInfo{GRPCAddr: "a:1", Rooms: []string{uuidA}})
	m.roster.alive("b", "x", &localInfo{GRPCAddr: "b:1", Rooms: []string{uuidA, uuidB}})
	m.roster.alive("c", "x", &localInfo{GRPCAddr: "c:1", Rooms: []string{uuidA}})
	m.roster.gone("c")
	names := func(ms []Member) []string {
		out := []string{}
		for _, mm := range ms {
			out = append(out, mm.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"a", "b"}, names(m.RoomMembers("6F1C2A3B-4D5E-4F60-8A7B-9C0D1E2F3A4B"))); diff != "" {
		t.Errorf("room A (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b"}, names(m.RoomMembers(uuidB))); diff != "" {
		t.Errorf("room B (-want +got):\n%s", diff)
	}
	if got := m.RoomMembers("abc"); len(got) != 0 {
		t.Errorf("invalid room: %v", got)
	}
}

func TestWatchCoalesces(t *testing.T) {
	t.Parallel()
	m := offlineMesh("a", newFakeClock())
	ch, cancel := m.Watch()
	for _, n := range []string{"b", "c", "d"} {
		addMember(m, n, nil)
	}
	select {
	case <-ch:
	default:
		t.Fatal("no notification after changes")
	}
	select {
	case <-ch:
		t.Fatal("three changes were not coalesced into one pending notification")
	default:
	}
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
	cancel() // idempotent
}

func TestMemberCopiesAreIndependent(t *testing.T) {
	t.Parallel()
	m := offlineMesh("a", newFakeClock())
	addMember(m, "b", []string{"mesh"}, "bob")
	got, _ := m.Member("b")
	got.Services[0] = "changed"
	got.Peers[0].Name = "changed"
	again, _ := m.Member("b")
	if again.Services[0] != "mesh" || again.Peers[0].Name != "bob" {
		t.Fatalf("a caller's edit reached the roster: %+v", again)
	}
}

func TestRosterReviveStale(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	r := newRoster("a", clock.Now, time.Hour)
	r.alive("a", "self", nil)
	r.alive("b", "x", nil)
	r.alive("c", "x", nil)
	r.announceLeave("a")
	r.announceLeave("b")
	r.announceLeave("c")
	live := map[string]bool{"a": true, "b": true} // c's leave completed
	clock.Advance(5 * time.Second)
	if got := r.reviveStale(live, 10*time.Second); len(got) != 0 {
		t.Fatalf("revived %v inside the window", got)
	}
	clock.Advance(5 * time.Second)
	if diff := cmp.Diff([]string{"b"}, r.reviveStale(live, 10*time.Second)); diff != "" {
		t.Errorf("revived (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]State{"a": Left, "b": Alive, "c": Left}, states(r.snapshot(nil))); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
}

// fakeConn is a connection that records Close.
type fakeConn struct {
	grpc.ClientConnInterface
	mu     sync.Mutex
	closed bool
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *fakeConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func TestPoolClosesByState(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	r := newRoster("a", clock.Now, time.Hour)
	p := newPool(50 * time.Millisecond)
	conns := map[string]*fakeConn{}
	for _, n := range []string{"dead", "left", "moved", "live", "left-later"} {
		r.alive(n, "x", &localInfo{GRPCAddr: n + ":1"})
		conns[n] = &fakeConn{}
		if _, err := p.put(n, n+":1", conns[n]); err != nil {
			t.Fatal(err)
		}
	}
	r.gone("dead")
	r.announceLeave("left")
	r.alive("moved", "x", &localInfo{GRPCAddr: "elsewhere:1"})
	p.reconcile(r)
	if !conns["dead"].isClosed() || !conns["moved"].isClosed() {
		t.Error("connections of dead or moved members not closed at once")
	}
	if conns["left"].isClosed() {
		t.Error("a LEFT member's connection closed without the grace")
	}
	if conns["live"].isClosed() || p.size() != 2 {
		t.Errorf("live connection closed or pool size %d, want 2 (live, left-later)", p.size())
	}
	eventually(t, 5*time.Second, "grace close", func() error {
		if !conns["left"].isClosed() {
			return errors.New("still open")
		}
		return nil
	})
	// Close ends retiring connections at once.
	r.announceLeave("left-later")
	p.reconcile(r)
	p.closeAll()
	if !conns["left-later"].isClosed() || !conns["live"].isClosed() {
		t.Error("closeAll left connections open")
	}
	if _, err := p.put("x", "x:1", &fakeConn{}); err == nil {
		t.Error("put on a closed pool succeeded")
	}
}

// TestDrainingMemberGoneIsLeft: a member that announced draining and then
// disappears without its leave notice reaching this node is LEFT, not
// DEAD (compose scale-down: the notice can be lost; DEAD would make its
// handed-off keys OWNER_DOWN).
func TestDrainingMemberGoneIsLeft(t *testing.T) {
	t.Parallel()
	r := newRoster("self", time.Now, time.Minute)
	r.members["a"] = &Member{Name: "a", State: Alive, Draining: true}
	r.members["b"] = &Member{Name: "b", State: Alive}
	if st := r.gone("a"); st != Left {
		t.Fatalf("draining member gone: %v, want LEFT", st)
	}
	if st := r.gone("b"); st != Dead {
		t.Fatalf("member gone without draining: %v, want DEAD", st)
	}
}
