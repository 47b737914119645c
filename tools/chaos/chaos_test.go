package main

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func testSchedule(seed uint64) ScheduleConfig {
	return ScheduleConfig{
		Seed: seed, Duration: 2 * time.Minute, Nodes: []string{"n1", "n2", "n3"},
		Warmup: 3 * time.Second, Cooldown: 5 * time.Second,
		HoldMin: 3 * time.Second, HoldMax: 6 * time.Second,
		GapMin: 3 * time.Second, GapMax: 6 * time.Second,
	}
}

func TestScheduleIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := Schedule(testSchedule(7)), Schedule(testSchedule(7))
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different schedules (-first +second):\n%s", diff)
	}
	if c := Schedule(testSchedule(8)); cmp.Equal(a, c) {
		t.Fatalf("seeds 7 and 8 gave the same schedule: %v", a)
	}
}

func TestScheduleShape(t *testing.T) {
	t.Parallel()
	for seed := range uint64(50) {
		cfg := testSchedule(seed)
		s := Schedule(cfg)
		if len(s) < len(allFaults) {
			t.Fatalf("seed %d: %d faults in 2 minutes, want at least %d", seed, len(s), len(allFaults))
		}
		var kinds []FaultKind
		for i, f := range s {
			if i < len(allFaults) {
				kinds = append(kinds, f.Kind)
			}
			if f.At < cfg.Warmup {
				t.Fatalf("seed %d: %v starts in the warm-up", seed, f)
			}
			end := f.At + max(f.Hold, cfg.HoldMin)
			if end > cfg.Duration-cfg.Cooldown {
				t.Fatalf("seed %d: %v ends in the cool-down", seed, f)
			}
			if f.Kind != FaultRestart && (f.Hold < cfg.HoldMin || f.Hold > cfg.HoldMax) {
				t.Fatalf("seed %d: %v holds outside [%s, %s]", seed, f, cfg.HoldMin, cfg.HoldMax)
			}
			if i > 0 {
				prev := s[i-1]
				if f.At < prev.At+max(prev.Hold, cfg.HoldMin)+cfg.GapMin {
					t.Fatalf("seed %d: %v overlaps or crowds %v", seed, f, prev)
				}
			}
			if !slices.Contains(cfg.Nodes, f.Node) {
				t.Fatalf("seed %d: unknown node in %v", seed, f)
			}
		}
		slices.Sort(kinds)
		want := slices.Clone(allFaults)
		slices.Sort(want)
		if !slices.Equal(kinds, want) {
			t.Fatalf("seed %d: the first %d faults are %v, want one of each kind", seed, len(allFaults), kinds)
		}
	}
	if s := Schedule(ScheduleConfig{Seed: 1, Duration: 5 * time.Second, Nodes: []string{"n1"}, Warmup: 3 * time.Second, Cooldown: 5 * time.Second, HoldMin: time.Second}); len(s) != 0 {
		t.Fatalf("no room for a fault, got %v", s)
	}
}

func TestCheckDurable(t *testing.T) {
	t.Parallel()
	acked := map[string][]uint64{"n1": {3, 4, 5, 6}}
	tests := []struct {
		name string
		seqs []uint64
		want DurableResult
	}{
		{"complete", []uint64{2, 3, 4, 5, 6}, DurableResult{OK: true, Delivered: 5}},
		{"duplicates after a resume", []uint64{3, 4, 4, 5, 5, 6}, DurableResult{OK: true, Delivered: 6, Duplicates: 2}},
		{"gap", []uint64{3, 4, 6}, DurableResult{Delivered: 3, Missing: 1}},
		{"out of order", []uint64{3, 5, 4, 6}, DurableResult{Delivered: 4, OutOfOrder: 1}},
		{"nothing", nil, DurableResult{Missing: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := CheckDurable(acked, []SubscriberLog{{Name: "s", Stream: "n1", Seqs: tc.seqs}})
			got.Examples = nil
			tc.want.Streams, tc.want.Subscribers, tc.want.Acked, tc.want.Expected = 1, 1, 4, 4
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckAudit(t *testing.T) {
	t.Parallel()
	acked := map[string][]string{"n1": {"r1", "r2", "r3"}}
	tests := []struct {
		name string
		logs map[string]AuditLog
		want AuditResult
	}{
		{
			"each once",
			map[string]AuditLog{"n1": {Verified: true, Size: 4, RefusalIDs: []string{"r1", "r2", "r3", "r9"}}},
			AuditResult{OK: true, Logs: 1, Verified: 1, Entries: 4, Recorded: 3, UnackedRecorded: 1},
		},
		{"once, in another node's log", map[string]AuditLog{
			"n1": {Verified: true, Size: 2, RefusalIDs: []string{"r1", "r2"}},
			"n2": {Verified: true, Size: 1, RefusalIDs: []string{"r3"}},
		}, AuditResult{OK: true, Logs: 2, Verified: 2, Entries: 3, Recorded: 3, RecordedElsewhere: 1}},
		{
			"missing",
			map[string]AuditLog{"n1": {Verified: true, Size: 2, RefusalIDs: []string{"r1", "r3"}}},
			AuditResult{Logs: 1, Verified: 1, Entries: 2, Recorded: 2, Missing: 1},
		},
		{
			"duplicate",
			map[string]AuditLog{"n1": {Verified: true, Size: 4, RefusalIDs: []string{"r1", "r2", "r2", "r3"}}},
			AuditResult{Logs: 1, Verified: 1, Entries: 4, Recorded: 2, Duplicates: 1},
		},
		{"duplicate across logs", map[string]AuditLog{
			"n1": {Verified: true, Size: 3, RefusalIDs: []string{"r1", "r2", "r3"}},
			"n2": {Verified: true, Size: 1, RefusalIDs: []string{"r3"}},
		}, AuditResult{Logs: 2, Verified: 2, Entries: 4, Recorded: 2, Duplicates: 1}},
		{
			"does not verify",
			map[string]AuditLog{"n1": {VerifyErr: "CHAIN_BROKEN", RefusalIDs: []string{"r1", "r2", "r3"}}},
			AuditResult{Logs: 1, Recorded: 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := CheckAudit(acked, tc.logs)
			got.Examples = nil
			tc.want.Acked = 3
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckData(t *testing.T) {
	t.Parallel()
	got := CheckData([]DataItem{
		{Kind: "engram", ID: "a", Present: true, Intact: true},
		{Kind: "engram", ID: "b"},
		{Kind: "artifact", ID: "c", Present: true, Intact: true},
		{Kind: "artifact", ID: "d"},
		{Kind: "artifact", ID: "e", Present: true},
	})
	got.Examples = nil
	want := DataResult{EngramsAcked: 2, EngramsMissing: 1, ArtifactsAcked: 3, ArtifactsMissing: 1, ArtifactsCorrupt: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if !CheckData([]DataItem{{Kind: "engram", Present: true, Intact: true}}).OK {
		t.Fatal("a present engram failed the check")
	}
}

func at(s float64) time.Time {
	return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(s * float64(time.Second)))
}

func TestCheckRouting(t *testing.T) {
	t.Parallel()
	trans := []Transition{
		{Observer: "n1", Member: "n2", State: StateAlive, Since: at(0)},
		{Observer: "n1", Member: "n2", State: StateDead, Since: at(10)},
		{Observer: "n1", Member: "n2", State: StateAlive, Since: at(20)},
	}
	ds := []Dispatch{
		{Via: "n1", ServedBy: "n2", Start: at(5), End: at(5.1)},    // alive: fine
		{Via: "n1", ServedBy: "n2", Start: at(12), End: at(12.1)},  // dead the whole call
		{Via: "n1", ServedBy: "n2", Start: at(9.9), End: at(10.2)}, // declared during the call
		{Via: "n1", ServedBy: "n1", Start: at(12), End: at(12.1)},  // local
		{Via: "n3", ServedBy: "n2", Start: at(12), End: at(12.1)},  // n3 never said n2 died
		{Via: "n1", ServedBy: "n2", Start: at(21), End: at(21.1)},  // back
	}
	got := CheckRouting(trans, ds)
	got.Examples = nil
	want := RoutingResult{Dispatches: 6, Remote: 5, DeadDeclarations: 1, RoutedToDead: 1, Ambiguous: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestCheckDetection(t *testing.T) {
	t.Parallel()
	nodes := []string{"n1", "n2", "n3"}
	faults := []FaultRecord{
		{Fault: Fault{Kind: FaultKill, Node: "n2"}, Start: at(10), End: at(14)},
		{Fault: Fault{Kind: FaultPause, Node: "n3"}, Start: at(30), End: at(34)},
		{Fault: Fault{Kind: FaultRestart, Node: "n1"}, Start: at(50), End: at(52)},
	}
	trans := []Transition{
		{Observer: "n1", Member: "n2", State: StateDead, Since: at(11.5)},
		{Observer: "n3", Member: "n2", State: StateDead, Since: at(12)},
		{Observer: "n1", Member: "n3", State: StateDead, Since: at(31.5)}, // n2 never notices n3
		{Observer: "n3", Member: "n1", State: StateDead, Since: at(34.5)}, // n3 just woke up: its view
		{Observer: "n2", Member: "n1", State: StateDead, Since: at(51)},   // a restart seen as a death
		{Observer: "n2", Member: "n3", State: StateDead, Since: at(70)},   // nothing explains it
		{Observer: "n1", Member: "n2", State: StateDead, Since: at(1)},    // before the run
	}
	out, det, sus := CheckDetection(faults, trans, nodes, at(5), 6*time.Second, 2*time.Second, nil)
	det.PerS, sus.Examples = nil, nil
	wantDet := DetectionResult{GoalS: 6, Faults: 2, Detected: 1, Undetected: 1, P50S: 2, MaxS: 2}
	if diff := cmp.Diff(wantDet, det); diff != "" {
		t.Fatalf("detection (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]float64{"n1": 1.5, "n3": 2}, out[0].Detection); diff != "" {
		t.Fatalf("per observer (-want +got):\n%s", diff)
	}
	wantSus := SuspicionResult{FalseSuspicions: 1, ByFaultedObserver: 1, RestartSeenDead: 1}
	if diff := cmp.Diff(wantSus, sus); diff != "" {
		t.Fatalf("suspicions (-want +got):\n%s", diff)
	}
	_, det, _ = CheckDetection(faults[:1], trans, nodes, at(5), time.Second, 2*time.Second, nil)
	if det.OK || det.OverGoal != 1 {
		t.Fatalf("a 2 s detection against a 1 s goal: %+v", det)
	}
	// The pause of n3 that n2 never reported: unobservable when n2 answered
	// no poll while n3 was paused, still undetected when it did.
	blindN2 := func(o string, from, to time.Time) bool { return o != "n2" || to.Before(at(30)) || from.After(at(40)) }
	_, det, _ = CheckDetection(faults, trans, nodes, at(5), 6*time.Second, 2*time.Second, blindN2)
	det.PerS = nil
	if diff := cmp.Diff(DetectionResult{OK: true, GoalS: 6, Faults: 1, Detected: 1, Unobservable: 1, P50S: 2, MaxS: 2}, det); diff != "" {
		t.Fatalf("n2 blind during the pause (-want +got):\n%s", diff)
	}
	sawN2 := func(string, time.Time, time.Time) bool { return true }
	_, det, _ = CheckDetection(faults, trans, nodes, at(5), 6*time.Second, 2*time.Second, sawN2)
	if det.Undetected != 1 || det.Unobservable != 0 {
		t.Fatalf("n2 answered during the pause and never reported it: %+v", det)
	}
}

func TestCheckRuntime(t *testing.T) {
	t.Parallel()
	base := map[string]RuntimeSample{"n1": {Goroutines: 100, HeapAlloc: 1000}, "n2": {Goroutines: 100, HeapAlloc: 1000}}
	if r := CheckRuntime(base, map[string]RuntimeSample{"n1": {Goroutines: 110, HeapAlloc: 900}, "n2": {Goroutines: 50, HeapAlloc: 1100}}, nil, 0.10); !r.OK {
		t.Fatalf("within 10%%: %+v", r)
	}
	r := CheckRuntime(base, map[string]RuntimeSample{"n1": {Goroutines: 111, HeapAlloc: 1000}, "n2": {Goroutines: 100, HeapAlloc: 2000}}, nil, 0.10)
	if r.OK || r.Over != 2 {
		t.Fatalf("a goroutine and a heap leak: %+v", r)
	}
	if r := CheckRuntime(base, map[string]RuntimeSample{"n1": {Goroutines: 100, HeapAlloc: 1000}}, nil, 0.10); r.OK {
		t.Fatalf("a node without a final sample passed: %+v", r)
	}
	// Retention that grew by 900 bytes on n2 allows 1.1 * (1000 + 900);
	// anything beyond that is still a leak, and n1 gets no allowance.
	grew := map[string]RetainedGrowth{"n2": {Bytes: 900}}
	if r := CheckRuntime(base, map[string]RuntimeSample{"n1": {Goroutines: 100, HeapAlloc: 1000}, "n2": {Goroutines: 100, HeapAlloc: 2000}}, grew, 0.10); !r.OK {
		t.Fatalf("heap within baseline plus retention: %+v", r)
	}
	r = CheckRuntime(base, map[string]RuntimeSample{"n1": {Goroutines: 100, HeapAlloc: 1200}, "n2": {Goroutines: 100, HeapAlloc: 2200}}, grew, 0.10)
	if r.OK || r.Over != 2 {
		t.Fatalf("a leak beyond baseline plus retention, and one where retention did not grow: %+v", r)
	}
	// Retention that shrank (a restarted node starts empty) lowers the limit.
	if r := CheckRuntime(base, map[string]RuntimeSample{"n1": {Goroutines: 100, HeapAlloc: 1000}, "n2": {Goroutines: 100, HeapAlloc: 1000}},
		map[string]RetainedGrowth{"n1": {Bytes: -500}}, 0.10); r.OK || r.Over != 1 {
		t.Fatalf("heap at baseline although retention shrank by half: %+v", r)
	}
}
