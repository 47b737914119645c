package sweep

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// maxFieldDepth bounds how deep the sweep descends into nested messages
// (request -> message -> message -> leaf), so recursive messages end.
const maxFieldDepth = 4

// mapRole says which half of a map entry a step addresses.
type mapRole int

const (
	notMap mapRole = iota
	mapKeyRole
	mapValueRole
)

// step is one field on the way from the request to a leaf.
type step struct {
	fd   protoreflect.FieldDescriptor
	role mapRole
}

// slot is one place in a request the sweep puts bad values: the path to
// it and its leaf field.
type slot struct {
	path []step
	name string
}

// leaf is the last step of the path: the field that holds the value.
func (s slot) leaf() step { return s.path[len(s.path)-1] }

// leafField is the descriptor of the value the slot holds (the key or
// value field for map slots).
func (s slot) leafField() protoreflect.FieldDescriptor {
	l := s.leaf()
	switch l.role {
	case mapKeyRole:
		return l.fd.MapKey()
	case mapValueRole:
		return l.fd.MapValue()
	}
	return l.fd
}

// repeated reports whether the slot's leaf is a list element.
func (s slot) repeated() bool { return s.leaf().role == notMap && s.leaf().fd.IsList() }

const (
	structName    protoreflect.FullName = "google.protobuf.Struct"
	valueName     protoreflect.FullName = "google.protobuf.Value"
	listValueName protoreflect.FullName = "google.protobuf.ListValue"
	anyName       protoreflect.FullName = "google.protobuf.Any"
)

// isStructLike reports whether a message is one of the JSON-shaped
// well-known types, which get struct cases instead of being walked.
func isStructLike(md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case structName, valueName, listValueName:
		return true
	}
	return false
}

// slots lists every leaf of md the sweep mutates: scalar fields, list and
// map fields, JSON-shaped well-known fields, and message fields (which it
// also descends into, up to maxFieldDepth).
func slots(md protoreflect.MessageDescriptor) []slot {
	var out []slot
	walkSlots(md, nil, "", 1, &out)
	return out
}

func walkSlots(md protoreflect.MessageDescriptor, prefix []step, name string, depth int, out *[]slot) {
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		path := func(st step) []step {
			p := make([]step, len(prefix), len(prefix)+1)
			copy(p, prefix)
			return append(p, st)
		}
		n := name + string(fd.Name())
		switch {
		case fd.IsMap():
			*out = append(*out, slot{path: path(step{fd, mapKeyRole}), name: n + "{key}"})
			v := fd.MapValue()
			if v.Kind() == protoreflect.MessageKind && !isStructLike(v.Message()) {
				if depth < maxFieldDepth && v.Message().FullName() != anyName {
					walkSlots(v.Message(), path(step{fd, mapValueRole}), n+"{k}.", depth+1, out)
				}
				continue
			}
			*out = append(*out, slot{path: path(step{fd, mapValueRole}), name: n + "{value}"})
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if fd.Message().FullName() == anyName {
				continue
			}
			if isStructLike(fd.Message()) {
				*out = append(*out, slot{path: path(step{fd, notMap}), name: n})
				continue
			}
			if fd.IsList() {
				// The list itself gets the "many elements" case.
				*out = append(*out, slot{path: path(step{fd, notMap}), name: n + "[]"})
			}
			if depth < maxFieldDepth {
				sub := n + "."
				if fd.IsList() {
					sub = n + "[0]."
				}
				walkSlots(fd.Message(), path(step{fd, notMap}), sub, depth+1, out)
			}
		default:
			if fd.IsList() {
				n += "[]"
			}
			*out = append(*out, slot{path: path(step{fd, notMap}), name: n})
		}
	}
}

// defaultMapKey is the key the sweep uses for map entries it creates.
func defaultMapKey(kd protoreflect.FieldDescriptor) protoreflect.MapKey {
	switch kd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("k").MapKey()
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true).MapKey()
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(1).MapKey()
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(1).MapKey()
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(1).MapKey()
	default:
		return protoreflect.ValueOfUint64(1).MapKey()
	}
}

// descend returns the message a non-leaf step leads to, creating it (and
// a first list element or map entry) when absent.
func descend(m protoreflect.Message, st step) protoreflect.Message {
	switch {
	case st.role == mapValueRole:
		return m.Mutable(st.fd).Map().Mutable(defaultMapKey(st.fd.MapKey())).Message()
	case st.fd.IsList():
		l := m.Mutable(st.fd).List()
		if l.Len() == 0 {
			return l.AppendMutable().Message()
		}
		return l.Get(0).Message()
	default:
		return m.Mutable(st.fd).Message()
	}
}

// setSlot sets the slot of a copy of base to v (one value; a list leaf
// becomes a one-element list) and returns the copy.
func setSlot(base *dynamicpb.Message, s slot, v protoreflect.Value) *dynamicpb.Message {
	return editSlot(base, s, func(m protoreflect.Message, leaf step) {
		switch {
		case leaf.role == mapKeyRole:
			mp := m.Mutable(leaf.fd).Map()
			mp.Clear(defaultMapKey(leaf.fd.MapKey()))
			if leaf.fd.MapValue().Kind() == protoreflect.MessageKind {
				mp.Mutable(v.MapKey())
				return
			}
			mp.Set(v.MapKey(), typicalValue(leaf.fd.MapValue()))
		case leaf.role == mapValueRole:
			m.Mutable(leaf.fd).Map().Set(defaultMapKey(leaf.fd.MapKey()), v)
		case leaf.fd.IsList():
			l := m.Mutable(leaf.fd).List()
			l.Truncate(0)
			l.Append(v)
		default:
			m.Set(leaf.fd, v)
		}
	})
}

// setList sets a list leaf of a copy of base to n copies of v.
func setList(base *dynamicpb.Message, s slot, n int, v func(l protoreflect.List)) *dynamicpb.Message {
	return editSlot(base, s, func(m protoreflect.Message, leaf step) {
		l := m.Mutable(leaf.fd).List()
		l.Truncate(0)
		for range n {
			v(l)
		}
	})
}

func editSlot(base *dynamicpb.Message, s slot, edit func(m protoreflect.Message, leaf step)) *dynamicpb.Message {
	out := proto.Clone(base).(*dynamicpb.Message)
	var m protoreflect.Message = out
	for _, st := range s.path[:len(s.path)-1] {
		m = descend(m, st)
	}
	edit(m, s.leaf())
	return out
}

// typicalValue is an ordinary, valid-looking value of a scalar field, for
// filling messages before truncating them.
func typicalValue(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("badinput")
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte("badinput"))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if vals.Len() > 1 {
			return protoreflect.ValueOfEnum(vals.Get(1).Number())
		}
		return protoreflect.ValueOfEnum(0)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(1.5)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(1.5)
	}
	return numberValue(fd.Kind(), namedNumber{i: 7, u: 7, f: 7})
}

// numberValue converts a bad number to a value of kind k.
func numberValue(k protoreflect.Kind, n namedNumber) protoreflect.Value {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(n.i)) //nolint:gosec // the bad values are chosen to fit
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(n.i)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(n.u)) //nolint:gosec // the bad values are chosen to fit
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(n.u)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(n.f))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(n.f)
	}
	panic(fmt.Sprintf("sweep: %v is not a number kind", k))
}

// fill returns a copy of base with every unset top-level field set to a
// typical value (one element for lists and maps, an empty message for
// message fields), so truncating its encoding cuts through real fields.
func fill(base *dynamicpb.Message) *dynamicpb.Message {
	out := proto.Clone(base).(*dynamicpb.Message)
	fields := out.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if out.Has(fd) || (fd.ContainingOneof() != nil && out.WhichOneof(fd.ContainingOneof()) != nil) {
			continue
		}
		switch {
		case fd.IsMap():
			mp := out.Mutable(fd).Map()
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				mp.Mutable(defaultMapKey(fd.MapKey()))
			} else {
				mp.Set(defaultMapKey(fd.MapKey()), typicalValue(fd.MapValue()))
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			if fd.IsList() {
				out.Mutable(fd).List().AppendMutable()
			} else {
				out.Mutable(fd)
			}
		case fd.IsList():
			out.Mutable(fd).List().Append(typicalValue(fd))
		default:
			out.Set(fd, typicalValue(fd))
		}
	}
	return out
}
