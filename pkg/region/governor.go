package region

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// GovernorConfig is the cadence policy. The zero value of a field takes its
// default (DefaultGovernorConfig).
type GovernorConfig struct {
	// Start is a new target's interval (60 s).
	Start time.Duration
	// Floor is the shortest interval Faster reaches (15 s).
	Floor time.Duration
	// Cap is the longest interval Slower reaches (600 s).
	Cap time.Duration
	// SleepAfter is how long without a request puts a target to sleep (30 min).
	SleepAfter time.Duration
	// WakeDelay is how long after a request a sleeping target ticks (1 s).
	WakeDelay time.Duration
	// KickDelay is how long after an ingest the debounced kick tick runs (1 s).
	KickDelay time.Duration
	// QuietTicks is how many ticks in a row without a request make the
	// cadence slower (2).
	QuietTicks int
}

// DefaultGovernorConfig is the policy of HIPPOCAMPUS.md.
func DefaultGovernorConfig() GovernorConfig {
	return GovernorConfig{
		Start:      60 * time.Second,
		Floor:      15 * time.Second,
		Cap:        600 * time.Second,
		SleepAfter: 30 * time.Minute,
		WakeDelay:  time.Second,
		KickDelay:  time.Second,
		QuietTicks: 2,
	}
}

// WithDefaults fills zero fields with their defaults.
func (c GovernorConfig) WithDefaults() GovernorConfig {
	d := DefaultGovernorConfig()
	if c.Start == 0 {
		c.Start = d.Start
	}
	if c.Floor == 0 {
		c.Floor = d.Floor
	}
	if c.Cap == 0 {
		c.Cap = d.Cap
	}
	if c.SleepAfter == 0 {
		c.SleepAfter = d.SleepAfter
	}
	if c.WakeDelay == 0 {
		c.WakeDelay = d.WakeDelay
	}
	if c.KickDelay == 0 {
		c.KickDelay = d.KickDelay
	}
	if c.QuietTicks == 0 {
		c.QuietTicks = d.QuietTicks
	}
	return c
}

// Validate reports a policy that cannot work.
func (c GovernorConfig) Validate() error {
	switch {
	case c.Floor <= 0 || c.Start <= 0 || c.Cap <= 0 || c.SleepAfter <= 0 || c.WakeDelay <= 0 || c.KickDelay <= 0:
		return errors.New("governor: durations must be positive")
	case c.Floor > c.Start || c.Start > c.Cap:
		return fmt.Errorf("governor: need floor %v <= start %v <= cap %v", c.Floor, c.Start, c.Cap)
	case c.QuietTicks < 1:
		return errors.New("governor: quiet ticks must be at least 1")
	}
	return nil
}

// Demand is what a target saw since its last tick; Hint turns it into a
// cadence hint.
type Demand struct {
	// Requests and LateMisses since the last tick.
	Requests   int
	LateMisses int
	// QuietTicks is the number of ticks in a row, this one included,
	// that saw no request.
	QuietTicks int
	// SinceRequest is the time since the last request (or since the target
	// appeared, when it never had one).
	SinceRequest time.Duration
}

// Governor turns cadence hints and system pressure into intervals. It is
// safe for concurrent use.
type Governor struct {
	cfg      GovernorConfig
	pressure [SourceIO + 1]atomic.Uint32
}

// NewGovernor returns a governor with cfg (zero fields defaulted).
func NewGovernor(cfg GovernorConfig) (*Governor, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Governor{cfg: cfg}, nil
}

// Config is the governor's policy.
func (g *Governor) Config() GovernorConfig { return g.cfg }

// Hint is the demand rule: any request or late miss since the last tick is
// Faster; no request for SleepAfter is Sleep; QuietTicks ticks without a
// request is Slower; anything else is Hold.
func (g *Governor) Hint(d Demand) Cadence {
	switch {
	case d.Requests > 0 || d.LateMisses > 0:
		return Faster
	case d.SinceRequest >= g.cfg.SleepAfter:
		return Sleep
	case d.QuietTicks >= g.cfg.QuietTicks:
		return Slower
	}
	return Hold
}

// SetPressure records the pressure level of a source.
func (g *Governor) SetPressure(src PressureSource, p Pressure) {
	if int(src) < len(g.pressure) {
		g.pressure[src].Store(uint32(p))
	}
}

// PressureFor is the pressure that applies to a region with profile p: the
// highest level among SourceAny and the sources it responds to.
func (g *Governor) PressureFor(p PressureProfile) Pressure {
	lvl := Pressure(g.pressure[SourceAny].Load())
	for _, s := range p.RespondsTo {
		if int(s) < len(g.pressure) {
			lvl = max(lvl, Pressure(g.pressure[s].Load()))
		}
	}
	return lvl
}

// Admit says whether a tick of a region with profile p may run now. Under
// critical pressure only bookkeeping regions tick; the others are told to
// retry after the floor interval.
func (g *Governor) Admit(p PressureProfile) (ok bool, retry time.Duration) {
	if g.PressureFor(p) >= PressureCritical && p.Compute != ComputeBookkeeping {
		return false, g.cfg.Floor
	}
	return true, 0
}

// Next turns a hint into the next interval. Faster halves the interval
// (floor), Slower doubles it (cap), Hold keeps it, Sleep parks the target
// until a request wakes it. Moderate pressure or worse turns Faster into
// Hold; high pressure or worse also doubles the interval.
func (g *Governor) Next(p PressureProfile, interval time.Duration, hint Cadence) (next time.Duration, sleep bool) {
	if interval <= 0 {
		interval = g.cfg.Start
	}
	lvl := g.PressureFor(p)
	if hint == Faster && lvl >= PressureModerate {
		hint = Hold
	}
	switch hint {
	case Sleep:
		return interval, true
	case Faster:
		interval /= 2
	case Slower:
		interval *= 2
	}
	if lvl >= PressureHigh {
		interval *= 2
	}
	return min(max(interval, g.cfg.Floor), g.cfg.Cap), false
}
