package genome

import (
	"context"
	"io"
	"time"
)

// TierStore holds the bytes of pages in one tier. The manager decides what
// goes where; a store keeps bytes, enforces its capacity in bytes and
// reports what it holds. Implementations are safe for concurrent use.
//
// Keys are page refs. The home tier (the lowest of the chain) holds each
// artifact under its whole-artifact ref; upper tiers hold pages of any kind.
type TierStore interface {
	// Role is the role this store serves.
	Role() Role
	// Capacity is the store's capacity and the bytes it holds now.
	Capacity() Capacity
	// Read returns the page's bytes, or ErrPageNotStored. The returned
	// PageData stays readable after the page is evicted from the store
	// (memory pages are immutable; open files outlive their names).
	Read(ctx context.Context, key PageRef) (PageData, error)
	// Write stores exactly size bytes read from r under key, replacing any
	// page stored under key. It fails with ErrTierFull, without reading,
	// when the page does not fit, and stores nothing when r fails.
	Write(ctx context.Context, key PageRef, meta PageMeta, size uint64, r io.Reader) error
	// Evict removes the page; evicting a page the store does not hold is
	// not an error.
	Evict(ctx context.Context, key PageRef) error
	// ObserveAccess records that the page was used at a time, so a store
	// that survives restarts can restore recency order.
	ObserveAccess(key PageRef, at time.Time)
	// List returns every page the store holds, least recently used first.
	List(ctx context.Context) ([]StoredPage, error)
	// Close releases the store's resources.
	Close() error
}

// PageMeta is what a store keeps beside a page's bytes: the persona the
// page is charged to (zero for an artifact's home copy), so that a
// restarted node can give file-tier pages back to their working sets.
type PageMeta struct {
	Persona PersonaID
}

// StoredPage is one page a store holds.
type StoredPage struct {
	Key        PageRef
	Size       uint64
	Meta       PageMeta
	LastAccess time.Time
}

// PageData is the bytes of a stored page.
type PageData interface {
	// Size is the page's length in bytes.
	Size() uint64
	// Open returns a reader of the whole page. Stores that checksum their
	// pages fail the read with ErrPageCorrupt rather than return bad bytes.
	Open() (io.ReadCloser, error)
	// OpenRange returns a reader of n bytes from off; off+n must be within
	// Size.
	OpenRange(off, n uint64) (io.ReadCloser, error)
	// Close releases the data; readers already opened stay valid until
	// they are closed themselves.
	Close() error
}

// byteser is implemented by readers over memory pages, so a memory store
// can take a page from another memory store without copying it. Pages are
// immutable, so sharing the slice is safe.
type byteser interface {
	Bytes() []byte
}

// bytesReader reads an immutable byte slice and exposes it for zero-copy
// writes into memory stores.
type bytesReader struct {
	b   []byte
	off int
}

func newBytesReader(b []byte) *bytesReader { return &bytesReader{b: b} }

func (r *bytesReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// Bytes returns the unread remainder; a memory store takes it whole.
func (r *bytesReader) Bytes() []byte { return r.b[r.off:] }

func (r *bytesReader) Close() error { return nil }

// WriteTo lets io.Copy skip its buffer.
func (r *bytesReader) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(r.b[r.off:])
	r.off += n
	return int64(n), err
}

// memData is the PageData of a memory page.
type memData []byte

func (d memData) Size() uint64                 { return uint64(len(d)) }
func (d memData) Open() (io.ReadCloser, error) { return newBytesReader(d), nil }
func (d memData) Close() error                 { return nil }
func (d memData) OpenRange(off, n uint64) (io.ReadCloser, error) {
	if off > uint64(len(d)) || n > uint64(len(d))-off {
		return nil, ErrPageRefInvalid
	}
	return newBytesReader(d[off : off+n : off+n]), nil
}
