package hippocampus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// The store's encodings: journal records and persona snapshots (which are
// also what a hand-off streams). Both are little varint-based formats with a
// CRC-32C; the decoders check every count and reference against the bytes
// actually present, so a corrupt or hostile input is an error, never a
// panic or a huge allocation.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Limits the decoders enforce.
const (
	maxIDLen       = 128
	maxNameLen     = 128
	maxFeatureLen  = 256
	maxContentLen  = 64 << 10
	maxFeatures    = 64
	maxConsumeIDs  = 256
	maxRecordBytes = 4 << 20
)

// SnapshotError is an undecodable snapshot or record.
type SnapshotError struct{ Msg string }

func (e *SnapshotError) Error() string { return "snapshot: " + e.Msg }

type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)       { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) f32(v float32)    { e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(v)) }

func (e *encoder) f64(v float64) { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v)) }

func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) strs(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) edge(ed edgeRec) {
	e.str(ed.from)
	e.str(ed.to)
	e.u8(uint8(ed.kind))
	e.f32(ed.weight)
}

func (e *encoder) edges(es []edgeRec) {
	e.uvarint(uint64(len(es)))
	for _, ed := range es {
		e.edge(ed)
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = &SnapshotError{Msg: fmt.Sprintf(format, args...)}
	}
	d.b = nil
}

func (d *decoder) u8() uint8 {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) f32() float32 {
	if len(d.b) < 4 {
		d.fail("truncated")
		return 0
	}
	v := math.Float32frombits(binary.LittleEndian.Uint32(d.b))
	d.b = d.b[4:]
	return v
}

func (d *decoder) f64() float64 {
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

// count reads a count of elements that each take at least minBytes.
func (d *decoder) count(limit int, minBytes int) int {
	v := d.uvarint()
	if d.err != nil {
		return 0
	}
	if v > uint64(limit) || v*uint64(minBytes) > uint64(len(d.b)) {
		d.fail("count %d out of range", v)
		return 0
	}
	return int(v)
}

func (d *decoder) str(limit int) string {
	n := d.count(limit, 1)
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) strs(limitN, limitLen int) []string {
	n := d.count(limitN, 1)
	if n == 0 {
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, d.str(limitLen))
	}
	return out
}

func (d *decoder) edge() edgeRec {
	ed := edgeRec{from: d.str(maxIDLen), to: d.str(maxIDLen), kind: EdgeKind(d.u8()), weight: d.f32()}
	if d.err == nil && !validEdge(ed.kind, ed.weight) {
		d.fail("invalid edge %v %v", ed.kind, ed.weight)
	}
	return ed
}

func (d *decoder) edges() []edgeRec {
	n := d.count(math.MaxInt32, 7)
	if n == 0 {
		return nil
	}
	out := make([]edgeRec, 0, n)
	for range n {
		out = append(out, d.edge())
	}
	return out
}

func validEdge(k EdgeKind, w float32) bool {
	return k.valid() && w > 0 && w <= maxLinkWeight && !math.IsNaN(float64(w))
}

// encodeRecord renders a record's payload (without the frame).
func encodeRecord(dst []byte, r *record) []byte {
	e := encoder{b: dst}
	e.uvarint(r.lsn)
	e.u8(uint8(r.kind))
	e.str(r.persona)
	switch r.kind {
	case recRemember:
		m := &r.rem
		e.str(m.id)
		e.str(m.content)
		e.str(m.channel)
		e.str(m.replyTo)
		e.strs(m.entities)
		e.strs(m.topics)
		e.u8(m.importance)
		e.varint(m.at)
		e.edges(m.edges)
	case recConsume:
		c := &r.con
		e.str(c.channel)
		e.varint(c.at)
		e.strs(c.ids)
		e.edges(c.edges)
	case recLink:
		e.edge(r.link)
	case recForget:
		e.str(r.forget.id)
		e.varint(r.forget.at)
	case recDrop:
	}
	return e.b
}

// decodeRecord parses a record payload.
func decodeRecord(b []byte) (*record, error) {
	d := decoder{b: b}
	r := &record{lsn: d.uvarint(), kind: recordKind(d.u8()), persona: d.str(maxNameLen)}
	switch r.kind {
	case recRemember:
		m := &r.rem
		m.id = d.str(maxIDLen)
		m.content = d.str(maxContentLen)
		m.channel = d.str(maxNameLen)
		m.replyTo = d.str(maxIDLen)
		m.entities = d.strs(maxFeatures, maxFeatureLen)
		m.topics = d.strs(maxFeatures, maxFeatureLen)
		m.importance = d.u8()
		m.at = d.varint()
		m.edges = d.edges()
		if d.err == nil && (m.id == "" || m.channel == "" || m.importance < 1 || m.importance > 10) {
			d.fail("invalid remember record")
		}
	case recConsume:
		c := &r.con
		c.channel = d.str(maxNameLen)
		c.at = d.varint()
		c.ids = d.strs(maxConsumeIDs, maxIDLen)
		c.edges = d.edges()
	case recLink:
		r.link = d.edge()
	case recForget:
		r.forget.id = d.str(maxIDLen)
		r.forget.at = d.varint()
	case recDrop:
	default:
		d.fail("unknown record kind %d", r.kind)
	}
	if d.err == nil && r.persona == "" {
		d.fail("record without persona")
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

// Frames: u32 payload length, u32 CRC-32C of the payload, payload.
const frameHeader = 8

func appendFrame(dst, payload []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	return append(dst, payload...)
}

var errTornFrame = errors.New("torn frame")

// nextFrame splits the first frame off b. errTornFrame means b ends inside
// a frame or the frame's checksum is wrong (a crash mid-write leaves that
// at the tail of the journal).
func nextFrame(b []byte) (payload, rest []byte, err error) {
	if len(b) < frameHeader {
		return nil, nil, errTornFrame
	}
	n := binary.LittleEndian.Uint32(b)
	sum := binary.LittleEndian.Uint32(b[4:])
	if n > maxRecordBytes || uint64(n) > uint64(len(b)-frameHeader) {
		return nil, nil, errTornFrame
	}
	payload = b[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, nil, errTornFrame
	}
	return payload, b[frameHeader+int(n):], nil
}
