package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/structpb"

	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
)

// queryAliases are extra query parameter names of stream routes, for URLs
// people type by hand: /v1/debug/probes?class=latency.
func queryAliases(fullMethod string) map[string]string {
	switch fullMethod {
	case debugv1.DebugService_StreamProbes_FullMethodName:
		return map[string]string{"class": "classes"}
	}
	return nil
}

// streamRoute is one HTTP binding of a server-streaming method.
type streamRoute struct {
	method string // "/continuum.debug.v1.DebugService/StreamProbes"
	conn   grpc.ClientConnInterface
	input  protoreflect.MessageType
	output protoreflect.MessageType
	// body is the binding's body: "" (fields come from the path and the
	// query) or "*" (the whole request is the body).
	body    string
	aliases map[string]string
}

// registerStreams mounts the gateway's own stream handler on every HTTP
// binding of every server-streaming method of sd, over the handlers the
// generated code registered for them (the mux tries the routes registered
// last first). The gateway's handler serves SSE and newline-delimited
// JSON, sends heartbeats, ends streams when the gateway drains, reads
// google.protobuf.Struct fields from the query (filter.<field>=<value>) and
// answers errors in the gateway's JSON shape.
func (g *Gateway) registerStreams(sd protoreflect.ServiceDescriptor, conn grpc.ClientConnInterface) error {
	methods := sd.Methods()
	for i := range methods.Len() {
		md := methods.Get(i)
		if !md.IsStreamingServer() || md.IsStreamingClient() {
			continue
		}
		rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
		if rule == nil || rule.GetPattern() == nil {
			continue
		}
		in, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
		if err != nil {
			return fmt.Errorf("gateway: %s: %w", md.FullName(), err)
		}
		out, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
		if err != nil {
			return fmt.Errorf("gateway: %s: %w", md.FullName(), err)
		}
		full := "/" + string(sd.FullName()) + "/" + string(md.Name())
		for _, b := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
			verb, path := httpBinding(b)
			if verb == "" {
				return fmt.Errorf("gateway: %s: an HTTP binding without a pattern", md.FullName())
			}
			if b.GetBody() != "" && b.GetBody() != "*" {
				return fmt.Errorf("gateway: %s: stream bindings support body \"\" or \"*\", not %q", md.FullName(), b.GetBody())
			}
			rt := &streamRoute{method: full, conn: conn, input: in, output: out, body: b.GetBody(), aliases: queryAliases(full)}
			if err := g.api.HandlePath(verb, path, g.streamHandler(rt)); err != nil {
				return fmt.Errorf("gateway: %s %s: %w", verb, path, err)
			}
		}
	}
	return nil
}

// httpBinding returns the HTTP method and path template of a rule.
func httpBinding(b *annotations.HttpRule) (verb, path string) {
	switch p := b.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}

func (g *Gateway) streamHandler(rt *streamRoute) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
		req, err := rt.request(r, pathParams, g.unmarshal)
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		f := framingNDJSON
		if wantsSSE(r) {
			f = framingSSE
		}
		g.serveStream(w, r, streamCall{
			conn: rt.conn, method: rt.method, req: req,
			newResp: func() proto.Message { return rt.output.New().Interface() },
		}, f)
	}
}

// request builds the request message from the body, the path and the
// query, as the generated transcoder does for unary routes.
func (rt *streamRoute) request(r *http.Request, pathParams map[string]string, unmarshal protojson.UnmarshalOptions) (proto.Message, error) {
	msg := rt.input.New().Interface()
	if rt.body == "*" {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			if errors.Is(err, errBodyTooLarge) {
				return nil, err // errorBody answers 413 BODY_TOO_LARGE
			}
			return nil, newError(codes.InvalidArgument, ReasonBodyInvalid, "reading the body: "+err.Error())
		}
		if len(bytes.TrimSpace(body)) > 0 {
			if err := unmarshal.Unmarshal(body, msg); err != nil {
				return nil, newError(codes.InvalidArgument, ReasonBodyInvalid, "the body is not a "+string(rt.input.Descriptor().FullName())+
					" in protobuf JSON: "+err.Error())
			}
		}
	}
	var bound [][]string
	for k, v := range pathParams {
		if err := runtime.PopulateFieldFromPath(msg, k, v); err != nil {
			return nil, newError(codes.InvalidArgument, ReasonQueryInvalid, "path parameter "+k+": "+err.Error(), "param", k)
		}
		bound = append(bound, strings.Split(k, "."))
	}
	if rt.body == "*" {
		return msg, nil
	}
	q := r.URL.Query()
	for alias, field := range rt.aliases {
		if vs, ok := q[alias]; ok {
			q[field] = append(q[field], vs...)
			delete(q, alias)
		}
	}
	if err := structsFromQuery(msg.ProtoReflect(), q); err != nil {
		return nil, err
	}
	if err := runtime.PopulateQueryParameters(msg, q, utilities.NewDoubleArray(bound)); err != nil {
		return nil, newError(codes.InvalidArgument, ReasonQueryInvalid, err.Error())
	}
	return msg, nil
}

// structsFromQuery moves "<field>.<key>=<value>" parameters whose field is
// a google.protobuf.Struct of the request (a subscription's filter) out of
// q and into that Struct: the transcoder's query parser cannot fill one.
func structsFromQuery(m protoreflect.Message, q url.Values) error {
	fields := m.Descriptor().Fields()
	for key, vs := range q {
		name, sub, ok := strings.Cut(key, ".")
		if !ok {
			continue
		}
		fd := fields.ByTextName(name)
		if fd == nil {
			fd = fields.ByJSONName(name)
		}
		if fd == nil || fd.IsList() || fd.IsMap() || fd.Message() == nil ||
			fd.Message().FullName() != "google.protobuf.Struct" {
			continue
		}
		if sub == "" {
			return newError(codes.InvalidArgument, ReasonQueryInvalid, "empty field name in "+key, "param", key)
		}
		if len(vs) != 1 {
			return newError(codes.InvalidArgument, ReasonQueryInvalid, key+" is given more than once", "param", key)
		}
		v, err := scalarValue(vs[0])
		if err != nil {
			return newError(codes.InvalidArgument, ReasonQueryInvalid, key+": "+err.Error(), "param", key)
		}
		s, _ := m.Mutable(fd).Message().Interface().(*structpb.Struct)
		if s == nil {
			return fmt.Errorf("gateway: %s is not a *structpb.Struct", fd.FullName())
		}
		if s.Fields == nil {
			s.Fields = map[string]*structpb.Value{}
		}
		s.Fields[sub] = v
		delete(q, key)
	}
	return nil
}
