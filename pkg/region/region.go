// Package region is the runtime of the mesh's brain regions. A region does
// its work on its own tick, never on a request's hot path: each tick it
// prepares something (the hippocampus pre-stages recall) and publishes it
// into a ReadyBuffer that request handlers only peek. The Runner ticks every
// target of every region on its own cadence, under a Governor that turns the
// region's cadence hint and the system pressure into the next interval, and
// reports Telemetry for each tick. The clock is injectable, so a replayer
// can drive the very same runner through simulated time.
package region

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Region is a brain region: something that ticks per target and publishes
// what it prepared into ready buffers.
type Region interface {
	// ID names the region ("hippocampus"); it is the telemetry's region.
	ID() string
	// Profile is the region's pressure profile.
	Profile() PressureProfile
	// Tick does one unit of background work for rc.Target. It must not
	// block on request handlers; request handlers must never wait for it.
	Tick(ctx context.Context, rc RegionContext) TickOutcome
	// OnSignal delivers a lifecycle, sleep-phase or pressure signal. A region
	// may refuse a signal with a *SignalError.
	OnSignal(ctx context.Context, s Signal) error
}

// Target is what one tick works on: a persona and, for regions that keep
// per-channel state, one of its channels.
type Target struct {
	Persona string
	Channel string
}

// MemoryClass is how much memory a region holds.
type MemoryClass uint8

// Memory classes.
const (
	MemoryLight MemoryClass = iota
	MemoryModerate
	MemoryHeavy
	MemoryVRAMSensitive
)

func (m MemoryClass) String() string {
	switch m {
	case MemoryLight:
		return "light"
	case MemoryModerate:
		return "moderate"
	case MemoryHeavy:
		return "heavy"
	case MemoryVRAMSensitive:
		return "vram-sensitive"
	}
	return fmt.Sprintf("memory-class(%d)", uint8(m))
}

// ComputeClass is what kind of work a region's tick does.
type ComputeClass uint8

// Compute classes.
const (
	ComputeBookkeeping ComputeClass = iota
	ComputeCPU
	ComputeCPUVectorized
	ComputeInferenceLight
	ComputeInferenceHeavy
)

func (c ComputeClass) String() string {
	switch c {
	case ComputeBookkeeping:
		return "bookkeeping"
	case ComputeCPU:
		return "cpu"
	case ComputeCPUVectorized:
		return "cpu-vectorized"
	case ComputeInferenceLight:
		return "inference-light"
	case ComputeInferenceHeavy:
		return "inference-heavy"
	}
	return fmt.Sprintf("compute-class(%d)", uint8(c))
}

// PressureSource is the resource a pressure signal is about.
type PressureSource uint8

// Pressure sources. SourceAny is a signal about the system as a whole; every
// region responds to it.
const (
	SourceAny PressureSource = iota
	SourceMemory
	SourceCPU
	SourceVRAM
	SourceIO
)

func (s PressureSource) String() string {
	switch s {
	case SourceAny:
		return "any"
	case SourceMemory:
		return "memory"
	case SourceCPU:
		return "cpu"
	case SourceVRAM:
		return "vram"
	case SourceIO:
		return "io"
	}
	return fmt.Sprintf("pressure-source(%d)", uint8(s))
}

// PressureProfile says what a region costs and which pressure it yields to.
type PressureProfile struct {
	Memory  MemoryClass
	Compute ComputeClass
	// RespondsTo are the pressure sources the governor slows this region
	// for. Signals from SourceAny always apply.
	RespondsTo []PressureSource
}

// Responds reports whether pressure from src applies to the region.
func (p PressureProfile) Responds(src PressureSource) bool {
	if src == SourceAny {
		return true
	}
	for _, s := range p.RespondsTo {
		if s == src {
			return true
		}
	}
	return false
}

// Pressure is a system pressure level.
type Pressure uint8

// Pressure levels, in increasing order.
const (
	PressureNominal Pressure = iota
	PressureModerate
	PressureHigh
	PressureCritical
)

func (p Pressure) String() string {
	switch p {
	case PressureNominal:
		return "nominal"
	case PressureModerate:
		return "moderate"
	case PressureHigh:
		return "high"
	case PressureCritical:
		return "critical"
	}
	return fmt.Sprintf("pressure(%d)", uint8(p))
}

// Cadence is a region's hint for its next tick.
type Cadence uint8

// Cadence hints.
const (
	Hold Cadence = iota
	Faster
	Slower
	Sleep
)

func (c Cadence) String() string {
	switch c {
	case Hold:
		return "hold"
	case Faster:
		return "faster"
	case Slower:
		return "slower"
	case Sleep:
		return "sleep"
	}
	return fmt.Sprintf("cadence(%d)", uint8(c))
}

// SleepPhase is a persona's activity phase.
type SleepPhase uint8

// Sleep phases.
const (
	PhaseActive SleepPhase = iota
	PhaseIdle
	PhaseSleep
)

func (s SleepPhase) String() string {
	switch s {
	case PhaseActive:
		return "active"
	case PhaseIdle:
		return "idle"
	case PhaseSleep:
		return "sleep"
	}
	return fmt.Sprintf("sleep-phase(%d)", uint8(s))
}

// SignalKind is what a Signal is about.
type SignalKind uint8

// Signal kinds.
const (
	SignalPersonaCreated SignalKind = iota + 1
	SignalPersonaDestroyed
	SignalSleepPhase
	SignalPressure
)

func (k SignalKind) String() string {
	switch k {
	case SignalPersonaCreated:
		return "persona-created"
	case SignalPersonaDestroyed:
		return "persona-destroyed"
	case SignalSleepPhase:
		return "sleep-phase"
	case SignalPressure:
		return "pressure"
	}
	return fmt.Sprintf("signal(%d)", uint8(k))
}

// Signal is a lifecycle, sleep-phase or system-pressure change.
type Signal struct {
	Kind SignalKind
	// Persona for persona and sleep-phase signals.
	Persona string
	// Phase for SignalSleepPhase.
	Phase SleepPhase
	// Pressure and Source for SignalPressure.
	Pressure Pressure
	Source   PressureSource
}

func (s Signal) String() string {
	switch s.Kind {
	case SignalSleepPhase:
		return fmt.Sprintf("%s %s %s", s.Kind, s.Persona, s.Phase)
	case SignalPressure:
		return fmt.Sprintf("%s %s %s", s.Kind, s.Source, s.Pressure)
	}
	return fmt.Sprintf("%s %s", s.Kind, s.Persona)
}

// ErrSignalRejected is what every *SignalError matches with errors.Is.
var ErrSignalRejected = errors.New("signal rejected")

// SignalError is a region's refusal of a signal.
type SignalError struct {
	Region string
	Signal Signal
	// Why, in kebab case ("persona-unknown", "invalid-signal").
	Why string
}

func (e *SignalError) Error() string {
	return fmt.Sprintf("region %s rejected signal %s: %s", e.Region, e.Signal, e.Why)
}

// Is makes errors.Is(err, ErrSignalRejected) hold.
func (e *SignalError) Is(target error) bool { return target == ErrSignalRejected }

// RegionContext is what the runner tells a region about the tick it runs.
type RegionContext struct {
	Target
	// Now is the tick's time on the runner's clock (simulated in replays).
	Now time.Time
	// LastTick is when this target last ticked; zero on its first tick.
	LastTick time.Time
	// Interval is the cadence the tick ran under.
	Interval time.Duration
	// Pressure is the system pressure as it applies to this region.
	Pressure Pressure
	// Tick counts this target's ticks, starting at 1.
	Tick uint64
}

// TickOutcome is what a tick did and what the region suggests next.
type TickOutcome struct {
	// Published is the number of new items published (items that were not
	// in the previous slice).
	Published int
	// Consumed is the number of unique published items consumed since the
	// last tick.
	Consumed int
	// Requests since the last tick (peeks and consumptions).
	Requests int
	// BufferMisses since the last tick: needed items that were not staged.
	BufferMisses int
	// LateMisses since the last tick: misses a tick just before the request
	// would have caught.
	LateMisses int
	// Pressure the region observed in itself (for example its work budget
	// ran out).
	Pressure Pressure
	// Cadence is the region's hint for the next tick.
	Cadence Cadence
	// Generation of the published slice, if any.
	Generation uint64
	// Retire says the target is gone (persona destroyed or handed away):
	// the runner forgets it.
	Retire bool
}
