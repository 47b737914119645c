package hippocampus

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"

	"google.golang.org/grpc"
)

// fakeCluster is the membership of an in-process mesh that a test controls:
// live members, crashed ones (which keep their place in the hashing, as
// pkg/mesh does), connections to each, and watchers.
type fakeCluster struct {
	mu       sync.Mutex
	live     []string
	down     []string
	conns    map[string]grpc.ClientConnInterface
	watchers map[chan struct{}]bool
	// pin overrides the hashing for some personas.
	pin map[string]string
	// draining members own nothing while they are live (as in pkg/mesh).
	draining []string
}

// drain marks members as draining, as their gossiped metadata would.
func (c *fakeCluster) drain(ms ...string) {
	c.change(func(c *fakeCluster) { c.draining = append(c.draining, ms...) })
}

// candidatesLocked are the members that may own personas, as
// mesh.ownerCandidates picks them.
func (c *fakeCluster) candidatesLocked(exclude string) []string {
	all := slices.DeleteFunc(append(slices.Clone(c.live), c.down...), func(x string) bool { return x == exclude })
	active := slices.DeleteFunc(slices.Clone(all), func(x string) bool {
		return slices.Contains(c.draining, x) && slices.Contains(c.live, x)
	})
	if len(active) > 0 {
		return active
	}
	return all
}

func newFakeCluster(members ...string) *fakeCluster {
	return &fakeCluster{live: members, conns: map[string]grpc.ClientConnInterface{}, watchers: map[chan struct{}]bool{}, pin: map[string]string{}}
}

// newFakeRing is a one-member cluster's ring.
func newFakeRing(self string) *fakeRing { return newFakeCluster(self).ring(self) }

func (c *fakeCluster) ring(self string) *fakeRing { return &fakeRing{c: c, self: self} }

func (c *fakeCluster) setConn(member string, cc grpc.ClientConnInterface) {
	c.mu.Lock()
	c.conns[member] = cc
	c.mu.Unlock()
}

// change edits the membership and tells every watcher.
func (c *fakeCluster) change(fn func(c *fakeCluster)) {
	c.mu.Lock()
	fn(c)
	ws := make([]chan struct{}, 0, len(c.watchers))
	for w := range c.watchers {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

func (c *fakeCluster) join(m string) {
	c.change(func(c *fakeCluster) { c.live = append(c.live, m) })
}

func (c *fakeCluster) leave(m string) {
	c.change(func(c *fakeCluster) {
		c.live = slices.DeleteFunc(c.live, func(x string) bool { return x == m })
	})
}

func (c *fakeCluster) crash(m string) {
	c.change(func(c *fakeCluster) {
		c.live = slices.DeleteFunc(c.live, func(x string) bool { return x == m })
		c.down = append(c.down, m)
	})
}

// rendezvous picks the member with the highest hash of (member, key).
func rendezvous(key string, members []string) string {
	best, bestScore := "", uint64(0)
	for _, m := range members {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%s", m, key)
		if s := h.Sum64(); best == "" || s > bestScore {
			best, bestScore = m, s
		}
	}
	return best
}

type fakeRing struct {
	c    *fakeCluster
	self string
}

func (r *fakeRing) Self() string { return r.self }

func (r *fakeRing) Owner(persona string) (string, error) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	owner := r.c.pin[persona]
	if owner == "" {
		owner = rendezvous(persona, r.c.candidatesLocked(""))
	}
	if slices.Contains(r.c.down, owner) {
		return owner, fmt.Errorf("owner %s: %w", owner, ErrOwnerDown)
	}
	return owner, nil
}

func (r *fakeRing) PreviousOwner(persona, exclude string) (string, bool) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	all := r.c.candidatesLocked(exclude)
	if len(all) == 0 {
		return "", false
	}
	return rendezvous(persona, all), true
}

func (r *fakeRing) Members() []string {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return slices.Clone(r.c.live)
}

func (r *fakeRing) Conn(_ context.Context, member string) (grpc.ClientConnInterface, error) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	cc := r.c.conns[member]
	if cc == nil || !slices.Contains(r.c.live, member) {
		return nil, fmt.Errorf("member %s is unreachable", member)
	}
	return cc, nil
}

func (r *fakeRing) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.c.mu.Lock()
	r.c.watchers[ch] = true
	r.c.mu.Unlock()
	return ch, func() {
		r.c.mu.Lock()
		delete(r.c.watchers, ch)
		r.c.mu.Unlock()
	}
}

// personaOwnedBy finds a persona name that the hashing gives to want among
// members.
func personaOwnedBy(want string, members []string, prefix string) string {
	for i := 0; ; i++ {
		name := fmt.Sprintf("%s%d", prefix, i)
		if rendezvous(name, members) == want {
			return name
		}
	}
}
