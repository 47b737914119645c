package jsonvalue_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/google/go-cmp/cmp"

	"github.com/continuum-mesh/continuum/pkg/internal/randmsg"
	"github.com/continuum-mesh/continuum/pkg/jsonvalue"
	_ "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
	_ "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// roundTrip is what FromMessage replaces: protojson text and back.
func roundTrip(m proto.Message) (*structpb.Value, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	v := &structpb.Value{}
	if err := protojson.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return v, nil
}

// check compares FromMessage with the protojson round trip on m: where
// the direct path answers, the answers are equal; where protojson
// refuses m, the direct path declines too. It reports whether the direct
// path answered.
func check(t *testing.T, m proto.Message) bool {
	t.Helper()
	got, ok := jsonvalue.FromMessage(m.ProtoReflect())
	want, err := roundTrip(m)
	if err != nil {
		if ok {
			t.Fatalf("%s: protojson refuses it (%v) but FromMessage answered %v", m.ProtoReflect().Descriptor().FullName(), err, got)
		}
		return false
	}
	if !ok {
		return false
	}
	if d := cmp.Diff(want, got, protocmp.Transform()); d != "" {
		t.Fatalf("%s: FromMessage differs from protojson (-protojson +direct):\n%s\nmessage: %v", m.ProtoReflect().Descriptor().FullName(), d, m)
	}
	return true
}

// TestFromMessageMatchesProtojson fills every message of the mesh's APIs
// at random, as generated and as dynamic messages (the router builds
// dynamic ones), and compares.
func TestFromMessageMatchesProtojson(t *testing.T) {
	t.Parallel()
	mds := apiMessages(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, md := range mds {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
		if err != nil {
			t.Fatal(err)
		}
		direct := 0
		for i := range 60 {
			var m proto.Message
			if i%2 == 0 {
				m = mt.New().Interface()
			} else {
				m = dynamicpb.NewMessage(md)
			}
			randmsg.Fill(rng, m.ProtoReflect())
			if check(t, m) {
				direct++
			}
		}
		if direct == 0 && !mentionsAny(md, map[protoreflect.FullName]bool{}) {
			t.Errorf("%s: the direct path never answered", md.FullName())
		}
	}
}

// apiMessages returns every message of the mesh's APIs, in name order so
// that a seeded run is reproducible.
func apiMessages(t *testing.T) []protoreflect.MessageDescriptor {
	t.Helper()
	var mds []protoreflect.MessageDescriptor
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		md := mt.Descriptor()
		if strings.HasPrefix(string(md.FullName()), "continuum.") && !md.IsMapEntry() {
			mds = append(mds, md)
		}
		return true
	})
	if len(mds) < 50 {
		t.Fatalf("only %d continuum messages registered; the blank imports are missing", len(mds))
	}
	slices.SortFunc(mds, func(a, b protoreflect.MessageDescriptor) int {
		return strings.Compare(string(a.FullName()), string(b.FullName()))
	})
	return mds
}

// mentionsAny reports whether md can hold a message FromMessage leaves to
// protojson (Any, FieldMask), which random filling reaches often.
func mentionsAny(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return false
	}
	seen[md.FullName()] = true
	switch md.FullName() {
	case "google.protobuf.Any", "google.protobuf.FieldMask":
		return true
	}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if fd.Message() != nil && mentionsAny(fd.Message(), seen) {
			return true
		}
	}
	return false
}

func TestFromMessageWellKnown(t *testing.T) {
	t.Parallel()
	s, err := structpb.NewStruct(map[string]any{"a": 1.5, "b": []any{"x", true, nil}, "c": map[string]any{"d": -2}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		m      proto.Message
		direct bool
	}{
		{"timestamp whole", timestamppb.New(timeAt(1_700_000_000, 0)), true},
		{"timestamp millis", timestamppb.New(timeAt(1_700_000_000, 120_000_000)), true},
		{"timestamp micros", timestamppb.New(timeAt(1_700_000_000, 123_456_000)), true},
		{"timestamp nanos", timestamppb.New(timeAt(-1_700_000_000, 123_456_789)), true},
		{"timestamp min", &timestamppb.Timestamp{Seconds: -62135596800}, true},
		{"timestamp max", &timestamppb.Timestamp{Seconds: 253402300799, Nanos: 999_999_999}, true},
		{"timestamp too early", &timestamppb.Timestamp{Seconds: -62135596801}, false},
		{"timestamp bad nanos", &timestamppb.Timestamp{Seconds: 1, Nanos: -1}, false},
		{"duration zero", &durationpb.Duration{}, true},
		{"duration negative fraction", &durationpb.Duration{Nanos: -500_000_000}, true},
		{"duration negative", &durationpb.Duration{Seconds: -3, Nanos: -1000}, true},
		{"duration nanos", &durationpb.Duration{Seconds: 3, Nanos: 1}, true},
		{"duration mixed signs", &durationpb.Duration{Seconds: 3, Nanos: -1}, false},
		{"duration too long", &durationpb.Duration{Seconds: 315576000001}, false},
		{"empty", &emptypb.Empty{}, true},
		{"struct", s, true},
		{"value null", structpb.NewNullValue(), true},
		{"value NaN", structpb.NewNumberValue(math.NaN()), false},
		{"value no kind", &structpb.Value{}, false},
		{"value bad utf-8", structpb.NewStringValue("\xff"), false},
		{"list", &structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1), structpb.NewStringValue("a")}}, true},
		{"float wrapper", wrapperspb.Float(0.1), true},
		{"float wrapper inf", wrapperspb.Float(float32(math.Inf(-1))), true},
		{"double wrapper NaN", wrapperspb.Double(math.NaN()), true},
		{"int64 wrapper", wrapperspb.Int64(math.MinInt64), true},
		{"uint64 wrapper", wrapperspb.UInt64(math.MaxUint64), true},
		{"bytes wrapper", wrapperspb.Bytes([]byte{0, 1, 2, 250}), true},
		{"string wrapper bad utf-8", wrapperspb.String("a\xc0"), false},
		{"any", mustAny(t, wrapperspb.Int32(3)), false},
		{"field mask", &fieldmaskpb.FieldMask{Paths: []string{"a_b"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := check(t, c.m); got != c.direct {
				t.Errorf("direct path answered = %v, want %v", got, c.direct)
			}
		})
	}
}

func TestFromMessageNeverPanics(t *testing.T) {
	t.Parallel()
	// A dynamic message whose Struct map holds a nil Value: protojson
	// refuses it, and so must the direct path, without panicking.
	md := (&structpb.Struct{}).ProtoReflect().Descriptor()
	m := dynamicpb.NewMessage(md)
	mp := m.Mutable(md.Fields().ByNumber(1)).Map()
	mp.Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfMessage(dynamicpb.NewMessage(md.Fields().ByNumber(1).MapValue().Message())))
	if check(t, m) {
		t.Fatal("a Value without a kind took the direct path")
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func timeAt(sec, nsec int64) time.Time { return time.Unix(sec, nsec) }
