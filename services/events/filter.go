package events

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
)

// maxFilterFields bounds a subscription filter.
const maxFilterFields = 64

// filter is a compiled subscription filter: every field must equal the
// payload's top-level field of that name. A filter with no fields matches
// every event.
type filter struct {
	fields []filterField
}

type filterKind int

const (
	filterNull filterKind = iota
	filterString
	filterNumber
	filterBool
)

type filterField struct {
	key  string
	kind filterKind
	s    string
	n    float64
	b    bool
}

// compileFilter checks a filter: an object of field -> scalar (string,
// number, bool or null). Lists, objects and non-finite numbers are refused
// (FILTER_INVALID) rather than matched in some surprising way.
func compileFilter(st *structpb.Struct) (filter, error) {
	fields := st.GetFields()
	if len(fields) > maxFilterFields {
		return filter{}, failure(errFilterInvalid, "more than "+strconv.Itoa(maxFilterFields)+" fields")
	}
	var f filter
	for k, v := range fields {
		if k == "" || len(k) > 256 {
			return filter{}, failure(errFilterInvalid, "field names are 1 to 256 bytes")
		}
		ff := filterField{key: k}
		switch x := v.GetKind().(type) {
		case *structpb.Value_NullValue:
			ff.kind = filterNull
		case *structpb.Value_StringValue:
			ff.kind, ff.s = filterString, x.StringValue
		case *structpb.Value_NumberValue:
			if math.IsNaN(x.NumberValue) || math.IsInf(x.NumberValue, 0) {
				return filter{}, failure(errFilterInvalid, "field "+strconv.Quote(k)+" is not a finite number", "field", k)
			}
			ff.kind, ff.n = filterNumber, x.NumberValue
		case *structpb.Value_BoolValue:
			ff.kind, ff.b = filterBool, x.BoolValue
		default:
			return filter{}, failure(errFilterInvalid, "field "+strconv.Quote(k)+" is not a string, number, bool or null", "field", k)
		}
		f.fields = append(f.fields, ff)
	}
	slices.SortFunc(f.fields, func(a, b filterField) int { return strings.Compare(a.key, b.key) })
	return f, nil
}

// matchEvent is match for a retained event, whose payload is decoded from
// its encoding only when the filter has fields to compare.
func (f *filter) matchEvent(ev *event) bool {
	if len(f.fields) == 0 {
		return true
	}
	return f.match(ev.payloadStruct())
}

// match reports whether payload has every field of the filter with an
// equal value. A null in the filter matches a null field, not a missing one.
func (f *filter) match(payload *structpb.Struct) bool {
	if len(f.fields) == 0 {
		return true
	}
	fields := payload.GetFields()
	for i := range f.fields {
		ff := &f.fields[i]
		v, ok := fields[ff.key]
		if !ok {
			return false
		}
		switch x := v.GetKind().(type) {
		case *structpb.Value_NullValue:
			if ff.kind != filterNull {
				return false
			}
		case *structpb.Value_StringValue:
			if ff.kind != filterString || ff.s != x.StringValue {
				return false
			}
		case *structpb.Value_NumberValue:
			if ff.kind != filterNumber || ff.n != x.NumberValue {
				return false
			}
		case *structpb.Value_BoolValue:
			if ff.kind != filterBool || ff.b != x.BoolValue {
				return false
			}
		default:
			return false
		}
	}
	return true
}
