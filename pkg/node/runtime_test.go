package node

import (
	"runtime/debug"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"max\n", 0, false},
		{"536870912\n", 536870912, true},
		{"9223372036854771712\n", 0, false}, // cgroup v1 "unlimited"
		{"", 0, false},
		{"-1", 0, false},
		{"12x", 0, false},
	} {
		got, ok := parseMemoryLimit(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestTuneRuntime: the flag sets the collector target unless GOGC does,
// and GOMEMLIMIT is left alone. Not parallel: process-wide settings.
func TestTuneRuntime(t *testing.T) {
	before := debug.SetGCPercent(100)
	beforeLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(before)
		debug.SetMemoryLimit(beforeLimit)
	})

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "1GiB")
	got, _ := TuneRuntime(250, nil)
	if got.GCPercent != 250 || got.GCPercentFrom != "flag" {
		t.Fatalf("with GOGC unset: %+v, want 250 from the flag", got)
	}
	if now := debug.SetGCPercent(250); now != 250 {
		t.Fatalf("collector target is %d, want 250", now)
	}
	if got.MemoryLimitFrom != "GOMEMLIMIT" {
		t.Fatalf("with GOMEMLIMIT set the limit came from %q", got.MemoryLimitFrom)
	}

	debug.SetGCPercent(150) // as if the runtime had read GOGC=150
	t.Setenv("GOGC", "150")
	got, restore := TuneRuntime(400, nil)
	if got.GCPercent != 150 || got.GCPercentFrom != "GOGC" {
		t.Fatalf("with GOGC=150: %+v, want 150 from GOGC", got)
	}
	if now := debug.SetGCPercent(150); now != 150 {
		t.Fatalf("TuneRuntime overrode GOGC: target %d", now)
	}
	debug.SetGCPercent(300)
	restore()
	if now := debug.SetGCPercent(150); now != 150 {
		t.Fatalf("restore left the collector target at %d, want the 150 in force before", now)
	}
}
