package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// Reasons of the errors the gateway makes itself. Errors from the mesh keep
// their code, reason and metadata unchanged.
const (
	// ReasonRouteNotFound: no route serves the method and path.
	ReasonRouteNotFound = "ROUTE_NOT_FOUND"
	// ReasonMethodNotAllowed: the path exists with other HTTP methods.
	ReasonMethodNotAllowed = "METHOD_NOT_ALLOWED"
	// ReasonRequestInvalid: the body or query could not be turned into the
	// request message (a unary route).
	ReasonRequestInvalid = "REQUEST_INVALID"
	// ReasonQueryInvalid: a query parameter of a stream route is malformed,
	// repeated, unknown (events) or conflicting; metadata "param" names it.
	ReasonQueryInvalid = "QUERY_INVALID"
	// ReasonBodyInvalid: the body of a stream route is not the request
	// message in protobuf JSON.
	ReasonBodyInvalid = "BODY_INVALID"
	// ReasonBodyTooLarge: the body is larger than Config.MaxBodyBytes (an
	// artifact upload: Config.MaxUploadBytes).
	ReasonBodyTooLarge = "BODY_TOO_LARGE"
	// ReasonStreamLimit: Config.MaxStreams streams are open already.
	ReasonStreamLimit = "STREAM_LIMIT"
	// ReasonShuttingDown: the gateway is draining; reconnect.
	ReasonShuttingDown = "GATEWAY_SHUTTING_DOWN"
	// ReasonInternal: a gateway fault; metadata "error_id" is also logged.
	ReasonInternal = "INTERNAL"
)

// ErrorBody is the JSON of every error the gateway answers with: the
// response body of a failed call, the data of an SSE "error" event, and the
// "error" member of the last line of a newline-delimited JSON stream.
type ErrorBody struct {
	// Code is the gRPC code name, e.g. "PERMISSION_DENIED".
	Code string `json:"code"`
	// HTTPStatus is the HTTP status the code maps to (also for errors sent
	// inside a stream, whose HTTP status was already 200).
	HTTPStatus int    `json:"http_status"`
	Message    string `json:"message"`
	// Reason is the google.rpc.ErrorInfo reason; empty when the status
	// carried none.
	Reason   string            `json:"reason"`
	Metadata map[string]string `json:"metadata"`
}

// upstreamError marks an error the mesh returned, as opposed to one the
// gateway or the generated transcoder made: only the gateway's own errors
// are given gateway reasons.
type upstreamError struct{ err error }

func (e *upstreamError) Error() string              { return e.err.Error() }
func (e *upstreamError) Unwrap() error              { return e.err }
func (e *upstreamError) GRPCStatus() *status.Status { return status.Convert(e.err) }

// fromMesh marks err as the mesh's. io.EOF (the end of a stream) stays as it
// is.
func fromMesh(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return &upstreamError{err: err}
}

// errorBody is the one place an error becomes an HTTP answer. Errors from
// the mesh pass through. The gateway's own errors carry gateway reasons;
// a bare error (a fault of the gateway) becomes INTERNAL with a neutral
// message and an id that is logged with the cause.
func (g *Gateway) errorBody(ctx context.Context, err error) ErrorBody {
	httpStatus := 0
	var hs *runtime.HTTPStatusError
	if errors.As(err, &hs) {
		httpStatus, err = hs.HTTPStatus, hs.Err
	}
	var up *upstreamError
	limit, tooLarge := bodyTooLarge(ctx)
	switch {
	case tooLarge:
		httpStatus, err = http.StatusRequestEntityTooLarge, errBodyTooLargeLimit(limit).Err
	case errors.As(err, &up):
		err = up.err
	case rpcerr.Info(err) != nil:
		// One of the gateway's own typed errors.
	case rpcerr.FromContext(err) != nil:
		err = rpcerr.FromContext(err)
	case status.Code(err) == codes.InvalidArgument:
		// The generated transcoder refusing a body or query.
		err = newError(codes.InvalidArgument, ReasonRequestInvalid, status.Convert(err).Message())
	case status.Code(err) == codes.Canceled || status.Code(err) == codes.DeadlineExceeded:
	default:
		id := errorID()
		g.log.ErrorContext(ctx, "gateway error", "error_id", id, "error", err)
		err = newError(codes.Internal, ReasonInternal, "internal gateway error (id "+id+")", "error_id", id)
	}
	st := status.Convert(err)
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(st.Code())
	}
	b := ErrorBody{
		Code:       code.Code(st.Code()).String(),
		HTTPStatus: httpStatus,
		Message:    st.Message(),
		Metadata:   map[string]string{},
	}
	if info := rpcerr.Info(err); info != nil {
		b.Reason = info.GetReason()
		for k, v := range info.GetMetadata() {
			b.Metadata[k] = v
		}
	}
	return b
}

// writeError answers a request with an error that is not inside a stream.
func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, err error) {
	b := g.errorBody(r.Context(), err)
	noteReason(r.Context(), b.Reason)
	h := w.Header()
	h.Del("Trailer")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if b.HTTPStatus == http.StatusUnauthorized {
		challenge := `Bearer realm="continuum"`
		if b.Reason == "TOKEN_INVALID" {
			challenge += `, error="invalid_token"`
		}
		h.Set("WWW-Authenticate", challenge)
	}
	w.WriteHeader(b.HTTPStatus)
	buf, merr := json.Marshal(b)
	if merr != nil {
		// ErrorBody holds only strings and an int.
		return
	}
	_, _ = w.Write(append(buf, '\n'))
}

// handleMuxError is the transcoder's error handler (runtime.WithErrorHandler).
func (g *Gateway) handleMuxError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	g.writeError(w, r, err)
}

// handleRoutingError answers requests no route serves
// (runtime.WithRoutingErrorHandler).
func (g *Gateway) handleRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	g.writeError(w, r, routingError(r, httpStatus))
}

// errBodyTooLargeLimit is 413 BODY_TOO_LARGE for a body over limit bytes.
func errBodyTooLargeLimit(limit int64) *runtime.HTTPStatusError {
	return &runtime.HTTPStatusError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: newError(codes.InvalidArgument,
		ReasonBodyTooLarge, "the request body is larger than the gateway accepts", "limit_bytes", itoa(limit))}
}

func routingError(r *http.Request, httpStatus int) error {
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		return &runtime.HTTPStatusError{HTTPStatus: http.StatusMethodNotAllowed, Err: newError(codes.Unimplemented, ReasonMethodNotAllowed,
			"the path is served, but not for "+r.Method, "method", r.Method, "path", r.URL.Path)}
	case http.StatusBadRequest:
		return newError(codes.InvalidArgument, ReasonRequestInvalid, "malformed request path", "path", r.URL.Path)
	}
	return newError(codes.NotFound, ReasonRouteNotFound, "no route for "+r.Method+" "+r.URL.Path,
		"method", r.Method, "path", r.URL.Path)
}

// maxEchoBytes bounds what an error repeats of a request (a path, a
// parameter name).
const maxEchoBytes = 256

// newError builds one of the gateway's typed errors. Message and metadata
// often repeat what a client sent, so they are made valid UTF-8 (or the
// ErrorInfo could not be encoded and the reason would be lost) and clipped.
func newError(c codes.Code, reason, msg string, kv ...string) error {
	clean := make([]string, len(kv))
	for i, s := range kv {
		clean[i] = echo(s)
	}
	return rpcerr.New(c, reason, echo(msg), clean...)
}

// echo makes s safe to repeat in an error: valid UTF-8, at most
// maxEchoBytes (plus an ellipsis).
func echo(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxEchoBytes {
		return s
	}
	cut := maxEchoBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func errorID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
