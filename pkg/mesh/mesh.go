// Package mesh is the membership layer of the Continuum mesh: who is in the
// mesh, what each member serves and hosts, and how to reach it.
//
// Members gossip with github.com/hashicorp/memberlist (SWIM). Each member
// advertises, in its node metadata, its gRPC address, the services it
// serves, the peers it hosts (with their envs) and the rooms it is in.
// On top of that this package
//
//   - tracks member states, telling a graceful leave (LEFT) from a failure
//     (DEAD) and remembering failed members until a TTL;
//   - resolves services, peers and rooms to members;
//   - shards keys of a service over its members by rendezvous hashing,
//     where a failed owner keeps its keys (callers get OWNER_DOWN rather
//     than an empty answer from another member) and a left owner's keys
//     move;
//   - pools gRPC connections to members, with this node reached through
//     an in-process connection, and offers a ClientConnInterface per
//     service that picks a live member for every call.
//
// See docs/mesh.md for the operator's view.
package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// Deps are the mesh's collaborators.
type Deps struct {
	// Logger; nil is slog.Default(). memberlist's own log lines go to it
	// at debug level.
	Logger *slog.Logger
	// Dial connects to a member's gRPC address for mesh hops (transport
	// security is the caller's business). A returned value with a
	// Close() error method (like *grpc.ClientConn) is closed when the
	// member leaves, fails or changes address, and by Close. Nil makes
	// Conn fail for every member but this node.
	Dial func(ctx context.Context, m Member) (grpc.ClientConnInterface, error)
	// Local is the in-process connection used when the target is this node
	// (no network hop). Nil dials this node through Dial like any other.
	Local grpc.ClientConnInterface
	// Now is the clock of member state times and TTLs; nil is time.Now.
	Now func() time.Time
}

// Mesh is this node's membership in the mesh.
type Mesh struct {
	cfg    Config
	log    *slog.Logger
	deps   Deps
	ml     *memberlist.Memberlist
	roster *roster
	pool   *pool
	tuning tuning

	// meta is the node metadata memberlist asks for, read without locks
	// (memberlist asks while UpdateNode runs under infoMu).
	meta atomic.Pointer[metaState]
	// infoMu serializes metadata updates (never held with roster.mu).
	infoMu sync.Mutex
	info   localInfo

	watchMu   sync.Mutex
	watchers  map[int]chan struct{}
	nextWatch int
	watchDone bool

	// Checks of members memberlist reported gone (confirm.go): probe
	// timing from the profile, and the goroutines Close waits for.
	checkEvery time.Duration
	checkHold  time.Duration
	checkMu    sync.Mutex
	checksDone bool
	checks     sync.WaitGroup

	stateMu  sync.Mutex
	stopped  bool
	done     chan struct{}
	closeErr error
}

// tuning holds the timings of a profile that are not memberlist's.
type tuning struct {
	maintenance time.Duration // expiry and lone-join checks
	joinMin     time.Duration // first join retry delay
	joinMax     time.Duration // join retry delay cap
	updateWait  time.Duration // UpdateNode broadcast wait
	noticeWait  time.Duration // leave notice wait within Leave
	leftRevive  time.Duration // see roster.reviveStale
	leftGrace   time.Duration // pooled conns of LEFT members close after this
}

func tuningFor(profile string) tuning {
	if profile == ProfileLocal {
		return tuning{
			maintenance: 100 * time.Millisecond, joinMin: 50 * time.Millisecond, joinMax: time.Second,
			updateWait: time.Second, noticeWait: time.Second, leftRevive: 10 * time.Second, leftGrace: 10 * time.Second,
		}
	}
	// leftRevive exceeds the LAN profile's worst-case detection (the
	// suspicion timeout grows to 6x its base while confirmations lack).
	return tuning{
		maintenance: time.Second, joinMin: 500 * time.Millisecond, joinMax: 5 * time.Second,
		updateWait: 5 * time.Second, noticeWait: 5 * time.Second, leftRevive: 90 * time.Second, leftGrace: 10 * time.Second,
	}
}

// New validates cfg, creates the memberlist and binds the gossip port. It
// joins no one yet (see Start).
func New(cfg Config, deps Deps) (*Mesh, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	m := &Mesh{
		cfg:      cfg,
		log:      deps.Logger.With("node", cfg.Node),
		deps:     deps,
		roster:   newRoster(cfg.Node, deps.Now, cfg.DeadMemberTTL),
		pool:     newPool(tuningFor(cfg.Profile).leftGrace),
		tuning:   tuningFor(cfg.Profile),
		watchers: map[int]chan struct{}{},
		done:     make(chan struct{}),
		info:     localInfo{GRPCAddr: cfg.GRPCAddr, Services: cfg.Services, Peers: cfg.Peers, Rooms: cfg.Rooms},
	}
	m.roster.changed = m.changed
	if err := m.setMeta(m.info); err != nil {
		return nil, err
	}
	mc, err := memberlistConfig(cfg)
	if err != nil {
		return nil, err
	}
	mc.Logger = slog.NewLogLogger(m.log.With("component", "memberlist").Handler(), slog.LevelDebug)
	mc.Delegate = delegate{m}
	mc.Events = events{m}
	m.checkEvery, m.checkHold = mc.ProbeInterval, mc.GossipToTheDeadTime
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("mesh: start gossip on %s: %w", cfg.GossipAddr, err)
	}
	m.ml = ml
	return m, nil
}

// setMeta encodes info into the metadata memberlist gossips, warning about
// what had to be dropped to fit.
func (m *Mesh) setMeta(info localInfo) error {
	b, peers, rooms, err := encodeMeta(info, MetaMaxSize)
	if err != nil {
		return err
	}
	if peers < len(info.Peers) || rooms < len(info.Rooms) {
		m.log.Warn("node metadata over 512 bytes: dropped the peers and rooms that do not fit",
			"peers_kept", peers, "peers_dropped", len(info.Peers)-peers,
			"rooms_kept", rooms, "rooms_dropped", len(info.Rooms)-rooms)
	}
	m.meta.Store(&metaState{encoded: b, info: info})
	return nil
}

// metaState is an encoded record and what it was encoded from.
type metaState struct {
	encoded []byte
	info    localInfo
}

// Start joins cfg.Join, retrying with backoff until one join succeeds or
// ctx ends (compose containers start in any order). It returns at once
// when Join is empty.
func (m *Mesh) Start(ctx context.Context) error {
	if len(m.cfg.Join) == 0 {
		return nil
	}
	delay := m.tuning.joinMin
	for attempt := 1; ; attempt++ {
		if err := m.join(attempt); err == nil {
			return nil
		}
		t := time.NewTimer(jitter(delay))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("mesh: join %v: %w", m.cfg.Join, ctx.Err())
		case <-m.done:
			t.Stop()
			return errors.New("mesh: join: mesh is shut down")
		case <-t.C:
		}
		delay = min(2*delay, m.tuning.joinMax)
	}
}

// join makes one join attempt, logging a failure once at debug.
func (m *Mesh) join(attempt int) error {
	if m.isStopped() {
		return errors.New("mesh is shut down")
	}
	n, err := m.ml.Join(m.cfg.Join)
	if n > 0 {
		m.log.Info("joined the mesh", "contacted", n, "members", m.ml.NumMembers())
		return nil
	}
	if err == nil {
		err = errors.New("no address answered")
	}
	m.log.Debug("join attempt failed", "attempt", attempt, "join", m.cfg.Join, "error", err)
	return err
}

func jitter(d time.Duration) time.Duration {
	// ±20%, so restarted containers do not retry in lock step.
	return d*4/5 + rand.N(d*2/5+1)
}

// Run does the background maintenance until ctx ends or the mesh is shut
// down: it forgets DEAD and LEFT members after the TTL and, while this
// node is alone and cfg.Join is set, keeps trying to join.
func (m *Mesh) Run(ctx context.Context) error {
	t := time.NewTicker(m.tuning.maintenance)
	defer t.Stop()
	delay := m.tuning.joinMin
	var nextJoin time.Time
	attempt := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.done:
			return nil
		case <-t.C:
		}
		for _, name := range m.roster.expire() {
			m.log.Info("forgot member after TTL", "member", name, "ttl", m.cfg.DeadMemberTTL)
		}
		for _, name := range m.roster.reviveStale(m.gossipLive(), m.tuning.leftRevive) {
			m.log.Warn("member announced its leave but still gossips; ALIVE again", "member", name)
		}
		if len(m.cfg.Join) == 0 || !m.alone() {
			delay, attempt = m.tuning.joinMin, 0
			continue
		}
		if now := time.Now(); now.After(nextJoin) {
			attempt++
			if m.join(attempt) != nil {
				nextJoin = now.Add(jitter(delay))
				delay = min(2*delay, m.tuning.joinMax)
			}
		}
	}
}

// gossipLive returns the names memberlist counts as live. Only names are
// read from memberlist's nodes: a name never changes after a node is
// created, while its other fields may change under a concurrent read.
func (m *Mesh) gossipLive() map[string]bool {
	live := map[string]bool{}
	if m.isStopped() {
		return live
	}
	for _, n := range m.ml.Members() {
		live[n.Name] = true
	}
	return live
}

// alone reports whether no other member is live.
func (m *Mesh) alone() bool {
	return len(m.roster.snapshot(func(mm *Member) bool { return mm.Name != m.cfg.Node && mm.State.live() })) == 0
}

// Leave says goodbye: it tells every live member that this node is
// leaving, broadcasts memberlist's leave (others record LEFT and move this
// node's keys) and shuts gossip down. It waits at most timeout for each
// step. Pooled connections stay open until Close.
func (m *Mesh) Leave(timeout time.Duration) error {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if m.stopped {
		return nil
	}
	m.roster.announceLeave(m.cfg.Node)
	m.sendLeaveNotices(min(timeout, m.tuning.noticeWait))
	leaveErr := m.ml.Leave(timeout)
	if leaveErr != nil {
		m.log.Warn("leave broadcast not confirmed; others may record this node as DEAD", "error", leaveErr)
	}
	m.stopLocked()
	if leaveErr != nil {
		return fmt.Errorf("mesh: leave: %w", leaveErr)
	}
	return nil
}

// Shutdown stops gossip without a goodbye, as a crash would: the others
// detect the failure and record this node as DEAD.
func (m *Mesh) Shutdown() error {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if m.stopped {
		return nil
	}
	m.stopLocked()
	return m.closeErr
}

func (m *Mesh) stopLocked() {
	if err := m.ml.Shutdown(); err != nil {
		m.closeErr = fmt.Errorf("mesh: shutdown: %w", err)
	}
	m.stopped = true
	close(m.done)
}

func (m *Mesh) isStopped() bool {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	return m.stopped
}

// Close stops gossip (without a goodbye, unless Leave ran first), closes
// every pooled connection and every Watch channel. It is safe to call more
// than once.
func (m *Mesh) Close() error {
	err := m.Shutdown()
	m.checkMu.Lock()
	m.checksDone = true
	m.checkMu.Unlock()
	m.checks.Wait()
	m.pool.closeAll()
	m.watchMu.Lock()
	m.watchDone = true
	for id, ch := range m.watchers {
		close(ch)
		delete(m.watchers, id)
	}
	m.watchMu.Unlock()
	return err
}

// Self returns this node as a member.
func (m *Mesh) Self() Member {
	if s, ok := m.roster.get(m.cfg.Node); ok {
		return s
	}
	// memberlist reports this node as joined inside Create, so this is
	// only reached if that ever changes.
	return Member{Name: m.cfg.Node, GRPCAddr: m.cfg.GRPCAddr, Services: slices.Clone(m.cfg.Services), State: Alive, Self: true}
}

// Members returns the live (ALIVE and SUSPECT) members, sorted by name.
func (m *Mesh) Members() []Member {
	return m.roster.snapshot(func(mm *Member) bool { return mm.State.live() })
}

// AllMembers returns every member this node knows of, also the DEAD ones
// (until the TTL) and the LEFT ones, sorted by name.
func (m *Mesh) AllMembers() []Member { return m.roster.snapshot(nil) }

// Member returns one member by name, in whatever state.
func (m *Mesh) Member(name string) (Member, bool) { return m.roster.get(name) }

// Serving returns the live members that serve service, sorted by name.
func (m *Mesh) Serving(service string) []Member {
	return m.roster.snapshot(func(mm *Member) bool { return mm.State.live() && mm.Serves(service) })
}

// RoomMembers returns the live members in room (a UUID, any case), sorted
// by name.
func (m *Mesh) RoomMembers(room string) []Member {
	c, ok := CanonicalRoom(room)
	if !ok {
		return []Member{}
	}
	return m.roster.snapshot(func(mm *Member) bool { return mm.State.live() && mm.InRoom(c) })
}

// Hosts returns the live members that host peer (a name or UUID), sorted
// by name; a peer may run on several nodes.
func (m *Mesh) Hosts(peer string) []Member {
	c, ok := CanonicalPeer(peer)
	if !ok {
		return []Member{}
	}
	return m.roster.snapshot(func(mm *Member) bool { return mm.State.live() && mm.Hosts(c) })
}

// HostOf returns the live member hosting peer (a name or UUID): this node
// if it hosts the peer, else the first live host by name. A peer hosted
// only by members that are not live gives *ErrPeerUnreachable naming one
// of them (SUSPECT, then DEAD, then LEFT); a peer no known member hosts
// gives *ErrPeerUnknown.
func (m *Mesh) HostOf(peer string) (Member, error) {
	c, ok := CanonicalPeer(peer)
	if !ok {
		return Member{}, &ErrPeerUnknown{Peer: rpcerr.Clip(peer)}
	}
	hosts := m.roster.snapshot(func(mm *Member) bool { return mm.Hosts(c) })
	var best *Member
	for i := range hosts {
		h := &hosts[i]
		if best == nil || hostRank(h) < hostRank(best) {
			best = h
		}
	}
	switch {
	case best == nil:
		return Member{}, &ErrPeerUnknown{Peer: c}
	case !best.State.live():
		return Member{}, &ErrPeerUnreachable{Peer: c, Member: *best}
	}
	return *best, nil
}

// hostRank orders hosts: self, other live members, then SUSPECT, DEAD and
// LEFT ones (names break ties, as hosts are sorted by name).
func hostRank(mm *Member) int {
	switch {
	case mm.Self && mm.State.live():
		return 0
	case mm.State == Alive:
		return 1
	case mm.State == Suspect:
		return 2
	case mm.State == Dead:
		return 3
	}
	return 4
}

// Owner returns the member owning key of a sharded service: the rendezvous
// winner among the members serving it that are ALIVE, SUSPECT or DEAD (not
// LEFT, and not yet forgotten). When the winner is not ALIVE it returns
// *ErrOwnerDown naming it, so a crashed owner's keys do not silently move
// to a member that would answer from an empty memory; a LEFT member's keys
// move. No candidate at all gives *ErrServiceUnavailable.
func (m *Mesh) Owner(service, key string) (Member, error) {
	cands := m.ownerCandidates(service, "")
	if len(cands) == 0 {
		return Member{}, &ErrServiceUnavailable{Service: service}
	}
	w := winner(key, cands)
	if w.State != Alive {
		return Member{}, &ErrOwnerDown{Service: service, Key: key, Member: w}
	}
	return w, nil
}

// PreviousOwner returns who would own key if exclude were absent: when
// exclude has just joined, the member to hand the key over from; when it
// is leaving, the member to hand the key over to.
func (m *Mesh) PreviousOwner(service, key, exclude string) (Member, bool) {
	cands := m.ownerCandidates(service, exclude)
	if len(cands) == 0 {
		return Member{}, false
	}
	return winner(key, cands), true
}

// ownerCandidates are the members that may own keys of service: not LEFT,
// not exclude, and not draining while alive (a draining member is handing
// its keys away; a DEAD one keeps its keys like any crashed member). When
// every candidate is draining they all stay candidates, so keys still
// have an owner.
func (m *Mesh) ownerCandidates(service, exclude string) []Member {
	all := m.roster.snapshot(func(mm *Member) bool {
		return mm.Name != exclude && mm.State != Left && mm.Serves(service)
	})
	draining := func(mm Member) bool { return mm.Draining && mm.State.live() }
	n := 0
	for _, mm := range all {
		if draining(mm) {
			n++
		}
	}
	if n == 0 || n == len(all) {
		return all
	}
	return slices.DeleteFunc(all, draining) // all is this call's own snapshot
}

func winner(key string, cands []Member) Member {
	names := make([]string, len(cands))
	for i, c := range cands {
		names[i] = c.Name
	}
	w := Rendezvous(key, names)
	return cands[slices.Index(names, w)]
}

// Resolve names the member a call for service goes to: with a key, its
// Owner; without, the member ServiceConn picks (see there).
func (m *Mesh) Resolve(service, key string) (Member, error) {
	if key != "" {
		return m.Owner(service, key)
	}
	return m.pick(service)
}

// ResolveName is Resolve's member name. It answers this node, without
// copying the roster, when this node serves an unsharded service, which
// is what most local calls find.
func (m *Mesh) ResolveName(service, key string) (string, error) {
	if key == "" && m.roster.serves(m.cfg.Node, service) {
		return m.cfg.Node, nil
	}
	mm, err := m.Resolve(service, key)
	if err != nil {
		return "", err
	}
	return mm.Name, nil
}

// pick chooses the member ServiceConn calls: this node when it serves the
// service, else the rendezvous winner for this node's name among the live
// members serving it. Each caller thus sticks to one member (connections
// and streams stay put, and a member's going away moves only the callers
// that used it) while different callers spread over the members.
func (m *Mesh) pick(service string) (Member, error) {
	live := m.Serving(service)
	if len(live) == 0 {
		return Member{}, &ErrServiceUnavailable{Service: service}
	}
	for _, mm := range live {
		if mm.Self {
			return mm, nil
		}
	}
	return winner(m.cfg.Node, live), nil
}

// Watch returns a channel that receives (coalesced) after every change of
// membership, member state or metadata, and a cancel that closes it.
func (m *Mesh) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	if m.watchDone {
		close(ch)
		return ch, func() {}
	}
	id := m.nextWatch
	m.nextWatch++
	m.watchers[id] = ch
	return ch, func() {
		m.watchMu.Lock()
		defer m.watchMu.Unlock()
		if c, ok := m.watchers[id]; ok {
			close(c)
			delete(m.watchers, id)
		}
	}
}

// changed runs after every roster change: drop pooled connections to
// members that are gone or moved, and wake the watchers.
func (m *Mesh) changed() {
	m.pool.reconcile(m.roster)
	m.watchMu.Lock()
	for _, ch := range m.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	m.watchMu.Unlock()
}

// UpdatePeers replaces the peers this node hosts and gossips the change.
func (m *Mesh) UpdatePeers(peers []HostedPeer) error {
	norm, err := normalizePeers(peers)
	if err != nil {
		return err
	}
	return m.updateInfo(func(info *localInfo) { info.Peers = norm })
}

// UpdateRooms replaces the rooms this node is in and gossips the change.
func (m *Mesh) UpdateRooms(rooms []string) error {
	norm, err := normalizeRooms(rooms)
	if err != nil {
		return err
	}
	return m.updateInfo(func(info *localInfo) { info.Rooms = norm })
}

// UpdateServices replaces the services this node serves and gossips the
// change.
func (m *Mesh) UpdateServices(services []string) error {
	norm, err := normalizeServices(services)
	if err != nil {
		return err
	}
	return m.updateInfo(func(info *localInfo) { info.Services = norm })
}

// Drain says, in this node's gossiped metadata, that it is about to leave.
// From then on no member (this one at once, the others as the gossip
// reaches them) counts it as the owner of any key of a sharded service
// while it is alive, so its keys move to the members that will own them
// once it is gone, while it still serves and can hand them over (see
// Owner). Call it before the hand-offs and Leave after them. It waits at
// most wait for the broadcast; gossip carries it on after that. It is
// idempotent, and cannot be undone but by a restart.
func (m *Mesh) Drain(wait time.Duration) error {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if m.stopped {
		return errors.New("mesh: drain: mesh is shut down")
	}
	m.infoMu.Lock()
	if m.info.Draining {
		m.infoMu.Unlock()
		return nil
	}
	next := m.info
	next.Draining = true
	if err := m.setMeta(next); err != nil {
		m.infoMu.Unlock()
		return err
	}
	m.info = next
	m.infoMu.Unlock()
	// memberlist reports this node's own update as an event too, but the
	// roster must say draining before this returns.
	if self, ok := m.roster.get(m.cfg.Node); ok {
		m.roster.alive(self.Name, self.GossipAddr, &next)
	}
	if err := m.ml.UpdateNode(wait); err != nil {
		m.log.Debug("draining broadcast not confirmed yet; gossip will carry it", "error", err)
	}
	m.log.Info("draining: keys move to the other members")
	return nil
}

// Draining reports whether Drain ran.
func (m *Mesh) Draining() bool {
	m.infoMu.Lock()
	defer m.infoMu.Unlock()
	return m.info.Draining
}

// updateInfo applies f to this node's metadata and gossips it. The change
// is in effect locally at once; when the broadcast is not confirmed within
// the profile's wait it is logged and left to gossip and push/pull.
func (m *Mesh) updateInfo(f func(*localInfo)) error {
	m.stateMu.Lock()
	defer m.stateMu.Unlock()
	if m.stopped {
		return errors.New("mesh: update: mesh is shut down")
	}
	m.infoMu.Lock()
	defer m.infoMu.Unlock()
	next := m.info
	f(&next)
	if err := m.setMeta(next); err != nil {
		return err
	}
	m.info = next
	if err := m.ml.UpdateNode(m.tuning.updateWait); err != nil {
		m.log.Warn("metadata update broadcast not confirmed; gossip will carry it", "error", err)
	}
	return nil
}
