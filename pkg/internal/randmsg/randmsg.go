// Package randmsg fills protobuf messages with random values for property
// tests: any message type, edge values included.
package randmsg

import (
	"math"
	"math/rand/v2"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// Fill sets a random subset of m's fields to random values, edge values
// included (NaN, infinities, extreme integers, invalid UTF-8, undefined
// enum numbers, out-of-range timestamps).
func Fill(rng *rand.Rand, m protoreflect.Message) { fill(rng, m, 0) }

func fill(rng *rand.Rand, m protoreflect.Message, depth int) {
	md := m.Descriptor()
	switch md.FullName() {
	case "google.protobuf.Timestamp", "google.protobuf.Duration":
		secs := []int64{0, 1, -1, 1_700_000_000, -62135596800, 253402300799, 315576000000, -315576000001, rng.Int64N(1 << 34)}
		nanos := []int64{0, 1, -1, 999_999_999, 1_000_000_000, 500_000_000, 120_000_000, 123_456_000, int64(rng.Int32N(1e9))}
		m.Set(md.Fields().ByNumber(1), protoreflect.ValueOfInt64(secs[rng.IntN(len(secs))]))
		m.Set(md.Fields().ByNumber(2), protoreflect.ValueOfInt32(int32(nanos[rng.IntN(len(nanos))])))
		return
	case "google.protobuf.Any", "google.protobuf.FieldMask":
		return
	}
	od := md.Oneofs()
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		if fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic() {
			continue
		}
		if rng.IntN(3) == 0 {
			continue
		}
		setField(rng, m, fd, depth)
	}
	for i := 0; i < od.Len(); i++ {
		o := od.Get(i)
		if o.IsSynthetic() || rng.IntN(4) == 0 {
			continue
		}
		setField(rng, m, o.Fields().Get(rng.IntN(o.Fields().Len())), depth)
	}
}

func setField(rng *rand.Rand, m protoreflect.Message, fd protoreflect.FieldDescriptor, depth int) {
	switch {
	case fd.IsList():
		l := m.Mutable(fd).List()
		for range rng.IntN(4) {
			if fd.Kind() == protoreflect.MessageKind {
				e := l.NewElement()
				if depth < 3 {
					fill(rng, e.Message(), depth+1)
				}
				l.Append(e)
			} else {
				l.Append(scalar(rng, fd))
			}
		}
	case fd.IsMap():
		mp := m.Mutable(fd).Map()
		for range rng.IntN(4) {
			k := scalar(rng, fd.MapKey()).MapKey()
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v := mp.NewValue()
				if depth < 3 {
					fill(rng, v.Message(), depth+1)
				}
				mp.Set(k, v)
			} else {
				mp.Set(k, scalar(rng, fd.MapValue()))
			}
		}
	case fd.Kind() == protoreflect.MessageKind:
		if depth >= 3 {
			return
		}
		v := m.NewField(fd)
		fill(rng, v.Message(), depth+1)
		m.Set(fd, v)
	default:
		m.Set(fd, scalar(rng, fd))
	}
}

func scalar(rng *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	pick := func(n int) int { return rng.IntN(n) }
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(pick(2) == 0)
	case protoreflect.StringKind:
		s := []string{"", "a", "persona-7", "ünïcödé", "with \"quotes\" and \\", "\xff\xfe", strings.Repeat("x", 40)}
		return protoreflect.ValueOfString(s[pick(len(s))])
	case protoreflect.BytesKind:
		b := make([]byte, pick(9))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return protoreflect.ValueOfBytes(b)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		v := []int32{0, 1, -1, math.MaxInt32, math.MinInt32, rng.Int32()}
		return protoreflect.ValueOfInt32(v[pick(len(v))])
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		v := []uint32{0, 1, math.MaxUint32, rng.Uint32()}
		return protoreflect.ValueOfUint32(v[pick(len(v))])
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		v := []int64{0, 1, -1, math.MaxInt64, math.MinInt64, rng.Int64()}
		return protoreflect.ValueOfInt64(v[pick(len(v))])
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		v := []uint64{0, 1, math.MaxUint64, rng.Uint64()}
		return protoreflect.ValueOfUint64(v[pick(len(v))])
	case protoreflect.FloatKind:
		v := []float32{0, 0.1, -2.5, float32(math.Inf(1)), float32(math.NaN()), math.MaxFloat32, math.SmallestNonzeroFloat32, rng.Float32() * 1e6}
		return protoreflect.ValueOfFloat32(v[pick(len(v))])
	case protoreflect.DoubleKind:
		v := []float64{0, 0.1, -2.5, math.Inf(-1), math.NaN(), math.MaxFloat64, math.SmallestNonzeroFloat64, 1e21, rng.NormFloat64() * 1e9}
		return protoreflect.ValueOfFloat64(v[pick(len(v))])
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if pick(5) == 0 {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(1000 + pick(5)))
		}
		return protoreflect.ValueOfEnum(vals.Get(pick(vals.Len())).Number())
	}
	panic("no scalar for " + fd.Kind().String())
}
