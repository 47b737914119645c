package jsonvalue_test

import (
	"math"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/jsonvalue"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	deep := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	cur := deep
	for range 70 {
		next := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		cur.Fields["x"] = structpb.NewStructValue(next)
		cur = next
	}
	wide := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for i := range 200 {
		wide.Fields[string(rune('a'+i%26))+string(rune('a'+i/26))] = structpb.NewNumberValue(1)
	}
	ok, _ := structpb.NewStruct(map[string]any{"a": 1, "b": []any{"x", map[string]any{"c": true}}, "d": nil})
	tests := []struct {
		name string
		s    *structpb.Struct
		l    jsonvalue.Limits
		ok   bool
	}{
		{name: "nil", s: nil, ok: true},
		{name: "ordinary", s: ok, ok: true},
		{name: "NaN", s: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(math.NaN())}}},
		{name: "infinity in a list", s: &structpb.Struct{Fields: map[string]*structpb.Value{"l": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(math.Inf(-1))}})}}},
		{name: "no kind", s: &structpb.Struct{Fields: map[string]*structpb.Value{"k": {}}}},
		{name: "too deep", s: deep},
		{name: "too many values", s: wide, l: jsonvalue.Limits{MaxValues: 100}},
		{name: "wide within limits", s: wide, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := jsonvalue.Check(tt.s, tt.l)
			if (err == nil) != tt.ok {
				t.Fatalf("Check = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
