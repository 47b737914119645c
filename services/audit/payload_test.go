package audit

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
	"github.com/continuum-mesh/continuum/pkg/jsonvalue"
)

// referencePayload is the payload check as separate walks (proto.Size,
// jsonvalue.Check, AsMap, ValidatePayload): payloadOf must agree with it.
func referencePayload(p *structpb.Struct, maxBytes int) (map[string]any, int, error) {
	n := proto.Size(p)
	if n > maxBytes {
		return nil, n, errPayloadInvalid
	}
	if err := jsonvalue.Check(p, jsonvalue.Limits{}); err != nil {
		return nil, n, err
	}
	m := p.AsMap()
	if err := auditlog.ValidatePayload(m); err != nil {
		return nil, n, err
	}
	return m, n, nil
}

// randomValue builds a random Value up to depth levels of containers.
func randomValue(r *rand.Rand, depth int) *structpb.Value {
	switch k := r.IntN(8); {
	case k == 0:
		return structpb.NewNullValue()
	case k == 1:
		return structpb.NewBoolValue(r.IntN(2) == 0)
	case k == 2:
		return structpb.NewNumberValue([]float64{0, -1, 1e300, 3.25, math.MaxFloat64, math.SmallestNonzeroFloat64}[r.IntN(6)])
	case k == 3 || depth <= 0:
		return structpb.NewStringValue(strings.Repeat("é", r.IntN(200)))
	case k <= 5:
		return structpb.NewStructValue(randomStruct(r, depth-1))
	default:
		l := &structpb.ListValue{}
		for range r.IntN(5) {
			l.Values = append(l.Values, randomValue(r, depth-1))
		}
		return structpb.NewListValue(l)
	}
}

func randomStruct(r *rand.Rand, depth int) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for range r.IntN(6) {
		s.Fields[strings.Repeat("k", r.IntN(140))+strconv.Itoa(r.IntN(100))] = randomValue(r, depth)
	}
	return s
}

// nest wraps v in n levels of objects.
func nest(v *structpb.Value, n int) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{"v": v}}
	for range n {
		s = &structpb.Struct{Fields: map[string]*structpb.Value{"d": structpb.NewStructValue(s)}}
	}
	return s
}

func TestPayloadOfAgreesWithSeparateChecks(t *testing.T) {
	t.Parallel()
	s := &Service{cfg: Config{MaxPayloadBytes: defaultMaxPayloadBytes}}
	list := func(vs ...*structpb.Value) *structpb.Value {
		return structpb.NewListValue(&structpb.ListValue{Values: vs})
	}
	withUnknown := &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewNumberValue(1)}}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 300))
	cases := []*structpb.Struct{
		{},
		mustStruct(t, refusalPayload(7)),
		{Fields: map[string]*structpb.Value{"nan": structpb.NewNumberValue(math.NaN())}},
		{Fields: map[string]*structpb.Value{"inf": list(structpb.NewNumberValue(math.Inf(1)))}},
		{Fields: map[string]*structpb.Value{"nokind": {}}},
		{Fields: map[string]*structpb.Value{"nil": nil}},
		{Fields: map[string]*structpb.Value{"bad": structpb.NewStringValue("\xff")}},
		{Fields: map[string]*structpb.Value{"\xfe": structpb.NewBoolValue(true)}},
		{Fields: map[string]*structpb.Value{"nilstruct": {Kind: &structpb.Value_StructValue{}}}},
		{Fields: map[string]*structpb.Value{"nillist": {Kind: &structpb.Value_ListValue{}}}},
		{Fields: map[string]*structpb.Value{"big": structpb.NewStringValue(strings.Repeat("x", defaultMaxPayloadBytes))}},
		{Fields: map[string]*structpb.Value{"edge": structpb.NewStringValue(strings.Repeat("x", defaultMaxPayloadBytes-14))}},
		withUnknown,
		nest(structpb.NewNumberValue(1), auditlog.MaxPayloadDepth-1), // depth 32: allowed
		nest(structpb.NewStructValue(&structpb.Struct{}), auditlog.MaxPayloadDepth-1),
		nest(list(), auditlog.MaxPayloadDepth-2),
		nest(list(), auditlog.MaxPayloadDepth-1),
		nest(list(list()), auditlog.MaxPayloadDepth-3),
		nest(list(list()), auditlog.MaxPayloadDepth-2),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		cases = append(cases, randomStruct(r, 4))
	}
	for i, p := range cases {
		want, wantSize, wantErr := referencePayload(p, defaultMaxPayloadBytes)
		got, gotErr := s.payloadOf(p)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("case %d: payloadOf error %v, separate checks %v", i, gotErr, wantErr)
		}
		if wantErr == nil {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("case %d: map differs (-AsMap +payloadOf):\n%s", i, diff)
			}
		}
		var w payloadWalk
		if _, n, err := w.object(p, 1); err == nil && n != wantSize {
			t.Fatalf("case %d: size %d, proto.Size %d", i, n, wantSize)
		}
	}
}

func BenchmarkPayloadOf(b *testing.B) {
	s := &Service{cfg: Config{MaxPayloadBytes: defaultMaxPayloadBytes}}
	p := mustStruct(b, refusalPayload(7))
	b.Run("one-walk", func(b *testing.B) {
		for range b.N {
			if _, err := s.payloadOf(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("separate-walks", func(b *testing.B) {
		for range b.N {
			if _, _, err := referencePayload(p, defaultMaxPayloadBytes); err != nil {
				b.Fatal(err)
			}
		}
	})
}
