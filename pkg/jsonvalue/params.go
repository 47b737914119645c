package jsonvalue

import (
	"math"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// ToMessage fills the empty message m from s the way protojson reads the
// JSON object s stands for (field names in JSON or proto form, 64-bit
// integers from numbers or decimal strings, enums by name or number, null
// leaving a field unset), without printing s as JSON text and parsing it
// back:
//
//	b, _ := protojson.Marshal(s)
//	protojson.Unmarshal(b, m)
//
// ok is false, with m in an unspecified state, when s holds anything this
// direct path leaves to protojson: anything protojson refuses (unknown or
// duplicate fields, two members of a oneof, numbers out of range or not
// whole, wrong JSON types) and the rarer forms it accepts (bytes, map keys
// other than strings, well-known types other than Struct, Value and
// ListValue, numbers written as non-decimal strings). The caller then
// resets m and takes the protojson path, which gives the same answer or
// protojson's own error. TestToMessageMatchesProtojson checks both.
func ToMessage(s *structpb.Struct, m protoreflect.Message) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return fillMessage(s, m, 0)
}

func fillMessage(s *structpb.Struct, m protoreflect.Message, depth int) bool {
	md := m.Descriptor()
	if depth > maxMessageDepth || md.FullName().Parent() == "google.protobuf" || md.RequiredNumbers().Len() > 0 {
		return false
	}
	fields := md.Fields()
	var seen map[protoreflect.FieldNumber]bool
	var seenOneof map[int]bool
	for name, v := range s.GetFields() {
		if v == nil || v.GetKind() == nil {
			return false
		}
		fd := fields.ByJSONName(name)
		if fd == nil {
			fd = fields.ByTextName(name)
		}
		if fd == nil || fd.IsExtension() {
			return false // unknown field: protojson's error
		}
		if seen == nil {
			seen = make(map[protoreflect.FieldNumber]bool, len(s.GetFields()))
		}
		if seen[fd.Number()] {
			return false // the same field by both its names
		}
		seen[fd.Number()] = true
		if _, null := v.GetKind().(*structpb.Value_NullValue); null {
			if isValueMessage(fd) || (fd.Enum() != nil && fd.Enum().FullName() == "google.protobuf.NullValue") {
				return false
			}
			continue // null leaves the field unset
		}
		switch {
		case fd.IsList():
			lv, ok := v.GetKind().(*structpb.Value_ListValue)
			if !ok {
				return false
			}
			l := m.Mutable(fd).List()
			for _, e := range lv.ListValue.GetValues() {
				pv, ok := elementValue(fd, e, l.NewElement, depth)
				if !ok {
					return false
				}
				l.Append(pv)
			}
		case fd.IsMap():
			sv, ok := v.GetKind().(*structpb.Value_StructValue)
			if !ok || fd.MapKey().Kind() != protoreflect.StringKind {
				return false
			}
			mp := m.Mutable(fd).Map()
			for k, e := range sv.StructValue.GetFields() {
				if !utf8.ValidString(k) {
					return false
				}
				pv, ok := elementValue(fd.MapValue(), e, mp.NewValue, depth)
				if !ok {
					return false
				}
				mp.Set(protoreflect.ValueOfString(k).MapKey(), pv)
			}
		default:
			if od := fd.ContainingOneof(); od != nil {
				if seenOneof == nil {
					seenOneof = map[int]bool{}
				}
				if seenOneof[od.Index()] {
					return false // two members of one oneof
				}
				seenOneof[od.Index()] = true
			}
			pv, ok := elementValue(fd, v, func() protoreflect.Value { return m.NewField(fd) }, depth)
			if !ok {
				return false
			}
			m.Set(fd, pv)
		}
	}
	return true
}

func isValueMessage(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Value"
}

// elementValue converts one JSON value for a singular field, a list
// element or a map value of fd's kind; newMsg makes the message to fill
// for message kinds.
func elementValue(fd protoreflect.FieldDescriptor, v *structpb.Value, newMsg func() protoreflect.Value, depth int) (protoreflect.Value, bool) {
	if v == nil || v.GetKind() == nil {
		return protoreflect.Value{}, false
	}
	switch fd.Kind() {
	case protoreflect.BoolKind:
		if b, ok := v.GetKind().(*structpb.Value_BoolValue); ok {
			return protoreflect.ValueOfBool(b.BoolValue), true
		}
	case protoreflect.StringKind:
		if s, ok := v.GetKind().(*structpb.Value_StringValue); ok && utf8.ValidString(s.StringValue) {
			return protoreflect.ValueOfString(s.StringValue), true
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if n, ok := wholeNumber(v, math.MinInt32, math.MaxInt32); ok {
			return protoreflect.ValueOfInt32(int32(n)), true
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if n, ok := wholeNumber(v, math.MinInt64, math.MaxInt64); ok {
			return protoreflect.ValueOfInt64(n), true
		}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if n, ok := wholeNumber(v, 0, math.MaxUint32); ok {
			return protoreflect.ValueOfUint32(uint32(n)), true
		}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if n, ok := v.GetKind().(*structpb.Value_StringValue); ok && isDecimal(n.StringValue) && n.StringValue[0] != '-' {
			if u, err := strconv.ParseUint(n.StringValue, 10, 64); err == nil {
				return protoreflect.ValueOfUint64(u), true
			}
			return protoreflect.Value{}, false
		}
		if n, ok := wholeNumber(v, 0, math.MaxInt64); ok {
			return protoreflect.ValueOfUint64(uint64(n)), true
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		bits := 64
		if fd.Kind() == protoreflect.FloatKind {
			bits = 32
		}
		f, ok := floatOf(v, bits)
		if !ok {
			return protoreflect.Value{}, false
		}
		if bits == 32 {
			return protoreflect.ValueOfFloat32(float32(f)), true
		}
		return protoreflect.ValueOfFloat64(f), true
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ed.FullName() == "google.protobuf.NullValue" {
			return protoreflect.Value{}, false
		}
		if s, ok := v.GetKind().(*structpb.Value_StringValue); ok {
			if ev := ed.Values().ByName(protoreflect.Name(s.StringValue)); ev != nil {
				return protoreflect.ValueOfEnum(ev.Number()), true
			}
			return protoreflect.Value{}, false
		}
		if _, ok := v.GetKind().(*structpb.Value_NumberValue); ok {
			if n, ok := wholeNumber(v, math.MinInt32, math.MaxInt32); ok {
				return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), true
			}
		}
	case protoreflect.MessageKind:
		pv := newMsg()
		msg := pv.Message()
		switch msg.Descriptor().FullName() {
		case "google.protobuf.Value":
			return pv, setValue(msg, v, depth+1)
		case "google.protobuf.Struct":
			sv, ok := v.GetKind().(*structpb.Value_StructValue)
			return pv, ok && setStruct(msg, sv.StructValue, depth+1)
		case "google.protobuf.ListValue":
			lv, ok := v.GetKind().(*structpb.Value_ListValue)
			return pv, ok && setList(msg, lv.ListValue, depth+1)
		}
		sv, ok := v.GetKind().(*structpb.Value_StructValue)
		if !ok {
			return protoreflect.Value{}, false
		}
		return pv, fillMessage(sv.StructValue, msg, depth+1)
	}
	return protoreflect.Value{}, false
}

// maxExactInt is the largest whole number every float64 up to which is an
// integer written exactly by its shortest decimal form; beyond it,
// protojson's text of the float may name a different integer than the
// float itself, so the direct path declines.
const maxExactInt = 1 << 53

// wholeNumber reads v as an integer in [lo, hi]: a whole JSON number of at
// most 2^53 in magnitude, or a decimal string (what protojson writes for
// 64-bit integers).
func wholeNumber(v *structpb.Value, lo, hi int64) (int64, bool) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		f := k.NumberValue
		if f != math.Trunc(f) || math.Abs(f) > maxExactInt {
			return 0, false
		}
		n := int64(f)
		return n, n >= lo && n <= hi
	case *structpb.Value_StringValue:
		if !isDecimal(k.StringValue) {
			return 0, false
		}
		n, err := strconv.ParseInt(k.StringValue, 10, 64)
		return n, err == nil && n >= lo && n <= hi
	}
	return 0, false
}

// isDecimal reports whether s is a JSON integer: an optional minus and
// digits without a leading zero.
func isDecimal(s string) bool {
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// floatOf reads v as a float of bits bits the way protojson reads the
// number's text: rounded from its shortest decimal form, refused when it
// overflows; "NaN", "Infinity" and "-Infinity" as strings.
func floatOf(v *structpb.Value, bits int) (float64, bool) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return 0, false
		}
		if bits == 64 {
			return k.NumberValue, true
		}
		f, err := strconv.ParseFloat(strconv.FormatFloat(k.NumberValue, 'g', -1, 64), 32)
		return f, err == nil
	case *structpb.Value_StringValue:
		switch k.StringValue {
		case "NaN":
			return math.NaN(), true
		case "Infinity":
			return math.Inf(1), true
		case "-Infinity":
			return math.Inf(-1), true
		}
	}
	return 0, false
}

// setValue, setStruct and setList copy JSON into a google.protobuf.Value,
// Struct or ListValue field through reflection, so they fill generated
// and dynamic messages alike.
func setValue(m protoreflect.Message, v *structpb.Value, depth int) bool {
	if depth > maxMessageDepth {
		return false
	}
	fields := m.Descriptor().Fields()
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		m.Set(fields.ByNumber(1), protoreflect.ValueOfEnum(0))
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return false
		}
		m.Set(fields.ByNumber(2), protoreflect.ValueOfFloat64(k.NumberValue))
	case *structpb.Value_StringValue:
		if !utf8.ValidString(k.StringValue) {
			return false
		}
		m.Set(fields.ByNumber(3), protoreflect.ValueOfString(k.StringValue))
	case *structpb.Value_BoolValue:
		m.Set(fields.ByNumber(4), protoreflect.ValueOfBool(k.BoolValue))
	case *structpb.Value_StructValue:
		fd := fields.ByNumber(5)
		pv := m.NewField(fd)
		if !setStruct(pv.Message(), k.StructValue, depth+1) {
			return false
		}
		m.Set(fd, pv)
	case *structpb.Value_ListValue:
		fd := fields.ByNumber(6)
		pv := m.NewField(fd)
		if !setList(pv.Message(), k.ListValue, depth+1) {
			return false
		}
		m.Set(fd, pv)
	default:
		return false
	}
	return true
}

func setStruct(m protoreflect.Message, s *structpb.Struct, depth int) bool {
	if s == nil {
		return false
	}
	fd := m.Descriptor().Fields().ByNumber(1)
	mp := m.Mutable(fd).Map()
	for k, e := range s.GetFields() {
		if !utf8.ValidString(k) || e == nil {
			return false
		}
		pv := mp.NewValue()
		if !setValue(pv.Message(), e, depth+1) {
			return false
		}
		mp.Set(protoreflect.ValueOfString(k).MapKey(), pv)
	}
	return true
}

func setList(m protoreflect.Message, l *structpb.ListValue, depth int) bool {
	if l == nil {
		return false
	}
	fd := m.Descriptor().Fields().ByNumber(1)
	pl := m.Mutable(fd).List()
	for _, e := range l.GetValues() {
		if e == nil {
			return false
		}
		pv := pl.NewElement()
		if !setValue(pv.Message(), e, depth+1) {
			return false
		}
		pl.Append(pv)
	}
	return true
}
