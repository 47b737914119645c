package auditlog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
)

// The verifier's fast path. ParseLine builds the payload as Go maps, which
// Read needs; verification only needs the canonical bytes, so it encodes
// them straight from the JSON text into reused buffers, with no map, no
// boxed value and almost no allocation per line. It accepts and refuses
// exactly the lines ParseLine does, and produces the bytes AppendCanonical
// would produce from ParseLine's entry (FuzzParseLine checks both).

// canonScratch holds a worker's reusable buffers, one set per nesting
// depth (an object's member values are encoded at its depth, then sorted
// by key and copied out).
type canonScratch struct {
	vals    [][]byte
	keys    [][]byte
	mems    [][]canonMember
	payload []byte
	skip    []byte
	kind    []byte
	topic   []byte
	pub     []byte
	hash    []byte
}

// canonMember locates one object member in its depth's buffers.
type canonMember struct{ k0, k1, v0, v1 int }

func (sc *canonScratch) level(depth int) {
	for len(sc.vals) <= depth {
		sc.vals = append(sc.vals, nil)
		sc.keys = append(sc.keys, nil)
		sc.mems = append(sc.mems, nil)
	}
}

// lineFields are the parsed scalar fields of a line; the byte slices are
// views into the scratch, valid until its next use.
type lineFields struct {
	seq, streamSeq         uint64
	ts, raw                int64
	kind, topic, publisher []byte
	prev, chain            Hash
}

// appendLineCanonical parses line (without its '\n') and appends the
// entry's canonical encoding to dst.
func appendLineCanonical(dst, line []byte, sc *canonScratch) (lineFields, []byte, error) {
	var f lineFields
	p := &jsonParser{b: line}
	sc.payload = append(sc.payload[:0], tagObject, 0, 0, 0, 0) // the empty object, unless a payload is given
	sc.kind, sc.topic, sc.pub = sc.kind[:0], sc.topic[:0], sc.pub[:0]
	have := 0
	err := p.rawMembers(0, sc, func(k []byte) error {
		if isNull(p) {
			switch string(k) {
			case fieldSeq, fieldKind, fieldPrevChainHash, fieldChainHash:
				return p.errorf("%s is null", k)
			}
			return p.literal("null")
		}
		var err error
		switch string(k) {
		case fieldSeq:
			have |= haveSeq
			f.seq, err = p.uint()
		case fieldTimestampMs:
			f.ts, err = p.int()
		case fieldRawTimestampMs:
			f.raw, err = p.int()
		case fieldKind:
			have |= haveKind
			sc.kind, err = p.strAppend(sc.kind[:0])
		case fieldPayload:
			if c, _ := p.peek(); c != '{' {
				return p.errorf("payload is not an object")
			}
			sc.payload, err = p.canon(sc.payload[:0], 1, sc)
		case fieldSource:
			err = p.canonSource(&f, sc)
		case fieldPrevChainHash:
			have |= havePrev
			f.prev, err = p.hashMember(sc)
		case fieldChainHash:
			have |= haveChain
			f.chain, err = p.hashMember(sc)
		default:
			sc.skip, err = p.canon(sc.skip[:0], 1, sc)
		}
		return err
	})
	if err != nil {
		return f, dst, err
	}
	p.ws()
	if p.i != len(p.b) {
		return f, dst, p.errorf("trailing data after the entry")
	}
	if have != haveAll {
		return f, dst, fmt.Errorf("missing %s", missing(have))
	}
	f.kind, f.topic, f.publisher = sc.kind, sc.topic, sc.pub
	dst = append(dst, CanonicalMagic...)
	dst = binary.BigEndian.AppendUint64(dst, f.seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(f.ts))
	dst = binary.BigEndian.AppendUint64(dst, uint64(f.raw))
	dst = appendStrBytes(dst, f.kind)
	dst = appendStrBytes(dst, f.topic)
	dst = binary.BigEndian.AppendUint64(dst, f.streamSeq)
	dst = appendStrBytes(dst, f.publisher)
	dst = append(dst, sc.payload...)
	return f, append(dst, f.prev[:]...), nil
}

func appendStrBytes(dst, s []byte) []byte {
	dst = appendCount(dst, len(s))
	return append(dst, s...)
}

func (p *jsonParser) canonSource(f *lineFields, sc *canonScratch) error {
	if c, _ := p.peek(); c != '{' {
		return p.errorf("source is not an object")
	}
	return p.rawMembers(1, sc, func(k []byte) error {
		if isNull(p) {
			return p.literal("null")
		}
		var err error
		switch string(k) {
		case fieldTopic:
			sc.topic, err = p.strAppend(sc.topic[:0])
		case fieldStreamSequence:
			f.streamSeq, err = p.uint()
		case fieldPublisher:
			sc.pub, err = p.strAppend(sc.pub[:0])
		default:
			sc.skip, err = p.canon(sc.skip[:0], 2, sc)
		}
		return err
	})
}

func (p *jsonParser) hashMember(sc *canonScratch) (Hash, error) {
	var h Hash
	var err error
	if sc.hash, err = p.strAppend(sc.hash[:0]); err != nil {
		return h, err
	}
	if len(sc.hash) != 2*len(h) {
		return h, fmt.Errorf("hash %q: want %d hex digits", sc.hash, 2*len(h))
	}
	if _, err := hex.Decode(h[:], sc.hash); err != nil {
		return h, fmt.Errorf("hash %q: %w", sc.hash, err)
	}
	return h, nil
}

// rawMembers is members for the fixed-schema objects of a line: keys are
// handed over as bytes (no string per key) and duplicates are found by
// comparing with the keys seen so far.
func (p *jsonParser) rawMembers(depth int, sc *canonScratch, member func(key []byte) error) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	c, err := p.peek()
	if err != nil {
		return err
	}
	if c == '}' {
		p.i++
		return nil
	}
	sc.level(depth)
	keys := sc.keys[depth][:0]
	ends := make([]int, 0, 16)
	for {
		if c, err = p.peek(); err != nil {
			return err
		}
		if c != '"' {
			return p.errorf("want a key, got %q", c)
		}
		start := len(keys)
		if keys, err = p.strAppend(keys); err != nil {
			return err
		}
		k := keys[start:]
		prev := 0
		for _, end := range ends {
			if bytes.Equal(keys[prev:end], k) {
				return p.errorf("duplicate key %q", k)
			}
			prev = end
		}
		ends = append(ends, len(keys))
		if err := p.expect(':'); err != nil {
			return err
		}
		sc.keys[depth] = keys // a member's value may use deeper levels only
		if err := member(k); err != nil {
			return err
		}
		if c, err = p.peek(); err != nil {
			return err
		}
		p.i++
		switch c {
		case ',':
		case '}':
			return nil
		default:
			return p.errorf("want ',' or '}', got %q", c)
		}
	}
}

// canon reads any JSON value and appends its canonical encoding (see
// AppendCanonical). depth is as for value.
func (p *jsonParser) canon(dst []byte, depth int, sc *canonScratch) ([]byte, error) {
	c, err := p.peek()
	if err != nil {
		return dst, err
	}
	switch {
	case c == '{':
		return p.canonObject(dst, depth, sc)
	case c == '[':
		return p.canonArray(dst, depth, sc)
	case c == '"':
		dst = append(dst, tagString, 0, 0, 0, 0)
		at := len(dst)
		if dst, err = p.strAppend(dst); err != nil {
			return dst, err
		}
		return patchCount(dst, at-4, len(dst)-at)
	case c == '-' || (c >= '0' && c <= '9'):
		f, err := p.number()
		if err != nil {
			return dst, err
		}
		if f == 0 {
			f = 0 // -0 is 0
		}
		return binary.BigEndian.AppendUint64(append(dst, tagNumber), math.Float64bits(f)), nil
	case c == 't':
		return append(dst, tagTrue), p.literal("true")
	case c == 'f':
		return append(dst, tagFalse), p.literal("false")
	case c == 'n':
		return append(dst, tagNull), p.literal("null")
	}
	return dst, p.errorf("unexpected %q", c)
}

var errTooLarge = errors.New("container or string longer than 2^32")

func patchCount(dst []byte, at, n int) ([]byte, error) {
	if uint64(n) > math.MaxUint32 {
		return dst, errTooLarge
	}
	binary.BigEndian.PutUint32(dst[at:], uint32(n))
	return dst, nil
}

func (p *jsonParser) canonArray(dst []byte, depth int, sc *canonScratch) ([]byte, error) {
	if depth > MaxPayloadDepth {
		return dst, p.errorf("nested deeper than %d", MaxPayloadDepth)
	}
	if err := p.expect('['); err != nil {
		return dst, err
	}
	dst = append(dst, tagArray, 0, 0, 0, 0)
	at := len(dst) - 4
	c, err := p.peek()
	if err != nil {
		return dst, err
	}
	if c == ']' {
		p.i++
		return dst, nil
	}
	for n := 1; ; n++ {
		if dst, err = p.canon(dst, depth+1, sc); err != nil {
			return dst, err
		}
		if c, err = p.peek(); err != nil {
			return dst, err
		}
		p.i++
		switch c {
		case ',':
		case ']':
			return patchCount(dst, at, n)
		default:
			return dst, p.errorf("want ',' or ']', got %q", c)
		}
	}
}

func (p *jsonParser) canonObject(dst []byte, depth int, sc *canonScratch) ([]byte, error) {
	if depth > MaxPayloadDepth {
		return dst, p.errorf("nested deeper than %d", MaxPayloadDepth)
	}
	if err := p.expect('{'); err != nil {
		return dst, err
	}
	c, err := p.peek()
	if err != nil {
		return dst, err
	}
	if c == '}' {
		p.i++
		return append(dst, tagObject, 0, 0, 0, 0), nil
	}
	sc.level(depth)
	vals, keys, mems := sc.vals[depth][:0], sc.keys[depth][:0], sc.mems[depth][:0]
	for {
		if c, err = p.peek(); err != nil {
			return dst, err
		}
		if c != '"' {
			return dst, p.errorf("want a key, got %q", c)
		}
		m := canonMember{k0: len(keys)}
		if keys, err = p.strAppend(keys); err != nil {
			return dst, err
		}
		m.k1 = len(keys)
		if err := p.expect(':'); err != nil {
			return dst, err
		}
		m.v0 = len(vals)
		if vals, err = p.canon(vals, depth+1, sc); err != nil {
			return dst, err
		}
		m.v1 = len(vals)
		mems = append(mems, m)
		if c, err = p.peek(); err != nil {
			return dst, err
		}
		p.i++
		if c == '}' {
			break
		}
		if c != ',' {
			return dst, p.errorf("want ',' or '}', got %q", c)
		}
	}
	sc.vals[depth], sc.keys[depth], sc.mems[depth] = vals, keys, mems
	slices.SortFunc(mems, func(a, b canonMember) int { return bytes.Compare(keys[a.k0:a.k1], keys[b.k0:b.k1]) })
	for i := 1; i < len(mems); i++ {
		if bytes.Equal(keys[mems[i-1].k0:mems[i-1].k1], keys[mems[i].k0:mems[i].k1]) {
			return dst, p.errorf("duplicate key %q", keys[mems[i].k0:mems[i].k1])
		}
	}
	dst = appendCount(append(dst, tagObject), len(mems))
	for _, m := range mems {
		dst = appendStrBytes(dst, keys[m.k0:m.k1])
		dst = append(dst, vals[m.v0:m.v1]...)
	}
	return dst, nil
}

// plain marks the bytes a string holds as they are: printable ASCII other
// than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// strAppend reads a string (the next non-space byte must be '"') and
// appends its decoded bytes to dst.
func (p *jsonParser) strAppend(dst []byte) ([]byte, error) {
	if err := p.expect('"'); err != nil {
		return dst, err
	}
	for p.i < len(p.b) {
		start := p.i
		for p.i < len(p.b) && plain[p.b[p.i]] {
			p.i++
		}
		dst = append(dst, p.b[start:p.i]...)
		if p.i >= len(p.b) {
			break
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return dst, nil
		case c == '\\':
			var err error
			if dst, err = p.escape(dst); err != nil {
				return dst, err
			}
		case c < 0x20:
			return dst, p.errorf("control character 0x%02x in string", c)
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size <= 1 {
				return dst, p.errorf("invalid UTF-8 in string")
			}
			dst = append(dst, p.b[p.i:p.i+size]...)
			p.i += size
		}
	}
	return dst, errUnexpectedEnd
}
