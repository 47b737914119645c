package sweep

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

func typed(code codes.Code, reason string, kv ...string) *status.Status {
	return status.Convert(rpcerr.New(code, reason, "typed", kv...))
}

func TestClassify(t *testing.T) {
	t.Parallel()
	plain := Case{Name: "plain"}
	unauth := Case{Name: "no credentials", expect: expectation{refused: true, codes: []codes.Code{codes.Unauthenticated}, reasons: []string{"AUTH_REQUIRED"}}}
	frame := Case{Name: "frame", expect: expectation{refused: true, transport: true, transportCodes: []codes.Code{codes.ResourceExhausted}}}
	header := Case{Name: "header", expect: expectation{refused: true, transport: true, onlyTransport: true}}
	tests := []struct {
		name string
		c    Case
		r    response
		want Outcome
	}{
		{"ok", plain, response{}, Outcome{Code: "OK", Class: ClassAccepted}},
		{"open stream", plain, response{open: true}, Outcome{Code: CodeOpen, Class: ClassAccepted}},
		{
			"typed refusal", plain,
			response{st: typed(codes.InvalidArgument, "URI_EMPTY")},
			Outcome{Code: "INVALID_ARGUMENT", Reason: "URI_EMPTY", Class: ClassRefused},
		},
		{
			"internal with error id", plain,
			response{st: typed(codes.Internal, "INTERNAL", "error_id", "abc")},
			Outcome{Code: "INTERNAL", Reason: "INTERNAL", ErrorID: "abc", Class: ClassViolation},
		},
		{
			"internal with another reason", plain,
			response{st: typed(codes.Internal, "STORE_FAILED")},
			Outcome{Code: "INTERNAL", Reason: "STORE_FAILED", Class: ClassViolation},
		},
		{"unknown", plain, response{st: status.New(codes.Unknown, "x")}, Outcome{Code: "UNKNOWN", Class: ClassViolation}},
		{
			"unknown even with a reason", plain,
			response{st: typed(codes.Unknown, "X")},
			Outcome{Code: "UNKNOWN", Reason: "X", Class: ClassViolation},
		},
		{
			"refusal without ErrorInfo", plain,
			response{st: status.New(codes.InvalidArgument, "bad")},
			Outcome{Code: "INVALID_ARGUMENT", Class: ClassViolation},
		},
		{
			"unimplemented", plain,
			response{st: status.New(codes.Unimplemented, "method X not implemented")},
			Outcome{Code: "UNIMPLEMENTED", Class: ClassViolation},
		},
		{
			"codec refusal", plain,
			response{st: status.New(codes.Internal, "grpc: failed to unmarshal the received message: proto: cannot parse invalid wire-format data")},
			Outcome{Code: "INTERNAL", Class: ClassTransport, Transport: "codec"},
		},
		{
			"size refusal", frame,
			response{st: status.New(codes.ResourceExhausted, "grpc: received message larger than max (16778240 vs. 16777216)")},
			Outcome{Code: "RESOURCE_EXHAUSTED", Class: ClassTransport, Transport: "message size"},
		},
		{
			"oversized frame decoded instead", frame,
			response{st: status.New(codes.Internal, "grpc: failed to unmarshal the received message")},
			Outcome{Code: "INTERNAL", Class: ClassViolation, Transport: "codec"},
		},
		{"oversized frame accepted", frame, response{}, Outcome{Code: "OK", Class: ClassViolation}},
		{
			"oversized frame refused before it was read", frame,
			response{st: typed(codes.PermissionDenied, "MESH_PEER_REQUIRED")},
			Outcome{Code: "PERMISSION_DENIED", Reason: "MESH_PEER_REQUIRED", Class: ClassRefused},
		},
		{
			"header refused by the client", header,
			response{st: status.New(codes.Internal, "header list size to send violates the maximum size (65536 bytes) set by server")},
			Outcome{Code: "INTERNAL", Class: ClassTransport, Transport: "header size (client refused to send)"},
		},
		{
			"header accepted", header,
			response{st: typed(codes.InvalidArgument, "X")},
			Outcome{Code: "INVALID_ARGUMENT", Reason: "X", Class: ClassViolation},
		},
		{
			"expected refusal", unauth,
			response{st: typed(codes.Unauthenticated, "AUTH_REQUIRED")},
			Outcome{Code: "UNAUTHENTICATED", Reason: "AUTH_REQUIRED", Class: ClassRefused},
		},
		{
			"wrong reason", unauth,
			response{st: typed(codes.Unauthenticated, "TOKEN_INVALID")},
			Outcome{Code: "UNAUTHENTICATED", Reason: "TOKEN_INVALID", Class: ClassViolation},
		},
		{"served without credentials", unauth, response{}, Outcome{Code: "OK", Class: ClassViolation}},
		{"stream open without credentials", unauth, response{open: true}, Outcome{Code: CodeOpen, Class: ClassViolation}},
		{"timeout", plain, response{timedOut: true}, Outcome{Code: CodeTimeout, Class: ClassViolation}},
		{
			"server-side deadline", plain,
			response{st: status.New(codes.DeadlineExceeded, "context deadline exceeded")},
			Outcome{Code: "DEADLINE_EXCEEDED", Class: ClassTransport, Transport: "context"},
		},
		{
			"raw: reset", header,
			response{raw: &rawResult{refused: true, how: "RST_STREAM FRAME_SIZE_ERROR"}},
			Outcome{Code: CodeHTTP2Refused, Class: ClassTransport, Transport: "http2"},
		},
		{
			"raw: headers taken", header,
			response{raw: &rawResult{st: status.New(codes.OK, "")}},
			Outcome{Code: "OK", Class: ClassViolation},
		},
		{
			"raw: typed answer", header,
			response{raw: &rawResult{st: typed(codes.NotFound, "X")}},
			Outcome{Code: "NOT_FOUND", Reason: "X", Class: ClassViolation},
		},
		{
			"raw: probe failed", header,
			response{raw: &rawResult{err: errTest}},
			Outcome{Code: CodeProbeFailed, Class: ClassViolation},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := classify(tt.c, tt.r)
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Outcome{}, "Message", "Problem")); diff != "" {
				t.Errorf("classify (-want +got):\n%s", diff)
			}
			if (got.Class == ClassViolation) != (got.Problem != "") {
				t.Errorf("class %s with problem %q", got.Class, got.Problem)
			}
		})
	}
}

type testError string

func (e testError) Error() string { return string(e) }

const errTest = testError("dial: connection refused")

func TestCodeName(t *testing.T) {
	t.Parallel()
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if got := CodeName(c); got == "" || strings.HasPrefix(got, "CODE_") {
			t.Errorf("CodeName(%v) = %q", c, got)
		}
	}
	if got := CodeName(codes.Code(99)); got != "CODE_99" {
		t.Errorf("CodeName(99) = %q", got)
	}
}

func TestTruncateMsg(t *testing.T) {
	t.Parallel()
	long := make([]byte, 1<<20)
	if got := truncateMsg(string(long)); len(got) > 400 {
		t.Errorf("truncated message is %d bytes", len(got))
	}
	if got := truncateMsg("short"); got != "short" {
		t.Errorf("truncateMsg(short) = %q", got)
	}
}

func TestPanicSite(t *testing.T) {
	t.Parallel()
	stack := `goroutine 7 [running]:
runtime/debug.Stack()
	/usr/local/go/src/runtime/debug/stack.go:26 +0x5e
github.com/continuum-mesh/continuum/pkg/rpc.panicHandler.func1({0x1, 0x2}, {0x3, 0x4})
	/work/main/pkg/rpc/interceptors.go:221 +0x8a
panic({0xabc, 0xdef})
	/usr/local/go/src/runtime/panic.go:787 +0x132
runtime.panicmem(...)
	/usr/local/go/src/runtime/panic.go:262
runtime.sigpanic()
	/usr/local/go/src/runtime/signal_unix.go:925 +0x359
github.com/continuum-mesh/continuum/services/router.(*Service).Route(0x0, {0x1, 0x2}, 0x3)
	/work/main/services/router/dispatch.go:45 +0x44
github.com/continuum-mesh/continuum/proto/continuum/router/v1._RouterService_Route_Handler.func1({0x1, 0x2}, {0x3, 0x4})
	/work/main/proto/continuum/router/v1/router_grpc.pb.go:170 +0xcb
`
	want := "github.com/continuum-mesh/continuum/services/router.(*Service).Route(0x0, {0x1, 0x2}, 0x3) /work/main/services/router/dispatch.go:45\n" +
		"   github.com/continuum-mesh/continuum/proto/continuum/router/v1._RouterService_Route_Handler.func1({0x1, 0x2}, {0x3, 0x4}) /work/main/proto/continuum/router/v1/router_grpc.pb.go:170"
	if diff := cmp.Diff(want, panicSite(stack)); diff != "" {
		t.Errorf("panicSite (-want +got):\n%s", diff)
	}
	if got := panicSite("no panic here"); got != "" {
		t.Errorf("panicSite without a panic = %q", got)
	}
}
