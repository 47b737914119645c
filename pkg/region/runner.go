package region

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// Runner ticks every target of every region on its own cadence, one tick at
// a time, in due order. Request handlers talk to it only to Kick or Wake a
// target; they never wait for a tick.
type Runner struct {
	clock Clock
	gov   *Governor
	log   *slog.Logger
	sink  func(Telemetry)

	mu      sync.Mutex
	regions map[string]Region
	entries map[entryKey]*entry
	due     entryHeap
	running bool
	changed chan struct{}
}

// RunnerDeps are the runner's collaborators.
type RunnerDeps struct {
	// Clock; nil is the wall clock. AdvanceTo needs a *ManualClock.
	Clock Clock
	// Sink receives every tick's telemetry, on the runner's goroutine; it
	// must not block. Nil discards.
	Sink func(Telemetry)
	// Logger; nil is slog.Default().
	Logger *slog.Logger
}

type entryKey struct {
	region string
	Target
}

type entry struct {
	key      entryKey
	reg      Region
	due      time.Time
	index    int // in the heap; -1 when not scheduled
	interval time.Duration
	asleep   bool
	ticking  bool
	removed  bool
	kickDue  time.Time // a kick that arrived during the tick
	lastTick time.Time
	ticks    uint64
}

// NewRunner returns a runner under gov.
func NewRunner(gov *Governor, deps RunnerDeps) *Runner {
	if deps.Clock == nil {
		deps.Clock = WallClock{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Sink == nil {
		deps.Sink = func(Telemetry) {}
	}
	return &Runner{
		clock:   deps.Clock,
		gov:     gov,
		log:     deps.Logger,
		sink:    deps.Sink,
		regions: map[string]Region{},
		entries: map[entryKey]*entry{},
		changed: make(chan struct{}, 1),
	}
}

// Governor is the runner's governor.
func (r *Runner) Governor() *Governor { return r.gov }

// Clock is the runner's clock.
func (r *Runner) Clock() Clock { return r.clock }

// Add registers a region. Its targets appear when they are first kicked.
func (r *Runner) Add(reg Region) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.regions[reg.ID()]; dup {
		return fmt.Errorf("region %s is already registered", reg.ID())
	}
	r.regions[reg.ID()] = reg
	return nil
}

// Kick makes target tick at most after from now: a new target is created
// (with the start interval), a sleeping one wakes, and a pending tick that is
// due later is brought forward. Kicks within one delay coalesce into one
// tick. It reports false for an unknown region.
func (r *Runner) Kick(region string, t Target, after time.Duration) bool {
	now := r.clock.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	reg, ok := r.regions[region]
	if !ok {
		return false
	}
	k := entryKey{region: region, Target: t}
	e := r.entries[k]
	if e == nil {
		e = &entry{key: k, reg: reg, index: -1, interval: r.gov.cfg.Start}
		r.entries[k] = e
	}
	due := now.Add(after)
	if e.ticking {
		if e.kickDue.IsZero() || due.Before(e.kickDue) {
			e.kickDue = due
		}
		return true
	}
	e.asleep = false
	switch {
	case e.index < 0:
		e.due = due
		heap.Push(&r.due, e)
	case due.Before(e.due):
		e.due = due
		heap.Fix(&r.due, e.index)
	default:
		return true
	}
	r.notify()
	return true
}

// Wake makes a sleeping (or slow) target tick WakeDelay from now.
func (r *Runner) Wake(region string, t Target) bool {
	return r.Kick(region, t, r.gov.cfg.WakeDelay)
}

// Remove forgets a target.
func (r *Runner) Remove(region string, t Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removeLocked(entryKey{region: region, Target: t})
}

// RemovePersona forgets every target of a persona in a region.
func (r *Runner) RemovePersona(region, persona string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.entries {
		if k.region == region && k.Persona == persona {
			r.removeLocked(k)
		}
	}
}

func (r *Runner) removeLocked(k entryKey) {
	e := r.entries[k]
	if e == nil {
		return
	}
	e.removed = true
	if e.index >= 0 {
		heap.Remove(&r.due, e.index)
	}
	delete(r.entries, k)
}

// TargetState is a target as the runner sees it.
type TargetState struct {
	Region string
	Target
	Due      time.Time // zero when asleep
	Interval time.Duration
	Asleep   bool
	Ticks    uint64
}

// State returns a target's schedule; ok is false for an unknown target.
func (r *Runner) State(region string, t Target) (s TargetState, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[entryKey{region: region, Target: t}]
	if e == nil {
		return TargetState{}, false
	}
	s = TargetState{Region: region, Target: t, Interval: e.interval, Asleep: e.asleep, Ticks: e.ticks}
	if e.index >= 0 {
		s.Due = e.due
	}
	return s, true
}

// Len is the number of targets the runner knows.
func (r *Runner) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// NextDue is the time of the earliest scheduled tick.
func (r *Runner) NextDue() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.due) == 0 {
		return time.Time{}, false
	}
	return r.due[0].due, true
}

// Signal records a pressure signal with the governor and delivers s to
// every region. It returns the regions' rejections, joined.
func (r *Runner) Signal(ctx context.Context, s Signal) error {
	if s.Kind == SignalPressure {
		r.gov.SetPressure(s.Source, s.Pressure)
	}
	r.mu.Lock()
	regs := make([]Region, 0, len(r.regions))
	for _, reg := range r.regions {
		regs = append(regs, reg)
	}
	r.mu.Unlock()
	var errs []error
	for _, reg := range regs {
		if err := reg.OnSignal(ctx, s); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Kind == SignalPressure {
		r.notify()
	}
	return errors.Join(errs...)
}

// ErrRunning is returned by Run and AdvanceTo while another Run or
// AdvanceTo is in progress.
var ErrRunning = errors.New("region runner is already running")

// Run ticks due targets until ctx ends, waiting on the runner's clock in
// between. It returns nil when ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.begin(); err != nil {
		return err
	}
	defer r.end()
	for {
		if ctx.Err() != nil {
			return nil
		}
		e, wait := r.popDue(r.clock.Now())
		if e != nil {
			r.tick(ctx, e, r.clock.Now())
			continue
		}
		var fire <-chan time.Time
		stop := func() {}
		if wait >= 0 {
			fire, stop = r.clock.After(wait)
		}
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-fire:
		case <-r.changed:
		}
		stop()
	}
}

// AdvanceTo runs, in due order, every tick due up to t, moving the runner's
// *ManualClock to each tick's due time, and leaves the clock at t. It is how
// a replay drives the runner through simulated time. It returns the number
// of ticks run.
func (r *Runner) AdvanceTo(ctx context.Context, t time.Time) (int, error) {
	mc, ok := r.clock.(*ManualClock)
	if !ok {
		return 0, errors.New("region: AdvanceTo needs a *ManualClock")
	}
	if err := r.begin(); err != nil {
		return 0, err
	}
	defer r.end()
	n := 0
	for ctx.Err() == nil {
		r.mu.Lock()
		if len(r.due) == 0 || r.due[0].due.After(t) {
			r.mu.Unlock()
			break
		}
		e := heap.Pop(&r.due).(*entry)
		r.mu.Unlock()
		mc.Set(e.due)
		r.tick(ctx, e, mc.Now())
		n++
	}
	mc.Set(t)
	return n, ctx.Err()
}

func (r *Runner) begin() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return ErrRunning
	}
	r.running = true
	return nil
}

func (r *Runner) end() {
	r.mu.Lock()
	r.running = false
	r.mu.Unlock()
}

// popDue pops the earliest entry due at now, or reports how long to wait for
// it (-1 when nothing is scheduled).
func (r *Runner) popDue(now time.Time) (*entry, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.due) == 0 {
		return nil, -1
	}
	if d := r.due[0].due.Sub(now); d > 0 {
		return nil, d
	}
	return heap.Pop(&r.due).(*entry), 0
}

func (r *Runner) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// tick runs one popped entry at now and schedules its next tick.
func (r *Runner) tick(ctx context.Context, e *entry, now time.Time) {
	profile := e.reg.Profile()
	if ok, retry := r.gov.Admit(profile); !ok {
		r.mu.Lock()
		if !e.removed {
			e.due = now.Add(retry)
			heap.Push(&r.due, e)
		}
		r.mu.Unlock()
		r.sink(Telemetry{
			Region: e.key.region, Target: e.key.Target, Start: now,
			Pressure: r.gov.PressureFor(profile), Interval: retry, Deferred: true,
		})
		return
	}
	r.mu.Lock()
	e.ticking = true
	e.ticks++
	rc := RegionContext{
		Target:   e.key.Target,
		Now:      now,
		LastTick: e.lastTick,
		Interval: e.interval,
		Pressure: r.gov.PressureFor(profile),
		Tick:     e.ticks,
	}
	r.mu.Unlock()

	started := time.Now()
	out := r.safeTick(ctx, e, rc)
	took := time.Since(started)

	r.mu.Lock()
	e.ticking = false
	e.lastTick = now
	next, sleep := r.gov.Next(profile, e.interval, out.Cadence)
	e.interval = next
	e.asleep = sleep
	if !sleep {
		e.due = now.Add(next)
	}
	if !e.kickDue.IsZero() {
		if e.asleep || e.kickDue.Before(e.due) {
			e.due = e.kickDue
		}
		e.asleep = false
		e.kickDue = time.Time{}
	}
	if out.Retire && !e.removed {
		r.removeLocked(e.key)
	}
	if !e.removed && !e.asleep {
		heap.Push(&r.due, e)
	}
	r.mu.Unlock()

	r.sink(Telemetry{
		Region:       e.key.region,
		Target:       e.key.Target,
		Start:        now,
		Duration:     took,
		Published:    out.Published,
		Consumed:     out.Consumed,
		Requests:     out.Requests,
		BufferMisses: out.BufferMisses,
		LateMisses:   out.LateMisses,
		Pressure:     max(out.Pressure, rc.Pressure),
		Cadence:      out.Cadence,
		Interval:     next,
		Generation:   out.Generation,
	})
}

// safeTick runs a region's tick; a panic is logged and makes the target
// slower instead of killing the process.
func (r *Runner) safeTick(ctx context.Context, e *entry, rc RegionContext) (out TickOutcome) {
	defer func() {
		if p := recover(); p != nil {
			r.log.ErrorContext(ctx, "region tick panicked", "region", e.key.region,
				"persona", rc.Persona, "channel", rc.Channel, "panic", p, "stack", string(debug.Stack()))
			out = TickOutcome{Cadence: Slower}
		}
	}()
	return e.reg.Tick(ctx, rc)
}

// entryHeap orders entries by due time, then by key, so simulated runs are
// deterministic.
type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }

func (h entryHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if c := a.due.Compare(b.due); c != 0 {
		return c < 0
	}
	if c := cmp.Compare(a.key.region, b.key.region); c != 0 {
		return c < 0
	}
	if c := cmp.Compare(a.key.Persona, b.key.Persona); c != 0 {
		return c < 0
	}
	return a.key.Channel < b.key.Channel
}

func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *entryHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	e.index = -1
	*h = old[:n-1]
	return e
}
