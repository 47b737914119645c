package node

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultGCPercent is the collector's target a node process runs with
// unless GOGC says otherwise. A node's live heap is small (2–20 MB), and
// with Go's default of 100 the collector runs every few MB of allocation:
// about every 500 in-process dispatches, each cycle marking for several
// milliseconds while calls run beside it. That, not the dispatch itself,
// is the p99 of an in-process dispatch (docs/PERFORMANCE.md). At 400 the
// heap may grow to five times the live data before a cycle, a few tens of
// MB more for a much quieter tail; the soft memory limit (see TuneRuntime)
// keeps that in check where memory is bounded.
const DefaultGCPercent = 400

// RuntimeTuning is what TuneRuntime applied, for the log.
type RuntimeTuning struct {
	// GCPercent is the collector target in force; -1 is off.
	GCPercent int
	// GCPercentFrom says where it came from: "GOGC" or "flag".
	GCPercentFrom string
	// MemoryLimit is the soft memory limit in bytes (0: none).
	MemoryLimit int64
	// MemoryLimitFrom says where it came from: "GOMEMLIMIT", "cgroup" or
	// "" (none).
	MemoryLimitFrom string
}

// TuneRuntime sets the process's collector for a node: gcPercent (the
// --gc-percent flag) unless the GOGC environment variable is set, and,
// unless GOMEMLIMIT is set, a soft memory limit of 90% of the container's
// memory limit when the process runs under a cgroup with one, so a larger
// GC target never runs a container into its OOM killer. It is for a
// binary's main, or a benchmark that runs a node the way the binary does
// (it changes process-wide settings). It returns what it applied and a
// function that puts back the settings in force before.
func TuneRuntime(gcPercent int, log *slog.Logger) (RuntimeTuning, func()) {
	prevGC, prevLimit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(prevGC)
	restore := func() {
		debug.SetGCPercent(prevGC)
		debug.SetMemoryLimit(prevLimit)
	}
	var t RuntimeTuning
	if os.Getenv("GOGC") != "" {
		t.GCPercent, t.GCPercentFrom = prevGC, "GOGC"
	} else {
		debug.SetGCPercent(gcPercent)
		t.GCPercent, t.GCPercentFrom = gcPercent, "flag"
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		t.MemoryLimit, t.MemoryLimitFrom = prevLimit, "GOMEMLIMIT"
	} else if limit, ok := cgroupMemoryLimit(); ok {
		t.MemoryLimit, t.MemoryLimitFrom = limit/10*9, "cgroup"
		debug.SetMemoryLimit(t.MemoryLimit)
	}
	if log != nil {
		log.Info("runtime tuned", "gc_percent", t.GCPercent, "gc_percent_from", t.GCPercentFrom,
			"memory_limit_bytes", t.MemoryLimit, "memory_limit_from", t.MemoryLimitFrom)
	}
	return t, restore
}

// cgroupMemoryLimit reads the memory limit of the process's cgroup (v2,
// then v1); ok is false when there is none.
func cgroupMemoryLimit() (int64, bool) {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		return parseMemoryLimit(string(b))
	}
	return 0, false
}

// unlimitedMemory is the value cgroup v1 reports for "no limit" (the page
// counter's maximum rounded to pages); anything this large is no limit.
const unlimitedMemory = 1 << 62

// parseMemoryLimit reads a cgroup memory limit file's content: a byte
// count, or "max" (v2) or a huge number (v1) for none.
func parseMemoryLimit(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || s == "max" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n >= unlimitedMemory {
		return 0, false
	}
	return n, true
}
