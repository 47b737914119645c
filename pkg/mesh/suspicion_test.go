package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// cutTransport is memberlist's UDP/TCP transport with a switch that cuts
// the node off, in both directions, as the chaos harness's fabric does
// between processes: while cut, packets sent are dropped, packets and
// connections received are dropped, and dials fail.
type cutTransport struct {
	inner   *memberlist.NetTransport
	packets chan *memberlist.Packet
	streams chan net.Conn
	cut     atomic.Bool
	done    chan struct{}
	wg      sync.WaitGroup
}

var errCut = errors.New("cut off")

func newCutTransport(t *testing.T) *cutTransport {
	t.Helper()
	inner, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		Logger:    slog.NewLogLogger(testLogger().Handler(), slog.LevelDebug),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &cutTransport{inner: inner, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), done: make(chan struct{})}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case p := <-inner.PacketCh():
				if c.cut.Load() {
					continue
				}
				select {
				case c.packets <- p:
				case <-c.done:
					return
				}
			case <-c.done:
				return
			}
		}
	}()
	go func() {
		defer c.wg.Done()
		for {
			select {
			case conn := <-inner.StreamCh():
				if c.cut.Load() {
					_ = conn.Close()
					continue
				}
				select {
				case c.streams <- conn:
				case <-c.done:
					_ = conn.Close()
					return
				}
			case <-c.done:
				return
			}
		}
	}()
	return c
}

func (c *cutTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return c.inner.FinalAdvertiseAddr(ip, port)
}

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.cut.Load() {
		return time.Now(), nil // lost on the way, as on a cut network
	}
	return c.inner.WriteTo(b, addr)
}

func (c *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if c.cut.Load() {
		return time.Now(), nil
	}
	return c.inner.WriteToAddress(b, a)
}

func (c *cutTransport) PacketCh() <-chan *memberlist.Packet { return c.packets }

func (c *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.inner.DialTimeout(addr, timeout)
}

func (c *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.inner.DialAddressTimeout(a, timeout)
}

func (c *cutTransport) StreamCh() <-chan net.Conn { return c.streams }

func (c *cutTransport) Shutdown() error {
	err := c.inner.Shutdown()
	close(c.done)
	c.wg.Wait()
	return err
}

// rawNode is a bare memberlist member with the local profile's timings
// on a cutTransport: the node that gets cut off. It records when its
// memberlist declared whom dead.
type rawNode struct {
	ml *memberlist.Memberlist
	tr *cutTransport

	mu    sync.Mutex
	meta  []byte
	gones []gone
}

type gone struct {
	name string
	at   time.Time
}

func (r *rawNode) NodeMeta(int) []byte           { return r.meta }
func (*rawNode) NotifyMsg([]byte)                {}
func (*rawNode) GetBroadcasts(_, _ int) [][]byte { return nil }
func (*rawNode) LocalState(bool) []byte          { return nil }
func (*rawNode) MergeRemoteState([]byte, bool)   {}
func (*rawNode) NotifyJoin(*memberlist.Node)     {}
func (*rawNode) NotifyUpdate(*memberlist.Node)   {}

func (r *rawNode) NotifyLeave(n *memberlist.Node) {
	r.mu.Lock()
	r.gones = append(r.gones, gone{n.Name, time.Now()})
	r.mu.Unlock()
}

// declaredSince returns the members this node declared dead after t,
// and when it declared the last one.
func (r *rawNode) declaredSince(t time.Time) ([]string, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	var last time.Time
	for _, g := range r.gones {
		if g.at.After(t) {
			out = append(out, g.name)
			last = g.at
		}
	}
	return out, last
}

func startRawNode(t *testing.T, name string, join []string) *rawNode {
	t.Helper()
	meta, _, _, err := encodeMeta(localInfo{GRPCAddr: "127.0.0.1:1", Peers: []HostedPeer{{Name: name}}}, MetaMaxSize)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawNode{tr: newCutTransport(t), meta: meta}
	mc, err := memberlistConfig(Config{Node: name, GossipAddr: "127.0.0.1:0", Profile: ProfileLocal})
	if err != nil {
		t.Fatal(err)
	}
	mc.BindPort = r.tr.inner.GetAutoBindPort()
	mc.AdvertisePort = mc.BindPort
	mc.Transport = r.tr
	mc.Delegate = r
	mc.Events = r
	mc.Logger = slog.NewLogLogger(testLogger().With("node", name).Handler(), slog.LevelDebug)
	if r.ml, err = memberlist.Create(mc); err != nil {
		_ = r.tr.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.ml.Shutdown() })
	if _, err := r.ml.Join(join); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestHealedCutIsNoFalseDeath reproduces the chaos harness's false
// suspicion (docs/RELIABILITY.md, false_suspicions): a node cut off from
// the mesh suspects every other member; its suspicion gossip is spent
// while nobody can hear it, so nobody refutes, and its suspicion timers
// fire after the cut has healed. It then gossips "dead" about healthy
// members, which memberlist applies at once on every member. The healthy
// members' mesh view must not turn DEAD on that word: they talked to each
// other all along.
func TestHealedCutIsNoFalseDeath(t *testing.T) {
	a := startNode(t, "n1", nodeOpts{})
	join := []string{a.Self().GossipAddr}
	b := startNode(t, "n2", nodeOpts{join: join})
	c := startRawNode(t, "n3", join)
	whole := func() error {
		var errs []error
		for _, n := range []*node{a, b} {
			for _, name := range []string{"n1", "n2", "n3"} {
				errs = append(errs, wantState(n.Mesh, name, Alive)())
			}
		}
		for name, ml := range map[string]*memberlist.Memberlist{"n1": a.ml, "n2": b.ml, "n3": c.ml} {
			if got := ml.NumMembers(); got != 3 {
				errs = append(errs, fmt.Errorf("%s's memberlist counts %d live members", name, got))
			}
		}
		return errors.Join(errs...)
	}
	eventually(t, 10*time.Second, "three members", whole)

	// The cut must outlast failure detection (the others declare n3
	// DEAD) and end before n3's own suspicions time out: without
	// confirmations they take SuspicionMaxTimeoutMult (6) times the
	// minimum of 0.9 s from n3's first failed probe of each member.
	const hold = 5 * time.Second
	for attempt := 1; attempt <= 3; attempt++ {
		aSeesB, _ := a.Member("n2")
		bSeesA, _ := b.Member("n1")
		cutAt := time.Now()
		c.tr.cut.Store(true)
		eventually(t, detectWithin, "the cut detected", func() error {
			return errors.Join(wantState(a.Mesh, "n3", Dead)(), wantState(b.Mesh, "n3", Dead)())
		})
		<-time.After(time.Until(cutAt.Add(hold))) // the cut's length is the scenario, not a wait for a condition
		healAt := time.Now()
		c.tr.cut.Store(false)
		// n3's timers fire about 1-3 s after the heal (its probes slow
		// down while it cannot reach anyone, Lifeguard's local health, so
		// some suspicions start late), unless a push/pull carried its
		// suspicion to a member that then refuted.
		eventually(t, 10*time.Second, "the mesh whole again after the heal", func() error {
			if err := whole(); err != nil {
				return err
			}
			// Give a false death time to reach n1 and n2, and n3's other
			// suspicion time to fire too.
			switch _, last := c.declaredSince(healAt); {
			case last.IsZero() && time.Since(healAt) < 6*time.Second:
				return errors.New("n3's suspicions may still time out")
			case !last.IsZero() && time.Since(last) < 1500*time.Millisecond:
				return errors.New("n3's false death may still be on its way")
			}
			return nil
		})
		falsely, _ := c.declaredSince(healAt)
		aNow, _ := a.Member("n2")
		bNow, _ := b.Member("n1")
		if !aNow.Since.Equal(aSeesB.Since) || !bNow.Since.Equal(bSeesA.Since) {
			t.Fatalf("after the heal, n3 declared %v dead, and a healthy member took its word: "+
				"n1 sees n2 %s since %s (was since %s), n2 sees n1 %s since %s (was since %s)",
				falsely, aNow.State, aNow.Since.Format(time.StampMilli), aSeesB.Since.Format(time.StampMilli),
				bNow.State, bNow.Since.Format(time.StampMilli), bSeesA.Since.Format(time.StampMilli))
		}
		if len(falsely) > 0 {
			t.Logf("attempt %d: n3 declared %v dead %v after the heal; n1 and n2 held each other ALIVE throughout",
				attempt, falsely, time.Since(healAt).Round(time.Millisecond))
			return
		}
		t.Logf("attempt %d: n3's suspicions were refuted before they timed out; cutting again", attempt)
	}
	t.Fatal("the cut node never declared a healthy member dead after a heal: the test proves nothing")
}
