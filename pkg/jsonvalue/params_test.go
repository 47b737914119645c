package jsonvalue_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/internal/randmsg"
	"github.com/continuum-mesh/continuum/pkg/jsonvalue"
)

// viaProtojson is what ToMessage replaces.
func viaProtojson(s *structpb.Struct, m proto.Message) error {
	b, err := protojson.Marshal(s)
	if err != nil {
		return err
	}
	return protojson.Unmarshal(b, m)
}

// checkParams compares ToMessage with the protojson path for params s
// into a fresh dynamic message of md, and reports whether the direct path
// answered.
func checkParams(t *testing.T, md protoreflect.MessageDescriptor, s *structpb.Struct) bool {
	t.Helper()
	got := dynamicpb.NewMessage(md)
	ok := jsonvalue.ToMessage(s, got)
	want := dynamicpb.NewMessage(md)
	err := viaProtojson(s, want)
	if err != nil {
		if ok {
			t.Fatalf("%s: protojson refuses %v (%v) but ToMessage answered %v", md.FullName(), s, err, got)
		}
		return false
	}
	if !ok {
		return false
	}
	if d := cmp.Diff(want, got, protocmp.Transform(), cmpopts.EquateNaNs()); d != "" {
		t.Fatalf("%s: ToMessage differs from protojson for %v (-protojson +direct):\n%s", md.FullName(), s, d)
	}
	return true
}

// TestToMessageMatchesProtojson builds params the way callers do (a
// message of the API printed as protobuf JSON), then mutates them the
// ways callers get them wrong or write them differently, and compares.
func TestToMessageMatchesProtojson(t *testing.T) {
	t.Parallel()
	mds := apiMessages(t)
	rng := rand.New(rand.NewPCG(3, 4))
	answered, refused := 0, 0
	for _, md := range mds {
		direct := 0
		for range 60 {
			m := dynamicpb.NewMessage(md)
			randmsg.Fill(rng, m)
			b, err := protojson.Marshal(m)
			if err != nil {
				continue // no JSON form (NaN in a Value, bad UTF-8, ...)
			}
			s := &structpb.Struct{}
			if err := protojson.Unmarshal(b, s); err != nil {
				t.Fatal(err)
			}
			if checkParams(t, md, s) {
				direct++
			}
			for range 3 {
				ms := proto.Clone(s).(*structpb.Struct)
				mutate(rng, md, ms)
				if checkParams(t, md, ms) {
					answered++
				} else {
					refused++
				}
			}
		}
		if direct == 0 && !mentionsAny(md, map[protoreflect.FullName]bool{}) && !mentionsBytes(md) {
			t.Errorf("%s: the direct path never answered", md.FullName())
		}
	}
	t.Logf("mutated params: %d answered directly, %d left to protojson", answered, refused)
}

func mentionsBytes(md protoreflect.MessageDescriptor) bool {
	for i := 0; i < md.Fields().Len(); i++ {
		if md.Fields().Get(i).Kind() == protoreflect.BytesKind {
			return true
		}
	}
	return false
}

// mutate changes one thing in s, as a caller might: a key renamed to its
// proto name (or both names given), an unknown key, a null, a value of
// another JSON type, a number as a string, a fraction, a huge number.
func mutate(rng *rand.Rand, md protoreflect.MessageDescriptor, s *structpb.Struct) {
	if s.Fields == nil {
		s.Fields = map[string]*structpb.Value{}
	}
	fields := md.Fields()
	var fd protoreflect.FieldDescriptor
	if fields.Len() > 0 {
		fd = fields.Get(rng.IntN(fields.Len()))
	}
	odd := []*structpb.Value{
		structpb.NewNullValue(), structpb.NewBoolValue(true), structpb.NewNumberValue(1.5),
		structpb.NewNumberValue(-3), structpb.NewNumberValue(1 << 60), structpb.NewNumberValue(math.MaxUint32 + 1),
		structpb.NewStringValue("42"), structpb.NewStringValue("-7"), structpb.NewStringValue("007"),
		structpb.NewStringValue(" 5"), structpb.NewStringValue("18446744073709551615"), structpb.NewStringValue("NaN"),
		structpb.NewStringValue("x"), structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1), structpb.NewNullValue()}}),
		structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewStringValue("b")}}),
		structpb.NewStructValue(&structpb.Struct{}), structpb.NewListValue(&structpb.ListValue{}),
	}
	switch rng.IntN(5) {
	case 0: // proto name instead of, or beside, the JSON name
		if fd == nil {
			return
		}
		if v, ok := s.Fields[fd.JSONName()]; ok {
			if rng.IntN(2) == 0 {
				delete(s.Fields, fd.JSONName())
			}
			s.Fields[string(fd.Name())] = v
		}
	case 1:
		s.Fields["no_such_field"] = structpb.NewNumberValue(1)
	default: // another value for a field
		if fd == nil {
			return
		}
		if fd.Enum() != nil && rng.IntN(2) == 0 {
			vals := fd.Enum().Values()
			s.Fields[fd.JSONName()] = structpb.NewStringValue(string(vals.Get(rng.IntN(vals.Len())).Name()))
			return
		}
		s.Fields[fd.JSONName()] = odd[rng.IntN(len(odd))]
	}
}

func TestToMessageKnownAnswers(t *testing.T) {
	t.Parallel()
	mt, err := protoregistry.GlobalTypes.FindMessageByName("continuum.router.v1.DispatchRequest")
	if err != nil {
		t.Fatal(err)
	}
	params, _ := structpb.NewStruct(map[string]any{"uri": "debug/get-log-level", "params": map[string]any{"a": []any{1, "x", nil, true}}})
	if !checkParams(t, mt.Descriptor(), params) {
		t.Fatal("an ordinary request with a Struct field did not take the direct path")
	}
	unknown, _ := structpb.NewStruct(map[string]any{"uri": "x", "nope": 1})
	if checkParams(t, mt.Descriptor(), unknown) {
		t.Fatal("an unknown field took the direct path")
	}
}
