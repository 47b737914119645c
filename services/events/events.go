// Package events is continuum.events.v1.EventsService, the mesh's event bus:
// typed event classes, publish and subscribe on colon topics and slash
// artifact keys, subscriptions as server streams that never lose an event
// silently.
//
// Every event belongs to one stream, which numbers it: the stream of the
// most specific class covering its topic (a class named x covers x and
// x:>; an artifact-key class covers exactly its key), or the topic's own
// stream when no class covers it. A durable class's stream is an
// append-only segment log under Config.DataDir, synced (group commit) before a
// publish is acknowledged or delivered, so a subscriber that resumes after a
// restart with start_after_sequence gets every acknowledged event exactly
// once by sequence. Other streams keep a bounded window in memory.
//
// Publishers never wait for subscribers: each subscription has a bounded
// queue, and a subscriber that falls behind gets a typed lag notice (how
// many it missed, from where to resume) before its next delivery instead of
// a silent gap. Publishing and subscribing are gated through the router's
// policy on events/<topic>/publish and events/<selector>/subscribe with the
// caller's identity (auth.Caller, which a mesh hop may carry); Unsubscribe
// is never gated.
//
// Lifecycle: New opens the store (recovering torn tails), Register mounts
// the service, Run enforces retention until its context ends and then ends
// open subscriptions (UNAVAILABLE SHUTTING_DOWN, so a graceful server stop
// need not wait for them), and Close commits what is pending and closes
// the store; call it last.
package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/pkg/gate"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// Deps are the collaborators of the events service.
type Deps struct {
	// Gate is the router's policy gate (required). Publish is gated on
	// events/<topic>/publish, Subscribe on events/<selector>/subscribe and,
	// for wildcard and prefix selectors, on events/<topic>/subscribe per
	// concrete topic.
	Gate gate.Gate
	// Logger; nil uses slog.Default().
	Logger *slog.Logger
	// Now is the clock for publish times, dedup and retention; nil is
	// time.Now.
	Now func() time.Time
}

// Service is the events service.
type Service struct {
	eventsv1.UnimplementedEventsServiceServer

	cfg    Config
	gate   gate.Gate
	log    *slog.Logger
	now    func() time.Time
	reg    *registry
	index  *subIndex
	unlock func() error

	subsMu   sync.Mutex
	subs     map[string]*subscription
	draining bool // no new subscriptions (Run ended or Close)

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// New builds the service. With a DataDir it locks the directory, loads the
// class registry and recovers every durable stream (truncating torn tails);
// it does no network I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Gate == nil {
		return nil, errors.New("events: Deps.Gate is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Service{
		cfg: cfg, gate: deps.Gate, log: deps.Logger, now: deps.Now,
		index: newSubIndex(), subs: map[string]*subscription{},
		unlock: func() error { return nil },
	}
	s.reg = newRegistry(cfg, deps.Logger, deps.Now, s.index.offer)
	if dir := cfg.dir(); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		unlock, err := lockDir(dir)
		if err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		s.unlock = unlock
		if err := s.reg.load(); err != nil {
			_ = s.reg.close()
			_ = unlock()
			return nil, fmt.Errorf("events: %w", err)
		}
	}
	return s, nil
}

// Register mounts the service on a gRPC server.
func (s *Service) Register(r grpc.ServiceRegistrar) {
	eventsv1.RegisterEventsServiceServer(r, s)
}

// Run enforces retention (durable segments, memory windows, dedup windows)
// every Config.RetentionInterval until ctx ends. Then it drains: open
// subscriptions end with UNAVAILABLE SHUTTING_DOWN and new ones are
// refused, while publishes go on until Close. It returns nil when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.drain()
			return nil
		case <-t.C:
			s.enforceRetention()
		}
	}
}

// enforceRetention applies every stream's retention once.
func (s *Service) enforceRetention() {
	now := s.now()
	for _, st := range s.reg.streams() {
		if err := st.enforceRetention(now); err != nil {
			s.log.Error("events: retention", "stream", st.name, "error", err)
		}
	}
}

// drain ends every open subscription and refuses new ones.
func (s *Service) drain() {
	s.subsMu.Lock()
	s.draining = true
	subs := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.subsMu.Unlock()
	for _, sub := range subs {
		sub.close(errShuttingDown)
	}
}

// Close ends subscriptions, refuses further calls, commits what durable
// streams hold, and closes the store. Call it after the server has stopped.
// It is safe to call more than once.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.drain()
		err := s.reg.close()
		s.closeErr = errors.Join(err, s.unlock())
	})
	return s.closeErr
}

// addSubscription registers a subscription unless the service is draining
// or full.
func (s *Service) addSubscription(sub *subscription) error {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if s.draining {
		return errShuttingDown
	}
	if len(s.subs) >= s.cfg.MaxSubscriptions {
		return failure(errSubscriptionLimit, "", "max_subscriptions", fmt.Sprint(s.cfg.MaxSubscriptions))
	}
	s.subs[sub.id] = sub
	return nil
}

// removeSubscription forgets a subscription and takes it out of the index.
func (s *Service) removeSubscription(sub *subscription) {
	s.index.remove(sub)
	s.subsMu.Lock()
	delete(s.subs, sub.id)
	s.subsMu.Unlock()
}

// ListSubscriptions returns the live subscriptions and their counters.
func (s *Service) ListSubscriptions(context.Context, *eventsv1.ListSubscriptionsRequest) (*eventsv1.ListSubscriptionsResponse, error) {
	s.subsMu.Lock()
	subs := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.subsMu.Unlock()
	slices.SortFunc(subs, func(a, b *subscription) int { return strings.Compare(a.id, b.id) })
	out := &eventsv1.ListSubscriptionsResponse{Subscriptions: make([]*eventsv1.SubscriptionStats, 0, len(subs))}
	for _, sub := range subs {
		out.Subscriptions = append(out.Subscriptions, sub.stats(s.cfg.Node))
	}
	return out, nil
}

// newID returns a random subscription id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "sub_" + hex.EncodeToString(b[:])
}
