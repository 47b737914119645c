// Package genome is the genome paging manager (continuum.genome.v1.GenomeService).
//
// Personas use model artifacts: LoRA adapters, the experts of a
// mixture-of-experts model, byte ranges of large files. The manager keeps
// each persona's working set resident in the fastest tier that is big
// enough and pages the rest down a chain of tiers (Fast and Warm in memory,
// Bench and Cold in files, Frozen compressed), the way an operating system
// pages memory and the way S-LoRA and LoRAX page adapters between GPU, host
// memory and disk.
//
// The lowest tier of the chain is the home tier: PutArtifact stores every
// artifact there, durably, and the home never evicts. Upper tiers hold
// copies of pages, each in at most one upper tier at a time; a page that
// falls off the last upper tier is simply dropped, because its bytes are
// still in its artifact's home copy. A page fault therefore always has a
// source: the upper tier holding the page, the home copy of a whole
// artifact, or (a true cold miss) the range of the home copy that an
// expert or byte-range page covers.
//
// Hits take no lock: a sharded page table and an immutable per-page view
// answer them, and the access is recorded in a lossy buffer that the
// policy drains later. Faults, evictions and access denials are published
// through a bounded outbox drained by Run; denials, which the audit
// recorder needs, are retried until published.
package genome

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
)

// EventPublisher is the part of the events service the manager uses; the
// generated eventsv1.EventsServiceClient satisfies it.
type EventPublisher interface {
	Publish(ctx context.Context, in *eventsv1.PublishRequest, opts ...grpc.CallOption) (*eventsv1.PublishResponse, error)
	DeclareClass(ctx context.Context, in *eventsv1.DeclareClassRequest, opts ...grpc.CallOption) (*eventsv1.DeclareClassResponse, error)
}

// Deps are the manager's collaborators.
type Deps struct {
	// Events receives page faults, evictions and access denials. Nil turns
	// events off (logged once at start).
	Events EventPublisher
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// TierStores replaces the store a role would get (memory for Fast and
	// Warm, files under DataDir otherwise): for tests, or for stores backed
	// by devices this package does not know.
	TierStores map[Role]TierStore
}

// Service is the genome paging manager.
type Service struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	node string

	tiers  []*tierIndex // fastest first; the last is the home tier
	byRole [RoleFrozen + 1]*tierIndex
	home   *tierIndex

	table *pageTable
	reads [readStripes]readBuffer

	mu        sync.Mutex
	personas  map[PersonaID]*persona
	artifacts map[ArtifactID]*artifact
	owners    map[ArtifactID][]ownerSpan
	putting   map[ArtifactID]chan struct{}
	sketch    *sketch
	short     *sketch // the first w-tinylfu tier's faster-aging sketch
	gen       uint64
	useTick   uint64
	closed    bool
	closing   atomic.Bool
	ops       sync.WaitGroup

	catalog    *catalogFile
	catalogSeq uint64 // mu
	outbox     *outbox
	prefetch   *prefetcher
}

// persona is a registered persona and its working set.
type persona struct {
	id       PersonaID
	capacity uint64
	used     uint64
	pages    map[*pageEntry]struct{}
}

// ownerSpan is a page's owner and the bytes the page covers.
type ownerSpan struct {
	ref   PageRef
	owner PersonaID
}

// New builds the manager: it opens (or creates) the tier stores and the
// catalog, and gives file-tier pages that survived a restart back to
// their working sets. It does no network I/O; Run publishes.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg, err := cfg.withDefaults(deps.TierStores)
	if err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Service{
		cfg: cfg, log: deps.Logger, now: deps.Now, node: cfg.Node,
		table:     newPageTable(),
		personas:  map[PersonaID]*persona{},
		artifacts: map[ArtifactID]*artifact{},
		owners:    map[ArtifactID][]ownerSpan{},
		putting:   map[ArtifactID]chan struct{}{},
		sketch:    newSketch(64),
	}
	if err := s.openTiers(deps.TierStores); err != nil {
		s.closeStores()
		return nil, err
	}
	if cfg.DataDir != "" {
		s.catalog = &catalogFile{path: filepath.Join(cfg.DataDir, "genome", "catalog.json")}
	}
	s.outbox = newOutbox(s, deps.Events, cfg)
	s.prefetch = newPrefetcher(cfg.PrefetchQueue)
	if deps.Events == nil {
		s.log.Warn("genome: no events publisher; page faults, evictions and access denials are not published")
	}
	if err := s.restore(); err != nil {
		s.closeStores()
		return nil, err
	}
	return s, nil
}

// openTiers builds the tier chain.
func (s *Service) openTiers(given map[Role]TierStore) error {
	for i, tc := range s.cfg.Tiers {
		home := i == len(s.cfg.Tiers)-1
		store := given[tc.Role]
		if store == nil {
			var err error
			store, err = s.openStore(tc, home)
			if err != nil {
				return err
			}
		}
		t := newTierIndex(i, tc.Role, store, tc.Policy, home, tc.CapacityBytes, s.sketch)
		if tc.Policy == PolicyWTinyLFU && !home && s.short == nil {
			s.short = newSketch(64)
			t.short = s.short
		}
		s.tiers = append(s.tiers, t)
		s.byRole[tc.Role] = t
	}
	s.home = s.tiers[len(s.tiers)-1]
	return nil
}

func (s *Service) openStore(tc TierConfig, home bool) (TierStore, error) {
	switch tc.Role {
	case RoleFast, RoleWarm:
		return NewMemoryStore(tc.Role, tc.CapacityBytes), nil
	}
	dir := filepath.Join(s.cfg.DataDir, "genome", tc.Role.String())
	st, err := OpenFileStore(tc.Role, dir, tc.CapacityBytes, FileStoreOptions{
		Compressed: tc.Role == RoleFrozen, Durable: home, Logger: s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("genome: open %s tier: %w", tc.Role, err)
	}
	return st, nil
}

func (s *Service) closeStores() {
	for _, t := range s.tiers {
		if err := t.store.Close(); err != nil {
			s.log.Warn("genome: close tier store", "role", t.role.String(), "error", err)
		}
	}
}

// Register mounts the gRPC service.
func (s *Service) Register(r grpc.ServiceRegistrar) {
	genomev1.RegisterGenomeServiceServer(r, &server{s: s})
}

// Run declares the event classes, drains the outbox and runs prefetches
// until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	s.outbox.run(ctx, g)
	for range s.cfg.PrefetchWorkers {
		g.Go(func() error { s.runPrefetches(ctx); return nil })
	}
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Close stops new work, waits for page loads and uploads in flight, writes
// the catalog and the undelivered access denials, and closes the stores.
// Call it after the gRPC server has drained and Run has returned.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.closing.Store(true)
	s.mu.Unlock()
	s.ops.Wait()
	var errs []error
	if err := s.saveCatalog(); err != nil {
		errs = append(errs, err)
	}
	if err := s.outbox.spool(); err != nil {
		errs = append(errs, err)
	}
	s.closeStores()
	return errors.Join(errs...)
}

// Node is the node name the manager stamps on events.
func (s *Service) Node() string { return s.node }
