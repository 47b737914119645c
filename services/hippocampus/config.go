package hippocampus

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/continuum-mesh/continuum/pkg/region"
)

// Config is the hippocampus service's configuration. Zero fields take the
// defaults of HIPPOCAMPUS.md (see DefaultConfig).
type Config struct {
	// Node is this member's name in the mesh (with a Ring, Ring.Self()).
	Node string
	// DataDir is the node's data directory; the service keeps its store
	// under <DataDir>/hippocampus. Empty keeps everything in memory only
	// (replays and tests): nothing then survives a restart.
	DataDir string
	// K is the ready buffer's slot count per (persona, channel) (8).
	K int
	// Governor is the cadence policy (60 s start, 15 s floor, 600 s cap,
	// sleep after 30 min, 1 s wake and kick delays).
	Governor region.GovernorConfig
	// Scorer ranks candidates: "ours" (the default), or a baseline for
	// replays: "recency", "generative-agents", "act-r".
	Scorer string
	// Model holds the activation's weights and parameters; a Model whose
	// D is zero is replaced by DefaultModel(), otherwise it is used as
	// given (so a weight may be zero).
	Model Model
	// FullScanLimit is the engram count up to which a tick scores every
	// engram; above it, ticks score only candidates (1000: on the replay
	// traces candidate generation staged exactly what a full scan did, at
	// a fraction of the cost; HIPPOCAMPUS.md forbids full scans above ~10k).
	FullScanLimit int
	// CandidatesPerSource bounds each candidate source above the full-scan
	// limit: the most recently used, the most salient, and each context
	// feature's most recent postings (256).
	CandidatesPerSource int
	// MinExpiry is the least a published slice stays valid:
	// expires_at = published_at + max(2·interval, MinExpiry) (120 s).
	MinExpiry time.Duration
	// ReplyWindow is how recent the channel's previous engram must be to be
	// taken as the one a new engram replies to, and how long consumed
	// engrams wait to be cited by the next engram (30 min).
	ReplyWindow time.Duration
	// DeriveLimit is how many of the most recent engrams sharing an entity
	// (or topic) a new engram links to (4).
	DeriveLimit int
	// RecallTimeout bounds a Recall (250 ms).
	RecallTimeout time.Duration
	// MaxEngramsPerPersona refuses Remember beyond it (2,000,000).
	MaxEngramsPerPersona int
	// MaxChannelsPerPersona refuses new channels beyond it (1024).
	MaxChannelsPerPersona int
	// CheckpointBytes is the write-ahead log growth that triggers a
	// checkpoint (64 MiB).
	CheckpointBytes int64
	// TombstoneTTL is how long forgotten ids are remembered so that a late
	// hand-off cannot bring them back (7 days).
	TombstoneTTL time.Duration
	// LocateWait is how long a request for a persona this member owns but
	// does not hold waits for the persona to arrive before it answers
	// PERSONA_MOVING (2 s).
	LocateWait time.Duration
	// HandOffChunk is the chunk size of a persona hand-off (1 MiB).
	HandOffChunk int
	// MaxImportBytes bounds a persona snapshot received (1 GiB).
	MaxImportBytes int64
	// MaintainInterval is how often the service re-checks ownership of the
	// personas it holds, retries failed hand-offs and prunes tombstones
	// (30 s).
	MaintainInterval time.Duration
}

// Model is the activation model's weights and parameters.
type Model struct {
	// D is the base-level decay d (0.5).
	D float64
	// LambdaImp weighs β_i = λ_imp·ln(imp/5) (1).
	LambdaImp float64
	// LambdaA weighs importance in the stable salience σ (1).
	LambdaA float64
	// WChannel is W_c, the channel bias weight (1).
	WChannel float64
	// WContext is W_ctx, the feature association weight (1).
	WContext float64
	// WGraph is W_g, the spreading activation weight (0.5: S^G is the lift
	// of a distribution that is not calibrated, and at 1 it swamps the
	// other terms; chosen on the development trace, seed 1).
	WGraph float64
	// WLag weighs the learned lag correction (3): per persona, how often
	// engrams 0, 1, ... 15 turns back were actually consumed compared with
	// the average of those lags. It learns, from consumptions alone, which
	// of the latest turns the consumer already has in its context (never
	// consumed from the buffer) and which it comes back to; it only
	// reshapes the recent window, so recency is not counted twice.
	WLag float64
	// Routes ranks the associative pool by the learned mixture of retrieval
	// routes (routes.go) instead of the additive activation above (true).
	// The additive terms still rank Recall's cue-less answer when false.
	Routes bool
	// ChannelPrior is m, the channel prior's pseudo-count (1).
	ChannelPrior float64
	// P0 is the stable pool's starting share p (0: with the route
	// mixture, whose importance and reuse routes cover most of what the
	// stable pool stages, ARC grows it from nothing where stable-ghost
	// misses say so); PMin its floor (0) and PMax its ceiling besides
	// HIPPOCAMPUS.md's 1 − 1/K (1: no further cap; 0 switches the stable
	// pool off, docs/perf-hippocampus.md).
	P0, PMin, PMax float64
	// Spread are the spreading activation's knobs (α 0.5, D 3, θ 1e-3,
	// F 64, budget 20000).
	Spread SpreadParams
	// SeedWeights weigh the channel's last engrams as spreading seeds and
	// context sources, most recent first (1, 0.7, 0.5).
	SeedWeights []float64
}

// DefaultModel is the model of HIPPOCAMPUS.md.
func DefaultModel() Model {
	return Model{
		D:            0.5,
		LambdaImp:    1,
		LambdaA:      1,
		WChannel:     1,
		WContext:     1,
		WGraph:       0.5,
		WLag:         3,
		Routes:       true,
		ChannelPrior: 1,
		P0:           0,
		PMin:         0,
		PMax:         1,
		Spread:       SpreadParams{Alpha: 0.5, Pulses: 3, Threshold: 1e-3, MaxFanOut: 64, Budget: 20000},
		SeedWeights:  []float64{1, 0.7, 0.5},
	}
}

// Scorer names.
const (
	ScorerOurs             = "ours"
	ScorerRecency          = "recency"
	ScorerGenerativeAgents = "generative-agents"
	ScorerACTR             = "act-r"
)

// Scorers lists the scorer names.
var Scorers = []string{ScorerOurs, ScorerRecency, ScorerGenerativeAgents, ScorerACTR}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		K:                     8,
		Governor:              region.DefaultGovernorConfig(),
		Scorer:                ScorerOurs,
		Model:                 DefaultModel(),
		FullScanLimit:         1000,
		CandidatesPerSource:   256,
		MinExpiry:             120 * time.Second,
		ReplyWindow:           30 * time.Minute,
		DeriveLimit:           4,
		RecallTimeout:         250 * time.Millisecond,
		MaxEngramsPerPersona:  2_000_000,
		MaxChannelsPerPersona: 1024,
		CheckpointBytes:       64 << 20,
		TombstoneTTL:          7 * 24 * time.Hour,
		LocateWait:            2 * time.Second,
		HandOffChunk:          1 << 20,
		MaxImportBytes:        1 << 30,
		MaintainInterval:      30 * time.Second,
	}
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.K == 0 {
		c.K = d.K
	}
	c.Governor = c.Governor.WithDefaults()
	if c.Scorer == "" {
		c.Scorer = d.Scorer
	}
	c.Model = c.Model.withDefaults()
	setDefault(&c.FullScanLimit, d.FullScanLimit)
	setDefault(&c.CandidatesPerSource, d.CandidatesPerSource)
	setDefault(&c.MinExpiry, d.MinExpiry)
	setDefault(&c.ReplyWindow, d.ReplyWindow)
	setDefault(&c.DeriveLimit, d.DeriveLimit)
	setDefault(&c.RecallTimeout, d.RecallTimeout)
	setDefault(&c.MaxEngramsPerPersona, d.MaxEngramsPerPersona)
	setDefault(&c.MaxChannelsPerPersona, d.MaxChannelsPerPersona)
	setDefault(&c.CheckpointBytes, d.CheckpointBytes)
	setDefault(&c.TombstoneTTL, d.TombstoneTTL)
	setDefault(&c.LocateWait, d.LocateWait)
	setDefault(&c.HandOffChunk, d.HandOffChunk)
	setDefault(&c.MaxImportBytes, d.MaxImportBytes)
	setDefault(&c.MaintainInterval, d.MaintainInterval)
	return c
}

func (m Model) withDefaults() Model {
	if m.D == 0 {
		return DefaultModel()
	}
	if len(m.SeedWeights) == 0 {
		m.SeedWeights = DefaultModel().SeedWeights
	}
	return m
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// validate reports a configuration that cannot work.
func (c Config) validate() error {
	var errs []error
	if c.K < 1 || c.K > 64 {
		errs = append(errs, fmt.Errorf("the buffer size K=%d is outside 1..64", c.K))
	}
	if err := c.Governor.Validate(); err != nil {
		errs = append(errs, err)
	}
	if scorerByName(c.Scorer) < 0 {
		errs = append(errs, fmt.Errorf("unknown scorer %q (one of %v)", c.Scorer, Scorers))
	}
	m := c.Model
	for name, v := range map[string]float64{
		"d": m.D, "lambda_imp": m.LambdaImp, "lambda_a": m.LambdaA, "w_channel": m.WChannel,
		"w_context": m.WContext, "w_graph": m.WGraph, "w_lag": m.WLag, "channel prior": m.ChannelPrior, "p0": m.P0,
		"p_min": m.PMin, "p_max": m.PMax, "alpha": m.Spread.Alpha, "theta": m.Spread.Threshold,
	} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			errs = append(errs, fmt.Errorf("%s must be a finite non-negative number, not %v", name, v))
		}
	}
	if m.D >= 1 {
		errs = append(errs, errors.New("d must be below 1"))
	}
	if m.P0 > 1-1/float64(max(c.K, 1)) || m.PMin > m.P0 || m.P0 > m.PMax {
		errs = append(errs, fmt.Errorf("need p_min %v <= p0 %v <= min(p_max %v, 1-1/K)", m.PMin, m.P0, m.PMax))
	}
	if m.Spread.Pulses < 0 || m.Spread.MaxFanOut < 0 || m.Spread.Budget < 0 {
		errs = append(errs, errors.New("spread pulses, fan-out and budget must not be negative"))
	}
	if c.FullScanLimit < 0 || c.CandidatesPerSource < 1 || c.DeriveLimit < 0 || c.HandOffChunk < 1024 {
		errs = append(errs, errors.New("full scan limit, candidates, derive limit or hand-off chunk out of range"))
	}
	return errors.Join(errs...)
}
