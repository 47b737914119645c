package genome

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// FileStore is a TierStore of frame files in one directory: plain for the
// Bench and Cold roles, zstd-compressed for Frozen. Its pages survive
// restarts: OpenFileStore finds them again, checks their headers and drops
// torn or foreign files.
type FileStore struct {
	role     Role
	dir      string
	capacity uint64
	codec    codec
	durable  bool
	fc       *frameCodec
	log      *slog.Logger

	mu    sync.Mutex
	used  uint64
	pages map[PageRef]*filePage
}

type filePage struct {
	size   uint64
	meta   PageMeta
	access time.Time
}

// FileStoreOptions tune a file store.
type FileStoreOptions struct {
	// Compressed stores frames with zstd (the Frozen role).
	Compressed bool
	// Durable fsyncs every write and its directory before Write returns
	// (the home tier: its copy is the only one). Upper tiers hold copies
	// that the home tier can rebuild, so they skip the fsyncs; a torn
	// page fails its checksums and is dropped.
	Durable bool
	Logger  *slog.Logger
}

// OpenFileStore opens (creating when missing) the store in dir and indexes
// the pages already there.
func OpenFileStore(role Role, dir string, capacity uint64, opts FileStoreOptions) (*FileStore, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &FileStore{role: role, dir: dir, capacity: capacity, durable: opts.Durable, log: opts.Logger, pages: map[PageRef]*filePage{}}
	if opts.Compressed {
		s.codec = codecZstd
		fc, err := newFrameCodec()
		if err != nil {
			return nil, err
		}
		s.fc = fc
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("%s tier: %w", role, err)
	}
	if err := s.scan(); err != nil {
		return nil, err
	}
	return s, nil
}

// scan indexes the directory: temporary files of interrupted writes are
// removed, pages whose header does not match their name or whose frames
// are torn are removed, and names that are not ours are left alone.
func (s *FileStore) scan() error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("%s tier: %w", s.role, err)
	}
	for _, de := range entries {
		name := de.Name()
		path := filepath.Join(s.dir, name)
		if strings.HasPrefix(name, tmpPrefix) {
			_ = os.Remove(path)
			continue
		}
		key, ok := parsePageFileName(name)
		if !ok || !de.Type().IsRegular() {
			s.log.Warn("genome: ignoring a file that is not a page", "role", s.role.String(), "path", path)
			continue
		}
		ff, err := openFrames(path, s.fc)
		if err == nil && (ff.h.key != key || ff.h.codec != s.codec) {
			err = fmt.Errorf("%w: header names %s", ErrPageCorrupt, ff.h.key)
		}
		if err != nil {
			if ff != nil {
				_ = ff.f.Close()
			}
			s.log.Warn("genome: removing a torn or foreign page file", "role", s.role.String(), "path", path, "error", err)
			_ = os.Remove(path)
			continue
		}
		info, statErr := ff.f.Stat()
		_ = ff.f.Close()
		at := time.Time{}
		if statErr == nil {
			at = info.ModTime()
		}
		s.pages[key] = &filePage{size: ff.h.size, meta: PageMeta{Persona: ff.h.persona}, access: at}
		s.used += ff.h.size
	}
	return nil
}

const (
	tmpPrefix  = ".tmp-"
	pageSuffix = ".pg"
)

// pageFileName is the file name of a page: built only from a validated
// ref (a UUID and numbers), never from caller text.
func pageFileName(key PageRef) string {
	a := key.Artifact.String()
	switch key.Kind {
	case KindExpert:
		return a + ".e" + strconv.FormatUint(uint64(key.Expert), 10) + pageSuffix
	case KindByteRange:
		return a + ".r" + strconv.FormatUint(key.Offset, 10) + "-" + strconv.FormatUint(key.Length, 10) + pageSuffix
	}
	return a + ".whole" + pageSuffix
}

// parsePageFileName is the inverse of pageFileName; it accepts exactly the
// names pageFileName produces.
func parsePageFileName(name string) (PageRef, bool) {
	rest, ok := strings.CutSuffix(name, pageSuffix)
	if !ok || len(rest) < 37 || rest[36] != '.' {
		return PageRef{}, false
	}
	u, err := uuid.Parse(rest[:36])
	if err != nil || u == uuid.Nil {
		return PageRef{}, false
	}
	key := PageRef{Artifact: ArtifactID(u)}
	switch spec := rest[37:]; {
	case spec == "whole":
		key.Kind = KindWhole
	case strings.HasPrefix(spec, "e"):
		n, err := strconv.ParseUint(spec[1:], 10, 32)
		if err != nil {
			return PageRef{}, false
		}
		key.Kind, key.Expert = KindExpert, uint32(n)
	case strings.HasPrefix(spec, "r"):
		o, l, ok := strings.Cut(spec[1:], "-")
		off, err1 := strconv.ParseUint(o, 10, 64)
		n, err2 := strconv.ParseUint(l, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return PageRef{}, false
		}
		key.Kind, key.Offset, key.Length = KindByteRange, off, n
	default:
		return PageRef{}, false
	}
	if key.Validate() != nil || pageFileName(key) != name {
		return PageRef{}, false
	}
	return key, true
}

func (s *FileStore) path(key PageRef) string { return filepath.Join(s.dir, pageFileName(key)) }

// Role implements TierStore.
func (s *FileStore) Role() Role { return s.role }

// Dir is the store's directory.
func (s *FileStore) Dir() string { return s.dir }

// Capacity implements TierStore. Capacities count page bytes; compressed
// files take less disk than they count.
func (s *FileStore) Capacity() Capacity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Capacity{Total: s.capacity, Used: s.used}
}

// Read implements TierStore. The file is opened here, so the data stays
// readable when the page is evicted before it is read.
func (s *FileStore) Read(_ context.Context, key PageRef) (PageData, error) {
	s.mu.Lock()
	_, ok := s.pages[key]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s tier: %s: %w", s.role, key, ErrPageNotStored)
	}
	ff, err := openFrames(s.path(key), s.fc)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s tier: %s: %w", s.role, key, ErrPageNotStored)
	}
	if err != nil {
		return nil, fmt.Errorf("%s tier: %w", s.role, err)
	}
	if ff.h.key != key {
		_ = ff.f.Close()
		return nil, fmt.Errorf("%s tier: %s: %w: header names %s", s.role, key, ErrPageCorrupt, ff.h.key)
	}
	d := &fileData{ff: ff}
	d.refs.Store(1)
	return d, nil
}

// Write implements TierStore: a temporary file renamed into place, with
// fsyncs of the file and the directory when the store is durable.
func (s *FileStore) Write(ctx context.Context, key PageRef, meta PageMeta, size uint64, r io.Reader) error {
	if err := key.Validate(); err != nil {
		return err
	}
	if size == 0 {
		return fmt.Errorf("%s tier: write %s: %w: empty page", s.role, key, ErrSizeMismatch)
	}
	if err := s.reserve(key, size); err != nil {
		return err
	}
	err := s.writeFile(ctx, key, meta, size, r)
	s.commit(key, meta, size, err)
	return err
}

func (s *FileStore) writeFile(ctx context.Context, key PageRef, meta PageMeta, size uint64, r io.Reader) error {
	tmp, err := s.createTemp()
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 256<<10)
	h := frameHeader{codec: s.codec, key: key, persona: meta.Persona, size: size}
	if err := writeFrames(bw, h, ctxReader{ctx, r}, s.fc); err != nil {
		return fmt.Errorf("%s tier: write %s: %w", s.role, key, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s tier: write %s: %w", s.role, key, err)
	}
	if s.durable {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("%s tier: sync %s: %w", s.role, key, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s tier: write %s: %w", s.role, key, err)
	}
	if err := os.Rename(tmp.Name(), s.path(key)); err != nil {
		return fmt.Errorf("%s tier: %w", s.role, err)
	}
	ok = true
	if s.durable {
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("%s tier: sync %s: %w", s.role, s.dir, err)
		}
	}
	return nil
}

func (s *FileStore) createTemp() (*os.File, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	f, err := os.OpenFile(filepath.Join(s.dir, tmpPrefix+hex.EncodeToString(b[:])), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("%s tier: %w", s.role, err)
	}
	return f, nil
}

// linkFrom stores src's copy of key in s by hard-linking its file, when
// both stores use the same codec: a promotion or demotion between file
// tiers moves no bytes. It reports false, with nothing changed, when a
// link is impossible (another codec or file system); the caller copies.
func (s *FileStore) linkFrom(key PageRef, meta PageMeta, size uint64, src *FileStore) (bool, error) {
	if src.codec != s.codec {
		return false, nil
	}
	if err := s.reserve(key, size); err != nil {
		return false, err
	}
	tmp := filepath.Join(s.dir, tmpPrefix+"link-"+pageFileName(key))
	_ = os.Remove(tmp)
	err := os.Link(src.path(key), tmp)
	if err == nil {
		err = os.Rename(tmp, s.path(key))
		if err != nil {
			_ = os.Remove(tmp)
		}
	}
	if err != nil {
		s.commit(key, meta, size, err)
		return false, nil
	}
	if s.durable {
		if err := syncDir(s.dir); err != nil {
			s.log.Warn("genome: sync after link", "role", s.role.String(), "error", err)
		}
	}
	s.commit(key, meta, size, nil)
	return true, nil
}

func (s *FileStore) reserve(key PageRef, size uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	used := s.used
	if old, ok := s.pages[key]; ok {
		used -= old.size
	}
	if size > s.capacity || used > s.capacity-size {
		return fmt.Errorf("%s tier: write %s (%d bytes, %d of %d used): %w", s.role, key, size, s.used, s.capacity, ErrTierFull)
	}
	s.used += size
	return nil
}

// commit turns a reservation into a page, or releases it when err is set.
func (s *FileStore) commit(key PageRef, meta PageMeta, size uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.used -= size
		return
	}
	if old, ok := s.pages[key]; ok {
		s.used -= old.size
	}
	s.pages[key] = &filePage{size: size, meta: meta, access: time.Now()}
}

// Evict implements TierStore.
func (s *FileStore) Evict(_ context.Context, key PageRef) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pages[key]
	if !ok {
		return nil
	}
	if err := os.Remove(s.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s tier: evict %s: %w", s.role, key, err)
	}
	s.used -= p.size
	delete(s.pages, key)
	return nil
}

// ObserveAccess implements TierStore: the file's times record the access,
// so recency order survives a restart.
func (s *FileStore) ObserveAccess(key PageRef, at time.Time) {
	s.mu.Lock()
	p, ok := s.pages[key]
	if ok {
		p.access = at
	}
	s.mu.Unlock()
	if ok {
		_ = os.Chtimes(s.path(key), at, at)
	}
}

// List implements TierStore.
func (s *FileStore) List(context.Context) ([]StoredPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]StoredPage, 0, len(s.pages))
	for k, p := range s.pages {
		out = append(out, StoredPage{Key: k, Size: p.size, Meta: p.meta, LastAccess: p.access})
	}
	sortBy(out, func(p StoredPage) uint64 { return uint64(p.LastAccess.UnixNano()) })
	return out, nil
}

// Close implements TierStore.
func (s *FileStore) Close() error {
	if s.fc != nil {
		s.fc.close()
	}
	return nil
}

// fileData is the PageData of an open frame file. The file is shared by
// the readers opened from it and closed when the last of them and the data
// itself are closed.
type fileData struct {
	ff   *frameFile
	refs atomic.Int32
}

func (d *fileData) Size() uint64 { return d.ff.h.size }

func (d *fileData) Open() (io.ReadCloser, error) { return d.OpenRange(0, d.ff.h.size) }

func (d *fileData) OpenRange(off, n uint64) (io.ReadCloser, error) {
	if d.refs.Add(1) <= 1 {
		return nil, fmt.Errorf("%w: page data already closed", ErrPageNotStored)
	}
	rr, err := d.ff.openRange(off, n)
	if err != nil {
		d.release()
		return nil, err
	}
	return &sharedReader{rangeReader: rr, d: d}, nil
}

// Close releases the data's own reference.
func (d *fileData) Close() error {
	d.release()
	return nil
}

func (d *fileData) release() {
	if d.refs.Add(-1) == 0 {
		_ = d.ff.f.Close()
	}
}

type sharedReader struct {
	*rangeReader
	d    *fileData
	once sync.Once
}

func (r *sharedReader) Close() error {
	r.once.Do(r.d.release)
	return nil
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
