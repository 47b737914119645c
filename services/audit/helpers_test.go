package audit

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
)

// discard is a logger for tests.
func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// clock is a settable fake wall clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testConfig is a config over a fresh data directory.
func testConfig(t testing.TB) Config {
	return Config{Node: "n1", DataDir: t.TempDir(), ReconnectMin: time.Millisecond, ReconnectMax: 20 * time.Millisecond}
}

// open starts a service on cfg and closes it when the test ends (unless
// the test closed it already).
func open(t testing.TB, cfg Config, deps Deps) *Service {
	t.Helper()
	if deps.Logger == nil {
		deps.Logger = discard()
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// logPath is the log file of cfg.
func logPath(cfg Config) string { return filepath.Join(cfg.DataDir, dirName, logFileName) }

// readLines returns the log's lines, '\n' included.
func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

// writeLines replaces the log's content in place (same inode, so a running
// service sees it).
func writeLines(t testing.TB, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

// parseAll parses every line.
func parseAll(t testing.TB, lines [][]byte) []*auditlog.Entry {
	t.Helper()
	out := make([]*auditlog.Entry, len(lines))
	for i, l := range lines {
		e, err := auditlog.ParseLine(l)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		out[i] = e
	}
	return out
}

// reseal rechains entries from the first one on, as a forger who
// recomputes every hash would, and returns their lines.
func reseal(entries []*auditlog.Entry) [][]byte {
	prev := auditlog.GenesisHash
	var out [][]byte
	for _, e := range entries {
		e.PrevChainHash = prev
		auditlog.Seal(e, nil)
		prev = e.ChainHash
		out = append(out, auditlog.AppendLine(nil, e))
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
}
