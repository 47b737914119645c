package events

import (
	"context"
	"io"
	"log/slog"
	"math"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// FuzzSubscribeFilter drives the server-side validation of a Subscribe
// request (selector, then filter) with arbitrary wire bytes, as a client
// could send them, and checks the compiled filter against a plain reference
// matcher on an arbitrary JSON payload. No input may panic; a refusal is a
// typed InvalidArgument with a reason; an accepted filter holds only
// scalar, finite fields with 1- to 256-byte names, matches a payload made
// of its own fields, and agrees with the reference on every payload.
func FuzzSubscribeFilter(f *testing.F) {
	seed := func(req *eventsv1.SubscribeRequest, payload string) {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte(payload))
	}
	st := func(m map[string]any) *structpb.Struct {
		s, err := structpb.NewStruct(m)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	pattern := func(p string) *eventsv1.SubscribeRequest_Pattern {
		return &eventsv1.SubscribeRequest_Pattern{Pattern: p}
	}
	seed(&eventsv1.SubscribeRequest{Selector: pattern("data:>")}, `{}`)
	seed(&eventsv1.SubscribeRequest{Selector: pattern("data:*:created"), Filter: st(map[string]any{"room": "r1", "n": 2.0, "ok": true, "z": nil})},
		`{"room":"r1","n":2,"ok":true,"z":null,"extra":[1,{}]}`)
	seed(&eventsv1.SubscribeRequest{Selector: pattern("a:b"), Filter: st(map[string]any{"n": 0.0})}, `{"n":-0}`)
	seed(&eventsv1.SubscribeRequest{Selector: pattern("a:b"), Filter: st(map[string]any{"k": map[string]any{"x": 1.0}})}, `{"k":{"x":1}}`)
	seed(&eventsv1.SubscribeRequest{Selector: pattern("a:b"), Filter: st(map[string]any{"k": []any{1.0}})}, `{"k":[1]}`)
	seed(&eventsv1.SubscribeRequest{Selector: pattern("a:b"), Filter: &structpb.Struct{Fields: map[string]*structpb.Value{
		"nan": structpb.NewNumberValue(math.NaN()), "": structpb.NewStringValue("x"),
	}}}, `{"nan":"NaN"}`)
	seed(&eventsv1.SubscribeRequest{Selector: pattern("a:b"), Filter: &structpb.Struct{Fields: map[string]*structpb.Value{"kindless": {}}}}, `{}`)
	seed(&eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Artifact{Artifact: &eventsv1.ArtifactSelector{
		Key: "genome/working_set.page_fault", Match: eventsv1.ArtifactMatch_ARTIFACT_MATCH_PREFIX,
	}}, Filter: st(map[string]any{"persona": "p1"})}, `{"persona":"p1"}`)
	seed(&eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Artifact{Artifact: &eventsv1.ArtifactSelector{
		Key: "a/b", Match: eventsv1.ArtifactMatch(99),
	}}}, `{}`)
	seed(&eventsv1.SubscribeRequest{}, `{}`)
	seed(&eventsv1.SubscribeRequest{Selector: pattern("")}, `{}`)
	seed(&eventsv1.SubscribeRequest{Selector: pattern("data:>:x")}, `{}`)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, wire, payloadJSON []byte) {
		req := &eventsv1.SubscribeRequest{}
		if err := proto.Unmarshal(wire, req); err != nil {
			return // the gRPC codec refuses it before the handler
		}
		typed := func(what string, err error) {
			t.Helper()
			serr := toStatus(context.Background(), log, err)
			if status.Code(serr) != codes.InvalidArgument || rpcerr.Reason(serr) == "" {
				t.Fatalf("%s refused with %v (reason %q), want InvalidArgument with a reason", what, serr, rpcerr.Reason(serr))
			}
		}
		if _, err := selectorOf(req); err != nil {
			typed("selector", err)
		}
		flt, err := compileFilter(req.GetFilter())
		if err != nil {
			typed("filter", err)
			return
		}
		fields := req.GetFilter().GetFields()
		if len(flt.fields) != len(fields) {
			t.Fatalf("compiled %d fields of %d", len(flt.fields), len(fields))
		}
		own := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for k, v := range fields {
			if k == "" || len(k) > 256 {
				t.Fatalf("field name %q accepted", k)
			}
			switch x := v.GetKind().(type) {
			case *structpb.Value_NumberValue:
				if math.IsNaN(x.NumberValue) || math.IsInf(x.NumberValue, 0) {
					t.Fatalf("field %q = %v accepted", k, x.NumberValue)
				}
			case *structpb.Value_StringValue, *structpb.Value_BoolValue, *structpb.Value_NullValue:
			default:
				t.Fatalf("field %q of kind %T accepted", k, x)
			}
			own.Fields[k] = v
		}
		if !flt.match(own) {
			t.Fatalf("filter %v does not match its own fields", fields)
		}
		payload := &structpb.Struct{}
		if err := protojson.Unmarshal(payloadJSON, payload); err != nil {
			return
		}
		if got, want := flt.match(payload), referenceMatch(fields, payload.GetFields()); got != want {
			t.Fatalf("filter %v on %v: match %v, reference %v", fields, payload, got, want)
		}
	})
}

// referenceMatch is the filter's meaning written plainly: every filter
// field is present in the payload with the same kind and an equal value.
func referenceMatch(filter, payload map[string]*structpb.Value) bool {
	for k, fv := range filter {
		pv, ok := payload[k]
		if !ok {
			return false
		}
		switch x := fv.GetKind().(type) {
		case *structpb.Value_NullValue:
			if _, ok := pv.GetKind().(*structpb.Value_NullValue); !ok {
				return false
			}
		case *structpb.Value_StringValue:
			y, ok := pv.GetKind().(*structpb.Value_StringValue)
			if !ok || y.StringValue != x.StringValue {
				return false
			}
		case *structpb.Value_NumberValue:
			y, ok := pv.GetKind().(*structpb.Value_NumberValue)
			if !ok || y.NumberValue != x.NumberValue {
				return false
			}
		case *structpb.Value_BoolValue:
			y, ok := pv.GetKind().(*structpb.Value_BoolValue)
			if !ok || y.BoolValue != x.BoolValue {
				return false
			}
		default:
			return false
		}
	}
	return true
}
