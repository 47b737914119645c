package audit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
)

const (
	// logFileName is the log under the service's folder.
	logFileName = "audit.jsonl"
	// indexEvery: the store remembers the byte offset of every 64th entry,
	// so Read seeks near from_seq and parses at most 63 lines it skips.
	indexEvery = 64
	// maxBatchEntries bounds one group commit.
	maxBatchEntries = 8192
)

// logFile is what the store needs of the open log; *os.File implements it.
// Tests substitute a file that fails on demand.
type logFile interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	Close() error
}

// pendingEntry is an entry before the sequencer numbers, stamps and chains
// it.
type pendingEntry struct {
	Kind    string
	Payload map[string]any
	Source  auditlog.Source
}

// commitReq is one caller's entries waiting for a group commit.
type commitReq struct {
	items []pendingEntry
	res   chan commitResult
	// chain, when set, is shared by the requests of one AppendStream: the
	// store sets it when one of them fails, and refuses the ones queued
	// after it, so a stream's recorded entries are always a prefix of what
	// it sent.
	chain *atomic.Bool
}

// commitResult answers a commitReq, or (lead) tells its caller to run the
// next group commit.
type commitResult struct {
	entries []auditlog.Entry
	err     error
	lead    bool
}

// openReport is what opening the log found.
type openReport struct {
	// Entries verified and loaded.
	Entries uint64
	// TornBytes were cut off the end: a last line whose write never
	// completed.
	TornBytes int64
	// Corrupt is set when the log failed verification; the store then
	// refuses appends and proofs.
	Corrupt *auditlog.VerifyError
	// Took is how long opening took.
	Took time.Duration
}

// store is the log file and what is derived from it: the chain head, the
// Merkle tree's stored hashes, a sparse offset index and the source
// high-water marks. Appends go through a group commit: callers queue their
// entries, one of them (the leader) sequences everything queued, writes it
// with one write and one fdatasync, and answers every caller; callers that
// queue meanwhile form the next batch, whose leader is handed the role.
type store struct {
	path          string
	f             logFile
	sync          func() error
	log           *slog.Logger
	now           func() time.Time
	verifyWorkers int

	qmu     sync.Mutex
	queue   []*commitReq
	leading bool
	closed  bool
	idle    *sync.Cond // on qmu: broadcast when leading turns false

	// Written only by the current leader, under mu; read under mu.RLock.
	mu      sync.RWMutex
	size    uint64
	end     int64
	head    auditlog.Hash
	lastTs  int64
	hashes  []tlog.Hash
	index   []int64
	hwm     map[string]uint64
	failed  error
	corrupt *auditlog.VerifyError

	// The leader's scratch space.
	buf     []byte
	scratch []byte

	verifySem chan struct{}

	appended atomic.Uint64
	batches  atomic.Uint64
	maxBatch atomic.Uint64
	report   openReport
}

// storeOptions are the store's seams and tuning.
type storeOptions struct {
	log           *slog.Logger
	now           func() time.Time
	verifyWorkers int
	// wrap, in tests, substitutes the file and its sync.
	wrap func(f *os.File) (logFile, func() error)
}

// openStore opens (creating if needed) the log in dir, cuts a torn last
// line, and verifies the log while rebuilding what is derived from it. A
// log that fails verification opens in a corrupt state: Read and Verify
// work, appends and proofs are refused.
func openStore(ctx context.Context, dir string, o storeOptions) (*store, error) {
	start := time.Now()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	path := filepath.Join(dir, logFileName)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		if err := syncDir(dir); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("open audit log: %w", err)
		}
	}
	s := &store{
		path:          path,
		f:             f,
		sync:          func() error { return datasync(f) },
		log:           o.log,
		now:           o.now,
		verifyWorkers: o.verifyWorkers,
		hwm:           map[string]uint64{},
		verifySem:     make(chan struct{}, 1),
	}
	if o.wrap != nil {
		s.f, s.sync = o.wrap(f)
	}
	s.idle = sync.NewCond(&s.qmu)
	if err := s.load(ctx); err != nil {
		_ = f.Close()
		return nil, err
	}
	s.report.Took = time.Since(start)
	return s, nil
}

// load cuts a torn tail and scans the log.
func (s *store) load(ctx context.Context) error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	end, err := auditlog.ValidEnd(s.f, st.Size())
	if err != nil {
		return fmt.Errorf("open audit log %s: %w", s.path, err)
	}
	if torn := st.Size() - end; torn > 0 {
		s.log.WarnContext(ctx, "audit log: cutting a torn last line (a write that never completed and was never acknowledged)",
			"path", s.path, "offset", end, "bytes", torn)
		if err := s.f.Truncate(end); err != nil {
			return fmt.Errorf("cut torn tail of %s: %w", s.path, err)
		}
		if err := s.sync(); err != nil {
			return fmt.Errorf("cut torn tail of %s: %w", s.path, err)
		}
		s.report.TornBytes = torn
	}
	res, err := auditlog.Scan(ctx, s.f, end, auditlog.ScanOptions{Workers: s.verifyWorkers, Visit: s.loadEntry})
	var ve *auditlog.VerifyError
	switch {
	case errors.As(err, &ve):
		s.corrupt = ve
		s.log.ErrorContext(ctx, "audit log failed verification; appends and proofs are refused until it is repaired",
			"path", s.path, "reason", ve.Reason, "seq", ve.Seq, "offset", ve.Offset, "detail", ve.Detail)
	case err != nil:
		return fmt.Errorf("load audit log %s: %w", s.path, err)
	}
	s.size, s.head, s.lastTs = res.Size, res.Head, res.LastTimestampMs
	// Read may look past the verified prefix of a corrupt log, to show it.
	s.end = end
	s.report.Entries, s.report.Corrupt = res.Size, s.corrupt
	return nil
}

// loadEntry adds one verified entry to the derived state.
func (s *store) loadEntry(li auditlog.LineInfo) error {
	n := int64(li.Seq - 1)
	hs, err := tlog.StoredHashesForRecordHash(n, li.Leaf, s.reader(s.hashes))
	if err != nil {
		return fmt.Errorf("rebuild tree at seq %d: %w", li.Seq, err)
	}
	s.hashes = append(s.hashes, hs...)
	if n%indexEvery == 0 {
		s.index = append(s.index, li.Offset)
	}
	if key := streamKey(li.Source.Topic); key != "" && li.Source.StreamSequence > s.hwm[key] {
		s.hwm[key] = li.Source.StreamSequence
	}
	return nil
}

// reader reads stored hashes from hashes (and, during a commit, staged).
func (s *store) reader(hashes []tlog.Hash, staged ...[]tlog.Hash) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			switch {
			case x < int64(len(hashes)):
				out[i] = hashes[x]
			case len(staged) > 0 && x-int64(len(hashes)) < int64(len(staged[0])):
				out[i] = staged[0][x-int64(len(hashes))]
			default:
				return nil, fmt.Errorf("stored hash %d not in the tree", x)
			}
		}
		return out, nil
	})
}

// append sequences, writes and fsyncs items as consecutive entries, and
// returns them once they are durable. Concurrent calls share one write and
// one fdatasync. Items of one call are all-or-nothing and adjacent.
func (s *store) append(items []pendingEntry) ([]auditlog.Entry, error) {
	req, lead, err := s.enqueue(items, nil)
	if err != nil {
		return nil, err
	}
	return s.wait(req, lead)
}

// enqueue queues items for a group commit, in the order of the calls, and
// returns the request to wait on and whether its caller must lead the next
// commit. A queued request must be waited on (wait) even if its caller has
// lost interest: the leader role may be handed to it. chain is the stream's
// failure flag (nil outside AppendStream).
func (s *store) enqueue(items []pendingEntry, chain *atomic.Bool) (*commitReq, bool, error) {
	req := &commitReq{items: items, res: make(chan commitResult, 1), chain: chain}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.closed {
		return nil, false, newError(errLogClosed, "the audit log is closed")
	}
	s.queue = append(s.queue, req)
	lead := !s.leading
	s.leading = true
	return req, lead, nil
}

// wait returns the entries of a queued request once they are durable,
// running the group commits whose leader role is handed to it meanwhile
// (lead: enqueue made its caller the leader).
func (s *store) wait(req *commitReq, lead bool) ([]auditlog.Entry, error) {
	if lead {
		s.lead()
	}
	for {
		r := <-req.res
		if r.lead {
			s.lead()
			continue
		}
		return r.entries, r.err
	}
}

// lead runs one group commit of what is queued, then hands the role to the
// first caller still queued, or gives it up.
func (s *store) lead() {
	s.qmu.Lock()
	n, entries := 0, 0
	for n < len(s.queue) && (n == 0 || entries+len(s.queue[n].items) <= maxBatchEntries) {
		entries += len(s.queue[n].items)
		n++
	}
	batch := s.queue[:n:n]
	s.queue = s.queue[n:]
	s.qmu.Unlock()

	s.commit(batch, entries)

	s.qmu.Lock()
	if len(s.queue) > 0 {
		s.queue[0].res <- commitResult{lead: true}
	} else {
		s.leading = false
		s.idle.Broadcast()
	}
	s.qmu.Unlock()
}

// commit writes one batch. Only the leader runs it.
func (s *store) commit(batch []*commitReq, entries int) {
	// Requests of a stream that already failed are refused, not written.
	live := batch[:0:0]
	for _, r := range batch {
		if r.chain != nil && r.chain.Load() {
			entries -= len(r.items)
			r.res <- commitResult{err: newError(errStreamAborted, "an earlier request of this stream failed; this one was not recorded")}
			continue
		}
		live = append(live, r)
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	fail := func(err error) {
		for _, r := range batch {
			if r.chain != nil {
				r.chain.Store(true)
			}
			r.res <- commitResult{err: err}
		}
	}
	s.mu.RLock()
	failed, corrupt := s.failed, s.corrupt
	s.mu.RUnlock()
	switch {
	case corrupt != nil:
		fail(corruptError(corrupt))
		return
	case failed != nil:
		fail(failed)
		return
	}

	now := s.now().UnixMilli()
	seq, prev, ts, off := s.size, s.head, s.lastTs, s.end
	buf := s.buf[:0]
	leaves := make([]tlog.Hash, 0, entries)
	var index []int64
	out := make([][]auditlog.Entry, len(batch))
	for i, r := range batch {
		out[i] = make([]auditlog.Entry, len(r.items))
		for j, it := range r.items {
			seq++
			e := &out[i][j]
			*e = auditlog.Entry{
				Seq:            seq,
				TimestampMs:    max(now, ts),
				RawTimestampMs: now,
				Kind:           it.Kind,
				Payload:        it.Payload,
				Source:         it.Source,
				PrevChainHash:  prev,
			}
			var leaf tlog.Hash
			leaf, s.scratch = auditlog.Seal(e, s.scratch)
			leaves = append(leaves, leaf)
			if (seq-1)%indexEvery == 0 {
				index = append(index, off+int64(len(buf)))
			}
			buf = auditlog.AppendLine(buf, e)
			prev, ts = e.ChainHash, e.TimestampMs
		}
	}
	if cap(buf) <= 4<<20 {
		s.buf = buf // keep a moderate buffer for the next batch
	}

	if _, err := s.f.WriteAt(buf, off); err != nil {
		fail(s.undo(off, fmt.Errorf("write %d entries to %s: %w", entries, s.path, err), false))
		return
	}
	if err := s.sync(); err != nil {
		fail(s.undo(off, fmt.Errorf("fdatasync %s: %w", s.path, err), true))
		return
	}

	// Durable: extend the tree and publish the new state.
	base := int64(s.size)
	var staged []tlog.Hash
	for i, leaf := range leaves {
		hs, err := tlog.StoredHashesForRecordHash(base+int64(i), leaf, s.reader(s.hashes, staged))
		if err != nil {
			// Unreachable: the reader holds every hash tlog asks for.
			panic(fmt.Sprintf("audit: extend tree: %v", err))
		}
		staged = append(staged, hs...)
	}
	s.mu.Lock()
	s.size, s.end, s.head, s.lastTs = seq, off+int64(len(buf)), prev, ts
	s.hashes = append(s.hashes, staged...)
	s.index = append(s.index, index...)
	for _, r := range out {
		for _, e := range r {
			if key := streamKey(e.Source.Topic); key != "" && e.Source.StreamSequence > s.hwm[key] {
				s.hwm[key] = e.Source.StreamSequence
			}
		}
	}
	s.mu.Unlock()

	s.appended.Add(uint64(entries))
	s.batches.Add(1)
	for {
		m := s.maxBatch.Load()
		if uint64(entries) <= m || s.maxBatch.CompareAndSwap(m, uint64(entries)) {
			break
		}
	}
	for i, r := range batch {
		r.res <- commitResult{entries: out[i]}
	}
}

// undo cuts a failed batch off the file so no partial entry stays behind.
// After a failed fsync, or when the cut itself fails, the store stops
// accepting appends: the state of the file is no longer known, and only
// reopening (which re-verifies it) may continue the chain.
func (s *store) undo(off int64, cause error, sticky bool) error {
	terr := s.f.Truncate(off)
	if terr == nil && sticky {
		terr = s.sync()
	}
	if terr != nil || sticky {
		failed := newError(errLogFailed, fmt.Sprintf("the audit log stopped accepting appends after an I/O error; restart the service to reopen it: %v", errors.Join(cause, terr)))
		s.mu.Lock()
		s.failed = failed
		s.mu.Unlock()
		s.log.Error("audit log failed; appends are refused until the service restarts", "path", s.path, "error", cause, "truncate_error", terr)
		return failed
	}
	s.log.Warn("audit log write failed; the batch was cut off and refused", "path", s.path, "error", cause)
	return newError(errWriteFailed, fmt.Sprintf("the audit log could not be written; nothing was appended: %v", cause))
}

// highWater is the highest stream sequence recorded from a stream.
func (s *store) highWater(key string) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.hwm[key]
}

// state is a consistent snapshot of the committed log.
type state struct {
	size    uint64
	end     int64
	head    auditlog.Hash
	hashes  []tlog.Hash
	index   []int64
	corrupt *auditlog.VerifyError
	failed  error
}

func (s *store) snapshot() state {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// hashes and index only ever grow; the snapshot's slices are never
	// written below their length again.
	return state{size: s.size, end: s.end, head: s.head, hashes: s.hashes, index: s.index, corrupt: s.corrupt, failed: s.failed}
}

// leaf returns the leaf hash of seq (1-based) from a snapshot.
func (st state) leaf(seq uint64) tlog.Hash {
	return st.hashes[tlog.StoredHashIndex(0, int64(seq-1))]
}

// read calls fn with each entry from seq from (0 is 1) on, at most limit
// of them (0: all), up to the end of the log as it was when read began.
func (s *store) read(ctx context.Context, from, limit uint64, fn func(*auditlog.Entry) error) error {
	st := s.snapshot()
	if from == 0 {
		from = 1
	}
	if st.corrupt == nil && from > st.size {
		return nil
	}
	// Start at the indexed entry at or before from (index[k] is the offset
	// of seq k*indexEvery+1) and skip forward.
	pos, off := uint64(1), int64(0)
	if n := uint64(len(st.index)); n > 0 {
		k := min((from-1)/indexEvery, n-1)
		pos, off = k*indexEvery+1, st.index[k]
	}
	br := bufio.NewReaderSize(io.NewSectionReader(s.f, off, st.end-off), 64<<10)
	var long []byte
	sent := uint64(0)
	for ; off < st.end; pos++ {
		if pos%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		line, err := readLine(br, &long)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return newError(errLogClosed, "the audit log is closed")
			}
			return fmt.Errorf("read audit log at %d: %w", off, err)
		}
		off += int64(len(line))
		if pos < from {
			continue
		}
		e, err := auditlog.ParseLine(line)
		if err != nil {
			return newError(errEntryMalformed, fmt.Sprintf("entry %d is malformed: %v", pos, err), "seq", u64(pos))
		}
		if err := fn(e); err != nil {
			return err
		}
		if sent++; limit > 0 && sent >= limit {
			return nil
		}
	}
	return nil
}

// readLine returns the next line, '\n' included; it is valid until the
// next call. Lines longer than the reader's buffer are gathered in *long.
func readLine(br *bufio.Reader, long *[]byte) ([]byte, error) {
	part, err := br.ReadSlice('\n')
	if err == nil {
		return part, nil
	}
	*long = append((*long)[:0], part...)
	for errors.Is(err, bufio.ErrBufferFull) {
		part, err = br.ReadSlice('\n')
		*long = append(*long, part...)
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return *long, nil
}

// verify re-reads and re-hashes the whole log. Beyond the chain, it
// checks that every entry is the one this store committed (its leaf is
// the tree's) and that none is missing, so a rewrite of the file behind the
// service's back is caught even when the rewriter recomputed every hash.
// It returns the verified head and the Merkle root of the log.
func (s *store) verify(ctx context.Context) (auditlog.Result, tlog.Hash, error) {
	select {
	case s.verifySem <- struct{}{}:
		defer func() { <-s.verifySem }()
	case <-ctx.Done():
		return auditlog.Result{}, tlog.Hash{}, ctx.Err()
	}
	st := s.snapshot()
	fi, err := s.f.Stat()
	if err != nil {
		return auditlog.Result{}, tlog.Hash{}, fmt.Errorf("verify: %w", err)
	}
	end := st.end
	if fi.Size() < end {
		if end, err = auditlog.ValidEnd(s.f, fi.Size()); err != nil {
			return auditlog.Result{}, tlog.Hash{}, fmt.Errorf("verify: %w", err)
		}
	}
	var tree auditlog.TreeBuilder
	res, err := auditlog.Scan(ctx, s.f, end, auditlog.ScanOptions{
		Workers: s.verifyWorkers,
		Visit: func(li auditlog.LineInfo) error {
			if st.corrupt == nil && li.Seq <= st.size && st.leaf(li.Seq) != li.Leaf {
				return &auditlog.VerifyError{
					Reason: auditlog.ReasonChainBroken, Seq: li.Seq, Offset: li.Offset,
					Detail: "entry differs from the one the recorder committed (the file was rewritten)",
				}
			}
			tree.Add(li.Leaf)
			return nil
		},
	})
	if err != nil {
		return res, tlog.Hash{}, err
	}
	if st.corrupt != nil {
		return res, tlog.Hash{}, corruptError(st.corrupt)
	}
	if res.Size < st.size {
		return res, tlog.Hash{}, &auditlog.VerifyError{
			Reason: auditlog.ReasonChainBroken, Seq: res.Size + 1, Offset: res.End,
			Detail: fmt.Sprintf("the log file ends after %d entries but %d were committed (truncated on disk)", res.Size, st.size),
		}
	}
	return res, tree.Root(), nil
}

// treeHead returns the current size and Merkle root.
func (s *store) treeHead() (uint64, tlog.Hash, error) {
	st := s.snapshot()
	if st.corrupt != nil {
		return 0, tlog.Hash{}, corruptError(st.corrupt)
	}
	root, err := tlog.TreeHash(int64(st.size), s.reader(st.hashes))
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("tree hash: %w", err)
	}
	return st.size, root, nil
}

// inclusionProof proves entry seq is in the tree of size (0: the current
// size).
func (s *store) inclusionProof(seq, size uint64) (proof []tlog.Hash, leaf, root tlog.Hash, treeSize uint64, err error) {
	st := s.snapshot()
	if st.corrupt != nil {
		return nil, leaf, root, 0, corruptError(st.corrupt)
	}
	if size == 0 {
		size = st.size
	}
	if size > st.size {
		return nil, leaf, root, 0, newError(errSizeBeyondLog,
			fmt.Sprintf("tree_size %d is beyond the log's %d entries", size, st.size), "tree_size", u64(size), "size", u64(st.size))
	}
	if seq == 0 || seq > size {
		return nil, leaf, root, 0, newError(errSeqOutOfRange,
			fmt.Sprintf("seq %d is not in a tree of %d entries (seqs start at 1)", seq, size), "seq", u64(seq), "tree_size", u64(size))
	}
	r := s.reader(st.hashes)
	p, err := tlog.ProveRecord(int64(size), int64(seq-1), r)
	if err != nil {
		return nil, leaf, root, 0, fmt.Errorf("prove seq %d in %d: %w", seq, size, err)
	}
	if root, err = tlog.TreeHash(int64(size), r); err != nil {
		return nil, leaf, root, 0, fmt.Errorf("tree hash %d: %w", size, err)
	}
	return p, st.leaf(seq), root, size, nil
}

// consistencyProof proves the tree of oldSize is a prefix of the tree of
// newSize (0: the current size).
func (s *store) consistencyProof(oldSize, newSize uint64) (proof []tlog.Hash, oldRoot, newRoot tlog.Hash, size uint64, err error) {
	st := s.snapshot()
	if st.corrupt != nil {
		return nil, oldRoot, newRoot, 0, corruptError(st.corrupt)
	}
	if newSize == 0 {
		newSize = st.size
	}
	if newSize > st.size {
		return nil, oldRoot, newRoot, 0, newError(errSizeBeyondLog,
			fmt.Sprintf("new_size %d is beyond the log's %d entries", newSize, st.size), "new_size", u64(newSize), "size", u64(st.size))
	}
	if oldSize > newSize {
		return nil, oldRoot, newRoot, 0, newError(errSizeInvalid,
			fmt.Sprintf("old_size %d is larger than new_size %d", oldSize, newSize), "old_size", u64(oldSize), "new_size", u64(newSize))
	}
	r := s.reader(st.hashes)
	if oldRoot, err = tlog.TreeHash(int64(oldSize), r); err != nil {
		return nil, oldRoot, newRoot, 0, fmt.Errorf("tree hash %d: %w", oldSize, err)
	}
	if newRoot, err = tlog.TreeHash(int64(newSize), r); err != nil {
		return nil, oldRoot, newRoot, 0, fmt.Errorf("tree hash %d: %w", newSize, err)
	}
	if oldSize == 0 {
		// Every tree extends the empty one; the proof is empty.
		return []tlog.Hash{}, oldRoot, newRoot, newSize, nil
	}
	p, err := tlog.ProveTree(int64(newSize), int64(oldSize), r)
	if err != nil {
		return nil, oldRoot, newRoot, 0, fmt.Errorf("prove %d in %d: %w", oldSize, newSize, err)
	}
	return p, oldRoot, newRoot, newSize, nil
}

// close waits for the commit in progress and the queued ones, then closes
// the file. Appends after close fail with LOG_CLOSED.
func (s *store) close() error {
	s.qmu.Lock()
	if s.closed {
		s.qmu.Unlock()
		return nil
	}
	s.closed = true
	for s.leading {
		s.idle.Wait()
	}
	s.qmu.Unlock()
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("close audit log: %w", err)
	}
	return nil
}

// syncDir makes a new directory entry in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
