package hippocampus

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The store keeps a write-ahead journal and one snapshot file per persona
// under <DataDir>/hippocampus:
//
//	wal/<first-lsn>.wal     journal segments: frames of records
//	personas/<sha256>.snap  a persona's snapshot and the LSN it covers
//
// A write is applied in memory, appended to the journal under the persona's
// lock, and acknowledged only once an fsync covered it; concurrent writers
// share fsyncs (group commit). A checkpoint rotates the journal, writes the
// snapshot of every persona that changed, and deletes the older segments.
// Recovery loads the snapshots, then replays every record newer than its
// persona's snapshot.

const (
	walDir     = "wal"
	personaDir = "personas"
	walExt     = ".wal"
	snapExt    = ".snap"
)

// journal is the write-ahead log.
type journal struct {
	dir string

	mu          sync.Mutex
	cond        *sync.Cond
	f           *os.File
	pending     []byte
	spare       []byte
	pendingLast uint64
	next        uint64
	durable     uint64
	syncing     bool
	err         error
	size        int64 // bytes appended since the last rotation
	scratch     []byte
}

func openJournal(dir string, next uint64) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	j := &journal{dir: dir, next: next, durable: next - 1}
	j.cond = sync.NewCond(&j.mu)
	f, err := createSegment(dir, next)
	if err != nil {
		return nil, err
	}
	j.f = f
	return j, nil
}

func segmentName(start uint64) string { return fmt.Sprintf("%020d%s", start, walExt) }

func createSegment(dir string, start uint64) (*os.File, error) {
	path := filepath.Join(dir, segmentName(start))
	// An empty segment with this name is the one the last rotation opened
	// before nothing more was written: start it again.
	if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// append frames r (setting its LSN) into the pending buffer and returns
// the LSN. The caller holds the persona's lock, so records of a persona are
// journaled in the order they were applied.
func (j *journal) append(r *record) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return 0, j.err
	}
	r.lsn = j.next
	j.scratch = encodeRecord(j.scratch[:0], r)
	if len(j.scratch) > maxRecordBytes {
		return 0, fmt.Errorf("%w: record of %d bytes is too large", errStore, len(j.scratch))
	}
	j.next++
	j.pending = appendFrame(j.pending, j.scratch)
	j.pendingLast = r.lsn
	j.size += int64(len(j.scratch) + frameHeader)
	return r.lsn, nil
}

// reserve takes an LSN without a record (an imported persona's snapshot
// covers it).
func (j *journal) reserve() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	lsn := j.next
	j.next++
	return lsn
}

// wait returns once the record lsn is on disk. The first waiter to find no
// fsync under way writes everything pending and fsyncs it for everyone.
func (j *journal) wait(lsn uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.durable < lsn {
		if j.err != nil {
			return j.err
		}
		if j.syncing {
			j.cond.Wait()
			continue
		}
		if len(j.pending) == 0 {
			// Only reserved LSNs are outstanding.
			j.durable = max(j.durable, j.next-1)
			break
		}
		j.flushLocked()
	}
	return j.err
}

// flushLocked writes and fsyncs the pending frames with j.mu released
// during the I/O. The caller holds j.mu and no flush is under way.
func (j *journal) flushLocked() {
	j.syncing = true
	buf, last, f := j.pending, j.pendingLast, j.f
	j.pending = j.spare[:0]
	j.mu.Unlock()
	_, err := f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	j.mu.Lock()
	j.spare = buf[:0]
	j.syncing = false
	if err != nil {
		j.err = fmt.Errorf("%w: journal write: %w", errStore, err)
	} else {
		j.durable = max(j.durable, last)
	}
	j.cond.Broadcast()
}

// sinceRotation is the journal growth since the last rotation.
func (j *journal) sinceRotation() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size
}

// rotate makes everything pending durable, closes the current segment and
// starts a new one. Every record in an older segment has a smaller LSN than
// any record in the new one.
func (j *journal) rotate() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.drainLocked(); err != nil {
		return err
	}
	if err := j.f.Close(); err != nil {
		j.err = fmt.Errorf("%w: close segment: %w", errStore, err)
		return j.err
	}
	f, err := createSegment(j.dir, j.next)
	if err != nil {
		j.err = fmt.Errorf("%w: new segment: %w", errStore, err)
		return j.err
	}
	j.f = f
	j.size = 0
	return nil
}

func (j *journal) drainLocked() error {
	for j.syncing {
		j.cond.Wait()
	}
	if j.err != nil {
		return j.err
	}
	if len(j.pending) > 0 {
		j.flushLocked()
		for j.syncing {
			j.cond.Wait()
		}
	}
	return j.err
}

// close makes everything pending durable and closes the journal.
func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.drainLocked()
	if j.f != nil {
		if cerr := j.f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		j.f = nil
	}
	if j.err == nil {
		j.err = fmt.Errorf("%w: journal closed", errStore)
	}
	return err
}

// segments lists the journal's segments in LSN order.
func segments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []segment
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, walExt) {
			continue
		}
		start, err := strconv.ParseUint(strings.TrimSuffix(name, walExt), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, segment{path: filepath.Join(dir, name), start: start})
	}
	slices.SortFunc(out, func(a, b segment) int {
		if a.start < b.start {
			return -1
		}
		if a.start > b.start {
			return 1
		}
		return 0
	})
	return out, nil
}

type segment struct {
	path  string
	start uint64
}

// replayJournal calls fn for every record, in order, and returns the
// largest LSN seen. A torn frame at the end of the last segment (a crash
// mid-write) is cut off; damage anywhere else is an error.
func replayJournal(dir string, log *slog.Logger, fn func(*record) error) (uint64, error) {
	segs, err := segments(dir)
	if err != nil {
		return 0, err
	}
	var maxLSN uint64
	for i, seg := range segs {
		data, err := os.ReadFile(seg.path)
		if err != nil {
			return 0, err
		}
		off := 0
		for off < len(data) {
			payload, rest, ferr := nextFrame(data[off:])
			if ferr != nil {
				if i != len(segs)-1 {
					return 0, fmt.Errorf("journal segment %s is damaged at byte %d", seg.path, off)
				}
				log.Warn("cutting a torn record off the journal", "segment", seg.path, "offset", off, "bytes", len(data)-off)
				if err := os.Truncate(seg.path, int64(off)); err != nil {
					return 0, err
				}
				break
			}
			r, derr := decodeRecord(payload)
			if derr != nil {
				return 0, fmt.Errorf("journal segment %s at byte %d: %w", seg.path, off, derr)
			}
			if err := fn(r); err != nil {
				return 0, err
			}
			maxLSN = max(maxLSN, r.lsn)
			off = len(data) - len(rest)
		}
	}
	return maxLSN, nil
}

// snapshotPath is the file of a persona's snapshot.
func snapshotPath(dir, persona string) string {
	sum := sha256.Sum256([]byte(persona))
	return filepath.Join(dir, hex.EncodeToString(sum[:])+snapExt)
}

// writeFileAtomic writes data to path through a synced temporary file and
// a rename, then syncs the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func removeFile(path string) error {
	err := os.Remove(path)
	if err == nil {
		return syncDir(filepath.Dir(path))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadSnapshots decodes every persona snapshot file.
func loadSnapshots(dir string) ([]*snapshot, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*snapshot
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), snapExt) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		s, err := decodeSnapshot(data)
		if err != nil {
			return nil, fmt.Errorf("persona snapshot %s: %w", path, err)
		}
		if snapshotPath(dir, s.persona) != path {
			return nil, fmt.Errorf("persona snapshot %s holds persona %q", path, s.persona)
		}
		out = append(out, s)
	}
	return out, nil
}
