package sweep

import (
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
)

// namedString is one bad value for a string field.
type namedString struct {
	name  string
	value string
	// invalidUTF8 marks the value that must bypass the client-side UTF-8
	// check of the proto library (see injectInvalidUTF8).
	invalidUTF8 bool
}

// mebibyte is the size of the "oversized" strings and bytes.
const mebibyte = 1 << 20

// invalidUTF8 is 16 bytes that are not UTF-8 (a lone continuation byte,
// an overlong encoding, a truncated 3-byte sequence, a surrogate half and
// bytes that never occur in UTF-8). It replaces a 16-byte placeholder in
// the marshalled message, so length prefixes stay right.
const invalidUTF8 = "\xff\xfe\x80\xc0\xaf\xe2\x28\xa1\xed\xa0\x80\xf8\x88\x80\x80\x80"

// utf8Placeholder stands in for invalidUTF8 while the message is
// marshalled; it must not occur in a request by accident.
const utf8Placeholder = "\x01BADINPUT-UTF8\x01"

// badStrings are the values every string field gets.
func badStrings() []namedString {
	return []namedString{
		{name: "1 MiB string", value: strings.Repeat("a", mebibyte)},
		{name: "invalid UTF-8", value: utf8Placeholder, invalidUTF8: true},
		{name: "path traversal ../../etc/passwd", value: "../../etc/passwd"},
		{name: "path traversal ..%2f..", value: "..%2f..%2fetc%2fpasswd"},
		{name: "bad URI http://x", value: "http://x"},
		{name: "bad URI airc://maya (empty path)", value: "airc://maya"},
		{name: "bad URI airc://room:abc/x", value: "airc://room:abc/x"},
		{name: "control characters", value: "mesh/\x00members\r\n\x1b[2J\x7f"},
		{name: "invalid UUID", value: "not-a-uuid"},
		{name: "near-miss UUID (non-hex)", value: "6f1c2a3b-1111-2222-3333-44445555666g"},
		{name: "near-miss UUID (short)", value: "6f1c2a3b-1111-2222-3333-44445555666"},
		{name: "near-miss UUID (braces)", value: "{6f1c2a3b-1111-2222-3333-444455556666}"},
		{name: "nil UUID", value: "00000000-0000-0000-0000-000000000000"},
		{name: "a NUL byte", value: "\x00"},
		{name: "glob characters", value: "**:>/*"},
		{name: "4096 path segments", value: strings.Repeat("a/", 4096) + "a"},
		{name: "Unicode bidi override and line separator", value: "ma\u202eya\u2028x"},
	}
}

// namedNumber is one bad value for a numeric field.
type namedNumber struct {
	name string
	i    int64
	u    uint64
	f    float64
}

func signedValues(bits int) []namedNumber {
	lo, hi := int64(math.MinInt32), int64(math.MaxInt32)
	if bits == 64 {
		lo, hi = math.MinInt64, math.MaxInt64
	}
	return []namedNumber{
		{name: "-1", i: -1},
		{name: "min", i: lo},
		{name: "max", i: hi},
		{name: "zero", i: 0},
	}
}

func unsignedValues(bits int) []namedNumber {
	hi := uint64(math.MaxUint32)
	if bits == 64 {
		hi = math.MaxUint64
	}
	return []namedNumber{
		// A negative number sent as an unsigned varint: what a client that
		// casts -1 gets on the wire.
		{name: "max (-1 cast to unsigned)", u: hi},
		{name: "zero", u: 0},
	}
}

func floatValues() []namedNumber {
	return []namedNumber{
		{name: "-1", f: -1},
		{name: "NaN", f: math.NaN()},
		{name: "+Inf", f: math.Inf(1)},
		{name: "-Inf", f: math.Inf(-1)},
		{name: "max", f: math.MaxFloat64},
		{name: "zero", f: 0},
	}
}

// unknownEnums are enum numbers no continuum enum declares.
var unknownEnums = []struct {
	name string
	n    int32
}{
	{"unknown enum 9999", 9999},
	{"unknown enum -1", -1},
}

// namedStruct is one google.protobuf.Struct value.
type namedStruct struct {
	name string
	make func() *structpb.Struct
	// filterOnly values are only sent to fields named "filter", whose
	// values must be scalars: they must be refused with INVALID_ARGUMENT.
	filterOnly bool
	// notJSON values have no JSON form (protojson refuses to render a
	// non-finite number or a Value with no kind), though a Struct is by
	// definition a JSON object: they must be refused, not stored, coerced
	// or passed on to JSON clients such as the gateway.
	notJSON bool
}

// deepStruct nests depth objects: {"a":{"a":...{"a":"leaf"}}}.
func deepStruct(depth int) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewStringValue("leaf")}}
	for i := 1; i < depth; i++ {
		s = &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewStructValue(s)}}
	}
	return s
}

// wideStruct has n keys k0..k(n-1).
func wideStruct(n int) *structpb.Struct {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, n)}
	for i := range n {
		s.Fields["k"+strconv.Itoa(i)] = structpb.NewNumberValue(float64(i))
	}
	return s
}

// beyondDecoderDepth nests deeper than the protobuf decoder's recursion
// limit (10000 messages; each level is three: Struct, its map entry and
// Value), so the server's codec refuses it.
const beyondDecoderDepth = 4000

func badStructs() []namedStruct {
	return []namedStruct{
		{name: "struct nested 200 deep", make: func() *structpb.Struct { return deepStruct(200) }},
		{name: "struct with 100k keys", make: func() *structpb.Struct { return wideStruct(100_000) }},
		{name: "struct nested beyond the decoder's recursion limit", make: func() *structpb.Struct { return deepStruct(beyondDecoderDepth) }},
		{name: "struct with a non-finite number", notJSON: true, make: func() *structpb.Struct {
			return &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewNumberValue(math.Inf(1))}}
		}},
		{name: "struct with a NaN", notJSON: true, make: func() *structpb.Struct {
			return &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewNumberValue(math.NaN())}}
		}},
		{name: "struct with an empty key", make: func() *structpb.Struct {
			return &structpb.Struct{Fields: map[string]*structpb.Value{"": structpb.NewStringValue("v")}}
		}},
		{name: "struct with a Value of no kind", notJSON: true, make: func() *structpb.Struct {
			return &structpb.Struct{Fields: map[string]*structpb.Value{"k": {}}}
		}},
		{name: "filter value is a list", filterOnly: true, make: func() *structpb.Struct {
			return &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewListValue(&structpb.ListValue{
				Values: []*structpb.Value{structpb.NewStringValue("v"), structpb.NewNumberValue(1)},
			})}}
		}},
		{name: "filter value is an object", filterOnly: true, make: func() *structpb.Struct {
			return &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStructValue(&structpb.Struct{
				Fields: map[string]*structpb.Value{"v": structpb.NewStringValue("v")},
			})}}
		}},
	}
}
