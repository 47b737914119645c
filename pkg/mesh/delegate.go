package mesh

import (
	"bytes"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate gives memberlist this node's metadata and hands it user
// messages (the leave notices).
type delegate struct{ m *Mesh }

// NodeMeta implements memberlist.Delegate. The metadata was encoded to fit
// MetaMaxSize when it was set; a smaller limit (memberlist never asks for
// one) gets it re-encoded.
func (d delegate) NodeMeta(limit int) []byte {
	st := d.m.meta.Load()
	if len(st.encoded) <= limit {
		return st.encoded
	}
	out, _, _, err := encodeMeta(st.info, limit)
	if err != nil {
		d.m.log.Error("node metadata does not fit memberlist's limit", "limit", limit, "error", err)
		return nil
	}
	return out
}

// NotifyMsg implements memberlist.Delegate: it receives leave notices.
func (d delegate) NotifyMsg(b []byte) {
	name, ok := parseLeaveNotice(b)
	if !ok {
		d.m.log.Debug("ignored an unknown gossip user message", "bytes", len(b))
		return
	}
	if d.m.roster.announceLeave(name) {
		d.m.log.Debug("member announced its leave", "member", name)
	}
}

// GetBroadcasts implements memberlist.Delegate; the mesh broadcasts
// nothing of its own.
func (delegate) GetBroadcasts(_, _ int) [][]byte { return nil }

// LocalState implements memberlist.Delegate; all state is in metadata.
func (delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (delegate) MergeRemoteState([]byte, bool) {}

// events feeds memberlist's join, update and leave events into the
// roster. memberlist calls it with its node lock held and never
// concurrently, so it must not call back into memberlist.
type events struct{ m *Mesh }

// NotifyJoin implements memberlist.EventDelegate.
func (e events) NotifyJoin(n *memberlist.Node) {
	e.m.memberAlive(n, "member joined")
}

// NotifyUpdate implements memberlist.EventDelegate.
func (e events) NotifyUpdate(n *memberlist.Node) {
	e.m.memberAlive(n, "member updated")
}

// NotifyLeave implements memberlist.EventDelegate. memberlist v0.5.4 does
// not say here whether the node left or failed (Node.State is never set),
// so the roster decides from the leave notices it received; nor who
// declared it, so a failure is confirmed with a direct probe first (see
// confirm.go).
func (e events) NotifyLeave(n *memberlist.Node) {
	e.m.memberGone(n)
}

func (m *Mesh) memberAlive(n *memberlist.Node, msg string) {
	info, err := decodeMeta(n.Meta)
	if err != nil {
		m.log.Warn("member gossips metadata this node cannot read; it is known but serves nothing here",
			"member", n.Name, "error", err)
		m.roster.alive(n.Name, n.Address(), nil)
		return
	}
	m.roster.alive(n.Name, n.Address(), &info)
	m.log.Debug(msg, "member", n.Name, "grpc_addr", info.GRPCAddr, "services", info.Services)
}

// Leave notices: before it leaves, a node tells every live member over
// memberlist's reliable (TCP) user messages, and they record it LEFT at
// once. memberlist's own leave broadcast goes over UDP gossip to random
// members and, in a small mesh right after another failure, may reach
// only a dead one; the notice does not depend on it. A member that
// misses the notice records DEAD when memberlist reports the node gone,
// the conservative answer: its keys stay put until the TTL.
var leaveNoticePrefix = []byte("continuum-mesh/leave/v1:")

func leaveNotice(node string) []byte {
	return append(append([]byte{}, leaveNoticePrefix...), node...)
}

func gossipNode(mm Member) (*memberlist.Node, bool) {
	host, port, err := splitHostPort(mm.GossipAddr)
	ip := net.ParseIP(host)
	if err != nil || ip == nil {
		return nil, false
	}
	return &memberlist.Node{Name: mm.Name, Addr: ip, Port: uint16(port)}, true
}

func parseLeaveNotice(b []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(b, leaveNoticePrefix)
	if !ok {
		return "", false
	}
	name := string(rest)
	if checkNodeName(name) != nil {
		return "", false
	}
	return name, true
}

// sendLeaveNotices tells every other live member that this node is
// leaving, waiting at most wait. Sends still under way then finish on
// their own within memberlist's TCP timeout.
func (m *Mesh) sendLeaveNotices(wait time.Duration) {
	msg := leaveNotice(m.cfg.Node)
	var wg sync.WaitGroup
	// Addresses come from the roster: the nodes memberlist.Members returns
	// are memberlist's own and may change under a concurrent read.
	for _, mm := range m.Members() {
		if mm.Self {
			continue
		}
		n, ok := gossipNode(mm)
		if !ok {
			continue
		}
		wg.Add(1)
		go func(n *memberlist.Node) {
			defer wg.Done()
			if err := m.ml.SendReliable(n, msg); err != nil {
				m.log.Debug("leave notice not delivered", "member", n.Name, "error", err)
			}
		}(n)
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		m.log.Warn("leave notices not all delivered in time; those members will record this node as DEAD", "wait", wait)
	}
}
