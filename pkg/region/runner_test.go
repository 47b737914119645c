package region

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeRegion records its ticks and answers with scripted hints.
type fakeRegion struct {
	id      string
	profile PressureProfile

	mu      sync.Mutex
	ticks   []RegionContext
	hints   map[Target][]Cadence // consumed front to back; Hold when empty
	retire  map[Target]bool
	reject  bool
	signals []Signal
	ticked  chan Target
}

func newFakeRegion() *fakeRegion {
	return &fakeRegion{
		id:      "fake",
		profile: PressureProfile{Memory: MemoryLight, Compute: ComputeCPU, RespondsTo: []PressureSource{SourceCPU}},
		hints:   map[Target][]Cadence{},
		retire:  map[Target]bool{},
		ticked:  make(chan Target, 100),
	}
}

func (f *fakeRegion) ID() string               { return f.id }
func (f *fakeRegion) Profile() PressureProfile { return f.profile }

func (f *fakeRegion) Tick(_ context.Context, rc RegionContext) TickOutcome {
	f.mu.Lock()
	f.ticks = append(f.ticks, rc)
	out := TickOutcome{Cadence: Hold, Retire: f.retire[rc.Target]}
	if h := f.hints[rc.Target]; len(h) > 0 {
		out.Cadence, f.hints[rc.Target] = h[0], h[1:]
	}
	f.mu.Unlock()
	select {
	case f.ticked <- rc.Target:
	default:
	}
	return out
}

func (f *fakeRegion) OnSignal(_ context.Context, s Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reject {
		return &SignalError{Region: f.id, Signal: s, Why: "test-refusal"}
	}
	f.signals = append(f.signals, s)
	return nil
}

func (f *fakeRegion) tickTimes() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]time.Duration, len(f.ticks))
	for i, rc := range f.ticks {
		out[i] = rc.Now.Sub(t0)
	}
	return out
}

func newSimRunner(t *testing.T, reg Region) (*Runner, *ManualClock, *[]Telemetry) {
	t.Helper()
	gov, err := NewGovernor(GovernorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	clock := NewManualClock(t0)
	var tel []Telemetry
	r := NewRunner(gov, RunnerDeps{Clock: clock, Sink: func(x Telemetry) { tel = append(tel, x) }})
	if err := r.Add(reg); err != nil {
		t.Fatal(err)
	}
	return r, clock, &tel
}

func TestRunnerCadence(t *testing.T) {
	t.Parallel()
	a := Target{Persona: "p", Channel: "a"}
	tests := []struct {
		name  string
		hints []Cadence
		want  []time.Duration // tick times relative to t0
	}{
		{
			"hold keeps the start interval", nil,
			[]time.Duration{time.Second, 61 * time.Second, 121 * time.Second},
		},
		{
			"faster halves down to the floor",
			[]Cadence{Faster, Faster, Faster},
			[]time.Duration{time.Second, 31 * time.Second, 46 * time.Second, 61 * time.Second, 76 * time.Second},
		},
		{
			"slower doubles up to the cap",
			[]Cadence{Slower, Slower, Slower, Slower},
			[]time.Duration{time.Second, 121 * time.Second, 361 * time.Second, 841 * time.Second, 1441 * time.Second},
		},
		{
			"sleep parks the target",
			[]Cadence{Hold, Sleep},
			[]time.Duration{time.Second, 61 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := newFakeRegion()
			reg.hints[a] = tt.hints
			r, _, _ := newSimRunner(t, reg)
			r.Kick("fake", a, time.Second)
			last := tt.want[len(tt.want)-1]
			if _, err := r.AdvanceTo(context.Background(), t0.Add(last+time.Millisecond)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, reg.tickTimes()); diff != "" {
				t.Errorf("tick times (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunnerKickDebounceAndWake(t *testing.T) {
	t.Parallel()
	reg := newFakeRegion()
	a := Target{Persona: "p", Channel: "a"}
	reg.hints[a] = []Cadence{Sleep}
	r, clock, _ := newSimRunner(t, reg)
	ctx := context.Background()

	// Three ingests within a second coalesce into one kick tick.
	r.Kick("fake", a, time.Second)
	clock.Advance(300 * time.Millisecond)
	r.Kick("fake", a, time.Second)
	clock.Advance(300 * time.Millisecond)
	r.Kick("fake", a, time.Second)
	if _, err := r.AdvanceTo(ctx, t0.Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]time.Duration{time.Second}, reg.tickTimes()); diff != "" {
		t.Fatalf("debounced kicks (-want +got):\n%s", diff)
	}
	st, _ := r.State("fake", a)
	if !st.Asleep {
		t.Fatalf("target should sleep after a Sleep hint: %+v", st)
	}
	// Nothing ticks while asleep, however long.
	if n, _ := r.AdvanceTo(ctx, t0.Add(5*time.Hour)); n != 0 {
		t.Fatalf("%d ticks while asleep", n)
	}
	// A request wakes it one second later.
	r.Wake("fake", a)
	if _, err := r.AdvanceTo(ctx, t0.Add(5*time.Hour+2*time.Second)); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{time.Second, 5*time.Hour + time.Second}
	if diff := cmp.Diff(want, reg.tickTimes()); diff != "" {
		t.Errorf("wake (-want +got):\n%s", diff)
	}
}

func TestRunnerRetireAndRemove(t *testing.T) {
	t.Parallel()
	reg := newFakeRegion()
	a, b, c := Target{"p", "a"}, Target{"p", "b"}, Target{"q", "c"}
	reg.retire[a] = true
	r, _, _ := newSimRunner(t, reg)
	for _, x := range []Target{a, b, c} {
		r.Kick("fake", x, time.Second)
	}
	ctx := context.Background()
	if _, err := r.AdvanceTo(ctx, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.State("fake", a); ok {
		t.Error("a retired target is still known")
	}
	r.RemovePersona("fake", "p")
	if _, ok := r.State("fake", b); ok {
		t.Error("RemovePersona kept a target")
	}
	if r.Len() != 1 {
		t.Errorf("Len = %d, want 1", r.Len())
	}
	if r.Kick("nope", a, 0) {
		t.Error("Kick of an unknown region reported true")
	}
}

// TestRunnerDeterministicOrder: targets due at the same time tick in key
// order, whatever order they were kicked in.
func TestRunnerDeterministicOrder(t *testing.T) {
	t.Parallel()
	reg := newFakeRegion()
	r, _, _ := newSimRunner(t, reg)
	for _, ch := range []string{"c", "a", "b"} {
		r.Kick("fake", Target{"p", ch}, time.Second)
	}
	if _, err := r.AdvanceTo(context.Background(), t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rc := range reg.ticks {
		got = append(got, rc.Channel)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestRunnerPressure(t *testing.T) {
	t.Parallel()
	reg := newFakeRegion()
	a := Target{"p", "a"}
	r, _, tel := newSimRunner(t, reg)
	ctx := context.Background()
	if err := r.Signal(ctx, Signal{Kind: SignalPressure, Source: SourceCPU, Pressure: PressureCritical}); err != nil {
		t.Fatal(err)
	}
	r.Kick("fake", a, time.Second)
	if _, err := r.AdvanceTo(ctx, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if len(reg.ticks) != 0 || len(*tel) != 1 || !(*tel)[0].Deferred {
		t.Fatalf("critical pressure: ticks %d, telemetry %+v; want a deferred tick only", len(reg.ticks), *tel)
	}
	// A pressure source the region does not respond to does not hold it.
	if err := r.Signal(ctx, Signal{Kind: SignalPressure, Source: SourceCPU, Pressure: PressureNominal}); err != nil {
		t.Fatal(err)
	}
	if err := r.Signal(ctx, Signal{Kind: SignalPressure, Source: SourceVRAM, Pressure: PressureCritical}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AdvanceTo(ctx, t0.Add(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	if len(reg.ticks) != 1 {
		t.Fatalf("ticks after pressure cleared = %d, want 1", len(reg.ticks))
	}
	reg.reject = true
	err := r.Signal(ctx, Signal{Kind: SignalSleepPhase, Persona: "p", Phase: PhaseSleep})
	var se *SignalError
	if !errors.Is(err, ErrSignalRejected) || !errors.As(err, &se) || se.Why != "test-refusal" {
		t.Errorf("rejected signal error = %v", err)
	}
}

func TestGovernor(t *testing.T) {
	t.Parallel()
	prof := PressureProfile{Compute: ComputeCPU, RespondsTo: []PressureSource{SourceMemory}}
	tests := []struct {
		name      string
		pressure  Pressure
		source    PressureSource
		interval  time.Duration
		hint      Cadence
		want      time.Duration
		wantSleep bool
	}{
		{"faster", PressureNominal, SourceAny, 60 * time.Second, Faster, 30 * time.Second, false},
		{"faster floors", PressureNominal, SourceAny, 20 * time.Second, Faster, 15 * time.Second, false},
		{"slower", PressureNominal, SourceAny, 60 * time.Second, Slower, 120 * time.Second, false},
		{"slower caps", PressureNominal, SourceAny, 500 * time.Second, Slower, 600 * time.Second, false},
		{"hold", PressureNominal, SourceAny, 60 * time.Second, Hold, 60 * time.Second, false},
		{"sleep", PressureNominal, SourceAny, 60 * time.Second, Sleep, 60 * time.Second, true},
		{"moderate blocks faster", PressureModerate, SourceAny, 60 * time.Second, Faster, 60 * time.Second, false},
		{"high doubles", PressureHigh, SourceMemory, 60 * time.Second, Faster, 120 * time.Second, false},
		{"other source ignored", PressureHigh, SourceVRAM, 60 * time.Second, Faster, 30 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, err := NewGovernor(GovernorConfig{})
			if err != nil {
				t.Fatal(err)
			}
			g.SetPressure(tt.source, tt.pressure)
			got, sleep := g.Next(prof, tt.interval, tt.hint)
			if got != tt.want || sleep != tt.wantSleep {
				t.Errorf("Next = (%v, %v), want (%v, %v)", got, sleep, tt.want, tt.wantSleep)
			}
		})
	}
}

func TestGovernorHint(t *testing.T) {
	t.Parallel()
	g, err := NewGovernor(GovernorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		d    Demand
		want Cadence
	}{
		{"request", Demand{Requests: 1, QuietTicks: 0}, Faster},
		{"late miss", Demand{LateMisses: 1, QuietTicks: 5, SinceRequest: time.Hour}, Faster},
		{"one quiet tick", Demand{QuietTicks: 1, SinceRequest: time.Minute}, Hold},
		{"two quiet ticks", Demand{QuietTicks: 2, SinceRequest: 2 * time.Minute}, Slower},
		{"thirty minutes", Demand{QuietTicks: 4, SinceRequest: 30 * time.Minute}, Sleep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := g.Hint(tt.d); got != tt.want {
				t.Errorf("Hint(%+v) = %v, want %v", tt.d, got, tt.want)
			}
		})
	}
	if _, err := NewGovernor(GovernorConfig{Floor: time.Hour}); err == nil {
		t.Error("a floor above the start interval was accepted")
	}
}

// TestRunnerRunLoop drives Run (the real-time loop) with a manual clock:
// a kick ticks once the clock passes its due time, and Run returns when
// its context ends.
func TestRunnerRunLoop(t *testing.T) {
	t.Parallel()
	reg := newFakeRegion()
	gov, err := NewGovernor(GovernorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	clock := NewManualClock(t0)
	r := NewRunner(gov, RunnerDeps{Clock: clock})
	if err := r.Add(reg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	a := Target{"p", "a"}
	r.Kick("fake", a, time.Second)
	waitFor(t, func() bool { return clock.Waiters() > 0 })
	clock.Advance(time.Second)
	select {
	case got := <-reg.ticked:
		if got != a {
			t.Fatalf("ticked %v, want %v", got, a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no tick after the clock passed the due time")
	}
	if _, err := r.AdvanceTo(ctx, t0.Add(time.Hour)); !errors.Is(err, ErrRunning) {
		t.Errorf("AdvanceTo during Run = %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatal("condition not reached before the deadline")
		case <-poll.C:
		}
	}
}
