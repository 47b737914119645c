// Package jsonvalue checks that a google.protobuf.Struct is a JSON object a
// service may store or pass on: every value has a kind, every number is
// finite, and its depth and size are bounded. A Struct that fails has no
// JSON form (protojson refuses it) or would cost a server more than any
// sensible caller needs, so it is refused at the edge, never stored,
// coerced or passed on.
package jsonvalue

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/types/known/structpb"
)

// Limits bound a Struct's shape.
type Limits struct {
	// MaxDepth bounds nesting; zero is 64.
	MaxDepth int
	// MaxValues bounds the number of values (object members and list
	// elements, recursively); zero is 100,000.
	MaxValues int
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth == 0 {
		l.MaxDepth = 64
	}
	if l.MaxValues == 0 {
		l.MaxValues = 100_000
	}
	return l
}

// Error says what is wrong and where.
type Error struct {
	Path   string
	Detail string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Detail
	}
	return e.Path + ": " + e.Detail
}

// Check validates s (nil is an empty object and passes).
func Check(s *structpb.Struct, l Limits) error {
	l = l.withDefaults()
	count := 0
	return checkStruct(s, l, 1, &count, "")
}

func checkStruct(s *structpb.Struct, l Limits, depth int, count *int, path string) error {
	if depth > l.MaxDepth {
		return &Error{Path: path, Detail: fmt.Sprintf("nested deeper than %d", l.MaxDepth)}
	}
	for k, v := range s.GetFields() {
		if err := checkValue(v, l, depth, count, path+"."+k); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(v *structpb.Value, l Limits, depth int, count *int, path string) error {
	*count++
	if *count > l.MaxValues {
		return &Error{Path: path, Detail: fmt.Sprintf("more than %d values", l.MaxValues)}
	}
	switch k := v.GetKind().(type) {
	case nil:
		return &Error{Path: path, Detail: "a value with no kind (not JSON)"}
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return &Error{Path: path, Detail: "a number that is NaN or infinite (not JSON)"}
		}
	case *structpb.Value_StructValue:
		return checkStruct(k.StructValue, l, depth+1, count, path)
	case *structpb.Value_ListValue:
		if depth+1 > l.MaxDepth {
			return &Error{Path: path, Detail: fmt.Sprintf("nested deeper than %d", l.MaxDepth)}
		}
		for i, e := range k.ListValue.GetValues() {
			if err := checkValue(e, l, depth+1, count, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}
