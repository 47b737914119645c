// Package audit serves continuum.audit.v1.AuditService: the audit recorder,
// an append-only, tamper-evident log of what the mesh refused or overrode,
// that anyone can check without trusting the machine it lives on.
//
// The log is <data>/audit/audit.jsonl (format and hashing in pkg/auditlog
// and docs/audit.md). Every entry is chained to the one before by a SHA-256
// over a canonical encoding and is a leaf of an RFC 6962 Merkle tree whose
// Ed25519-signed checkpoints let a holder of an old checkpoint detect a
// truncated or rewritten tail, which a chain alone cannot. Appends are
// acknowledged only after fdatasync, and concurrent appends share one
// write and one fdatasync (group commit).
//
// The recorder is a durable subscriber of the audit events the router and
// the genome manager publish (Run); it resumes after the highest stream
// sequence it has recorded from each source, so each event lands in the
// chain exactly once, also across restarts of either service. Direct
// callers use Append.
package audit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
)

// Service implements AuditService and the recorder.
type Service struct {
	auditv1.UnimplementedAuditServiceServer

	cfg   Config
	deps  Deps
	log   *slog.Logger
	store *store
	key   signingKey
	rec   recorderStats

	cpMu sync.Mutex
	cp   *auditv1.CheckpointResponse // the last checkpoint signed
}

// New opens (or creates) the log under <cfg.DataDir>/audit, cutting a torn
// last line and verifying the whole log (with every core) while it
// rebuilds the Merkle tree and the recorder's high-water marks, and loads
// or creates the signing key. A log that fails verification still opens,
// so Read and Verify can show what is wrong, but appends and proofs are
// refused (FAILED_PRECONDITION LOG_CORRUPT) until an operator repairs it.
// New does no network I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return newService(cfg, deps, storeOptions{})
}

// newService is New with the store's test seams.
func newService(cfg Config, deps Deps, o storeOptions) (*Service, error) {
	log := deps.Logger.With("service", "audit")
	o.log, o.now, o.verifyWorkers = log, deps.Now, cfg.VerifyWorkers
	st, err := openStore(context.Background(), cfg.dir(), o)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	key, err := loadOrCreateKey(cfg.dir(), cfg.Origin, log)
	if err != nil {
		_ = st.close()
		return nil, fmt.Errorf("audit: %w", err)
	}
	r := st.report
	log.Info("audit log opened", "path", st.path, "entries", r.Entries, "torn_bytes_cut", r.TornBytes,
		"corrupt", r.Corrupt != nil, "took", r.Took, "origin", cfg.Origin)
	return &Service{cfg: cfg, deps: deps, log: log, store: st, key: key}, nil
}

// Register mounts the service.
func (s *Service) Register(r grpc.ServiceRegistrar) { auditv1.RegisterAuditServiceServer(r, s) }

// Run records the mesh's audit events until ctx ends, following each
// source with its own subscription. It returns nil when ctx ends; a broken
// subscription is retried with backoff, never returned. With no Events
// dependency, or while the log is corrupt, it only waits.
func (s *Service) Run(ctx context.Context) error {
	if s.deps.Events == nil {
		s.log.InfoContext(ctx, "audit recorder has no events client; recording direct appends only")
		<-ctx.Done()
		return nil
	}
	if ve := s.store.snapshot().corrupt; ve != nil {
		s.log.ErrorContext(ctx, "audit recorder paused: the log failed verification; events stay in their durable streams until it is repaired",
			"reason", ve.Reason, "seq", ve.Seq)
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	for _, src := range sources() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.follow(ctx, src)
		}()
	}
	wg.Wait()
	return nil
}

// Close waits for the commits in progress, then closes the log. Call it
// last in the drain, after Run has returned and the server has stopped.
func (s *Service) Close() error { return s.store.close() }

// Stats describe the log and the recorder.
type Stats struct {
	// Entries in the log and its committed byte length.
	Entries uint64
	Bytes   int64
	// Head is the last entry's chainHash.
	Head string
	// TornBytesCut is the length of a torn last line cut off at open.
	TornBytesCut int64
	// Corrupt is the verification failure found at open, if any.
	Corrupt *auditlog.VerifyError
	// Failed is set once an fsync failed (or a failed write could not be
	// cut off); appends are refused until the service restarts.
	Failed error
	// Appended entries and group commits since open; MaxBatch is the
	// largest commit.
	Appended, Batches, MaxBatch uint64
	// HighWater is the highest stream sequence recorded per source.
	HighWater map[string]uint64
	// Recorder counters since start: events recorded, deliveries skipped
	// as already recorded, events on topics with no kind, payloads
	// replaced by a placeholder, lag notices, and subscriptions opened.
	Recorded, Duplicates, UnknownTopics, RejectedPayloads, Lags, Subscriptions uint64
}

// Stats returns a snapshot of the counters.
func (s *Service) Stats() Stats {
	st := s.store.snapshot()
	hw := map[string]uint64{}
	for _, src := range sources() {
		hw[src.key] = s.store.highWater(src.key)
	}
	return Stats{
		Entries:          st.size,
		Bytes:            st.end,
		Head:             st.head.String(),
		TornBytesCut:     s.store.report.TornBytes,
		Corrupt:          st.corrupt,
		Failed:           st.failed,
		Appended:         s.store.appended.Load(),
		Batches:          s.store.batches.Load(),
		MaxBatch:         s.store.maxBatch.Load(),
		HighWater:        hw,
		Recorded:         s.rec.recorded.Load(),
		Duplicates:       s.rec.duplicates.Load(),
		UnknownTopics:    s.rec.unknownTopics.Load(),
		RejectedPayloads: s.rec.rejected.Load(),
		Lags:             s.rec.lags.Load(),
		Subscriptions:    s.rec.subscriptions.Load(),
	}
}

// VerifierKey is the node's checkpoint verifier key, as PublicKey serves it.
func (s *Service) VerifierKey() string { return s.key.verifier }
