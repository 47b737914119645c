package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// Reasons a log fails verification (the ErrorInfo reasons of
// AuditService.Verify and the first word `continuum audit verify` prints).
const (
	// ReasonChainBroken: an entry is malformed, its chainHash is not the
	// hash of its content, or its prevChainHash is not the previous entry's
	// chainHash.
	ReasonChainBroken = "CHAIN_BROKEN"
	// ReasonSequenceGap: an entry's seq is not the previous seq + 1 (an
	// entry was deleted, duplicated or moved).
	ReasonSequenceGap = "SEQUENCE_GAP"
	// ReasonTimestampWentBackward: an entry's timestampMs is below the
	// previous entry's.
	ReasonTimestampWentBackward = "TIMESTAMP_WENT_BACKWARD"
)

// VerifyError is a typed verification failure at one entry.
type VerifyError struct {
	// Reason is one of the Reason constants.
	Reason string
	// Seq is the seq at which the log fails: the entry that should be
	// there (for a gap, the expected seq).
	Seq uint64
	// Expected and Got are the seqs of a SEQUENCE_GAP.
	Expected, Got uint64
	// Offset is the byte offset of the offending line.
	Offset int64
	// Detail says what exactly is wrong, for people.
	Detail string
}

// Error renders "REASON seq=N[ expected=E got=G]: detail", the words the
// CLI prints.
func (e *VerifyError) Error() string {
	s := fmt.Sprintf("%s seq=%d", e.Reason, e.Seq)
	if e.Reason == ReasonSequenceGap {
		s += fmt.Sprintf(" expected=%d got=%d", e.Expected, e.Got)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// LineInfo is what Scan learned about one verified entry.
type LineInfo struct {
	// Offset and Length locate the line, '\n' included.
	Offset, Length int64
	Seq            uint64
	TimestampMs    int64
	ChainHash      Hash
	// Leaf is the entry's RFC 6962 leaf hash.
	Leaf   tlog.Hash
	Source Source
}

// Result is a verified log prefix.
type Result struct {
	// Size is how many entries verified.
	Size uint64
	// End is the byte offset just past the last verified entry.
	End int64
	// Head is the last entry's chainHash (GenesisHash when Size is 0).
	Head Hash
	// LastTimestampMs is the last entry's timestampMs.
	LastTimestampMs int64
}

// ScanOptions tune Scan.
type ScanOptions struct {
	// Workers parse and hash chunks in parallel; zero is GOMAXPROCS.
	Workers int
	// ChunkSize is the byte size of a work unit; zero is DefaultChunkSize.
	ChunkSize int64
	// Visit, when set, is called in log order for every entry that
	// verified. An error it returns ends the scan and is returned.
	Visit func(LineInfo) error
}

// DefaultChunkSize is the byte size of one unit of parallel verification.
const DefaultChunkSize = 1 << 20

// Scan verifies the log held in r[0:end), where end is just past a '\n'
// (see ValidEnd), and returns the verified head. It fails with a
// *VerifyError at the first entry, in log order, that breaks the chain,
// skips or repeats a seq, or moves time backward.
//
// Workers parse and hash chunks of the file in parallel: whether an
// entry's chainHash matches its content depends on that line alone, since
// the line carries its own prevChainHash. What links entries (seq + 1,
// prevChainHash = previous chainHash, timestamps) is then checked in order
// by one goroutine, comparing a few words per entry.
func Scan(ctx context.Context, r io.ReaderAt, end int64, opts ScanOptions) (Result, error) {
	if end <= 0 {
		return Result{}, nil
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	chunk := opts.ChunkSize
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	chunks := (end + chunk - 1) / chunk

	ctx, cancel := context.WithCancel(ctx)
	type job struct {
		c   int64
		out chan<- chunkResult
	}
	// order hands the stitcher each chunk's result channel in file order;
	// its capacity bounds how many chunks are in memory at once.
	order := make(chan chan chunkResult, 2*workers+1)
	jobs := make(chan job)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		defer close(order)
		for c := range chunks {
			out := make(chan chunkResult, 1)
			select {
			case order <- out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{c: c, out: out}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var pool sync.Pool // of *[]lineRec, handed back by the stitcher
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker keeps its buffers across chunks. Small chunks
			// (tests) get small read buffers; longer lines are gathered by
			// readLine.
			w := &chunkWorker{br: bufio.NewReaderSize(nil, int(min(64<<10, max(4<<10, chunk+1<<10)))), pool: &pool}
			for j := range jobs {
				j.out <- w.scan(ctx, r, j.c*chunk, min((j.c+1)*chunk, end), end)
			}
		}()
	}
	defer wg.Wait()
	defer cancel()

	st := stitcher{expected: 1, head: GenesisHash, visit: opts.Visit}
	for out := range order {
		var res chunkResult
		select {
		case res = <-out:
		case <-ctx.Done():
			return st.result(), ctx.Err()
		}
		if res.err != nil {
			return st.result(), res.err
		}
		for i := range res.recs {
			if err := st.check(&res.recs[i]); err != nil {
				return st.result(), err
			}
		}
		clear(res.recs) // drop the strings it holds
		recs := res.recs[:0]
		pool.Put(&recs)
	}
	if err := ctx.Err(); err != nil {
		return st.result(), err
	}
	return st.result(), nil
}

// lineRec is a worker's verdict on one line: everything the in-order
// checks need, and nothing of the payload.
type lineRec struct {
	off, n     int64
	seq        uint64
	ts         int64
	chain      Hash
	prev       Hash
	leaf       tlog.Hash
	source     Source
	malformed  error
	hashBroken bool
}

type chunkResult struct {
	recs []lineRec
	err  error
}

// chunkWorker parses and hashes chunks, reusing its buffers.
type chunkWorker struct {
	br   *bufio.Reader
	lc   lineChecker
	long []byte
	pool *sync.Pool
}

// scan parses and hashes the lines that start in [start, stop).
func (w *chunkWorker) scan(ctx context.Context, r io.ReaderAt, start, stop, end int64) chunkResult {
	from := start
	if start > 0 {
		// Begin on the byte before the chunk: if it is a '\n', a line
		// starts exactly at start.
		from = start - 1
	}
	br := w.br
	br.Reset(io.NewSectionReader(r, from, end-from))
	pos := from
	if start > 0 {
		// Skip the tail of the line that began in an earlier chunk.
		for {
			part, err := br.ReadSlice('\n')
			pos += int64(len(part))
			if err == nil {
				break
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if errors.Is(err, io.EOF) {
				return chunkResult{}
			}
			return chunkResult{err: fmt.Errorf("read log at %d: %w", pos, err)}
		}
	}
	var recs []lineRec
	if p, ok := w.pool.Get().(*[]lineRec); ok {
		recs = *p
	} else {
		// Lines are a few hundred bytes; guess the count to avoid regrowing.
		recs = make([]lineRec, 0, (stop-start)/256+1)
	}
	for n := 0; pos < stop; n++ {
		if n%1024 == 1023 && ctx.Err() != nil {
			return chunkResult{err: ctx.Err()}
		}
		line, err := readLine(br, &w.long)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return chunkResult{err: fmt.Errorf("read log at %d: %w", pos, err)}
		}
		recs = append(recs, lineRec{off: pos, n: int64(len(line))})
		pos += int64(len(line))
		w.lc.check(line[:len(line)-1], &recs[len(recs)-1])
	}
	return chunkResult{recs: recs}
}

// readLine returns the next line with its '\n'; it is valid until the next
// call. A line longer than the reader's buffer is gathered in *long.
func readLine(br *bufio.Reader, long *[]byte) ([]byte, error) {
	part, err := br.ReadSlice('\n')
	if err == nil {
		return part, nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	*long = append((*long)[:0], part...)
	for {
		part, err = br.ReadSlice('\n')
		*long = append(*long, part...)
		if err == nil {
			return *long, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// lineChecker parses and hashes lines for one worker, reusing its buffers.
type lineChecker struct {
	sc       canonScratch
	canon    []byte
	interned map[string]string
}

// check parses and hashes one line (without its '\n') into rec.
func (lc *lineChecker) check(line []byte, rec *lineRec) {
	f, canon, err := appendLineCanonical(lc.canon[:0], line, &lc.sc)
	lc.canon = canon
	if err != nil {
		rec.malformed = err
		return
	}
	rec.seq, rec.ts, rec.chain, rec.prev = f.seq, f.ts, f.chain, f.prev
	rec.source = Source{Topic: lc.intern(f.topic), StreamSequence: f.streamSeq, Publisher: lc.intern(f.publisher)}
	rec.hashBroken = ChainHashOf(canon) != f.chain
	rec.leaf = LeafHashOf(canon)
}

// intern returns b as a string, sharing the few distinct topics and
// publishers of a log instead of allocating one per line.
func (lc *lineChecker) intern(b []byte) string {
	if s, ok := lc.interned[string(b)]; ok {
		return s
	}
	s := string(b)
	if lc.interned == nil {
		lc.interned = map[string]string{}
	}
	if len(lc.interned) < 1024 {
		lc.interned[s] = s
	}
	return s
}

// stitcher runs the in-order checks.
type stitcher struct {
	expected uint64
	head     Hash
	lastTs   int64
	end      int64
	visit    func(LineInfo) error
}

func (s *stitcher) check(r *lineRec) error {
	fail := func(reason, detail string) *VerifyError {
		return &VerifyError{Reason: reason, Seq: s.expected, Offset: r.off, Detail: detail}
	}
	switch {
	case r.malformed != nil:
		return fail(ReasonChainBroken, "entry is malformed: "+r.malformed.Error())
	case r.seq != s.expected:
		e := fail(ReasonSequenceGap, fmt.Sprintf("entry at this position has seq %d", r.seq))
		e.Expected, e.Got = s.expected, r.seq
		return e
	case r.hashBroken:
		return fail(ReasonChainBroken, "chainHash is not the hash of the entry's content")
	case r.prev != s.head:
		return fail(ReasonChainBroken, "prevChainHash is not the previous entry's chainHash")
	case s.expected > 1 && r.ts < s.lastTs:
		return fail(ReasonTimestampWentBackward, fmt.Sprintf("timestampMs %d is before the previous entry's %d", r.ts, s.lastTs))
	}
	if s.visit != nil {
		err := s.visit(LineInfo{
			Offset: r.off, Length: r.n, Seq: r.seq, TimestampMs: r.ts,
			ChainHash: r.chain, Leaf: r.leaf, Source: r.source,
		})
		if err != nil {
			return err
		}
	}
	s.expected++
	s.head = r.chain
	s.lastTs = r.ts
	s.end = r.off + r.n
	return nil
}

func (s *stitcher) result() Result {
	return Result{Size: s.expected - 1, End: s.end, Head: s.head, LastTimestampMs: s.lastTs}
}

// ValidEnd returns the offset just past the last '\n' in r[0:size): the
// end of the last whole line. Bytes after it are a torn line, a write that
// never completed.
func ValidEnd(r io.ReaderAt, size int64) (int64, error) {
	const block = 64 << 10
	buf := make([]byte, block)
	for hi := size; hi > 0; {
		lo := max(hi-block, 0)
		b := buf[:hi-lo]
		if _, err := r.ReadAt(b, lo); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("find end of log: %w", err)
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return lo + int64(i) + 1, nil
		}
		hi = lo
	}
	return 0, nil
}

// FileResult is the verdict on a log file.
type FileResult struct {
	Result
	// Root is the RFC 6962 Merkle root of the verified entries.
	Root tlog.Hash
	// TornBytes is the length of a torn last line (no final '\n') that was
	// not verified; the recorder cuts such a tail when it opens the log.
	TornBytes int64
}

// VerifyFile verifies the log file at path. A torn last line is reported
// in TornBytes, not as a failure: it is a write that never completed and
// was never acknowledged. opts.Visit is called as by Scan.
func VerifyFile(ctx context.Context, path string, opts ScanOptions) (FileResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileResult{}, fmt.Errorf("verify: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return FileResult{}, fmt.Errorf("verify: %w", err)
	}
	end, err := ValidEnd(f, st.Size())
	if err != nil {
		return FileResult{}, fmt.Errorf("verify %s: %w", path, err)
	}
	var tree TreeBuilder
	visit := opts.Visit
	opts.Visit = func(li LineInfo) error {
		tree.Add(li.Leaf)
		if visit != nil {
			return visit(li)
		}
		return nil
	}
	res, err := Scan(ctx, f, end, opts)
	out := FileResult{Result: res, Root: tree.Root(), TornBytes: st.Size() - end}
	if err != nil {
		return out, err
	}
	return out, nil
}
