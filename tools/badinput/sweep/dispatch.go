package sweep

import (
	"fmt"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/uri"
)

// dispatchMethod is the router method that runs any command from its
// protobuf JSON params: the way the CLI and the gateway reach a service.
const dispatchMethod = "/continuum.router.v1.RouterService/Dispatch"

// dispatcher builds Dispatch requests for the wrongly typed JSON cases.
type dispatcher struct {
	m     method
	files *protoregistry.Files
}

// newDispatcher returns nil when the server has no router to dispatch
// through.
func newDispatcher(d *discovery) *dispatcher {
	for _, m := range d.methods() {
		if m.full == dispatchMethod {
			return &dispatcher{m: m, files: d.files}
		}
	}
	return nil
}

// wrongJSON is one value of the wrong JSON type for a field.
type wrongJSON struct {
	name  string
	value *structpb.Value
}

// wrongTypes are JSON values protojson must refuse for fd: the router has
// to answer INVALID_ARGUMENT PARAMS_INVALID, never coerce them.
func wrongTypes(fd protoreflect.FieldDescriptor) []wrongJSON {
	str := wrongJSON{"a string", structpb.NewStringValue("badinput")}
	num := wrongJSON{"a number", structpb.NewNumberValue(5)}
	boolean := wrongJSON{"a bool", structpb.NewBoolValue(true)}
	obj := wrongJSON{"an object", structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue("v")}})}
	list := wrongJSON{"a list", structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1)}})}
	switch {
	case fd.IsMap():
		return []wrongJSON{list, str}
	case fd.IsList():
		return []wrongJSON{obj, str}
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return []wrongJSON{num, obj, list}
	case protoreflect.BytesKind:
		return []wrongJSON{{"a string that is not base64", structpb.NewStringValue("not base64 !!")}, num}
	case protoreflect.BoolKind:
		return []wrongJSON{{"the string \"yes\"", structpb.NewStringValue("yes")}, num}
	case protoreflect.EnumKind:
		return []wrongJSON{{"an unknown enum name", structpb.NewStringValue("BADINPUT_NO_SUCH_VALUE")}, boolean, obj}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return []wrongJSON{{"a word", structpb.NewStringValue("badinput")}, boolean, obj}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if isStructLike(fd.Message()) {
			if fd.Message().FullName() == structName {
				return []wrongJSON{str, list}
			}
			return nil
		}
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			return []wrongJSON{{"a timestamp that is not RFC 3339", structpb.NewStringValue("yesterday")}, num}
		case "google.protobuf.Duration":
			return []wrongJSON{{"a duration without a unit", structpb.NewStringValue("5")}, obj}
		}
		return []wrongJSON{str, list, num}
	}
	// Integers.
	out := []wrongJSON{
		{"a fraction", structpb.NewNumberValue(1.5)},
		{"1e300", structpb.NewNumberValue(1e300)},
		{"a word", structpb.NewStringValue("badinput")},
	}
	switch fd.Kind() {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		out = append(out, wrongJSON{"a negative number", structpb.NewNumberValue(-1)})
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		out = append(out, wrongJSON{"2^31 (overflows int32)", structpb.NewNumberValue(math.Exp2(31))})
	}
	return out
}

// cases are the Dispatch cases for target: each top-level field of its
// request replaced by JSON of the wrong type in otherwise valid params
// (the seed's, when there is one), plus an unknown field. A streaming
// target gets one case: Dispatch runs unary commands only.
func (d *dispatcher) cases(target method, seed *dynamicpb.Message) []Case {
	if target.desc.Parent().FullName() == d.m.desc.Parent().FullName() {
		return nil // the router's own methods are swept directly
	}
	path, ok := uri.CommandPathFor(target.full)
	if !ok {
		return nil
	}
	via := "via router Dispatch " + path + ": "
	if target.desc.IsStreamingClient() || target.desc.IsStreamingServer() {
		return []Case{{
			Name: via + "a streaming method", Category: catDispatch, via: &d.m,
			build:  d.request(path, func() (*structpb.Struct, error) { return &structpb.Struct{}, nil }),
			expect: expectation{refused: true, codes: []codes.Code{codes.InvalidArgument, codes.FailedPrecondition, codes.Unimplemented}},
		}}
	}
	base := func() (*structpb.Struct, error) {
		if seed == nil {
			return &structpb.Struct{Fields: map[string]*structpb.Value{}}, nil
		}
		b, err := protojson.Marshal(seed)
		if err != nil {
			return nil, fmt.Errorf("seed as JSON: %w", err)
		}
		s := &structpb.Struct{}
		if err := protojson.Unmarshal(b, s); err != nil {
			return nil, fmt.Errorf("seed as a struct: %w", err)
		}
		return s, nil
	}
	paramsInvalid := expectation{refused: true, codes: []codes.Code{codes.InvalidArgument}, reasons: []string{"PARAMS_INVALID"}}
	with := func(key string, v *structpb.Value) func() ([]byte, error) {
		return d.request(path, func() (*structpb.Struct, error) {
			s, err := base()
			if err != nil {
				return nil, err
			}
			s.Fields[key] = v
			return s, nil
		})
	}
	out := []Case{{
		Name: via + "an unknown field", Category: catDispatch, via: &d.m,
		build: with("badinputNoSuchField", structpb.NewNumberValue(1)), expect: paramsInvalid,
	}}
	fields := target.desc.Input().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		for _, w := range wrongTypes(fd) {
			out = append(out, Case{
				Name: via + string(fd.Name()) + ": " + w.name, Category: catDispatch, via: &d.m,
				build: with(fd.JSONName(), w.value), expect: paramsInvalid,
			})
		}
	}
	return out
}

// request marshals a DispatchRequest for path with the given params.
func (d *dispatcher) request(path string, params func() (*structpb.Struct, error)) func() ([]byte, error) {
	return func() ([]byte, error) {
		p, err := params()
		if err != nil {
			return nil, err
		}
		in := d.m.desc.Input()
		req := dynamicpb.NewMessage(in)
		uriField, paramsField := in.Fields().ByName("uri"), in.Fields().ByName("params")
		if uriField == nil || paramsField == nil {
			return nil, fmt.Errorf("%s has no uri or params field", in.FullName())
		}
		req.Set(uriField, protoreflect.ValueOfString(path))
		b, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("marshal params: %w", err)
		}
		pm := dynamicpb.NewMessage(paramsField.Message())
		if err := proto.Unmarshal(b, pm); err != nil {
			return nil, fmt.Errorf("convert params: %w", err)
		}
		req.Set(paramsField, protoreflect.ValueOfMessage(pm))
		return marshal(req)
	}
}
