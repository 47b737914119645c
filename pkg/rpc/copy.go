package rpc

import (
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// copyMessage makes dst (reset first) an independent copy of src with the
// outcome marshaling src and unmarshaling it into dst would have: the same
// fields, unknown fields included, and an error where marshaling fails.
// Two messages of one generated type whose strings are all valid UTF-8
// are merged field by field, which skips encoding and decoding; anything
// else goes through the wire form, which reports its own errors.
func copyMessage(dst, src proto.Message) error {
	return copyVia(dst, src, dst.ProtoReflect().Type() == src.ProtoReflect().Type() && mergeable(src.ProtoReflect()))
}

// copyVia copies src into dst by merging when merge is true (the caller
// knows it is the same as the wire), else through the wire form.
func copyVia(dst, src proto.Message, merge bool) error {
	if merge {
		proto.Reset(dst)
		proto.Merge(dst, src)
		return nil
	}
	b, err := proto.Marshal(src)
	if err != nil {
		return err
	}
	return proto.Unmarshal(b, dst)
}

// moveFields makes dst (reset first) hold src's fields, unknown fields
// included, sharing the messages, lists, maps and bytes they refer to:
// for a src nobody else will use.
func moveFields(dst, src protoreflect.Message) {
	proto.Reset(dst.Interface())
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(u)
	}
}

// mergeable reports whether merging m gives what its wire form would: m
// is a proto3 message (proto3 validates UTF-8 and has no required
// fields), and so is every message in it, and its strings are valid
// UTF-8. It answers false when unsure. The well-known JSON value types,
// which carry every dispatch result, are walked directly.
func mergeable(m protoreflect.Message) bool {
	switch v := m.Interface().(type) {
	case *structpb.Value:
		return valueOK(v)
	case *structpb.Struct:
		return structOK(v)
	case *structpb.ListValue:
		return listOK(v)
	}
	if m.Descriptor().ParentFile().Syntax() != protoreflect.Proto3 {
		return false
	}
	w := walker{ok: true}
	m.Range(w.field)
	return w.ok
}

// walker checks a message's fields; its method is the Range callback, so
// the walk allocates no closure.
type walker struct{ ok bool }

func (w *walker) field(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	switch {
	case fd.IsMap():
		kd, vd := fd.MapKey(), fd.MapValue()
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			w.ok = (kd.Kind() != protoreflect.StringKind || utf8.ValidString(k.String())) && singularOK(vd, mv)
			return w.ok
		})
	case fd.IsList():
		l := v.List()
		for i := 0; w.ok && i < l.Len(); i++ {
			w.ok = singularOK(fd, l.Get(i))
		}
	default:
		w.ok = singularOK(fd, v)
	}
	return w.ok
}

func singularOK(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return utf8.ValidString(v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return mergeable(v.Message())
	}
	return true
}

func valueOK(v *structpb.Value) bool {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return utf8.ValidString(k.StringValue)
	case *structpb.Value_StructValue:
		return k.StructValue == nil || structOK(k.StructValue)
	case *structpb.Value_ListValue:
		return k.ListValue == nil || listOK(k.ListValue)
	}
	return true
}

func structOK(s *structpb.Struct) bool {
	for k, v := range s.GetFields() {
		if !utf8.ValidString(k) || (v != nil && !valueOK(v)) {
			return false
		}
	}
	return true
}

func listOK(l *structpb.ListValue) bool {
	for _, v := range l.GetValues() {
		if v != nil && !valueOK(v) {
			return false
		}
	}
	return true
}
