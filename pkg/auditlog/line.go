package auditlog

import (
	"errors"
	"fmt"
)

// JSON field names of a log line (camelCase, a contract with tools).
const (
	fieldSeq            = "seq"
	fieldTimestampMs    = "timestampMs"
	fieldRawTimestampMs = "rawTimestampMs"
	fieldKind           = "kind"
	fieldPayload        = "payload"
	fieldSource         = "source"
	fieldPrevChainHash  = "prevChainHash"
	fieldChainHash      = "chainHash"

	fieldTopic          = "topic"
	fieldStreamSequence = "streamSequence"
	fieldPublisher      = "publisher"
)

// ErrMalformed is wrapped by every ParseLine error.
var ErrMalformed = errors.New("malformed entry")

// AppendLine appends e as one JSON line, '\n' included:
//
//	{"seq":1,"timestampMs":…,"rawTimestampMs":…,"kind":"refusal","payload":{…},
//	 "source":{"topic":"audit:refusal","streamSequence":7,"publisher":"peer:n1"},
//	 "prevChainHash":"00…","chainHash":"…"}
//
// (on one line). Payload keys are sorted. The payload must pass
// ValidatePayload.
func AppendLine(dst []byte, e *Entry) []byte {
	dst = append(dst, `{"seq":`...)
	dst = appendUint(dst, e.Seq)
	dst = append(dst, `,"timestampMs":`...)
	dst = appendInt(dst, e.TimestampMs)
	dst = append(dst, `,"rawTimestampMs":`...)
	dst = appendInt(dst, e.RawTimestampMs)
	dst = append(dst, `,"kind":`...)
	dst = appendJSONString(dst, e.Kind)
	dst = append(dst, `,"payload":`...)
	if e.Payload == nil {
		dst = append(dst, "{}"...)
	} else {
		dst = appendJSONValue(dst, e.Payload)
	}
	dst = append(dst, `,"source":{"topic":`...)
	dst = appendJSONString(dst, e.Source.Topic)
	dst = append(dst, `,"streamSequence":`...)
	dst = appendUint(dst, e.Source.StreamSequence)
	dst = append(dst, `,"publisher":`...)
	dst = appendJSONString(dst, e.Source.Publisher)
	dst = append(dst, `},"prevChainHash":"`...)
	dst = appendHex(dst, e.PrevChainHash)
	dst = append(dst, `","chainHash":"`...)
	dst = appendHex(dst, e.ChainHash)
	return append(dst, "\"}\n"...)
}

func appendUint(dst []byte, v uint64) []byte {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

func appendInt(dst []byte, v int64) []byte {
	if v < 0 {
		// -v overflows for MinInt64; its magnitude as uint64 does not.
		return appendUint(append(dst, '-'), uint64(^v)+1)
	}
	return appendUint(dst, uint64(v))
}

func appendHex(dst []byte, h Hash) []byte {
	const hexDigits = "0123456789abcdef"
	for _, c := range h {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// ParseLine reads one log line (a trailing newline is allowed). It accepts
// any valid JSON spelling of the entry: members in any order, any
// whitespace and escapes, integers written as floats; missing or null
// optional members (timestamps, payload, source and its members) read as
// zero; unknown members are ignored. It refuses duplicate keys, invalid
// UTF-8, lone surrogates, nesting deeper than MaxPayloadDepth, a payload
// that is not an object, and any member of the wrong type. Errors wrap
// ErrMalformed.
func ParseLine(line []byte) (*Entry, error) {
	e := &Entry{}
	if err := parseLine(line, e); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return e, nil
}

const (
	haveSeq = 1 << iota
	haveKind
	havePrev
	haveChain
	haveAll = haveSeq | haveKind | havePrev | haveChain
)

func parseLine(line []byte, e *Entry) error {
	p := &jsonParser{b: line}
	have := 0
	err := p.members(0, func(k string) error {
		if isNull(p) {
			switch k {
			case fieldSeq, fieldKind, fieldPrevChainHash, fieldChainHash:
				return p.errorf("%s is null", k)
			}
			return p.literal("null")
		}
		var err error
		switch k {
		case fieldSeq:
			have |= haveSeq
			e.Seq, err = p.uint()
		case fieldTimestampMs:
			e.TimestampMs, err = p.int()
		case fieldRawTimestampMs:
			e.RawTimestampMs, err = p.int()
		case fieldKind:
			have |= haveKind
			e.Kind, err = p.str()
		case fieldPayload:
			if c, _ := p.peek(); c != '{' {
				return p.errorf("payload is not an object")
			}
			e.Payload, err = p.object(1)
		case fieldSource:
			err = parseSource(p, &e.Source)
		case fieldPrevChainHash:
			have |= havePrev
			e.PrevChainHash, err = parseHashMember(p)
		case fieldChainHash:
			have |= haveChain
			e.ChainHash, err = parseHashMember(p)
		default:
			_, err = p.value(1)
		}
		return err
	})
	if err != nil {
		return err
	}
	p.ws()
	if p.i != len(p.b) {
		return p.errorf("trailing data after the entry")
	}
	if have != haveAll {
		return fmt.Errorf("missing %s", missing(have))
	}
	if e.Payload == nil {
		e.Payload = map[string]any{}
	}
	return nil
}

func isNull(p *jsonParser) bool {
	c, err := p.peek()
	return err == nil && c == 'n'
}

func missing(have int) string {
	for _, f := range []struct {
		bit  int
		name string
	}{{haveSeq, fieldSeq}, {haveKind, fieldKind}, {havePrev, fieldPrevChainHash}, {haveChain, fieldChainHash}} {
		if have&f.bit == 0 {
			return f.name
		}
	}
	return ""
}

func parseSource(p *jsonParser, s *Source) error {
	if c, _ := p.peek(); c != '{' {
		return p.errorf("source is not an object")
	}
	return p.members(1, func(k string) error {
		if isNull(p) {
			return p.literal("null")
		}
		var err error
		switch k {
		case fieldTopic:
			s.Topic, err = p.str()
		case fieldStreamSequence:
			s.StreamSequence, err = p.uint()
		case fieldPublisher:
			s.Publisher, err = p.str()
		default:
			_, err = p.value(2)
		}
		return err
	})
}

func parseHashMember(p *jsonParser) (Hash, error) {
	s, err := p.str()
	if err != nil {
		return Hash{}, err
	}
	return ParseHash(s)
}
