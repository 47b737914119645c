// Package hippocampus serves continuum.hippocampus.v1.HippocampusService:
// each persona's engrams and their graph, and a brain region that ticks on
// its own cadence, predicts per (persona, channel) what the next turn will
// need, and publishes it into a ready buffer that request handlers only
// peek (one atomic load; they never wait for a tick).
//
// The algorithms (ACT-R base-level salience, channel bias, constrained
// spreading activation, the ARC-style two-pool budget, the governor) are
// those of HIPPOCAMPUS.md. State is durable under <DataDir>/hippocampus (a
// write-ahead journal with group commit, and per-persona snapshots).
// Personas are sharded over the members serving the region: each is owned
// by one member (rendezvous hashing, see Ring), moves to its new owner when
// membership changes, and is handed over before a member leaves.
package hippocampus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/pkg/region"
	hippocampusv1 "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
)

// Ring is the service's view of the members serving the hippocampus (the
// lead adapts pkg/mesh to it). Ownership is rendezvous hashing of the
// persona over the members; a crashed member keeps its place (its personas
// are unavailable until it is back) while a member that left does not.
type Ring interface {
	// Self is this member's name.
	Self() string
	// Owner names the member owning persona. When that member crashed
	// (rather than left), it returns its name and an error wrapping
	// ErrOwnerDown; other errors mean membership is not known.
	Owner(persona string) (string, error)
	// PreviousOwner names the member that would own persona if exclude
	// were not a member: who owned it before exclude joined, or who will
	// own it once exclude leaves. Crashed members count. ok is false when
	// no other member serves the hippocampus.
	PreviousOwner(persona, exclude string) (member string, ok bool)
	// Members lists the live members serving the hippocampus, self
	// included.
	Members() []string
	// Conn returns a connection to a member; calls on it are made as this
	// mesh node.
	Conn(ctx context.Context, member string) (grpc.ClientConnInterface, error)
	// Watch reports membership changes on changes until stop is called;
	// the channel may be closed when membership shuts down.
	Watch() (changes <-chan struct{}, stop func())
}

// Deps are the service's collaborators.
type Deps struct {
	// Ring places personas on members; nil means this instance owns every
	// persona (a single-node mesh, replays, tests).
	Ring Ring
	// Logger; nil is slog.Default().
	Logger *slog.Logger
	// Clock drives the region's ticks and every timestamp; nil is the wall
	// clock. Replays pass a *region.ManualClock and drive Runner().AdvanceTo.
	Clock region.Clock
	// OnTick, when set, sees every tick's telemetry on the runner's
	// goroutine; it must not block (replays collect tick latencies).
	OnTick func(region.Telemetry)
}

// Service is the hippocampus.
type Service struct {
	cfg    Config
	log    *slog.Logger
	clock  region.Clock
	ring   Ring
	mem    *memory
	gov    *region.Governor
	runner *region.Runner
	reg    *hippocampusRegion
	hub    *telemetryHub

	tickHook func(region.Telemetry)
	ticks    atomic.Uint64
	requests atomic.Uint64

	closing atomic.Bool
	leaving atomic.Bool
	// imports counts hand-offs being received; Leave waits for them so
	// a persona that arrives while this member leaves is handed on too.
	imports atomic.Int64

	life      context.Context
	stopLife  context.CancelFunc
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
	ckpt      chan struct{}

	locMu    sync.Mutex
	locating map[string]*locateCall
	absent   map[string]uint64 // persona -> membership epoch it was found absent in
	epoch    atomic.Uint64
}

// New builds the service and recovers its state from disk. It does no
// network I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg = cfg.withDefaults()
	if deps.Ring != nil && cfg.Node == "" {
		cfg.Node = deps.Ring.Self()
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("hippocampus config: %w", err)
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Clock == nil {
		deps.Clock = region.WallClock{}
	}
	log := deps.Logger.With("service", "hippocampus")
	gov, err := region.NewGovernor(cfg.Governor)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:      cfg,
		log:      log,
		clock:    deps.Clock,
		ring:     deps.Ring,
		tickHook: deps.OnTick,
		gov:      gov,
		hub:      newTelemetryHub(),
		ckpt:     make(chan struct{}, 1),
		locating: map[string]*locateCall{},
		absent:   map[string]uint64{},
	}
	s.mem = newMemory(&s.cfg, log, deps.Clock)
	s.runner = region.NewRunner(gov, region.RunnerDeps{Clock: deps.Clock, Sink: s.onTick, Logger: log})
	s.reg = &hippocampusRegion{mem: s.mem, runner: s.runner, gov: gov, k: cfg.K, ours: scorerByName(cfg.Scorer) == scoreOurs}
	if err := s.runner.Add(s.reg); err != nil {
		return nil, err
	}
	if err := s.mem.open(); err != nil {
		return nil, fmt.Errorf("open hippocampus store: %w", err)
	}
	s.life, s.stopLife = context.WithCancel(context.Background())
	return s, nil
}

// Register mounts HippocampusService on r.
func (s *Service) Register(r grpc.ServiceRegistrar) {
	hippocampusv1.RegisterHippocampusServiceServer(r, &server{s: s})
}

// Runner is the region runner; replays drive it with AdvanceTo.
func (s *Service) Runner() *region.Runner { return s.runner }

// Run runs the region's ticks, checkpoints, and (with a Ring) the
// ownership checks that move personas after membership changes, until ctx
// ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := s.runner.Run(ctx); err != nil {
			errc <- err
		}
	}()
	go func() {
		defer wg.Done()
		s.maintain(ctx)
	}()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// maintain checkpoints when the journal has grown, and periodically prunes
// tombstones and re-checks ownership (retrying hand-offs that failed).
func (s *Service) maintain(ctx context.Context) {
	var changes <-chan struct{}
	if s.ring != nil {
		ch, stop := s.ring.Watch()
		defer stop()
		changes = ch
	}
	for {
		fire, stop := s.clock.After(s.cfg.MaintainInterval)
		select {
		case <-ctx.Done():
			stop()
			return
		case <-s.ckpt:
			if err := s.mem.checkpoint(); err != nil {
				s.log.Error("checkpoint failed", "error", err)
			}
		case _, ok := <-changes:
			if !ok { // the membership stopped reporting (it shut down)
				changes = nil
				break
			}
			s.epoch.Add(1)
			s.rebalance(ctx)
		case <-fire:
			s.mem.pruneTombstones()
			if s.ring != nil {
				s.rebalance(ctx)
			}
		}
		stop()
	}
}

// afterWrite asks for a checkpoint once the journal has grown enough.
func (s *Service) afterWrite() {
	if s.mem.needsCheckpoint() {
		select {
		case s.ckpt <- struct{}{}:
		default:
		}
	}
}

// Close stops background hand-offs, ends telemetry streams, checkpoints
// and closes the store. Stop serving and stop Run first. It is safe to call
// more than once.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.stopLife()
		s.bg.Wait()
		s.hub.close()
		s.closeErr = s.mem.close()
	})
	return s.closeErr
}

// onTick is the runner's telemetry sink.
func (s *Service) onTick(t region.Telemetry) {
	if !t.Deferred {
		s.ticks.Add(1)
	}
	if s.tickHook != nil {
		s.tickHook(t)
	}
	s.hub.publish(t)
}

// Remember stores an engram for persona in channel and returns its id;
// duplicate is set when in.ID was already stored (nothing changed). It
// returns once the engram is durable, and kicks the channel's tick.
func (s *Service) Remember(ctx context.Context, persona, channel string, in EngramInput) (id string, duplicate bool, err error) {
	if err := checkPersona(persona); err != nil {
		return "", false, err
	}
	if err := checkChannel(channel); err != nil {
		return "", false, err
	}
	entities, topics, err := normalizeInput(&in, false)
	if err != nil {
		return "", false, err
	}
	p, err := s.acquire(ctx, persona, true)
	if err != nil {
		return "", false, err
	}
	id, duplicate, err = s.mem.remember(p, channel, &in, entities, topics)
	if err != nil {
		return "", false, err
	}
	if !duplicate {
		s.reg.kick(p, channel)
		s.afterWrite()
	}
	return id, duplicate, nil
}

// Consume records that a request in channel used the engrams ids.
func (s *Service) Consume(ctx context.Context, persona, channel string, ids []string) (ConsumeResult, error) {
	if err := checkPersona(persona); err != nil {
		return ConsumeResult{}, err
	}
	if err := checkChannel(channel); err != nil {
		return ConsumeResult{}, err
	}
	if len(ids) == 0 {
		return ConsumeResult{}, invalid(ReasonEngramIDsEmpty, "engram_ids", "name at least one engram")
	}
	if len(ids) > maxConsumeIDs {
		return ConsumeResult{}, invalid(ReasonTooManyEngrams, "engram_ids", "%d engrams; the limit is %d", len(ids), maxConsumeIDs)
	}
	for _, id := range ids {
		if err := checkEngramID("engram_ids", id); err != nil {
			return ConsumeResult{}, err
		}
	}
	p, err := s.acquire(ctx, persona, false)
	if err != nil {
		return ConsumeResult{}, err
	}
	if p == nil {
		return ConsumeResult{}, &EngramUnknownError{Persona: persona, ID: ids[0]}
	}
	if _, ok := s.reg.ensureTarget(p, channel); !ok {
		return ConsumeResult{}, &LimitError{Reason: ReasonChannelsFull, Msg: fmt.Sprintf("persona %q has too many channels", persona)}
	}
	s.requests.Add(1)
	res, err := s.mem.consume(p, channel, ids, s.reg.consumeHook)
	if err == nil {
		s.afterWrite()
	}
	return res, err
}

// Link adds (or updates) the edge from→to of kind; weight 0 is the kind's
// default. It returns the edge's weight.
func (s *Service) Link(ctx context.Context, persona, from, to string, kind EdgeKind, weight float64) (float64, error) {
	if err := checkPersona(persona); err != nil {
		return 0, err
	}
	if err := checkEngramID("from", from); err != nil {
		return 0, err
	}
	if err := checkEngramID("to", to); err != nil {
		return 0, err
	}
	if !kind.valid() {
		return 0, invalid(ReasonEdgeKindInvalid, "kind", "edge kind %d is not a known kind", kind)
	}
	if weight < 0 || weight > maxLinkWeight || weight != weight {
		return 0, invalid(ReasonWeightInvalid, "weight", "weight must be in (0, %d], or 0 for the kind's default", maxLinkWeight)
	}
	if from == to {
		return 0, invalid(ReasonEdgeSelfLoop, "to", "an engram cannot link to itself")
	}
	p, err := s.acquire(ctx, persona, false)
	if err != nil {
		return 0, err
	}
	if p == nil {
		return 0, &EngramUnknownError{Persona: persona, ID: from}
	}
	w, err := s.mem.link(p, from, to, kind, weight)
	if err == nil {
		s.afterWrite()
	}
	return float64(w), err
}

// Forget deletes an engram and its edges and removes it from every ready
// buffer; it reports whether it was there.
func (s *Service) Forget(ctx context.Context, persona, id string) (bool, error) {
	if err := checkPersona(persona); err != nil {
		return false, err
	}
	if err := checkEngramID("engram_id", id); err != nil {
		return false, err
	}
	p, err := s.acquire(ctx, persona, false)
	if err != nil || p == nil {
		return false, err
	}
	ok, err := s.mem.forget(p, id)
	if err == nil {
		s.afterWrite()
	}
	return ok, err
}

// PeekLocal is the in-process hot path: the current slice of the channel's
// ready buffer (nil when none was published), counted as a request. It does
// not check ownership, never blocks and does not allocate.
func (s *Service) PeekLocal(persona, channel string) *region.Slice[Item] {
	p := s.mem.get(persona)
	if p == nil {
		return nil
	}
	t := p.target(channel)
	if t == nil {
		return nil
	}
	s.reg.request(t)
	return t.buf.Peek()
}

// Empty reasons of a peek.
const (
	EmptyNoEngrams     = "no-engrams"
	EmptyNeverTicked   = "never-ticked"
	EmptyExpired       = "expired"
	EmptyAsleep        = "asleep"
	EmptyNothingStaged = "nothing-staged"
)

// PeekResult is a peek's answer.
type PeekResult struct {
	Slice *region.Slice[Item]
	// Items are the slice's items, or nil with EmptyReason set.
	Items       []Item
	EmptyReason string
	Stale       bool
}

// Peek returns the channel's ready buffer without waiting, with the reason
// when it has nothing to offer. A peek counts as a request: a sleeping
// channel wakes one second later, a channel never seen gets a target.
func (s *Service) Peek(ctx context.Context, persona, channel string, allowStale bool) (PeekResult, error) {
	if err := checkPersona(persona); err != nil {
		return PeekResult{}, err
	}
	if err := checkChannel(channel); err != nil {
		return PeekResult{}, err
	}
	p, err := s.acquire(ctx, persona, false)
	if err != nil {
		return PeekResult{}, err
	}
	if p == nil || p.live.Load() == 0 {
		return PeekResult{EmptyReason: EmptyNoEngrams}, nil
	}
	s.requests.Add(1)
	t := p.target(channel)
	if t == nil {
		if _, ok := s.reg.ensureTarget(p, channel); !ok {
			return PeekResult{}, &LimitError{Reason: ReasonChannelsFull, Msg: fmt.Sprintf("persona %q has too many channels", persona)}
		}
		return PeekResult{EmptyReason: EmptyNeverTicked}, nil
	}
	wasAsleep := t.asleep.Load()
	s.reg.request(t)
	sl := t.buf.Peek()
	res := PeekResult{Slice: sl}
	now := s.clock.Now()
	switch {
	case sl == nil:
		res.EmptyReason = EmptyNeverTicked
	case sl.Evicted || sl.Expired(now):
		if allowStale && len(sl.Items) > 0 {
			res.Items, res.Stale = sl.Items, true
		} else if wasAsleep {
			res.EmptyReason = EmptyAsleep
		} else {
			res.EmptyReason = EmptyExpired
		}
	case len(sl.Items) == 0:
		res.EmptyReason = EmptyNothingStaged
	default:
		res.Items = sl.Items
	}
	return res, nil
}

// Contents returns the contents of a persona's engrams by id ("" for
// those that are gone).
func (s *Service) Contents(persona string, ids []string) []string {
	out := make([]string, len(ids))
	p := s.mem.get(persona)
	if p == nil {
		return out
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	for i, id := range ids {
		if slot, ok := p.byID[id]; ok {
			out[i] = p.engrams[slot].content
		}
	}
	return out
}

// WouldStage reports whether a tick of (persona, channel) run now would
// stage engram id, without publishing or learning anything. Replays use it
// to tell a late miss from a plain one.
func (s *Service) WouldStage(persona, channel, id string) bool {
	p := s.mem.get(persona)
	if p == nil {
		return false
	}
	share := s.cfg.Model.P0
	if t := p.target(channel); t != nil {
		t.mu.Lock()
		share = t.p
		t.mu.Unlock()
	}
	sc := getScratch()
	defer putScratch(sc)
	p.mu.RLock()
	defer p.mu.RUnlock()
	sel := s.mem.pred.predict(p, predictArgs{channel: channel, now: s.mem.now(), share: share, k: s.cfg.K, budgetScale: 1}, sc)
	return slices.ContainsFunc(sel.items, func(it Item) bool { return it.ID == id })
}

// StableShare is the stable pool's current share p for (persona, channel).
func (s *Service) StableShare(persona, channel string) (float64, bool) {
	p := s.mem.get(persona)
	if p == nil {
		return 0, false
	}
	t := p.target(channel)
	if t == nil {
		return 0, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.p, true
}

// Signal delivers a signal: persona creation and destruction change what
// this member holds, sleep phases change a persona's cadence, pressure
// reaches the governor. The region may reject it (*region.SignalError).
func (s *Service) Signal(ctx context.Context, sig region.Signal) error {
	switch sig.Kind {
	case region.SignalPersonaCreated, region.SignalPersonaDestroyed, region.SignalSleepPhase:
		if err := checkPersona(sig.Persona); err != nil {
			return err
		}
		p, err := s.acquire(ctx, sig.Persona, sig.Kind == region.SignalPersonaCreated)
		if err != nil {
			var moving *MovingError
			if sig.Kind == region.SignalPersonaDestroyed && errors.As(err, &moving) {
				return &region.SignalError{Region: RegionID, Signal: sig, Why: "persona-moving"}
			}
			return err
		}
		if sig.Kind == region.SignalPersonaDestroyed && p != nil {
			if err := s.mem.drop(p, ""); err != nil {
				return err
			}
		}
	case region.SignalPressure:
	default:
		return invalid(ReasonSignalEmpty, "signal", "no signal given")
	}
	return s.runner.Signal(ctx, sig)
}

// Stats are counts for a persona or the whole member.
type Stats struct {
	Personas, Engrams, Edges, Ticks, Requests     uint64
	Hits, Misses, LateMisses, Channels, Published uint64
}

// Stats reports counts for persona, or for this member when persona is
// empty.
func (s *Service) Stats(ctx context.Context, name string) (Stats, error) {
	var st Stats
	add := func(p *persona) {
		e, ed := s.mem.personaCounts(p)
		st.Engrams += e
		st.Edges += ed
		p.eachTarget(func(t *target) {
			st.Channels++
			st.Hits += t.hits.Load()
			st.Misses += t.missTotal.Load()
			st.LateMisses += t.late.Load()
			st.Published += t.published.Load()
			if name != "" {
				st.Ticks += t.ticks.Load()
				st.Requests += t.reqTotal.Load() + uint64(max(t.requests.Load(), 0))
			}
		})
	}
	if name == "" {
		s.mem.each(func(p *persona) bool {
			st.Personas++
			add(p)
			return true
		})
		st.Ticks = s.ticks.Load()
		st.Requests = s.requests.Load()
		return st, nil
	}
	if err := checkPersona(name); err != nil {
		return Stats{}, err
	}
	p, err := s.acquire(ctx, name, false)
	if err != nil {
		return Stats{}, err
	}
	if p != nil {
		st.Personas = 1
		add(p)
	}
	return st, nil
}
