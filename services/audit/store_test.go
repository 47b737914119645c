package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
)

// faultyFile fails writes and syncs on demand.
type faultyFile struct {
	*os.File
	mu        sync.Mutex
	failWrite bool // write half the bytes, then fail
	failSync  bool
	// syncHook, when set, runs at the start of every sync.
	syncHook func()
	// writeHook, when set, runs at the start of every write.
	writeHook func()
}

func (f *faultyFile) WriteAt(b []byte, off int64) (int, error) {
	f.mu.Lock()
	fail, hook := f.failWrite, f.writeHook
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	if fail {
		n, _ := f.File.WriteAt(b[:len(b)/2], off)
		return n, syscall.ENOSPC
	}
	return f.File.WriteAt(b, off)
}

func (f *faultyFile) sync() error {
	f.mu.Lock()
	hook, fail := f.syncHook, f.failSync
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	if fail {
		return syscall.EIO
	}
	return datasync(f.File)
}

func (f *faultyFile) set(fn func(f *faultyFile)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// openFaulty opens a service whose log file is a faultyFile.
func openFaulty(t *testing.T, cfg Config, deps Deps) (*Service, *faultyFile) {
	t.Helper()
	if err := cfg.withDefaults(); err != nil {
		t.Fatal(err)
	}
	if deps.Logger == nil {
		deps.Logger = discard()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	var ff *faultyFile
	s, err := newService(cfg, deps, storeOptions{wrap: func(f *os.File) (logFile, func() error) {
		ff = &faultyFile{File: f}
		return ff, ff.sync
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, ff
}

func appendOne(t testing.TB, s *Service, kind string, payload map[string]any) auditlog.Entry {
	t.Helper()
	es, err := s.store.append([]pendingEntry{{Kind: kind, Payload: payload}})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return es[0]
}

func mustVerify(t testing.TB, s *Service) auditlog.Result {
	t.Helper()
	res, _, err := s.store.verify(context.Background())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return res
}

// TestGroupCommit holds the first commit in its fsync until every other
// appender has queued, and checks they all share the second commit.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	const n = 50
	s, ff := openFaulty(t, testConfig(t), Deps{})
	release := make(chan struct{})
	var once sync.Once
	ff.set(func(f *faultyFile) {
		f.syncHook = func() { once.Do(func() { <-release }) }
	})
	var wg sync.WaitGroup
	seqs := make([]uint64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			es, err := s.store.append([]pendingEntry{{Kind: auditlog.KindRefusal, Payload: map[string]any{"i": float64(i)}}})
			if err == nil {
				seqs[i] = es[0].Seq
			}
			errs[i] = err
		}()
	}
	waitFor(t, "every appender to queue behind the first commit", 10*time.Second, func() bool {
		s.store.qmu.Lock()
		defer s.store.qmu.Unlock()
		return len(s.store.queue) == n-1
	})
	close(release)
	wg.Wait()
	seen := map[uint64]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("append %d: %v", i, errs[i])
		}
		if seqs[i] < 1 || seqs[i] > n || seen[seqs[i]] {
			t.Fatalf("append %d got seq %d (seen before: %v)", i, seqs[i], seen[seqs[i]])
		}
		seen[seqs[i]] = true
	}
	st := s.Stats()
	if st.Batches != 2 || st.MaxBatch != n-1 || st.Appended != n {
		t.Errorf("commits: batches %d, max batch %d, appended %d; want 2, %d, %d", st.Batches, st.MaxBatch, st.Appended, n-1, n)
	}
	if res := mustVerify(t, s); res.Size != n {
		t.Errorf("verified %d entries, want %d", res.Size, n)
	}
}

// TestConcurrentAppendsAndReads runs appenders, readers, proofs and
// verifications together (for the race detector) and checks the result.
func TestConcurrentAppendsAndReads(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t), Deps{})
	ctx := context.Background()
	const writers, each = 16, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.store.append([]pendingEntry{{Kind: auditlog.KindAccessDenied, Payload: map[string]any{"w": float64(w), "i": float64(i)}}}); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			size, root, err := s.store.treeHead()
			if err != nil {
				t.Errorf("tree head: %v", err)
				return
			}
			if size > 0 {
				proof, leaf, r2, _, err := s.store.inclusionProof(size, size)
				if err != nil || r2 != root {
					t.Errorf("inclusion proof: %v", err)
					return
				}
				if err := auditlog.CheckInclusion(proof, size, root, size, leaf); err != nil {
					t.Errorf("check inclusion: %v", err)
					return
				}
			}
			n := uint64(0)
			if err := s.store.read(ctx, 1, 0, func(*auditlog.Entry) error { n++; return nil }); err != nil || n < size {
				t.Errorf("read %d entries (err %v), want at least %d", n, err, size)
				return
			}
			if _, _, err := s.store.verify(ctx); err != nil {
				t.Errorf("verify while appending: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	readers.Wait()
	if res := mustVerify(t, s); res.Size != writers*each {
		t.Errorf("verified %d entries, want %d", res.Size, writers*each)
	}
}

func TestTimestampsNeverGoBackward(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := open(t, testConfig(t), Deps{Now: clk.Now})
	start := clk.Now().UnixMilli()
	steps := []struct {
		name    string
		move    time.Duration
		wantTs  int64
		wantRaw int64
	}{
		{"first", 0, start, start},
		{"clock steps back", -10 * time.Second, start, start - 10_000},
		{"still behind", 5 * time.Second, start, start - 5_000},
		{"caught up", 6 * time.Second, start + 1_000, start + 1_000},
		{"same millisecond", 0, start + 1_000, start + 1_000},
	}
	for _, st := range steps {
		clk.Advance(st.move)
		e := appendOne(t, s, auditlog.KindGovernorOverride, nil)
		if e.TimestampMs != st.wantTs || e.RawTimestampMs != st.wantRaw {
			t.Errorf("%s: timestamp %d raw %d, want %d %d", st.name, e.TimestampMs, e.RawTimestampMs, st.wantTs, st.wantRaw)
		}
	}
	mustVerify(t, s)
}

func TestFailedWriteLeavesNoPartialEntry(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s, ff := openFaulty(t, cfg, Deps{})
	for range 3 {
		appendOne(t, s, auditlog.KindRefusal, map[string]any{"ok": true})
	}
	before, err := os.ReadFile(logPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	ff.set(func(f *faultyFile) { f.failWrite = true })
	_, err = s.store.append([]pendingEntry{{Kind: auditlog.KindRefusal}, {Kind: auditlog.KindRefusal}})
	if !errors.Is(err, errWriteFailed) {
		t.Fatalf("append with a failing write: %v, want errWriteFailed", err)
	}
	after, err := os.ReadFile(logPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("the failed write left %d bytes behind", len(after)-len(before))
	}
	ff.set(func(f *faultyFile) { f.failWrite = false })
	if e := appendOne(t, s, auditlog.KindRefusal, nil); e.Seq != 4 {
		t.Errorf("next append got seq %d, want 4", e.Seq)
	}
	if res := mustVerify(t, s); res.Size != 4 {
		t.Errorf("verified %d, want 4", res.Size)
	}
}

func TestFailedSyncStopsAppendsUntilReopen(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s, ff := openFaulty(t, cfg, Deps{})
	appendOne(t, s, auditlog.KindRefusal, nil)
	ff.set(func(f *faultyFile) { f.failSync = true })
	if _, err := s.store.append([]pendingEntry{{Kind: auditlog.KindRefusal}}); !errors.Is(err, errLogFailed) {
		t.Fatalf("append with a failing fsync: %v, want errLogFailed", err)
	}
	ff.set(func(f *faultyFile) { f.failSync = false })
	if _, err := s.store.append([]pendingEntry{{Kind: auditlog.KindRefusal}}); !errors.Is(err, errLogFailed) {
		t.Fatalf("append after a failed fsync: %v, want errLogFailed (sticky)", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, cfg, Deps{})
	if got := s2.Stats().Entries; got != 1 {
		t.Fatalf("reopened log has %d entries, want 1 (the failed one cut off)", got)
	}
	if e := appendOne(t, s2, auditlog.KindRefusal, nil); e.Seq != 2 {
		t.Errorf("append after reopen got seq %d, want 2", e.Seq)
	}
}

// TestTornLastLine simulates a crash in the middle of writing a batch: the
// file ends in part of a line. Opening cuts it, reports it, and the chain
// continues from the last whole entry.
func TestTornLastLine(t *testing.T) {
	t.Parallel()
	for _, tail := range []struct {
		name  string
		bytes func(next []byte) []byte
	}{
		{"half a line", func(next []byte) []byte { return next[:len(next)/2] }},
		{"a whole line but its newline", func(next []byte) []byte { return next[:len(next)-1] }},
		{"a zero-filled block", func([]byte) []byte { return make([]byte, 4096) }},
		{"one byte", func(next []byte) []byte { return next[:1] }},
	} {
		t.Run(tail.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			s := open(t, cfg, Deps{})
			var last auditlog.Entry
			for range 10 {
				last = appendOne(t, s, auditlog.KindRefusal, map[string]any{"x": "y"})
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			whole, err := os.ReadFile(logPath(cfg))
			if err != nil {
				t.Fatal(err)
			}
			next := auditlog.Entry{Seq: 11, Kind: auditlog.KindRefusal, PrevChainHash: last.ChainHash, TimestampMs: last.TimestampMs}
			auditlog.Seal(&next, nil)
			torn := tail.bytes(auditlog.AppendLine(nil, &next))
			if err := os.WriteFile(logPath(cfg), append(bytes.Clone(whole), torn...), 0o600); err != nil {
				t.Fatal(err)
			}

			s2 := open(t, cfg, Deps{})
			st := s2.Stats()
			if st.TornBytesCut != int64(len(torn)) || st.Entries != 10 || st.Head != last.ChainHash.String() || st.Corrupt != nil {
				t.Fatalf("after reopen: torn %d entries %d head %s corrupt %v; want %d 10 %s nil",
					st.TornBytesCut, st.Entries, st.Head, st.Corrupt, len(torn), last.ChainHash)
			}
			got, err := os.ReadFile(logPath(cfg))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, whole) {
				t.Fatalf("the torn tail was not cut: %d bytes, want %d", len(got), len(whole))
			}
			e := appendOne(t, s2, auditlog.KindRefusal, nil)
			if e.Seq != 11 || e.PrevChainHash != last.ChainHash {
				t.Errorf("the chain did not resume: seq %d prev %s", e.Seq, e.PrevChainHash)
			}
			if res := mustVerify(t, s2); res.Size != 11 {
				t.Errorf("verified %d, want 11", res.Size)
			}
		})
	}
}

// TestReopenRebuildsState checks the tree, head, index and high-water marks
// rebuilt from the file equal what the running service had.
func TestReopenRebuildsState(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.VerifyWorkers = 3
	s := open(t, cfg, Deps{})
	for i := range 150 {
		src := auditlog.Source{Topic: "audit:refusal", StreamSequence: uint64(2 * i), Publisher: "peer:n1"}
		if i%3 == 0 {
			src = auditlog.Source{Topic: "genome/working_set.access_denied", StreamSequence: uint64(i), Publisher: "peer:n1"}
		}
		if _, err := s.store.append([]pendingEntry{{Kind: auditlog.KindRefusal, Payload: map[string]any{"i": float64(i)}, Source: src}}); err != nil {
			t.Fatal(err)
		}
	}
	want := s.store.snapshot()
	wantStats := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, cfg, Deps{})
	got := s2.store.snapshot()
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(state{})); diff != "" {
		t.Errorf("rebuilt state (-running +reopened):\n%s", diff)
	}
	if diff := cmp.Diff(wantStats.HighWater, s2.Stats().HighWater); diff != "" {
		t.Errorf("high-water marks (-running +reopened):\n%s", diff)
	}
	if hw := s2.Stats().HighWater; hw["audit"] != 298 || hw["genome/working_set.access_denied"] != 147 {
		t.Errorf("high-water marks %v", hw)
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t), Deps{})
	const n = 200
	for i := 1; i <= n; i++ {
		appendOne(t, s, auditlog.KindRefusal, map[string]any{"i": float64(i)})
	}
	tests := []struct {
		from, limit uint64
		want        []uint64 // first and last seq, and count
	}{
		{0, 0, []uint64{1, n, n}},
		{1, 1, []uint64{1, 1, 1}},
		{63, 3, []uint64{63, 65, 3}},
		{64, 0, []uint64{64, n, n - 63}},
		{65, 2, []uint64{65, 66, 2}},
		{129, 1, []uint64{129, 129, 1}},
		{193, 0, []uint64{193, n, 8}},
		{n, 10, []uint64{n, n, 1}},
		{n + 1, 0, nil},
		{1 << 62, 0, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("from=%d,limit=%d", tt.from, tt.limit), func(t *testing.T) {
			t.Parallel()
			var got []uint64
			err := s.store.read(context.Background(), tt.from, tt.limit, func(e *auditlog.Entry) error {
				if e.Payload["i"] != float64(e.Seq) {
					return fmt.Errorf("entry %d has payload %v", e.Seq, e.Payload)
				}
				if len(got) > 0 && e.Seq != got[len(got)-1]+1 {
					return fmt.Errorf("seq %d after %d", e.Seq, got[len(got)-1])
				}
				got = append(got, e.Seq)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if len(got) != 0 {
					t.Errorf("read %d entries, want none", len(got))
				}
				return
			}
			if len(got) == 0 || got[0] != tt.want[0] || got[len(got)-1] != tt.want[1] || uint64(len(got)) != tt.want[2] {
				t.Errorf("read %v..., want first %d last %d count %d", got[:min(len(got), 3)], tt.want[0], tt.want[1], tt.want[2])
			}
		})
	}
}

func TestCloseRefusesAppends(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t), Deps{})
	appendOne(t, s, auditlog.KindRefusal, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.append([]pendingEntry{{Kind: auditlog.KindRefusal}}); !errors.Is(err, errLogClosed) {
		t.Errorf("append after close: %v, want errLogClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSecondRecorderOnOneLogIsRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	open(t, cfg, Deps{})
	if s, err := New(cfg, Deps{Logger: discard()}); err == nil {
		_ = s.Close()
		t.Fatal("a second service opened a log that is in use")
	}
}

func TestCorruptLogOpensReadOnly(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s := open(t, cfg, Deps{})
	for i := range 20 {
		appendOne(t, s, auditlog.KindRefusal, map[string]any{"i": float64(i)})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, logPath(cfg))
	lines[11] = bytes.Replace(lines[11], []byte(`"i":11`), []byte(`"i":12`), 1)
	writeLines(t, logPath(cfg), lines)

	s2 := open(t, cfg, Deps{})
	st := s2.Stats()
	if st.Corrupt == nil || st.Corrupt.Reason != auditlog.ReasonChainBroken || st.Corrupt.Seq != 12 {
		t.Fatalf("corrupt = %v, want CHAIN_BROKEN at 12", st.Corrupt)
	}
	if _, err := s2.store.append([]pendingEntry{{Kind: auditlog.KindRefusal}}); !errors.Is(err, errLogCorrupt) {
		t.Errorf("append to a corrupt log: %v, want errLogCorrupt", err)
	}
	if _, _, err := s2.store.treeHead(); !errors.Is(err, errLogCorrupt) {
		t.Errorf("tree head of a corrupt log: %v, want errLogCorrupt", err)
	}
	var ve *auditlog.VerifyError
	if _, _, err := s2.store.verify(context.Background()); !errors.As(err, &ve) || ve.Seq != 12 {
		t.Errorf("verify of a corrupt log: %v, want CHAIN_BROKEN at 12", err)
	}
	var read []uint64
	if err := s2.store.read(context.Background(), 10, 5, func(e *auditlog.Entry) error { read = append(read, e.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{10, 11, 12, 13, 14}, read); diff != "" {
		t.Errorf("read of a corrupt log (-want +got):\n%s", diff)
	}
	// The recorder stays paused rather than extending a broken chain.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s2.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestProofsAgainstTlog(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t), Deps{})
	var leaves []tlog.Hash
	var tree auditlog.TreeBuilder
	var roots []tlog.Hash
	for i := range 40 {
		e := appendOne(t, s, auditlog.KindRefusal, map[string]any{"i": float64(i)})
		leaf := auditlog.LeafHashOf(auditlog.AppendCanonical(nil, &e))
		leaves = append(leaves, leaf)
		tree.Add(leaf)
		roots = append(roots, tree.Root())
	}
	for size := uint64(1); size <= 40; size++ {
		for seq := uint64(1); seq <= size; seq++ {
			proof, leaf, root, gotSize, err := s.store.inclusionProof(seq, size)
			if err != nil {
				t.Fatalf("inclusion %d in %d: %v", seq, size, err)
			}
			if leaf != leaves[seq-1] || root != roots[size-1] || gotSize != size {
				t.Fatalf("inclusion %d in %d: wrong leaf, root or size", seq, size)
			}
			if err := auditlog.CheckInclusion(proof, size, root, seq, leaf); err != nil {
				t.Fatal(err)
			}
		}
		for old := uint64(0); old <= size; old++ {
			proof, oldRoot, newRoot, _, err := s.store.consistencyProof(old, size)
			if err != nil {
				t.Fatalf("consistency %d..%d: %v", old, size, err)
			}
			oldCp := auditlog.Checkpoint{Size: old, Root: oldRoot}
			if old > 0 && oldRoot != roots[old-1] {
				t.Fatalf("old root of %d differs", old)
			}
			if err := auditlog.CheckConsistency(proof, oldCp, auditlog.Checkpoint{Size: size, Root: newRoot}); err != nil {
				t.Fatalf("consistency %d..%d: %v", old, size, err)
			}
		}
	}
}
