package main

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// The invariant checkers are pure functions over what the run recorded,
// so each can be tested on synthetic data (invariants_test.go).

// maxExamples bounds the examples a result lists.
const maxExamples = 8

func example(list []string, s string) []string {
	if len(list) < maxExamples {
		return append(list, s)
	}
	return list
}

// SubscriberLog is what one durable subscriber received, in order.
type SubscriberLog struct {
	Name   string
	Stream string
	// Seqs are the stream sequences of every delivery, in arrival order
	// across every reconnect.
	Seqs       []uint64
	Lags       int
	Reconnects int
}

// DurableResult is the durable-delivery invariant.
type DurableResult struct {
	OK          bool     `json:"ok"`
	Streams     int      `json:"streams"`
	Subscribers int      `json:"subscribers"`
	Acked       int      `json:"acked_events"`
	Expected    int      `json:"expected_deliveries"`
	Delivered   int      `json:"delivered"`
	Missing     int      `json:"missing"`
	Duplicates  int      `json:"duplicates"`
	OutOfOrder  int      `json:"out_of_order"`
	Lags        int      `json:"lag_notices"`
	Reconnects  int      `json:"reconnects"`
	Examples    []string `json:"examples,omitempty"`
}

// CheckDurable checks that every acknowledged event of a stream reached
// every subscriber of that stream, each new event after the ones before it
// (duplicates are counted, not failures). acked maps a stream to the
// sequences its publisher was acknowledged.
func CheckDurable(acked map[string][]uint64, subs []SubscriberLog) DurableResult {
	r := DurableResult{Streams: len(acked), Subscribers: len(subs)}
	for _, seqs := range acked {
		r.Acked += len(seqs)
	}
	for _, s := range subs {
		r.Lags += s.Lags
		r.Reconnects += s.Reconnects
		seen := make(map[uint64]bool, len(s.Seqs))
		var top uint64
		for _, q := range s.Seqs {
			r.Delivered++
			if seen[q] {
				r.Duplicates++
				continue
			}
			seen[q] = true
			if q < top {
				r.OutOfOrder++
				r.Examples = example(r.Examples, fmt.Sprintf("%s: seq %d after %d", s.Name, q, top))
			}
			top = max(top, q)
		}
		for _, q := range acked[s.Stream] {
			r.Expected++
			if !seen[q] {
				r.Missing++
				r.Examples = example(r.Examples, fmt.Sprintf("%s: acknowledged seq %d of %s never delivered", s.Name, q, s.Stream))
			}
		}
	}
	r.OK = r.Missing == 0 && r.OutOfOrder == 0 && r.Subscribers > 0 && r.Acked > 0
	return r
}

// AuditLog is what one node's audit log held at the end.
type AuditLog struct {
	Node      string
	Verified  bool
	VerifyErr string
	Size      uint64
	// RefusalIDs are the harness's refusal ids found in refusal entries,
	// in log order (one per entry).
	RefusalIDs []string
}

// AuditResult is the audit invariant.
type AuditResult struct {
	OK              bool   `json:"ok"`
	Logs            int    `json:"logs"`
	Verified        int    `json:"verified"`
	Entries         uint64 `json:"entries"`
	Acked           int    `json:"acked_refusals"`
	Recorded        int    `json:"recorded_once"`
	Missing         int    `json:"missing"`
	Duplicates      int    `json:"duplicates"`
	UnackedRecorded int    `json:"unacknowledged_recorded"`
	// RecordedElsewhere: recorded once, but in another node's log than
	// the refusing node's (a draining node's router publishes through
	// another member's events service).
	RecordedElsewhere int      `json:"recorded_elsewhere"`
	Examples          []string `json:"examples,omitempty"`
}

// CheckAudit checks that every node's log verifies and that the mesh's
// logs together hold each acknowledged refusal exactly once. acked maps a
// node to the refusal ids it answered with a refusal.
func CheckAudit(acked map[string][]string, logs map[string]AuditLog) AuditResult {
	r := AuditResult{Logs: len(logs)}
	where := map[string][]string{} // id -> nodes whose log holds it, once per entry
	for _, node := range slices.Sorted(maps.Keys(logs)) {
		l := logs[node]
		r.Entries += l.Size
		if l.Verified {
			r.Verified++
		} else {
			r.Examples = example(r.Examples, fmt.Sprintf("%s: log does not verify: %s", node, l.VerifyErr))
		}
		for _, id := range l.RefusalIDs {
			where[id] = append(where[id], node)
		}
	}
	want := map[string]bool{}
	for _, node := range slices.Sorted(maps.Keys(acked)) {
		for _, id := range acked[node] {
			want[id] = true
			r.Acked++
			switch in := where[id]; {
			case len(in) == 0:
				r.Missing++
				r.Examples = example(r.Examples, fmt.Sprintf("%s: acknowledged refusal %s in no audit log", node, id))
			case len(in) > 1:
				r.Duplicates++
				r.Examples = example(r.Examples, fmt.Sprintf("%s: refusal %s recorded %d times (%v)", node, id, len(in), in))
			default:
				r.Recorded++
				if in[0] != node {
					r.RecordedElsewhere++
					r.Examples = example(r.Examples, fmt.Sprintf("%s: refusal %s recorded in %s's log", node, id, in[0]))
				}
			}
		}
	}
	for id, in := range where {
		if !want[id] {
			r.UnackedRecorded++
			if len(in) > 1 {
				r.Duplicates++
				r.Examples = example(r.Examples, fmt.Sprintf("unacknowledged refusal %s recorded %d times (%v)", id, len(in), in))
			}
		}
	}
	r.OK = r.Verified == r.Logs && r.Logs > 0 && r.Missing == 0 && r.Duplicates == 0 && r.Acked > 0
	return r
}

// DataItem is one acknowledged write and what the end-of-run check found.
type DataItem struct {
	Kind string // "engram" or "artifact"
	Node string // the node that acknowledged it (served_by)
	ID   string
	// Present: found after the run; Intact: its content matched (artifacts:
	// the SHA-256 of the bytes read back; engrams: always true when present).
	Present, Intact bool
	Err             string
}

// DataResult is the acknowledged-data invariant.
type DataResult struct {
	OK               bool `json:"ok"`
	EngramsAcked     int  `json:"engrams_acked"`
	EngramsMissing   int  `json:"engrams_missing"`
	ArtifactsAcked   int  `json:"artifacts_acked"`
	ArtifactsMissing int  `json:"artifacts_missing"`
	ArtifactsCorrupt int  `json:"artifacts_corrupt"`
	// Set by the caller: engrams forgotten on purpose (not checked), and
	// forgets that were not acknowledged (their engram not checked).
	EngramsForgotten int      `json:"engrams_forgotten"`
	ForgetsUnacked   int      `json:"forgets_unacknowledged"`
	Examples         []string `json:"examples,omitempty"`
}

// CheckData counts what was acknowledged and is gone or damaged.
func CheckData(items []DataItem) DataResult {
	var r DataResult
	for _, it := range items {
		switch it.Kind {
		case "engram":
			r.EngramsAcked++
			if !it.Present {
				r.EngramsMissing++
				r.Examples = example(r.Examples, fmt.Sprintf("engram %s (acked by %s) missing: %s", it.ID, it.Node, it.Err))
			}
		case "artifact":
			r.ArtifactsAcked++
			switch {
			case !it.Present:
				r.ArtifactsMissing++
				r.Examples = example(r.Examples, fmt.Sprintf("artifact %s on %s missing: %s", it.ID, it.Node, it.Err))
			case !it.Intact:
				r.ArtifactsCorrupt++
				r.Examples = example(r.Examples, fmt.Sprintf("artifact %s on %s corrupt: %s", it.ID, it.Node, it.Err))
			}
		}
	}
	r.OK = r.EngramsMissing == 0 && r.ArtifactsMissing == 0 && r.ArtifactsCorrupt == 0 && r.EngramsAcked+r.ArtifactsAcked > 0
	return r
}

// Member states as MeshService names them, shortened.
const (
	StateAlive   = "ALIVE"
	StateSuspect = "SUSPECT"
	StateDead    = "DEAD"
	StateLeft    = "LEFT"
)

// Transition is one observer's view of a member entering a state, at the
// time the observer says it saw it (MeshService Member.state_since).
type Transition struct {
	Observer string    `json:"observer"`
	Member   string    `json:"member"`
	State    string    `json:"state"`
	Since    time.Time `json:"since"`
}

// Interval is [From, To); a zero To is still open.
type Interval struct {
	From, To time.Time
	State    string
}

func (iv Interval) covers(start, end time.Time) bool {
	return !start.Before(iv.From) && (iv.To.IsZero() || !end.After(iv.To))
}

func (iv Interval) overlaps(start, end time.Time) bool {
	return end.After(iv.From) && (iv.To.IsZero() || start.Before(iv.To))
}

type pair struct{ observer, member string }

// GoneIntervals turns transitions into, per (observer, member), the
// intervals in which the observer held the member DEAD or LEFT.
func GoneIntervals(trans []Transition) map[pair][]Interval {
	by := map[pair][]Transition{}
	for _, t := range trans {
		p := pair{t.Observer, t.Member}
		by[p] = append(by[p], t)
	}
	out := map[pair][]Interval{}
	for p, ts := range by {
		sort.SliceStable(ts, func(i, j int) bool { return ts[i].Since.Before(ts[j].Since) })
		var open *Interval
		for _, t := range ts {
			gone := t.State == StateDead || t.State == StateLeft
			switch {
			case gone && open == nil:
				open = &Interval{From: t.Since, State: t.State}
			case !gone && open != nil:
				open.To = t.Since
				out[p] = append(out[p], *open)
				open = nil
			}
		}
		if open != nil {
			out[p] = append(out[p], *open)
		}
	}
	return out
}

// Dispatch is one successful routed command: sent to Via's router, served
// by ServedBy, between Start and End (harness clock; the nodes share it).
type Dispatch struct {
	Via, ServedBy string
	URI           string
	Start, End    time.Time
}

// RoutingResult is the "no command routed to a dead node" invariant.
type RoutingResult struct {
	OK               bool     `json:"ok"`
	Dispatches       int      `json:"dispatches_checked"`
	Remote           int      `json:"served_by_another_node"`
	DeadDeclarations int      `json:"dead_declarations"`
	RoutedToDead     int      `json:"routed_to_dead"`
	Ambiguous        int      `json:"ambiguous"`
	Examples         []string `json:"examples,omitempty"`
}

// CheckRouting finds commands a router sent to a member it already held
// DEAD or LEFT for the whole call. A call that only overlaps such an
// interval (the state changed while it ran) is counted as ambiguous.
func CheckRouting(trans []Transition, ds []Dispatch) RoutingResult {
	gone := GoneIntervals(trans)
	r := RoutingResult{Dispatches: len(ds)}
	for _, ivs := range gone {
		for _, iv := range ivs {
			if iv.State == StateDead {
				r.DeadDeclarations++
			}
		}
	}
	for _, d := range ds {
		if d.ServedBy == "" || d.ServedBy == d.Via {
			continue
		}
		r.Remote++
		for _, iv := range gone[pair{d.Via, d.ServedBy}] {
			if iv.covers(d.Start, d.End) {
				r.RoutedToDead++
				r.Examples = example(r.Examples, fmt.Sprintf("%s routed %s to %s at %s, %s since %s",
					d.Via, d.URI, d.ServedBy, d.Start.Format(time.RFC3339Nano), iv.State, iv.From.Format(time.RFC3339Nano)))
				break
			}
			if iv.overlaps(d.Start, d.End) {
				r.Ambiguous++
				break
			}
		}
	}
	r.OK = r.RoutedToDead == 0
	return r
}

// FaultRecord is a fault as it was injected: when it started and ended on
// the harness clock.
type FaultRecord struct {
	Fault
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Err   string    `json:"error,omitempty"`
	// Detection is filled by CheckDetection: per observer, how long it took
	// to declare the node DEAD (seconds); missing observers never did.
	Detection map[string]float64 `json:"detection_s,omitempty"`
}

// DetectionResult is the failure-detection figure.
type DetectionResult struct {
	OK         bool    `json:"ok"`
	GoalS      float64 `json:"goal_s"`
	Faults     int     `json:"faults"`
	Detected   int     `json:"detected"`
	Undetected int     `json:"undetected"`
	OverGoal   int     `json:"over_goal"`
	// Unobservable counts faults whose detection the harness could not
	// see: every observer that did not report the faulted member DEAD
	// answered no poll from the fault's start until it was over (in
	// compose, the router's death makes every other member refuse gated
	// calls, Members included; docs/RELIABILITY.md). Neither detected nor
	// undetected, and not counted in Faults.
	Unobservable int `json:"unobservable"`
	// Per fault, the time until every other node held the faulted node
	// DEAD.
	P50S float64  `json:"p50_s"`
	MaxS float64  `json:"max_s"`
	PerS []string `json:"per_fault,omitempty"`
}

// SuspicionResult counts DEAD declarations of members no fault touched.
type SuspicionResult struct {
	OK bool `json:"ok"`
	// FalseSuspicions: a healthy observer declared a healthy member DEAD.
	FalseSuspicions int `json:"false_suspicions"`
	// ByFaultedObserver: declarations made by a node that was itself
	// paused or cut off at the time (its view was the broken one).
	ByFaultedObserver int `json:"by_faulted_observer"`
	// RestartSeenDead: a graceful restart recorded as DEAD, not LEFT.
	RestartSeenDead int      `json:"restart_seen_dead"`
	Examples        []string `json:"examples,omitempty"`
}

// CheckDetection measures, for each detectable fault, when every other
// node declared the faulted node DEAD, and classifies every DEAD
// declaration that no fault explains. grace extends a fault's window past
// its end for declarations already under way.
//
// answered reports whether observer answered a poll between from and to;
// nil means always.
func CheckDetection(faults []FaultRecord, trans []Transition, nodes []string, runStart time.Time, goal, grace time.Duration,
	answered func(observer string, from, to time.Time) bool,
) ([]FaultRecord, DetectionResult, SuspicionResult) {
	if answered == nil {
		answered = func(string, time.Time, time.Time) bool { return true }
	}
	dr := DetectionResult{GoalS: goal.Seconds()}
	var sr SuspicionResult
	var worst []float64
	out := slices.Clone(faults)
	for i := range out {
		f := &out[i]
		if !f.Kind.detectable() || f.Err != "" {
			continue
		}
		f.Detection = map[string]float64{}
		all, blind := true, true
		var slowest float64
		for _, o := range nodes {
			if o == f.Node {
				continue
			}
			var first time.Time
			for _, t := range trans {
				if t.Observer == o && t.Member == f.Node && t.State == StateDead &&
					!t.Since.Before(f.Start) && !t.Since.After(f.End.Add(grace)) && (first.IsZero() || t.Since.Before(first)) {
					first = t.Since
				}
			}
			if first.IsZero() {
				all = false
				blind = blind && !answered(o, f.Start, f.End.Add(grace))
				continue
			}
			s := first.Sub(f.Start).Seconds()
			f.Detection[o] = s
			slowest = max(slowest, s)
		}
		if !all && blind {
			dr.Unobservable++
			dr.PerS = append(dr.PerS, fmt.Sprintf("%s %s: unobservable (the observers that did not report it answered no poll until it was over)", f.Kind, f.Node))
			continue
		}
		dr.Faults++
		if !all {
			dr.Undetected++
			dr.PerS = append(dr.PerS, fmt.Sprintf("%s %s: not declared dead by every node", f.Kind, f.Node))
			continue
		}
		dr.Detected++
		worst = append(worst, slowest)
		if slowest > goal.Seconds() {
			dr.OverGoal++
		}
		dr.PerS = append(dr.PerS, fmt.Sprintf("%s %s: %.2fs", f.Kind, f.Node, slowest))
	}
	if len(worst) > 0 {
		slices.Sort(worst)
		dr.P50S = worst[len(worst)/2]
		dr.MaxS = worst[len(worst)-1]
	}
	dr.OK = dr.Undetected == 0 && dr.OverGoal == 0

	within := func(f FaultRecord, t time.Time) bool {
		end := f.End
		if end.IsZero() {
			end = f.Start
		}
		return !t.Before(f.Start) && !t.After(end.Add(grace))
	}
	for _, t := range trans {
		if t.State != StateDead || t.Since.Before(runStart) {
			continue
		}
		explained, faultedObserver, restart := false, false, false
		for _, f := range faults {
			if !within(f, t.Since) {
				continue
			}
			if f.Node == t.Member {
				if f.Kind == FaultRestart {
					restart = true
				} else {
					explained = true
				}
			}
			if f.Node == t.Observer && f.Kind != FaultRestart {
				faultedObserver = true
			}
		}
		switch {
		case explained:
		case restart:
			sr.RestartSeenDead++
			sr.Examples = example(sr.Examples, fmt.Sprintf("%s saw %s DEAD at %s during a graceful restart", t.Observer, t.Member, t.Since.Format(time.RFC3339Nano)))
		case faultedObserver:
			sr.ByFaultedObserver++
		default:
			sr.FalseSuspicions++
			sr.Examples = example(sr.Examples, fmt.Sprintf("%s declared healthy %s DEAD at %s", t.Observer, t.Member, t.Since.Format(time.RFC3339Nano)))
		}
	}
	sr.OK = sr.FalseSuspicions == 0
	return out, dr, sr
}

// RuntimeSample is a node's goroutines and live heap.
type RuntimeSample struct {
	Goroutines uint64 `json:"goroutines"`
	HeapAlloc  uint64 `json:"heap_alloc_bytes"`
	OpenFDs    uint64 `json:"open_fds"`
}

// RuntimeResult is the leak invariant.
type RuntimeResult struct {
	OK        bool                     `json:"ok"`
	Tolerance float64                  `json:"tolerance"`
	Nodes     int                      `json:"nodes"`
	Over      int                      `json:"over"`
	Baseline  map[string]RuntimeSample `json:"baseline"`
	Final     map[string]RuntimeSample `json:"final"`
	// Retained is, per node, what its events retention grew by during the
	// run (see retained.go): the heap may end that much above baseline.
	Retained map[string]RetainedGrowth `json:"retained,omitempty"`
	// Restarted nodes end as a new process: their final sample is
	// compared with the baseline of the process they replaced.
	Restarted []string `json:"restarted,omitempty"`
	Examples  []string `json:"examples,omitempty"`
}

// CheckRuntime checks that each node's goroutines after the load are at
// most (1+tolerance) times its baseline, and its live heap at most
// (1+tolerance) times its baseline plus what its retention grew by
// (retained; nil or a node missing: nothing).
func CheckRuntime(base, final map[string]RuntimeSample, retained map[string]RetainedGrowth, tolerance float64) RuntimeResult {
	r := RuntimeResult{Tolerance: tolerance, Baseline: base, Final: final, Retained: retained, Nodes: len(base)}
	for _, node := range slices.Sorted(maps.Keys(base)) {
		b := base[node]
		f, ok := final[node]
		if !ok {
			r.Over++
			r.Examples = example(r.Examples, node+": no final sample")
			continue
		}
		over := func(what string, bv, fv uint64, allowed int64) {
			limit := max(float64(int64(bv)+allowed), 0) * (1 + tolerance)
			if float64(fv) > limit {
				r.Over++
				msg := fmt.Sprintf("%s: %s %d -> %d (+%.0f%%)", node, what, bv, fv, 100*(float64(fv)/float64(max(bv, 1))-1))
				if allowed != 0 {
					msg += fmt.Sprintf(", retention grew by %d", allowed)
				}
				r.Examples = example(r.Examples, msg)
			}
		}
		over("goroutines", b.Goroutines, f.Goroutines, 0)
		over("heap_alloc_bytes", b.HeapAlloc, f.HeapAlloc, retained[node].Bytes)
	}
	r.OK = r.Over == 0 && r.Nodes > 0
	return r
}
