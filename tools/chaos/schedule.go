package main

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// FaultKind is one kind of fault the harness injects.
type FaultKind string

// The faults. Kill, pause and cut are failures the mesh must detect;
// restart is a graceful stop and start (the node leaves and rejoins).
const (
	FaultKill    FaultKind = "kill"    // kill -9, down for Hold, then started again
	FaultPause   FaultKind = "pause"   // SIGSTOP for Hold (past failure detection), then SIGCONT
	FaultRestart FaultKind = "restart" // SIGTERM, wait for the exit, start again
	FaultCut     FaultKind = "cut"     // every packet and connection to and from the node dropped for Hold
)

// allFaults is the order a schedule draws kinds from (shuffled per round).
var allFaults = []FaultKind{FaultKill, FaultPause, FaultRestart, FaultCut}

// detectable reports whether the failure detector should declare the node
// dead during the fault.
func (k FaultKind) detectable() bool { return k != FaultRestart }

// Fault is one scheduled fault: at At after the run starts, Kind hits
// Node for Hold.
type Fault struct {
	At   time.Duration `json:"at"`
	Kind FaultKind     `json:"kind"`
	Node string        `json:"node"`
	Hold time.Duration `json:"hold"`
}

func (f Fault) String() string {
	return fmt.Sprintf("%s %s at %s for %s", f.Kind, f.Node, f.At.Round(time.Millisecond), f.Hold.Round(time.Millisecond))
}

// ScheduleConfig shapes a schedule.
type ScheduleConfig struct {
	Seed     uint64
	Duration time.Duration
	Nodes    []string
	// Warmup is fault-free time at the start; Cooldown fault-free time at
	// the end, so the mesh is whole again before the checks.
	Warmup, Cooldown time.Duration
	// HoldMin..HoldMax bound how long a fault lasts; HoldMin must exceed
	// the failure-detection time for a pause or cut to be noticed.
	HoldMin, HoldMax time.Duration
	// GapMin..GapMax is the quiet time after a fault ends (the node
	// rejoins) before the next one starts.
	GapMin, GapMax time.Duration
}

// Schedule draws a fault schedule. The same config always gives the same
// schedule: the only randomness is a PCG seeded with cfg.Seed. One node is
// faulted at a time; kinds rotate through a shuffled order so that every
// kind appears once before any repeats. Faults never start before Warmup
// and end (Hold elapsed) before Duration-Cooldown.
func Schedule(cfg ScheduleConfig) []Fault {
	if len(cfg.Nodes) == 0 || cfg.Duration <= 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	span := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
	}
	end := cfg.Duration - cfg.Cooldown
	var out []Fault
	var round []FaultKind
	at := cfg.Warmup
	for {
		if len(round) == 0 {
			round = append([]FaultKind(nil), allFaults...)
			r.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		kind := round[0]
		hold := span(cfg.HoldMin, cfg.HoldMax)
		if kind == FaultRestart {
			hold = 0 // a restart lasts as long as the node takes to drain and start
		}
		// A restart still needs time to drain and rejoin before the end.
		need := hold
		if kind == FaultRestart {
			need = cfg.HoldMin
		}
		if at+need > end {
			break
		}
		round = round[1:]
		out = append(out, Fault{At: at, Kind: kind, Node: cfg.Nodes[r.IntN(len(cfg.Nodes))], Hold: hold})
		at += need + span(cfg.GapMin, cfg.GapMax)
	}
	return out
}
