package events

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// The durable store is one append-only log per durable stream: a directory
// of segment files named by the sequence of their first record
// (00000000000000000001.seg), each a run of records
//
//	u32 body length | u32 CRC-32C of (seq, body) | u64 seq | body
//
// little-endian, where body is the event as a Delivery message without the
// per-subscription fields. Sequences are consecutive across segments.
//
//   - Appends come in batches from the stream's committer: one write and one
//     fdatasync for every event that was waiting (group commit). Nothing is
//     acknowledged or delivered before that sync returns.
//   - Opening scans the newest segment and truncates a torn tail (a short or
//     corrupt record left by a crash) at the last whole record; sealed
//     segments are checked when read, and a bad record there is DATA_LOSS.
//   - Reads go through a sparse in-memory index (every indexEvery records),
//     built while scanning; they only see synced bytes.
//   - Retention deletes whole sealed segments; the newest segment is never
//     deleted, so the sequence survives even when every event has expired.

const (
	recordHeader = 16
	indexEvery   = 64
	segSuffix    = ".seg"
	nameFile     = "NAME"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// logOptions tune a segmentLog.
type logOptions struct {
	segmentBytes int64
	// rollEvents starts a new segment after this many records, so that
	// retention by count has a useful granularity.
	rollEvents int
	maxBody    int
	noSync     bool
	now        func() time.Time
	log        *slog.Logger
}

type indexEntry struct {
	seq uint64
	off int64
}

// segment is one file of a log. Fields other than f are guarded by the
// log's mu.
type segment struct {
	first uint64
	last  uint64 // first-1 when empty
	path  string
	size  int64 // bytes that are synced (readers stop here)
	count int
	// index has an entry for every indexEvery-th record from the start;
	// indexed reports whether it covers the whole segment.
	index   []indexEntry
	indexed bool
	lastAt  time.Time // publish time of the newest record, or the mtime

	f         *os.File
	refs      atomic.Int32
	deleted   atomic.Bool
	closeOnce sync.Once
}

func (s *segment) release() {
	if s.refs.Add(-1) == 0 && s.deleted.Load() {
		s.closeFile()
	}
}

func (s *segment) closeFile() { s.closeOnce.Do(func() { _ = s.f.Close() }) }

// segmentLog is the durable log of one stream.
type segmentLog struct {
	dir  string
	opts logOptions

	// wmu serialises writers: append, rotation and retention.
	wmu sync.Mutex
	buf []byte

	// failed is set when a write or sync fails: what reached the disk is
	// unknown, so the log takes no more appends until it is reopened.
	failed error

	mu     sync.RWMutex
	segs   []*segment // ordered by first; the last is the active segment
	closed bool

	// appends counts synced batches (group commits).
	appends atomic.Uint64
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d%s", first, segSuffix) }

// openLog opens (or creates) the log in dir for the stream called name,
// recovering a torn tail of the newest segment.
func openLog(dir, name string, opts logOptions) (*segmentLog, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	if err := checkName(dir, name); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	l := &segmentLog{dir: dir, opts: opts}
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok || e.IsDir() {
			continue
		}
		first, err := strconv.ParseUint(base, 10, 64)
		if err != nil || first == 0 || segmentName(first) != e.Name() {
			return nil, fmt.Errorf("open log %s: stray segment file %q", dir, e.Name())
		}
		l.segs = append(l.segs, &segment{first: first, path: filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(l.segs, func(a, b *segment) int {
		switch {
		case a.first < b.first:
			return -1
		case a.first > b.first:
			return 1
		}
		return 0
	})
	if len(l.segs) == 0 {
		if err := l.createSegment(1); err != nil {
			return nil, err
		}
		return l, nil
	}
	for i, s := range l.segs {
		active := i == len(l.segs)-1
		flag := os.O_RDONLY
		if active {
			flag = os.O_RDWR
		}
		f, err := os.OpenFile(s.path, flag, 0)
		if err != nil {
			l.closeFiles()
			return nil, fmt.Errorf("open log: %w", err)
		}
		s.f = f
		fi, err := f.Stat()
		if err != nil {
			l.closeFiles()
			return nil, fmt.Errorf("open log: %w", err)
		}
		s.size, s.lastAt = fi.Size(), fi.ModTime()
		if !active {
			next := l.segs[i+1].first
			if next <= s.first {
				l.closeFiles()
				return nil, fmt.Errorf("open log %s: %w: segments overlap at %d", dir, errStoreCorrupt, next)
			}
			s.last = next - 1
			s.count = int(s.last - s.first + 1)
			continue
		}
		if err := l.recoverActive(s); err != nil {
			l.closeFiles()
			return nil, err
		}
	}
	return l, nil
}

// checkName records the stream's name in its directory, or checks that the
// directory belongs to it.
func checkName(dir, name string) error {
	p := filepath.Join(dir, nameFile)
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := writeFileSync(p, []byte(name+"\n")); err != nil {
			return fmt.Errorf("open log %s: %w", dir, err)
		}
		return syncDir(dir)
	case err != nil:
		return fmt.Errorf("open log %s: %w", dir, err)
	case strings.TrimSuffix(string(b), "\n") != name:
		return fmt.Errorf("open log %s: directory belongs to stream %q, not %q", dir, strings.TrimSpace(string(b)), name)
	}
	return nil
}

// recoverActive scans the active segment, builds its index and truncates a
// torn tail.
func (l *segmentLog) recoverActive(s *segment) error {
	s.last = s.first - 1
	var lastAt time.Time
	good, err := scanSegment(s.f, 0, s.size, l.opts.maxBody, func(seq uint64, off int64, body []byte) error {
		if seq != s.last+1 {
			return fmt.Errorf("%w: record %d where %d was expected", errStoreCorrupt, seq, s.last+1)
		}
		if s.count%indexEvery == 0 {
			s.index = append(s.index, indexEntry{seq: seq, off: off})
		}
		s.count++
		s.last = seq
		if at, ok := bodyTime(body); ok {
			lastAt = at
		}
		return nil
	})
	if err != nil && !errors.Is(err, errTornRecord) {
		return fmt.Errorf("open log %s: %w", s.path, err)
	}
	if good < s.size {
		l.opts.log.Warn("events: truncating torn tail of a durable stream",
			"segment", s.path, "at_byte", good, "dropped_bytes", s.size-good, "reason", err)
		if err := s.f.Truncate(good); err != nil {
			return fmt.Errorf("open log: truncate %s: %w", s.path, err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("open log: sync %s: %w", s.path, err)
		}
		s.size = good
	}
	if _, err := s.f.Seek(s.size, io.SeekStart); err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	s.indexed = true
	if !lastAt.IsZero() {
		s.lastAt = lastAt
	}
	return nil
}

var errTornRecord = errors.New("torn or corrupt record")

// scanSegment reads records from off to size, calling fn for each, and
// returns the offset after the last whole, valid record. A short or
// corrupt record ends the scan with errTornRecord.
func scanSegment(f io.ReaderAt, off, size int64, maxBody int, fn func(seq uint64, off int64, body []byte) error) (int64, error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, off, size-off), 256<<10)
	var hdr [recordHeader]byte
	var body []byte
	for off < size {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return off, fmt.Errorf("%w: short header at %d", errTornRecord, off)
		}
		n := binary.LittleEndian.Uint32(hdr[0:4])
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		seq := binary.LittleEndian.Uint64(hdr[8:16])
		if int64(n) > int64(maxBody) || off+recordHeader+int64(n) > size {
			return off, fmt.Errorf("%w: bad length %d at %d", errTornRecord, n, off)
		}
		if cap(body) < int(n) {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return off, fmt.Errorf("%w: short body at %d", errTornRecord, off)
		}
		if crc32.Update(crc32.Checksum(hdr[8:16], crcTable), crcTable, body) != sum {
			return off, fmt.Errorf("%w: checksum mismatch at %d", errTornRecord, off)
		}
		if err := fn(seq, off, body); err != nil {
			return off, err
		}
		off += recordHeader + int64(n)
	}
	return off, nil
}

// bodyTime extracts published_at from a record body without decoding the
// payload.
func bodyTime(body []byte) (time.Time, bool) {
	var d eventsv1.Delivery
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, &d); err != nil || d.GetPublishedAt() == nil {
		return time.Time{}, false
	}
	return d.GetPublishedAt().AsTime(), true
}

func decodeRecord(seq uint64, body []byte) (*event, error) {
	var d eventsv1.Delivery
	if err := proto.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("%w: record %d: %w", errStoreCorrupt, seq, err)
	}
	if d.GetStreamSequence() != seq {
		return nil, fmt.Errorf("%w: record %d carries sequence %d", errStoreCorrupt, seq, d.GetStreamSequence())
	}
	ev := &event{
		seq:       seq,
		topic:     d.GetTopic(),
		at:        d.GetPublishedAt().AsTime(),
		publisher: d.GetPublisher(),
		node:      d.GetPublisherNode(),
		msgID:     d.GetMsgId(),
		headers:   d.GetHeaders(),
	}
	// The payload stays encoded (see event). The record is the event's delivery encoding already.
	ev.enc = bytes.Clone(body)
	return ev, nil
}

// createSegment starts a new active segment whose first record is first.
// The caller holds wmu (or is opening the log).
func (l *segmentLog) createSegment(first uint64) error {
	p := filepath.Join(l.dir, segmentName(first))
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		_ = f.Close()
		return err
	}
	s := &segment{first: first, last: first - 1, path: p, f: f, indexed: true, lastAt: l.opts.now()}
	l.mu.Lock()
	l.segs = append(l.segs, s)
	l.mu.Unlock()
	return nil
}

// append writes evs (consecutive sequences following the log's last) and
// syncs them. It is called by one committer at a time.
func (l *segmentLog) append(evs []*event) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.RLock()
	s := l.segs[len(l.segs)-1]
	closed, last, count, size := l.closed, s.last, s.count, s.size
	l.mu.RUnlock()
	if closed {
		return errors.New("append to a closed log")
	}
	if l.failed != nil {
		return l.failed
	}
	buf := l.buf[:0]
	var newIndex []indexEntry
	for _, ev := range evs {
		if ev.seq != last+1 {
			return fmt.Errorf("append: sequence %d after %d", ev.seq, last)
		}
		if count%indexEvery == 0 {
			newIndex = append(newIndex, indexEntry{seq: ev.seq, off: size + int64(len(buf))})
		}
		enc := ev.encoded()
		start := len(buf)
		buf = append(buf, make([]byte, recordHeader)...)
		buf = append(buf, enc...)
		body := buf[start+recordHeader:]
		binary.LittleEndian.PutUint32(buf[start:], uint32(len(body)))
		binary.LittleEndian.PutUint64(buf[start+8:], ev.seq)
		binary.LittleEndian.PutUint32(buf[start+4:], crc32.Update(crc32.Checksum(buf[start+8:start+16], crcTable), crcTable, body))
		last, count = ev.seq, count+1
	}
	if cap(buf) <= 4<<20 {
		l.buf = buf
	}
	if _, err := s.f.Write(buf); err != nil {
		l.failed = fmt.Errorf("append: write %s: %w", s.path, err)
		return l.failed
	}
	if !l.opts.noSync {
		if err := datasync(s.f); err != nil {
			l.failed = fmt.Errorf("append: sync %s: %w", s.path, err)
			return l.failed
		}
	}
	l.appends.Add(1)
	l.mu.Lock()
	s.index = append(s.index, newIndex...)
	s.size += int64(len(buf))
	s.last, s.count = last, count
	s.lastAt = evs[len(evs)-1].at
	l.mu.Unlock()
	if s.size >= l.opts.segmentBytes || (l.opts.rollEvents > 0 && s.count >= l.opts.rollEvents) {
		// The batch is on disk either way; a failed rotation only stops
		// further appends.
		if err := l.createSegment(last + 1); err != nil {
			l.failed = err
			l.opts.log.Error("events: cannot start a new segment", "dir", l.dir, "error", err)
		}
	}
	return nil
}

// bounds returns the first retained sequence and the last synced one.
func (l *segmentLog) bounds() (first, last uint64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segs[0].first, l.segs[len(l.segs)-1].last
}

// readAfter returns the events with after < seq <= limit, at most maxN of
// them and about maxBytes, and the first sequence the log still has.
func (l *segmentLog) readAfter(after, limit uint64, maxN, maxBytes int) ([]*event, uint64, error) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return nil, 0, errors.New("read from a closed log")
	}
	first := l.segs[0].first
	var segs []*segment
	for _, s := range l.segs {
		if s.last > after && s.first <= limit && s.last >= s.first {
			s.refs.Add(1)
			segs = append(segs, s)
		}
	}
	l.mu.RUnlock()
	defer func() {
		for _, s := range segs {
			s.release()
		}
	}()
	var out []*event
	bytes := 0
	for _, s := range segs {
		if len(out) >= maxN || bytes >= maxBytes {
			break
		}
		if err := l.ensureIndex(s); err != nil {
			return out, first, err
		}
		l.mu.RLock()
		size, index := s.size, s.index
		l.mu.RUnlock()
		off := int64(0)
		for _, ie := range index {
			if ie.seq > after+1 {
				break
			}
			off = ie.off
		}
		want := max(after+1, s.first)
		_, err := scanSegment(s.f, off, size, l.opts.maxBody, func(seq uint64, _ int64, body []byte) error {
			switch {
			case seq < want:
				return nil
			case seq > limit || len(out) >= maxN || bytes >= maxBytes:
				return errStopScan
			case seq != want:
				return fmt.Errorf("%w: %s: record %d where %d was expected", errStoreCorrupt, s.path, seq, want)
			}
			ev, err := decodeRecord(seq, body)
			if err != nil {
				return err
			}
			out = append(out, ev)
			bytes += len(body)
			want++
			return nil
		})
		switch {
		case errors.Is(err, errStopScan):
			return out, first, nil
		case errors.Is(err, errTornRecord):
			return out, first, fmt.Errorf("%w: %s: %w", errStoreCorrupt, s.path, err)
		case err != nil:
			return out, first, err
		}
		after = want - 1
	}
	return out, first, nil
}

var errStopScan = errors.New("stop scan")

// ensureIndex builds the sparse index of a sealed segment on first use.
func (l *segmentLog) ensureIndex(s *segment) error {
	l.mu.RLock()
	done, size := s.indexed, s.size
	l.mu.RUnlock()
	if done {
		return nil
	}
	var index []indexEntry
	n := 0
	want := s.first
	_, err := scanSegment(s.f, 0, size, l.opts.maxBody, func(seq uint64, off int64, _ []byte) error {
		if seq != want {
			return fmt.Errorf("%w: %s: record %d where %d was expected", errStoreCorrupt, s.path, seq, want)
		}
		if n%indexEvery == 0 {
			index = append(index, indexEntry{seq: seq, off: off})
		}
		n++
		want++
		return nil
	})
	if errors.Is(err, errTornRecord) {
		return fmt.Errorf("%w: %s: %w", errStoreCorrupt, s.path, err)
	}
	if err != nil {
		return err
	}
	if want-1 != s.last {
		return fmt.Errorf("%w: %s ends at %d, the next segment starts at %d", errStoreCorrupt, s.path, want-1, s.last+1)
	}
	l.mu.Lock()
	s.index, s.indexed = index, true
	l.mu.Unlock()
	return nil
}

// firstSince returns the first sequence of the oldest segment holding an
// event published at or after since.
func (l *segmentLog) firstSince(since time.Time) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, s := range l.segs {
		if !s.lastAt.Before(since) {
			return s.first
		}
	}
	return l.segs[len(l.segs)-1].first
}

// enforce deletes sealed segments whose events are all beyond the
// retention: more than maxEvents newer events exist, or the newest of them
// was published before now-retention. An active segment that has aged out
// is sealed first so it can go too. It returns the first retained sequence.
func (l *segmentLog) enforce(maxEvents uint64, retention time.Duration, now time.Time) (uint64, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	cutoff := now.Add(-retention)
	l.mu.RLock()
	active := l.segs[len(l.segs)-1]
	closed, activeLast, activeFirst, activeAt := l.closed, active.last, active.first, active.lastAt
	l.mu.RUnlock()
	if closed {
		return 0, nil
	}
	if retention > 0 && activeLast >= activeFirst && activeAt.Before(cutoff) {
		if err := l.createSegment(activeLast + 1); err != nil {
			return 0, err
		}
	}
	var doomed []*segment
	l.mu.Lock()
	last := l.segs[len(l.segs)-1].last
	for len(l.segs) > 1 {
		s := l.segs[0]
		byCount := maxEvents > 0 && last-s.last >= maxEvents
		byAge := retention > 0 && s.lastAt.Before(cutoff)
		if !byCount && !byAge {
			break
		}
		doomed = append(doomed, s)
		l.segs[0] = nil
		l.segs = l.segs[1:]
	}
	first := l.segs[0].first
	l.mu.Unlock()
	for _, s := range doomed {
		if err := os.Remove(s.path); err != nil {
			return first, fmt.Errorf("retention: %w", err)
		}
		s.deleted.Store(true)
		if s.refs.Load() == 0 {
			s.closeFile()
		}
	}
	if len(doomed) > 0 {
		return first, syncDir(l.dir)
	}
	return first, nil
}

// close closes the log's files. Appends after close fail.
func (l *segmentLog) close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	var errs []error
	active := l.segs[len(l.segs)-1]
	if !l.opts.noSync && l.failed == nil {
		if err := active.f.Sync(); err != nil {
			errs = append(errs, err)
		}
	}
	l.closeFiles()
	return errors.Join(errs...)
}

func (l *segmentLog) closeFiles() {
	for _, s := range l.segs {
		if s.f != nil {
			s.deleted.Store(true)
			if s.refs.Load() == 0 {
				s.closeFile()
			}
		}
	}
}

// writeFileSync writes a file and syncs it.
func writeFileSync(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// replaceFileSync atomically replaces p with b: write a temporary file,
// sync it, rename it over p and sync the directory.
func replaceFileSync(p string, b []byte) error {
	tmp := p + ".tmp"
	if err := writeFileSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
