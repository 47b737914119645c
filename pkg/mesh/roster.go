package mesh

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// State is a member's gossip state as this node sees it.
type State int

// The member states. The zero State is not a state a member is ever in.
const (
	// Alive: gossiping and answering probes.
	Alive State = iota + 1
	// Suspect: failed a probe and not yet refuted (see docs/mesh.md:
	// memberlist v0.5.4 does not expose suspicion, so this node reports
	// members ALIVE until they are declared DEAD).
	Suspect
	// Dead: declared failed without saying goodbye (a crash, a partition).
	// Remembered until Config.DeadMemberTTL, and still owning its keys.
	Dead
	// Left: said goodbye (Leave); its keys move to the other members.
	Left
)

func (s State) String() string {
	switch s {
	case Alive:
		return "ALIVE"
	case Suspect:
		return "SUSPECT"
	case Dead:
		return "DEAD"
	case Left:
		return "LEFT"
	}
	return "UNKNOWN"
}

// live reports whether a member in this state takes calls.
func (s State) live() bool { return s == Alive || s == Suspect }

// Member is one node of the mesh as this node sees it.
type Member struct {
	Name       string
	GRPCAddr   string
	GossipAddr string
	Services   []string
	Peers      []HostedPeer
	Rooms      []string
	State      State
	// Self is true for this node.
	Self bool
	// Since is when this node saw the member enter State.
	Since time.Time
	// MetaTruncated is true when the member's metadata had to drop peers
	// or rooms to fit 512 bytes, so Peers or Rooms are incomplete.
	MetaTruncated bool
	// Draining is true while the member hands its keys to the others
	// before it leaves: it still answers, but owns no key (see Owner).
	Draining bool
}

// Serves reports whether m serves service.
func (m Member) Serves(service string) bool { return slices.Contains(m.Services, service) }

// Hosts reports whether m hosts peer (canonical spelling).
func (m Member) Hosts(peer string) bool {
	for _, p := range m.Peers {
		if p.Name == peer {
			return true
		}
	}
	return false
}

// InRoom reports whether m is a member of room (canonical spelling).
func (m Member) InRoom(room string) bool { return slices.Contains(m.Rooms, room) }

// clone deep-copies m so callers cannot alias the roster's slices.
func (m Member) clone() Member {
	m.Services = slices.Clone(m.Services)
	m.Rooms = slices.Clone(m.Rooms)
	peers := make([]HostedPeer, len(m.Peers))
	for i, p := range m.Peers {
		peers[i] = HostedPeer{Name: p.Name, Envs: slices.Clone(p.Envs)}
	}
	m.Peers = peers
	return m
}

// roster tracks every member this node knows of and its state. It is fed
// by memberlist's events (join, update, leave) and by leave notices, and
// tells LEFT from DEAD itself: memberlist v0.5.4 does not set Node.State
// on the nodes it hands to event delegates, so a departing node tells
// every member it is leaving before it leaves (see delegate.go), and the
// notice makes it LEFT at once.
type roster struct {
	self string
	now  func() time.Time
	ttl  time.Duration

	mu      sync.Mutex
	members map[string]*Member
	// confirming holds the members memberlist reported gone that this
	// node is still checking with direct probes (see confirm.go), each
	// with the token of its check. News that the member is alive or left
	// ends the check.
	confirming map[string]uint64
	nextCheck  uint64
	// changed is called (outside mu) after every change.
	changed func()
}

func newRoster(self string, now func() time.Time, ttl time.Duration) *roster {
	return &roster{self: self, now: now, ttl: ttl, members: map[string]*Member{}, confirming: map[string]uint64{}}
}

// alive records a member that joined, came back or changed its metadata.
// info is nil when its metadata could not be decoded: the member is known
// but serves nothing this node can see.
func (r *roster) alive(name, gossipAddr string, info *localInfo) {
	r.mu.Lock()
	m, ok := r.members[name]
	if !ok {
		m = &Member{Name: name}
		r.members[name] = m
	}
	delete(r.confirming, name)
	m.GossipAddr = gossipAddr
	if info != nil {
		m.GRPCAddr = info.GRPCAddr
		m.Services = info.Services
		m.Peers = info.Peers
		m.Rooms = info.Rooms
		m.MetaTruncated = info.PeersTruncated || info.RoomsTruncated
		m.Draining = info.Draining
	} else {
		m.GRPCAddr, m.Services, m.Peers, m.Rooms, m.MetaTruncated, m.Draining = "", nil, nil, nil, false, false
	}
	if m.State != Alive {
		m.State = Alive
		m.Since = r.now()
	}
	r.mu.Unlock()
	r.notify()
}

// gone records a member memberlist no longer counts as live: it stays
// LEFT if it announced its leave, else it is DEAD.
func (r *roster) gone(name string) State {
	r.mu.Lock()
	st := r.goneLocked(name)
	r.mu.Unlock()
	r.notify()
	return st
}

func (r *roster) goneLocked(name string) State {
	delete(r.confirming, name)
	m, ok := r.members[name]
	if !ok {
		m = &Member{Name: name}
		r.members[name] = m
	}
	if m.State != Left && m.State != Dead {
		// A member that announced it was draining (Mesh.Drain, gossiped
		// before it hands off and leaves) and is now gone has left, even
		// when its leave notice did not reach this node: recording it
		// DEAD would make its keys OWNER_DOWN after a graceful hand-off.
		m.State = Dead
		if m.Draining {
			m.State = Left
		}
		m.Since = r.now()
	}
	return m.State
}

// goneOrCheck records a member memberlist no longer counts as live, as
// gone does, unless it is a live member other than this node: that one
// stays as it is while this node checks it, and goneOrCheck returns the
// token of the check (see confirm.go). A second report while a check is
// under way gives the same check.
func (r *roster) goneOrCheck(name string) (st State, token uint64, check bool) {
	r.mu.Lock()
	if m, ok := r.members[name]; ok && name != r.self && m.State.live() {
		if t, ok := r.confirming[name]; ok {
			r.mu.Unlock()
			return m.State, t, false
		}
		r.nextCheck++
		t := r.nextCheck
		r.confirming[name] = t
		st := m.State
		r.mu.Unlock()
		return st, t, true
	}
	st = r.goneLocked(name)
	r.mu.Unlock()
	r.notify()
	return st, 0, false
}

// checking reports whether check token of name is still under way.
func (r *roster) checking(name string, token uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.confirming[name]
	return ok && t == token
}

// checkFailed ends check token of name with the member gone (DEAD, or
// LEFT if it announced its leave meanwhile). It reports false, changing
// nothing, when the check had already ended.
func (r *roster) checkFailed(name string, token uint64) (State, bool) {
	r.mu.Lock()
	if t, ok := r.confirming[name]; !ok || t != token {
		r.mu.Unlock()
		return 0, false
	}
	st := r.goneLocked(name)
	r.mu.Unlock()
	r.notify()
	return st, true
}

// checkAbandoned ends check token of name, leaving the member as it is
// (this node is shutting down).
func (r *roster) checkAbandoned(name string, token uint64) {
	r.mu.Lock()
	if t, ok := r.confirming[name]; ok && t == token {
		delete(r.confirming, name)
	}
	r.mu.Unlock()
}

// announceLeave records a member's notice that it is leaving: it is LEFT
// from now on, also when the failure detector already called it DEAD (the
// gossip overtook the notice). It reports whether anything changed.
func (r *roster) announceLeave(name string) bool {
	r.mu.Lock()
	m, ok := r.members[name]
	if !ok || m.State == Left {
		r.mu.Unlock()
		return false
	}
	delete(r.confirming, name)
	m.State = Left
	m.Since = r.now()
	r.mu.Unlock()
	r.notify()
	return true
}

// reviveStale turns back to ALIVE the members that announced a leave at
// least window ago but that memberlist still counts as live: a leave that
// never completed, or a node restarted under the same name before its
// leave reached this node (memberlist then reports no event). window must
// exceed the failure-detection time, or a member whose leave broadcast
// was lost would flap back to ALIVE before memberlist sees it gone.
func (r *roster) reviveStale(live map[string]bool, window time.Duration) []string {
	r.mu.Lock()
	now := r.now()
	var revived []string
	for name, m := range r.members {
		if m.State == Left && name != r.self && live[name] && now.Sub(m.Since) >= window {
			m.State = Alive
			m.Since = now
			revived = append(revived, name)
		}
	}
	r.mu.Unlock()
	if len(revived) > 0 {
		r.notify()
	}
	slices.Sort(revived)
	return revived
}

// expire forgets DEAD and LEFT members older than the TTL and reports the
// names it forgot.
func (r *roster) expire() []string {
	r.mu.Lock()
	now := r.now()
	var gone []string
	for name, m := range r.members {
		if (m.State == Dead || m.State == Left) && name != r.self && now.Sub(m.Since) >= r.ttl {
			delete(r.members, name)
			gone = append(gone, name)
		}
	}
	r.mu.Unlock()
	if len(gone) > 0 {
		r.notify()
	}
	slices.Sort(gone)
	return gone
}

func (r *roster) notify() {
	if r.changed != nil {
		r.changed()
	}
}

// snapshot returns copies of the members keep selects, sorted by name.
func (r *roster) snapshot(keep func(*Member) bool) []Member {
	r.mu.Lock()
	out := make([]Member, 0, len(r.members))
	for _, m := range r.members {
		if keep == nil || keep(m) {
			c := m.clone()
			c.Self = c.Name == r.self
			out = append(out, c)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// serves reports whether the member name is live and serves service.
func (r *roster) serves(name, service string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[name]
	return ok && m.State.live() && m.Serves(service)
}

// get returns a copy of one member.
func (r *roster) get(name string) (Member, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.members[name]
	if !ok {
		return Member{}, false
	}
	c := m.clone()
	c.Self = c.Name == r.self
	return c, true
}
