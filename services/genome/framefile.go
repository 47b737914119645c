package genome

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// Pages and artifacts on disk (Bench, Cold and Frozen) are frame files: a
// header naming the page, the page cut into frames of frameSize bytes, an
// index of the frames and a trailer. Each frame carries the CRC-32C of its
// plain bytes, so any range can be read and verified without reading the
// rest: an expert cut from a 10 GiB artifact reads only its own frames.
// Frozen frames are zstd-compressed (a frame that does not shrink is kept
// plain); Bench and Cold frames are plain.
//
//	header  96 bytes, see encodeHeader; ends with the CRC-32C of the rest
//	frames  nframes frames, each plain or zstd
//	index   nframes × {offset u64, stored length u32 (bit 31: stored plain), crc32c u32}
//	trailer index offset u64, CRC-32C of the index u32, magic "CTMPIDX1"
//
// All integers are little-endian. A torn or corrupt file fails its checks
// and is dropped (upper tiers) or reported as lost data (home copies).

const (
	frameSize     = 1 << 20
	headerLen     = 96
	indexEntryLen = 16
	trailerLen    = 20
	plainBit      = 1 << 31
	headerMagic   = "CTMPAGE1"
	trailerMagic  = "CTMPIDX1"
)

// codec is how a frame file stores its frames.
type codec uint8

const (
	codecPlain codec = iota
	codecZstd
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frameHeader is the decoded header of a frame file.
type frameHeader struct {
	codec   codec
	key     PageRef
	persona PersonaID
	size    uint64
	frames  uint32
}

func framesFor(size uint64) uint32 { return uint32((size + frameSize - 1) / frameSize) }

func encodeHeader(h frameHeader) []byte {
	b := make([]byte, headerLen)
	copy(b[0:8], headerMagic)
	b[8] = byte(h.codec)
	b[9] = byte(h.key.Kind)
	binary.LittleEndian.PutUint32(b[12:16], h.key.Expert)
	copy(b[16:32], h.key.Artifact[:])
	binary.LittleEndian.PutUint64(b[32:40], h.key.Offset)
	binary.LittleEndian.PutUint64(b[40:48], h.key.Length)
	copy(b[48:64], h.persona[:])
	binary.LittleEndian.PutUint64(b[64:72], h.size)
	binary.LittleEndian.PutUint32(b[72:76], frameSize)
	binary.LittleEndian.PutUint32(b[76:80], h.frames)
	binary.LittleEndian.PutUint32(b[92:96], crc32.Checksum(b[:92], castagnoli))
	return b
}

// decodeHeader parses and checks a frame file header.
func decodeHeader(b []byte) (frameHeader, error) {
	var h frameHeader
	if len(b) < headerLen {
		return h, fmt.Errorf("%w: header is %d bytes", ErrPageCorrupt, len(b))
	}
	b = b[:headerLen]
	if string(b[0:8]) != headerMagic {
		return h, fmt.Errorf("%w: bad magic", ErrPageCorrupt)
	}
	if crc32.Checksum(b[:92], castagnoli) != binary.LittleEndian.Uint32(b[92:96]) {
		return h, fmt.Errorf("%w: header checksum", ErrPageCorrupt)
	}
	h.codec = codec(b[8])
	if h.codec != codecPlain && h.codec != codecZstd {
		return h, fmt.Errorf("%w: unknown codec %d", ErrPageCorrupt, b[8])
	}
	h.key.Kind = PageKind(b[9])
	h.key.Expert = binary.LittleEndian.Uint32(b[12:16])
	copy(h.key.Artifact[:], b[16:32])
	h.key.Offset = binary.LittleEndian.Uint64(b[32:40])
	h.key.Length = binary.LittleEndian.Uint64(b[40:48])
	copy(h.persona[:], b[48:64])
	h.size = binary.LittleEndian.Uint64(b[64:72])
	if fs := binary.LittleEndian.Uint32(b[72:76]); fs != frameSize {
		return h, fmt.Errorf("%w: frame size %d", ErrPageCorrupt, fs)
	}
	h.frames = binary.LittleEndian.Uint32(b[76:80])
	if err := h.key.Validate(); err != nil {
		return h, fmt.Errorf("%w: %w", ErrPageCorrupt, err)
	}
	if h.size == 0 || h.size > 1<<62 || h.frames != framesFor(h.size) {
		return h, fmt.Errorf("%w: size %d in %d frames", ErrPageCorrupt, h.size, h.frames)
	}
	return h, nil
}

// frameEntry is one index entry.
type frameEntry struct {
	off   uint64
	n     uint32 // stored length
	plain bool
	crc   uint32
}

// frameCodec compresses and decompresses zstd frames. One is shared by a
// store; EncodeAll and DecodeAll are safe for concurrent use.
type frameCodec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newFrameCodec() (*frameCodec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(frameSize))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &frameCodec{enc: enc, dec: dec}, nil
}

func (c *frameCodec) close() {
	_ = c.enc.Close()
	c.dec.Close()
}

// writeFrames writes a whole frame file for size bytes read from r. It
// reads exactly size bytes and fails when r ends early or fails.
func writeFrames(w io.Writer, h frameHeader, r io.Reader, fc *frameCodec) error {
	h.frames = framesFor(h.size)
	if _, err := w.Write(encodeHeader(h)); err != nil {
		return err
	}
	off := uint64(headerLen)
	index := make([]byte, 0, int(h.frames)*indexEntryLen)
	plain := make([]byte, frameSize)
	var packed []byte
	for left := h.size; left > 0; {
		n := min(left, frameSize)
		if _, err := io.ReadFull(r, plain[:n]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		left -= n
		out, stored := plain[:n], uint32(n)|plainBit
		if h.codec == codecZstd {
			packed = fc.enc.EncodeAll(plain[:n], packed[:0])
			if uint64(len(packed)) < n {
				out, stored = packed, uint32(len(packed))
			}
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
		index = binary.LittleEndian.AppendUint64(index, off)
		index = binary.LittleEndian.AppendUint32(index, stored)
		index = binary.LittleEndian.AppendUint32(index, crc32.Checksum(plain[:n], castagnoli))
		off += uint64(len(out))
	}
	trailer := binary.LittleEndian.AppendUint64(nil, off)
	trailer = binary.LittleEndian.AppendUint32(trailer, crc32.Checksum(index, castagnoli))
	trailer = append(trailer, trailerMagic...)
	if _, err := w.Write(index); err != nil {
		return err
	}
	_, err := w.Write(trailer)
	return err
}

// frameFile is an open, checked frame file.
type frameFile struct {
	f     *os.File
	h     frameHeader
	index []frameEntry
	fc    *frameCodec
}

// openFrames opens a frame file and checks its header, index and trailer.
func openFrames(path string, fc *frameCodec) (*frameFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	ff, err := readFrames(f, fc)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ff, nil
}

func readFrames(f *os.File, fc *frameCodec) (*frameFile, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := uint64(st.Size())
	hb := make([]byte, headerLen)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return nil, fmt.Errorf("%w: read header: %w", ErrPageCorrupt, err)
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return nil, err
	}
	if h.codec == codecZstd && fc == nil {
		return nil, fmt.Errorf("%w: compressed page in a plain store", ErrPageCorrupt)
	}
	ixLen := uint64(h.frames) * indexEntryLen
	if size < headerLen+ixLen+trailerLen {
		return nil, fmt.Errorf("%w: file is %d bytes", ErrPageCorrupt, size)
	}
	tb := make([]byte, trailerLen)
	if _, err := f.ReadAt(tb, int64(size-trailerLen)); err != nil {
		return nil, fmt.Errorf("%w: read trailer: %w", ErrPageCorrupt, err)
	}
	ixOff := binary.LittleEndian.Uint64(tb[0:8])
	if string(tb[12:20]) != trailerMagic || ixOff != size-trailerLen-ixLen || ixOff < headerLen {
		return nil, fmt.Errorf("%w: bad trailer", ErrPageCorrupt)
	}
	ib := make([]byte, ixLen)
	if _, err := f.ReadAt(ib, int64(ixOff)); err != nil {
		return nil, fmt.Errorf("%w: read index: %w", ErrPageCorrupt, err)
	}
	if crc32.Checksum(ib, castagnoli) != binary.LittleEndian.Uint32(tb[8:12]) {
		return nil, fmt.Errorf("%w: index checksum", ErrPageCorrupt)
	}
	index := make([]frameEntry, h.frames)
	next := uint64(headerLen)
	for i := range index {
		e := ib[i*indexEntryLen:]
		stored := binary.LittleEndian.Uint32(e[8:12])
		fe := frameEntry{off: binary.LittleEndian.Uint64(e[0:8]), n: stored &^ plainBit, plain: stored&plainBit != 0, crc: binary.LittleEndian.Uint32(e[12:16])}
		want := min(uint64(frameSize), h.size-uint64(i)*frameSize)
		switch {
		case fe.off != next, fe.n == 0, fe.n > frameSize:
			return nil, fmt.Errorf("%w: frame %d out of place", ErrPageCorrupt, i)
		case (fe.plain || h.codec == codecPlain) && uint64(fe.n) != want:
			return nil, fmt.Errorf("%w: plain frame %d is %d bytes, want %d", ErrPageCorrupt, i, fe.n, want)
		case h.codec == codecPlain && !fe.plain:
			return nil, fmt.Errorf("%w: compressed frame in a plain file", ErrPageCorrupt)
		}
		next = fe.off + uint64(fe.n)
		index[i] = fe
	}
	if next != ixOff {
		return nil, fmt.Errorf("%w: frames end at %d, index at %d", ErrPageCorrupt, next, ixOff)
	}
	return &frameFile{f: f, h: h, index: index, fc: fc}, nil
}

// frame reads, decodes and verifies frame i into buf (reused when large
// enough) and returns its plain bytes.
func (ff *frameFile) frame(i int, buf, scratch []byte) ([]byte, []byte, error) {
	fe := ff.index[i]
	want := int(min(uint64(frameSize), ff.h.size-uint64(i)*frameSize))
	if cap(scratch) < int(fe.n) {
		scratch = make([]byte, fe.n)
	}
	scratch = scratch[:fe.n]
	if _, err := ff.f.ReadAt(scratch, int64(fe.off)); err != nil {
		return nil, scratch, fmt.Errorf("%w: read frame %d: %w", ErrPageCorrupt, i, err)
	}
	plain := scratch
	if !fe.plain {
		var err error
		plain, err = ff.fc.dec.DecodeAll(scratch, buf[:0])
		if err != nil {
			return nil, scratch, fmt.Errorf("%w: frame %d: %w", ErrPageCorrupt, i, err)
		}
	}
	if len(plain) != want || crc32.Checksum(plain, castagnoli) != fe.crc {
		return nil, scratch, fmt.Errorf("%w: frame %d checksum", ErrPageCorrupt, i)
	}
	return plain, scratch, nil
}

// rangeReader reads n bytes from off of a frame file, verifying each frame
// it touches. It owns the file and closes it.
type rangeReader struct {
	ff       *frameFile
	pos, end uint64
	cur      []byte // unread plain bytes of the current frame
	buf      []byte
	scratch  []byte
}

func (ff *frameFile) openRange(off, n uint64) (*rangeReader, error) {
	if off > ff.h.size || n > ff.h.size-off {
		return nil, fmt.Errorf("%w: range %d+%d of %d bytes", ErrPageRefInvalid, off, n, ff.h.size)
	}
	return &rangeReader{ff: ff, pos: off, end: off + n, buf: make([]byte, 0, frameSize)}, nil
}

func (r *rangeReader) Read(p []byte) (int, error) {
	if len(r.cur) == 0 {
		if r.pos >= r.end {
			return 0, io.EOF
		}
		i := int(r.pos / frameSize)
		plain, scratch, err := r.ff.frame(i, r.buf, r.scratch)
		r.scratch = scratch
		if err != nil {
			return 0, err
		}
		start := r.pos - uint64(i)*frameSize
		stop := min(uint64(len(plain)), r.end-uint64(i)*frameSize)
		r.cur = plain[start:stop]
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	r.pos += uint64(n)
	return n, nil
}
