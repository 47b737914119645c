package sweep

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Categories of cases, the strata --per-method samples from.
const (
	catEmpty     = "empty"
	catString    = "string"
	catNumber    = "number"
	catEnum      = "enum"
	catBool      = "bool"
	catBytes     = "bytes"
	catRepeated  = "repeated"
	catMessage   = "message"
	catStruct    = "struct"
	catWireType  = "wire-type"
	catTruncated = "truncated"
	catGarbage   = "garbage"
	catFrame     = "frame"
	catStream    = "stream"
	catDispatch  = "dispatch"
	catAsUser    = "as-user"
	catAuth      = "auth"
	catMetadata  = "metadata"
)

// authMode is the identity a case presents.
type authMode int

const (
	// authAdmin presents the admin token (the default: bad input must
	// reach validation, not stop at the gate).
	authAdmin authMode = iota
	// authNone presents nothing.
	authNone
	// authUser presents the user token: the gate and the services'
	// per-caller checks meet the bad input as an ordinary caller.
	authUser
	// authForged presents the user token and claims to call for admin.
	authForged
	// authForgedAnonymous presents nothing and claims to call for admin.
	authForgedAnonymous
	// authUnknownToken presents a bearer token no entry maps.
	authUnknownToken
	// authNotBearer presents Basic credentials.
	authNotBearer
)

// expectation is what a case must get back, beyond the checks every call
// gets (no Unknown, no Internal, ErrorInfo on service refusals).
type expectation struct {
	// refused: the call must not succeed or stay open.
	refused bool
	// codes and reasons the refusal may carry; empty allows any.
	codes   []codes.Code
	reasons []string
	// transport: a refusal by gRPC itself (no ErrorInfo) meets it too,
	// when its code is one of transportCodes (any, when empty).
	transport      bool
	transportCodes []codes.Code
	// onlyTransport: only a refusal by the transport meets it; a typed
	// answer means the service got the request.
	onlyTransport bool
	// why explains the expectation in violation reports.
	why string
}

// Case is one bad request for one method.
type Case struct {
	// Name says what is bad about it ("uri: 1 MiB string").
	Name     string
	Category string
	// build returns the request's wire bytes; nil with noMessage.
	build     func() ([]byte, error)
	noMessage bool
	// repeat sends the message this many times on a client stream.
	repeat int
	auth   authMode
	// padHeader is the size of one extra metadata value.
	padHeader int
	// tokenBytes replaces the bearer token by an unknown one this long.
	tokenBytes int
	// rawHTTP2 sends the request with a hand-made HTTP/2 client that
	// ignores the server's header size limit.
	rawHTTP2 bool
	// via, when set, is the method actually called (router Dispatch
	// carrying a command for the method the case belongs to).
	via    *method
	expect expectation
}

// caseOptions shape case generation.
type caseOptions struct {
	rng *rand.Rand
	// dispatch, when the server runs a router, adds the wrongly typed
	// JSON params cases sent through Dispatch.
	dispatch *dispatcher
	// structs caches the big struct encodings.
	structs *structCache
	// maxRecvBytes is the server's receive limit; the oversized frame is
	// one KiB more.
	maxRecvBytes int
}

// marshal encodes a dynamic request deterministically; invalid UTF-8
// placeholders are swapped for the invalid bytes afterwards.
func marshal(m *dynamicpb.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", m.Descriptor().FullName(), err)
	}
	return b, nil
}

// injectInvalidUTF8 swaps every placeholder for the invalid bytes; both
// are 16 bytes long, so every length prefix stays right.
func injectInvalidUTF8(b []byte) ([]byte, error) {
	if !bytes.Contains(b, []byte(utf8Placeholder)) {
		return nil, fmt.Errorf("invalid UTF-8 placeholder not found in the encoding")
	}
	return bytes.ReplaceAll(b, []byte(utf8Placeholder), []byte(invalidUTF8)), nil
}

func fixed(b []byte) func() ([]byte, error) { return func() ([]byte, error) { return b, nil } }

func messageBytes(m func() *dynamicpb.Message) func() ([]byte, error) {
	return func() ([]byte, error) { return marshal(m()) }
}

// buildCases lists the cases for one method: the mutations of each base
// (the empty request and, when there is one, a valid seed request), then
// the wire, stream, identity and metadata cases on the richest base, and
// the wrongly typed JSON params sent through the router's Dispatch.
func buildCases(m method, seed *dynamicpb.Message, o caseOptions) []Case {
	type base struct {
		name string
		msg  *dynamicpb.Message
	}
	md := m.desc
	in := md.Input()
	bases := []base{{"empty", dynamicpb.NewMessage(in)}}
	if seed != nil {
		bases = append(bases, base{"seed", seed})
	}
	var out []Case
	out = append(out, Case{Name: "empty request", Category: catEmpty, build: messageBytes(func() *dynamicpb.Message { return dynamicpb.NewMessage(in) })})
	if seed != nil {
		out = append(out, Case{Name: "seed request (valid)", Category: catEmpty, build: messageBytes(func() *dynamicpb.Message { return seed })})
	}
	fieldSlots := slots(in)
	for _, b := range bases {
		for _, s := range fieldSlots {
			out = append(out, slotCases(b.name, b.msg, s, o.structs)...)
		}
	}
	// The string cases again as the non-admin user: the gate (and any
	// per-caller check) runs on the bad values too.
	for _, c := range slices.Clone(out) {
		if c.Category == catString {
			c.Name, c.Category, c.auth = "as user: "+c.Name, catAsUser, authUser
			out = append(out, c)
		}
	}
	rich := bases[len(bases)-1].msg
	out = append(out, wireCases(rich, o)...)
	out = append(out, streamCases(md, rich)...)
	out = append(out, identityCases(rich)...)
	if o.dispatch != nil {
		out = append(out, o.dispatch.cases(m, seed)...)
	}
	return out
}

// slotCases are the bad values for one slot of one base.
func slotCases(baseName string, base *dynamicpb.Message, s slot, cache *structCache) []Case {
	fd := s.leafField()
	prefix := baseName + ": " + s.name + ": "
	set := func(v protoreflect.Value) func() ([]byte, error) {
		return messageBytes(func() *dynamicpb.Message { return setSlot(base, s, v) })
	}
	var out []Case
	add := func(cat, name string, build func() ([]byte, error)) {
		out = append(out, Case{Name: prefix + name, Category: cat, build: build})
	}
	if fd.Kind() == protoreflect.MessageKind && isStructLike(fd.Message()) {
		return structCases(prefix, base, s, cache)
	}
	if s.repeated() {
		add(catRepeated, "100k elements", func() ([]byte, error) {
			one := func(l protoreflect.List) {
				if fd.Kind() == protoreflect.MessageKind {
					l.AppendMutable()
					return
				}
				l.Append(typicalValue(fd))
			}
			if len(s.path) == 1 {
				// A top-level list: the field's encoding with one element,
				// repeated (decoders concatenate repeated and packed
				// fields), which is much cheaper than 100k dynamic appends.
				b, err := marshal(setList(dynamicpb.NewMessage(base.Descriptor()), s, 1, one))
				if err != nil {
					return nil, err
				}
				return withTopLevel(base, fd, bytes.Repeat(b, 100_000))
			}
			return marshal(setList(base, s, 100_000, one))
		})
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if !s.repeated() {
			add(catMessage, "empty message", set(protoreflect.ValueOfMessage(dynamicpb.NewMessage(fd.Message()))))
		}
	case protoreflect.StringKind:
		for _, v := range badStrings() {
			build := set(protoreflect.ValueOfString(v.value))
			if v.invalidUTF8 {
				inner := build
				build = func() ([]byte, error) {
					b, err := inner()
					if err != nil {
						return nil, err
					}
					return injectInvalidUTF8(b)
				}
			}
			add(catString, v.name, build)
		}
		if hasValue(base, s) {
			add(catString, "empty string", set(protoreflect.ValueOfString("")))
		}
	case protoreflect.BytesKind:
		add(catBytes, "1 MiB of bytes", set(protoreflect.ValueOfBytes(bytes.Repeat([]byte{0xa5}, mebibyte))))
		add(catBytes, "one 0xff byte", set(protoreflect.ValueOfBytes([]byte{0xff})))
	case protoreflect.BoolKind:
		add(catBool, "true", set(protoreflect.ValueOfBool(true)))
	case protoreflect.EnumKind:
		for _, e := range unknownEnums {
			add(catEnum, e.name, set(protoreflect.ValueOfEnum(protoreflect.EnumNumber(e.n))))
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		for _, n := range floatValues() {
			add(catNumber, n.name, set(numberValue(fd.Kind(), n)))
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		for _, n := range signedValues(32) {
			add(catNumber, n.name, set(numberValue(fd.Kind(), n)))
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		for _, n := range signedValues(64) {
			add(catNumber, n.name, set(numberValue(fd.Kind(), n)))
		}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		for _, n := range unsignedValues(32) {
			add(catNumber, n.name, set(numberValue(fd.Kind(), n)))
		}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		for _, n := range unsignedValues(64) {
			add(catNumber, n.name, set(numberValue(fd.Kind(), n)))
		}
	}
	return out
}

// hasValue reports whether base has the slot's top-level field set (for
// "empty string", which only differs from base when base sets it).
func hasValue(base *dynamicpb.Message, s slot) bool {
	return len(s.path) == 1 && s.leaf().role == notMap && !s.leaf().fd.IsList() && base.Has(s.leaf().fd)
}

// structCases are the JSON-shaped values for a Struct (or Value) slot.
// Fields named "filter" must refuse list and object values with
// INVALID_ARGUMENT: a filter that silently matches nothing (or everything)
// is the bug this catches. Every Struct field must refuse values that have
// no JSON form.
func structCases(prefix string, base *dynamicpb.Message, s slot, cache *structCache) []Case {
	fd := s.leafField()
	if fd.Message().FullName() == listValueName {
		return nil
	}
	isFilter := s.leaf().fd.Name() == "filter"
	asValue := fd.Message().FullName() == valueName
	var out []Case
	for _, v := range badStructs() {
		if v.filterOnly && !isFilter {
			continue
		}
		c := Case{Name: prefix + v.name, Category: catStruct, build: func() ([]byte, error) {
			b, err := cache.encoding(v, asValue)
			if err != nil {
				return nil, err
			}
			if len(s.path) == 1 && s.leaf().role == notMap && !s.leaf().fd.IsList() {
				// A top-level field: append its encoding to the base's,
				// without a trip through dynamicpb (100k keys are slow
				// there).
				return withTopLevel(base, fd, protowire.AppendBytes(protowire.AppendTag(nil, fd.Number(), protowire.BytesType), b))
			}
			dm := dynamicpb.NewMessage(fd.Message())
			if err := (proto.UnmarshalOptions{RecursionLimit: math.MaxInt32}).Unmarshal(b, dm); err != nil {
				return nil, fmt.Errorf("convert %s: %w", v.name, err)
			}
			return marshal(setSlot(base, s, protoreflect.ValueOfMessage(dm)))
		}}
		switch {
		case v.filterOnly:
			c.expect = expectation{
				refused: true, codes: []codes.Code{codes.InvalidArgument},
				why: "a filter value must be a scalar; a list or object must never silently match",
			}
		case v.notJSON:
			c.expect = expectation{
				refused: true,
				why:     "a Struct is a JSON object and this one has no JSON form (protojson refuses it); it must be refused, not stored, coerced or passed on",
			}
		}
		out = append(out, c)
	}
	return out
}

// withTopLevel encodes base without the top-level field fd, then appends
// enc, the field's own encoding.
func withTopLevel(base *dynamicpb.Message, fd protoreflect.FieldDescriptor, enc []byte) ([]byte, error) {
	m := proto.Clone(base).(*dynamicpb.Message)
	m.Clear(fd)
	b, err := marshal(m)
	if err != nil {
		return nil, err
	}
	return append(b, enc...), nil
}

// structCache keeps the big values every method sends (the structs'
// encodings, the oversized frame), built once per sweep.
type structCache struct {
	mu  sync.Mutex
	enc map[string][]byte
}

func newStructCache() *structCache { return &structCache{enc: map[string][]byte{}} }

// zeros returns n zero bytes, shared by every method's oversized frame
// (callers must not write to it).
func (c *structCache) zeros(n int) []byte {
	key := fmt.Sprintf("zeros|%d", n)
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.enc[key]; ok {
		return b
	}
	b := make([]byte, n)
	c.enc[key] = b
	return b
}

// encoding returns the wire form of v, as a Struct or wrapped in a Value.
func (c *structCache) encoding(v namedStruct, asValue bool) ([]byte, error) {
	key := fmt.Sprintf("%s|%t", v.name, asValue)
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.enc[key]; ok {
		return b, nil
	}
	var src proto.Message = v.make()
	if asValue {
		src = structpb.NewStructValue(src.(*structpb.Struct))
	}
	b, err := proto.Marshal(src)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", v.name, err)
	}
	c.enc[key] = b
	return b, nil
}

// wireCases are requests that are not valid protobuf, or are too big for
// the server: top-level fields with the wrong wire type, truncations of a
// filled request, malformed encodings, random bytes, and a frame over the
// server's receive limit.
func wireCases(base *dynamicpb.Message, o caseOptions) []Case {
	var out []Case
	baseBytes := func() ([]byte, error) { return marshal(base) }
	fields := base.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		wrong := protowire.Fixed32Type
		switch fd.Kind() {
		case protoreflect.FloatKind, protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind:
			wrong = protowire.Fixed64Type
		}
		out = append(out, Case{
			Name:     fmt.Sprintf("%s: sent with wire type %d", fd.Name(), wrong),
			Category: catWireType,
			build: func() ([]byte, error) {
				b, err := baseBytes()
				if err != nil {
					return nil, err
				}
				b = protowire.AppendTag(b, fd.Number(), wrong)
				if wrong == protowire.Fixed32Type {
					return protowire.AppendFixed32(b, 0xdeadbeef), nil
				}
				return protowire.AppendFixed64(b, 0xdeadbeefdeadbeef), nil
			},
		})
	}

	filled, err := marshal(fill(base))
	if err == nil && len(filled) > 1 {
		cuts := []int{1, len(filled) / 2, len(filled) - 1}
		slices.Sort(cuts)
		cuts = slices.Compact(cuts)
		for _, n := range cuts {
			if n <= 0 || n >= len(filled) {
				continue
			}
			out = append(out, Case{
				Name:     fmt.Sprintf("truncated to %d of %d bytes", n, len(filled)),
				Category: catTruncated,
				build:    fixed(filled[:n:n]),
			})
		}
	}

	malformed := []struct {
		name string
		b    []byte
	}{
		{"varint longer than 10 bytes", append([]byte{0x08}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"length prefix beyond the message", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x07, 'a', 'b', 'c'}},
		{"field number 0", []byte{0x00, 0x01}},
		{"group start without end", []byte{0x0b, 0x08, 0x01}},
		{"group end without start", []byte{0x0c}},
		{"wire type 6", []byte{0x0e, 0x01}},
		{"wire type 7", []byte{0x0f, 0x01}},
		{"field number above 2^29", protowire.AppendVarint(nil, uint64(1)<<32|uint64(protowire.VarintType))},
	}
	for _, m := range malformed {
		out = append(out, Case{Name: "malformed: " + m.name, Category: catGarbage, build: fixed(m.b)})
	}
	for _, n := range []int{64, 4096} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(o.rng.UintN(256))
		}
		out = append(out, Case{Name: fmt.Sprintf("%d random bytes", n), Category: catGarbage, build: fixed(b)})
	}
	over := o.maxRecvBytes + 1024
	out = append(out, Case{
		Name:     fmt.Sprintf("frame of %d bytes (server limit %d)", over, o.maxRecvBytes),
		Category: catFrame,
		build:    func() ([]byte, error) { return o.structs.zeros(over), nil },
		expect:   expectation{refused: true, transport: true, transportCodes: []codes.Code{codes.ResourceExhausted}},
	})
	return out
}

// streamCases are the cases only client streams have: a stream closed
// before its first message, and the request repeated (a second header
// where a stream expects one).
func streamCases(md protoreflect.MethodDescriptor, base *dynamicpb.Message) []Case {
	if !md.IsStreamingClient() {
		return nil
	}
	return []Case{
		{Name: "client stream closed without a message", Category: catStream, noMessage: true},
		{Name: "request sent 3 times on the stream", Category: catStream, repeat: 3, build: messageBytes(func() *dynamicpb.Message { return base })},
	}
}

// identityCases are a well-formed request sent without credentials, with
// bad credentials, with a forged caller identity, and with oversized
// metadata.
func identityCases(base *dynamicpb.Message) []Case {
	b := messageBytes(func() *dynamicpb.Message { return base })
	unauth := func(reason string) expectation {
		return expectation{refused: true, codes: []codes.Code{codes.Unauthenticated}, reasons: []string{reason}}
	}
	return []Case{
		{Name: "no credentials", Category: catAuth, build: b, auth: authNone, expect: unauth("AUTH_REQUIRED")},
		{Name: "forged caller (user token, x-continuum-caller: token;admin)", Category: catAuth, build: b, auth: authForged, expect: unauth("IDENTITY_FORGED")},
		{Name: "forged caller without credentials", Category: catAuth, build: b, auth: authForgedAnonymous, expect: unauth("IDENTITY_FORGED")},
		{Name: "unknown bearer token", Category: catAuth, build: b, auth: authUnknownToken, expect: unauth("TOKEN_INVALID")},
		{Name: "authorization: Basic", Category: catAuth, build: b, auth: authNotBearer, expect: unauth("TOKEN_INVALID")},
		{
			Name: "1 MiB metadata value (gRPC client)", Category: catMetadata, build: b, padHeader: mebibyte,
			expect: expectation{refused: true, transport: true, onlyTransport: true},
		},
		{
			Name: "1 MiB bearer token (gRPC client)", Category: catMetadata, build: b, tokenBytes: mebibyte,
			expect: expectation{refused: true, codes: []codes.Code{codes.Unauthenticated}, reasons: []string{"TOKEN_INVALID"}, transport: true},
		},
		{
			Name: "1 MiB metadata value (raw HTTP/2, ignoring the server's limit)", Category: catMetadata, build: b, padHeader: mebibyte, rawHTTP2: true,
			expect: expectation{refused: true, transport: true, onlyTransport: true},
		},
	}
}

// sample picks at most n cases, spread over the categories: shuffled
// within each category, then taken round-robin, so a small n still covers
// every kind of bad input. The contract checks (struct, identity and frame
// cases with a required answer: a handful per method, all cheap) are kept
// on top of the n. n <= 0 keeps everything. The result keeps the original
// order.
func sample(cases []Case, n int, rng *rand.Rand) []Case {
	if n <= 0 || len(cases) <= n {
		return cases
	}
	var cats []string
	byCat := map[string][]int{}
	var picked []int
	for i, c := range cases {
		if isContract(c) {
			picked = append(picked, i)
			continue
		}
		if _, ok := byCat[c.Category]; !ok {
			cats = append(cats, c.Category)
		}
		byCat[c.Category] = append(byCat[c.Category], i)
	}
	for _, c := range cats {
		idx := byCat[c]
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	}
	rng.Shuffle(len(cats), func(i, j int) { cats[i], cats[j] = cats[j], cats[i] })
	for taken := 0; taken < n; {
		progress := false
		for _, c := range cats {
			if taken == n {
				break
			}
			if idx := byCat[c]; len(idx) > 0 {
				picked = append(picked, idx[0])
				byCat[c] = idx[1:]
				taken++
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	slices.Sort(picked)
	out := make([]Case, len(picked))
	for i, p := range picked {
		out[i] = cases[p]
	}
	return out
}

// isContract reports a case that checks a stated contract and is cheap to
// send: sampling always keeps these.
func isContract(c Case) bool {
	switch c.Category {
	case catStruct, catAuth, catFrame:
		return c.expect.refused
	}
	return false
}
