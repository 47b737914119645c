package audit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
)

// maxPayloadValues bounds the values (members and elements, recursively)
// of one payload, as pkg/jsonvalue's default does for other services.
const maxPayloadValues = 100_000

// payloadOf converts and checks an event or Append payload: every value
// has a kind, numbers are finite, strings and keys are UTF-8, nesting is at
// most auditlog.MaxPayloadDepth and its protobuf size at most
// MaxPayloadBytes. It is one walk that builds the map and sums the exact
// protobuf size (what proto.Size returns) as it goes: at high append rates
// the separate size, check, conversion and validation walks cost about as
// much as the group commit's hashing (docs/perf-audit.md).
func (s *Service) payloadOf(p *structpb.Struct) (map[string]any, error) {
	if p == nil {
		return map[string]any{}, nil
	}
	w := payloadWalk{}
	m, n, err := w.object(p, 1)
	if err != nil {
		return nil, fmt.Errorf("%w: %s%s", auditlog.ErrPayloadInvalid, w.where(), err.Error())
	}
	if n > s.cfg.MaxPayloadBytes {
		return nil, fmt.Errorf("payload is %d bytes, more than the %d allowed", n, s.cfg.MaxPayloadBytes)
	}
	return m, nil
}

// payloadWalk converts a Struct, counting values; on an error, path holds
// where it happened, innermost first.
type payloadWalk struct {
	values int
	path   []string
}

func (w *payloadWalk) where() string {
	if len(w.path) == 0 {
		return ""
	}
	out := ""
	for i := len(w.path) - 1; i >= 0; i-- {
		out += w.path[i]
	}
	return out + ": "
}

// object converts a Struct at depth and returns its protobuf size.
func (w *payloadWalk) object(st *structpb.Struct, depth int) (map[string]any, int, error) {
	if depth > auditlog.MaxPayloadDepth {
		return nil, 0, fmt.Errorf("nested deeper than %d", auditlog.MaxPayloadDepth)
	}
	fields := st.GetFields()
	m := make(map[string]any, len(fields))
	size := 0
	if st != nil {
		size = len(st.ProtoReflect().GetUnknown())
	}
	for k, v := range fields {
		if !utf8.ValidString(k) {
			return nil, 0, fmt.Errorf("key %q is not valid UTF-8", k)
		}
		x, vn, err := w.value(v, depth)
		if err != nil {
			w.path = append(w.path, "."+k)
			return nil, 0, err
		}
		m[k] = x
		// A map entry: key (field 1) and value (field 2), as a field 1
		// of the Struct.
		entry := 1 + protowire.SizeBytes(len(k)) + 1 + protowire.SizeBytes(vn)
		size += 1 + protowire.SizeBytes(entry)
	}
	return m, size, nil
}

// value converts a Value inside a container at depth and returns its
// protobuf size.
func (w *payloadWalk) value(v *structpb.Value, depth int) (any, int, error) {
	if w.values++; w.values > maxPayloadValues {
		return nil, 0, fmt.Errorf("more than %d values", maxPayloadValues)
	}
	if v == nil {
		return nil, 0, errors.New("a value with no kind (not JSON)")
	}
	unknown := len(v.ProtoReflect().GetUnknown())
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return nil, unknown + 1 + protowire.SizeVarint(uint64(k.NullValue)), nil
	case *structpb.Value_BoolValue:
		return k.BoolValue, unknown + 2, nil
	case *structpb.Value_NumberValue:
		if math.IsNaN(k.NumberValue) || math.IsInf(k.NumberValue, 0) {
			return nil, 0, errors.New("a number that is NaN or infinite (not JSON)")
		}
		return k.NumberValue, unknown + 9, nil
	case *structpb.Value_StringValue:
		if !utf8.ValidString(k.StringValue) {
			return nil, 0, errors.New("string is not valid UTF-8")
		}
		return k.StringValue, unknown + 1 + protowire.SizeBytes(len(k.StringValue)), nil
	case *structpb.Value_StructValue:
		m, n, err := w.object(k.StructValue, depth+1)
		return m, unknown + 1 + protowire.SizeBytes(n), err
	case *structpb.Value_ListValue:
		if depth+1 > auditlog.MaxPayloadDepth {
			return nil, 0, fmt.Errorf("nested deeper than %d", auditlog.MaxPayloadDepth)
		}
		vals := k.ListValue.GetValues()
		out := make([]any, len(vals))
		n := 0
		if k.ListValue != nil {
			n = len(k.ListValue.ProtoReflect().GetUnknown())
		}
		for i, e := range vals {
			x, en, err := w.value(e, depth+1)
			if err != nil {
				w.path = append(w.path, "["+strconv.Itoa(i)+"]")
				return nil, 0, err
			}
			out[i] = x
			n += 1 + protowire.SizeBytes(en)
		}
		return out, unknown + 1 + protowire.SizeBytes(n), nil
	}
	return nil, 0, errors.New("a value with no kind (not JSON)")
}
