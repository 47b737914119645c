package auditlog

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"
)

// CanonicalMagic starts every canonical encoding; it names the format and
// its version, so a hash of this encoding is never confused with a hash of
// anything else.
const CanonicalMagic = "continuum.audit.v1 entry\n"

// Tags of the canonical payload value encoding.
const (
	tagNull   byte = 0x00
	tagFalse  byte = 0x01
	tagTrue   byte = 0x02
	tagNumber byte = 0x03
	tagString byte = 0x04
	tagArray  byte = 0x05
	tagObject byte = 0x06
)

// AppendCanonical appends the canonical encoding of e to dst: the bytes the
// chain hash and the Merkle leaf are computed over. It does not include
// e.ChainHash, which is derived from it. The encoding (docs/audit.md):
//
//	CanonicalMagic                      25 bytes "continuum.audit.v1 entry\n"
//	seq                                 uint64, 8 bytes big-endian
//	timestampMs                         int64, 8 bytes big-endian two's complement
//	rawTimestampMs                      int64, 8 bytes big-endian two's complement
//	kind                                str
//	source.topic                        str
//	source.streamSequence               uint64, 8 bytes big-endian
//	source.publisher                    str
//	payload                             value (an object)
//	prevChainHash                       32 raw bytes
//
// where str is a uint32 big-endian byte length and the UTF-8 bytes, and a
// value is one tag byte and its content: 0x00 null, 0x01 false, 0x02 true,
// 0x03 number (the 8-byte big-endian IEEE-754 binary64 bits, -0 written as
// +0), 0x04 string (str), 0x05 array (uint32 count, then each value), 0x06
// object (uint32 count, then str key and value for each member in
// ascending bytewise order of the keys' UTF-8).
//
// The payload must pass ValidatePayload; AppendCanonical panics on a value
// of a type JSON cannot hold, which is a programming error.
func AppendCanonical(dst []byte, e *Entry) []byte {
	dst = append(dst, CanonicalMagic...)
	dst = binary.BigEndian.AppendUint64(dst, e.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.TimestampMs))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.RawTimestampMs))
	dst = appendStr(dst, e.Kind)
	dst = appendStr(dst, e.Source.Topic)
	dst = binary.BigEndian.AppendUint64(dst, e.Source.StreamSequence)
	dst = appendStr(dst, e.Source.Publisher)
	dst = appendCanonicalValue(dst, e.Payload)
	return append(dst, e.PrevChainHash[:]...)
}

// ChainHashOf returns SHA-256 of canonical, the chainHash of the entry
// whose canonical encoding it is.
func ChainHashOf(canonical []byte) Hash { return sha256.Sum256(canonical) }

// LeafHashOf returns the RFC 6962 Merkle leaf hash of the entry whose
// canonical encoding it is: SHA-256(0x00 || canonical), as
// golang.org/x/mod/sumdb/tlog.RecordHash computes it.
func LeafHashOf(canonical []byte) tlog.Hash { return tlog.RecordHash(canonical) }

// Seal computes e.ChainHash from e's other fields and returns e's leaf
// hash. scratch is reused for the canonical bytes and returned grown.
func Seal(e *Entry, scratch []byte) (tlog.Hash, []byte) {
	scratch = AppendCanonical(scratch[:0], e)
	e.ChainHash = ChainHashOf(scratch)
	return LeafHashOf(scratch), scratch
}

func appendStr(dst []byte, s string) []byte {
	if uint64(len(s)) > math.MaxUint32 {
		panic("auditlog: string longer than 4 GiB")
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

func appendCount(dst []byte, n int) []byte {
	if uint64(n) > math.MaxUint32 {
		panic("auditlog: container larger than 2^32 members")
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

func appendCanonicalValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, tagNull)
	case bool:
		if v {
			return append(dst, tagTrue)
		}
		return append(dst, tagFalse)
	case float64:
		if v == 0 {
			v = 0 // -0 and +0 are one number in JSON's data model
		}
		dst = append(dst, tagNumber)
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(v))
	case string:
		return appendStr(append(dst, tagString), v)
	case []any:
		dst = appendCount(append(dst, tagArray), len(v))
		for _, x := range v {
			dst = appendCanonicalValue(dst, x)
		}
		return dst
	case map[string]any:
		dst = appendCount(append(dst, tagObject), len(v))
		for _, k := range sortedKeys(v) {
			dst = appendStr(dst, k)
			dst = appendCanonicalValue(dst, v[k])
		}
		return dst
	}
	panic(fmt.Sprintf("auditlog: payload value of type %T", v))
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var (
	errNonFinite = errors.New("number is NaN or infinite")
	errTooDeep   = fmt.Errorf("nested deeper than %d", MaxPayloadDepth)
)

func validateValue(v any, depth int) error {
	switch v := v.(type) {
	case nil, bool:
		return nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errNonFinite
		}
		return nil
	case string:
		if !utf8.ValidString(v) {
			return errors.New("string is not valid UTF-8")
		}
		return nil
	case []any:
		if depth > MaxPayloadDepth {
			return errTooDeep
		}
		for _, x := range v {
			if err := validateValue(x, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if depth > MaxPayloadDepth {
			return errTooDeep
		}
		for k, x := range v {
			if !utf8.ValidString(k) {
				return fmt.Errorf("key %q is not valid UTF-8", k)
			}
			if err := validateValue(x, depth+1); err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
		}
		return nil
	}
	return fmt.Errorf("value of type %T is not JSON", v)
}
