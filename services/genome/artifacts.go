package genome

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
	"unicode"
	"unicode/utf8"
)

// ArtifactHeader describes an artifact being uploaded.
type ArtifactHeader struct {
	// Name is for humans; at most 256 printable characters.
	Name string
	// SHA256 is the hex SHA-256 of the whole artifact.
	SHA256 string
	Size   uint64
	// Experts splits the artifact into equal expert pages (the last takes
	// the remainder) when ExpertOffsets is empty.
	Experts uint32
	// ExpertOffsets are the start offsets of the experts: strictly
	// increasing from 0 and below Size.
	ExpertOffsets []uint64
}

// Artifact is a stored artifact.
type Artifact struct {
	ID      ArtifactID
	Name    string
	SHA256  string
	Size    uint64
	Experts int
	// Home is the tier that holds its durable copy.
	Home Role
	// Created is false when the same bytes were already stored.
	Created bool
}

const (
	maxNameLen = 256
	maxExperts = 1 << 16
)

// artifact is the catalog's record of an artifact.
type artifact struct {
	id      ArtifactID
	name    string
	sum     [sha256.Size]byte
	size    uint64
	experts []uint64 // start offsets
	created time.Time
	// lost is set when the catalog names the artifact but the home tier
	// does not hold it (a disk was wiped, the chain's home changed).
	lost    bool
	entries map[*pageEntry]struct{}
}

// span returns the bytes a page of this artifact covers.
func (a *artifact) span(ref PageRef) (off, n uint64, err error) {
	switch ref.Kind {
	case KindWhole:
		return 0, a.size, nil
	case KindExpert:
		i := int(ref.Expert)
		if i >= len(a.experts) {
			return 0, 0, fmt.Errorf("%w: artifact %s has %d experts, no expert %d", ErrPageRefInvalid, a.id, len(a.experts), ref.Expert)
		}
		end := a.size
		if i+1 < len(a.experts) {
			end = a.experts[i+1]
		}
		return a.experts[i], end - a.experts[i], nil
	case KindByteRange:
		if ref.Offset >= a.size || ref.Length > a.size-ref.Offset {
			return 0, 0, fmt.Errorf("%w: bytes %d+%d are outside artifact %s of %d bytes", ErrPageRefInvalid, ref.Offset, ref.Length, a.id, a.size)
		}
		return ref.Offset, ref.Length, nil
	}
	return 0, 0, fmt.Errorf("%w: unknown page kind", ErrPageRefInvalid)
}

func (a *artifact) public(home Role, created bool) Artifact {
	return Artifact{
		ID: a.id, Name: a.name, SHA256: hex.EncodeToString(a.sum[:]), Size: a.size,
		Experts: len(a.experts), Home: home, Created: created,
	}
}

// validate checks a header and returns the expert layout and digest.
func (h ArtifactHeader) validate() ([]uint64, [sha256.Size]byte, error) {
	sum, ok := parseSHA256(h.SHA256)
	if !ok {
		return nil, sum, fmt.Errorf("%w: sha256 must be 64 hex digits", ErrHeaderInvalid)
	}
	if h.Size == 0 {
		return nil, sum, fmt.Errorf("%w: size_bytes must be at least 1", ErrHeaderInvalid)
	}
	if err := validName(h.Name); err != nil {
		return nil, sum, err
	}
	experts, err := expertLayout(h.Size, h.Experts, h.ExpertOffsets)
	return experts, sum, err
}

func validName(name string) error {
	if len(name) > maxNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("%w: name must be valid UTF-8 of at most %d bytes", ErrHeaderInvalid, maxNameLen)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: name has a control character", ErrHeaderInvalid)
		}
	}
	return nil
}

// expertLayout turns an expert count or explicit offsets into offsets.
func expertLayout(size uint64, experts uint32, offsets []uint64) ([]uint64, error) {
	if len(offsets) > 0 {
		if experts != 0 && int(experts) != len(offsets) {
			return nil, fmt.Errorf("%w: experts is %d but %d offsets are given", ErrExpertsInvalid, experts, len(offsets))
		}
		if len(offsets) > maxExperts {
			return nil, fmt.Errorf("%w: more than %d experts", ErrExpertsInvalid, maxExperts)
		}
		for i, o := range offsets {
			switch {
			case i == 0 && o != 0:
				return nil, fmt.Errorf("%w: the first expert must start at 0", ErrExpertsInvalid)
			case i > 0 && o <= offsets[i-1]:
				return nil, fmt.Errorf("%w: expert offsets must increase strictly", ErrExpertsInvalid)
			case o >= size:
				return nil, fmt.Errorf("%w: expert %d starts at %d, beyond the artifact", ErrExpertsInvalid, i, o)
			}
		}
		return append([]uint64(nil), offsets...), nil
	}
	if experts == 0 {
		return nil, nil
	}
	if experts > maxExperts || uint64(experts) > size {
		return nil, fmt.Errorf("%w: %d experts in %d bytes", ErrExpertsInvalid, experts, size)
	}
	part := size / uint64(experts)
	out := make([]uint64, experts)
	for i := range out {
		out[i] = uint64(i) * part
	}
	return out, nil
}

// verifyingReader passes exactly size bytes through, hashing them; at the
// last byte it checks that the source has nothing more and that the
// digest matches. Stores read exactly size bytes and may swallow an error
// returned with the last bytes, so the caller also checks err after the
// write.
type verifyingReader struct {
	r    io.Reader
	want [sha256.Size]byte
	size uint64
	n    uint64
	h    hash.Hash
	done bool
	err  error
}

func newVerifyingReader(r io.Reader, size uint64, want [sha256.Size]byte) *verifyingReader {
	return &verifyingReader{r: r, size: size, want: want, h: sha256.New()}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.n == v.size {
		return 0, io.EOF
	}
	if uint64(len(p)) > v.size-v.n {
		p = p[:v.size-v.n]
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += uint64(n)
	if v.n == v.size {
		v.finish()
		return n, v.err
	}
	if errors.Is(err, io.EOF) {
		v.err = fmt.Errorf("%w: the stream ended after %d of %d bytes", ErrSizeMismatch, v.n, v.size)
		return n, v.err
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

// finish checks for trailing bytes and the digest.
func (v *verifyingReader) finish() {
	v.done = true
	var one [1]byte
	for {
		n, err := v.r.Read(one[:])
		if n > 0 {
			v.err = fmt.Errorf("%w: the stream has more than the declared %d bytes", ErrSizeMismatch, v.size)
			return
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			v.err = err
			return
		}
	}
	var got [sha256.Size]byte
	v.h.Sum(got[:0])
	if !bytes.Equal(got[:], v.want[:]) {
		v.err = fmt.Errorf("%w: the bytes hash to %x, the header says %x", ErrChecksumMismatch, got, v.want)
	}
}

// check returns the verification outcome once the store has read.
func (v *verifyingReader) check() error {
	if v.err != nil {
		return v.err
	}
	if !v.done {
		return fmt.Errorf("%w: only %d of %d bytes were read", ErrSizeMismatch, v.n, v.size)
	}
	return nil
}

// PutArtifact stores an artifact read from r (exactly hdr.Size bytes, then
// EOF) in the home tier. It is content-addressed and idempotent: putting
// the same bytes again verifies them and returns the same id with Created
// false.
func (s *Service) PutArtifact(ctx context.Context, hdr ArtifactHeader, r io.Reader) (Artifact, error) {
	experts, sum, err := hdr.validate()
	if err != nil {
		return Artifact{}, err
	}
	id := ArtifactIDFor(sum)
	vr := newVerifyingReader(r, hdr.Size, sum)

	s.mu.Lock()
	for {
		if s.closed {
			s.mu.Unlock()
			return Artifact{}, ErrClosed
		}
		ch := s.putting[id]
		if ch == nil {
			break
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Artifact{}, ctx.Err()
		}
		s.mu.Lock()
	}
	if a := s.artifacts[id]; a != nil && !a.lost {
		pub := a.public(s.home.role, false)
		s.mu.Unlock()
		if _, err := io.Copy(io.Discard, vr); err != nil {
			return Artifact{}, fmt.Errorf("put artifact %s: %w", id, err)
		}
		if err := vr.check(); err != nil {
			return Artifact{}, fmt.Errorf("put artifact %s: %w", id, err)
		}
		if s.catalog != nil && s.catalog.isDirty() {
			if err := s.saveCatalog(); err != nil {
				return Artifact{}, fmt.Errorf("put artifact %s: the catalog could not be written: %w", id, err)
			}
		}
		return pub, nil
	}
	home := s.home
	if hdr.Size > home.capacity || home.used > home.capacity-hdr.Size {
		s.mu.Unlock()
		return Artifact{}, fmt.Errorf("put artifact %s: %d bytes into the %s tier (%d of %d used): %w",
			id, hdr.Size, home.role, home.used, home.capacity, ErrTierFull)
	}
	home.used += hdr.Size
	done := make(chan struct{})
	s.putting[id] = done
	s.ops.Add(1)
	s.mu.Unlock()

	err = home.store.Write(ctx, WholePage(id), PageMeta{}, hdr.Size, vr)
	if err == nil {
		if err = vr.check(); err != nil {
			if evErr := home.store.Evict(context.WithoutCancel(ctx), WholePage(id)); evErr != nil {
				s.log.Error("genome: could not remove a rejected upload", "artifact_id", id.String(), "error", evErr)
			}
		}
	} else if verr := vr.check(); verr != nil && vr.err != nil {
		err = verr // the stream's fault, not the store's
	}

	s.mu.Lock()
	delete(s.putting, id)
	close(done)
	s.ops.Done()
	if err != nil {
		home.used -= hdr.Size
		s.mu.Unlock()
		return Artifact{}, fmt.Errorf("put artifact %s: %w", id, err)
	}
	a := s.artifacts[id]
	if a == nil {
		a = &artifact{id: id, entries: map[*pageEntry]struct{}{}}
		s.artifacts[id] = a
	}
	a.name, a.sum, a.size, a.experts, a.created, a.lost = hdr.Name, sum, hdr.Size, experts, s.now(), false
	home.pages++
	snap := s.catalogSnapshot()
	s.mu.Unlock()
	if err := s.writeCatalog(snap); err != nil {
		return Artifact{}, fmt.Errorf("put artifact %s: stored, but the catalog could not be written (a retry completes it): %w", id, err)
	}
	return a.public(home.role, true), nil
}
