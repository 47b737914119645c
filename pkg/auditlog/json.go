package auditlog

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// The log's JSON is read by a small strict RFC 8259 parser rather than
// encoding/json, for two reasons. It refuses what encoding/json quietly
// accepts and a second reader might see differently: duplicate object keys
// (last-wins in Go, first-wins elsewhere: two readers of one line would see
// two payloads), invalid UTF-8 and lone UTF-16 surrogates (replaced by
// U+FFFD in Go). And it bounds nesting, so a hostile line cannot exhaust
// the stack. Numbers are read with strconv.ParseFloat, which rounds
// correctly, so any spelling of a binary64 value reads back as that value.

// jsonParser reads one JSON text from b.
type jsonParser struct {
	b []byte
	i int
}

var errUnexpectedEnd = errors.New("unexpected end of line")

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("byte %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte without consuming it.
func (p *jsonParser) peek() (byte, error) {
	p.ws()
	if p.i >= len(p.b) {
		return 0, errUnexpectedEnd
	}
	return p.b[p.i], nil
}

func (p *jsonParser) expect(c byte) error {
	got, err := p.peek()
	if err != nil {
		return err
	}
	if got != c {
		return p.errorf("want %q, got %q", c, got)
	}
	p.i++
	return nil
}

// value reads any JSON value. depth is the depth a container starting here
// would have; containers deeper than MaxPayloadDepth are refused.
func (p *jsonParser) value(depth int) (any, error) {
	c, err := p.peek()
	if err != nil {
		return nil, err
	}
	switch {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, p.errorf("unexpected %q", c)
}

func (p *jsonParser) literal(lit string) error {
	if len(p.b)-p.i < len(lit) || string(p.b[p.i:p.i+len(lit)]) != lit {
		return p.errorf("want %s", lit)
	}
	p.i += len(lit)
	return nil
}

// members reads an object, calling member for each key; member must
// consume the value. Duplicate keys are refused.
func (p *jsonParser) members(depth int, member func(key string) error) error {
	if depth > MaxPayloadDepth {
		return p.errorf("nested deeper than %d", MaxPayloadDepth)
	}
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
	var seen map[string]struct{}
	var first string
	for n := 0; ; n++ {
		if c, err = p.peek(); err != nil {
			return err
		}
		if c != '"' {
			return p.errorf("want a key, got %q", c)
		}
		k, err := p.str()
		if err != nil {
			return err
		}
		// Most objects are small: remember the first key without a map.
		switch n {
		case 0:
			first = k
		case 1:
			if k == first {
				return p.errorf("duplicate key %q", k)
			}
			seen = map[string]struct{}{first: {}, k: {}}
		default:
			if _, dup := seen[k]; dup {
				return p.errorf("duplicate key %q", k)
			}
			seen[k] = struct{}{}
		}
		if err := p.expect(':'); err != nil {
			return err
		}
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

func (p *jsonParser) object(depth int) (map[string]any, error) {
	m := map[string]any{}
	err := p.members(depth, func(k string) error {
		v, err := p.value(depth + 1)
		m[k] = v
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (p *jsonParser) array(depth int) ([]any, error) {
	if depth > MaxPayloadDepth {
		return nil, p.errorf("nested deeper than %d", MaxPayloadDepth)
	}
	if err := p.expect('['); err != nil {
		return nil, err
	}
	out := []any{}
	c, err := p.peek()
	if err != nil {
		return nil, err
	}
	if c == ']' {
		p.i++
		return out, nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		if c, err = p.peek(); err != nil {
			return nil, err
		}
		p.i++
		switch c {
		case ',':
		case ']':
			return out, nil
		default:
			return nil, p.errorf("want ',' or ']', got %q", c)
		}
	}
}

// str reads a string; the next non-space byte must be '"'.
func (p *jsonParser) str() (string, error) {
	if err := p.expect('"'); err != nil {
		return "", err
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := string(p.b[start:p.i])
			p.i++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		p.i++
	}
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c == '\\':
			var err error
			if buf, err = p.escape(buf); err != nil {
				return "", err
			}
		case c < 0x20:
			return "", p.errorf("control character 0x%02x in string", c)
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size <= 1 {
				return "", p.errorf("invalid UTF-8 in string")
			}
			buf = append(buf, p.b[p.i:p.i+size]...)
			p.i += size
		}
	}
	return "", errUnexpectedEnd
}

// escape decodes the escape at p.i (a backslash) onto buf.
func (p *jsonParser) escape(buf []byte) ([]byte, error) {
	if p.i+1 >= len(p.b) {
		return nil, errUnexpectedEnd
	}
	c := p.b[p.i+1]
	p.i += 2
	switch c {
	case '"', '\\', '/':
		return append(buf, c), nil
	case 'b':
		return append(buf, '\b'), nil
	case 'f':
		return append(buf, '\f'), nil
	case 'n':
		return append(buf, '\n'), nil
	case 'r':
		return append(buf, '\r'), nil
	case 't':
		return append(buf, '\t'), nil
	case 'u':
		r, err := p.hex4()
		if err != nil {
			return nil, err
		}
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return nil, p.errorf("lone low surrogate \\u%04x", r)
		case r >= 0xd800 && r <= 0xdbff:
			if p.i+1 >= len(p.b) || p.b[p.i] != '\\' || p.b[p.i+1] != 'u' {
				return nil, p.errorf("lone high surrogate \\u%04x", r)
			}
			p.i += 2
			lo, err := p.hex4()
			if err != nil {
				return nil, err
			}
			if lo < 0xdc00 || lo > 0xdfff {
				return nil, p.errorf("high surrogate \\u%04x not followed by a low one", r)
			}
			r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
		}
		return utf8.AppendRune(buf, r), nil
	}
	return nil, p.errorf("invalid escape \\%c", c)
}

func (p *jsonParser) hex4() (rune, error) {
	if len(p.b)-p.i < 4 {
		return 0, errUnexpectedEnd
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, p.errorf("invalid \\u escape")
		}
		r = r<<4 | rune(d)
	}
	p.i += 4
	return r, nil
}

// numberLiteral reads the text of a JSON number.
func (p *jsonParser) numberLiteral() ([]byte, error) {
	p.ws()
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		digits()
	default:
		return nil, p.errorf("invalid number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.errorf("invalid number")
		}
	}
	return p.b[start:p.i], nil
}

func (p *jsonParser) number() (float64, error) {
	lit, err := p.numberLiteral()
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, p.errorf("number %s out of range", lit)
	}
	return f, nil
}

// maxExactInt bounds an integer field spelled as a float: every integer
// up to 2^53 has an exact binary64 value.
const maxExactInt = 1 << 53

// floatInteger reads lit, a number in float form ("1.7e1"), that must be an
// exact integer within ±2^53. Accepting it means a re-encoder that turns
// integers into floats does not break the log.
func (p *jsonParser) floatInteger(lit []byte) (float64, error) {
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > maxExactInt {
		return 0, p.errorf("%s is not an integer in range", lit)
	}
	return f, nil
}

func isPlainInteger(lit []byte) bool {
	for _, c := range lit {
		if c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}

// uint reads a JSON number that must be a non-negative integer.
func (p *jsonParser) uint() (uint64, error) {
	lit, err := p.numberLiteral()
	if err != nil {
		return 0, err
	}
	if isPlainInteger(lit) {
		v, err := strconv.ParseUint(string(lit), 10, 64)
		if err != nil {
			return 0, p.errorf("%s is not a uint64", lit)
		}
		return v, nil
	}
	f, err := p.floatInteger(lit)
	if err != nil {
		return 0, err
	}
	if f < 0 {
		return 0, p.errorf("%s is negative", lit)
	}
	return uint64(f), nil
}

// int reads a JSON number that must be an integer.
func (p *jsonParser) int() (int64, error) {
	lit, err := p.numberLiteral()
	if err != nil {
		return 0, err
	}
	if isPlainInteger(lit) {
		v, err := strconv.ParseInt(string(lit), 10, 64)
		if err != nil {
			return 0, p.errorf("%s is not an int64", lit)
		}
		return v, nil
	}
	f, err := p.floatInteger(lit)
	if err != nil {
		return 0, err
	}
	return int64(f), nil
}

// appendJSONString appends s as a JSON string. s must be valid UTF-8.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendJSONNumber appends f the way encoding/json writes a float64: the
// shortest decimal that reads back as f, in exponent form only outside
// [1e-6, 1e21).
func appendJSONNumber(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0')
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-07 -> e-7, as encoding/json does.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// appendJSONValue appends a payload value, object keys sorted.
func appendJSONValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		if v {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case float64:
		return appendJSONNumber(dst, v)
	case string:
		return appendJSONString(dst, v)
	case []any:
		dst = append(dst, '[')
		for i, x := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONValue(dst, x)
		}
		return append(dst, ']')
	case map[string]any:
		dst = append(dst, '{')
		for i, k := range sortedKeys(v) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = appendJSONValue(dst, v[k])
		}
		return append(dst, '}')
	}
	panic(fmt.Sprintf("auditlog: payload value of type %T", v))
}
