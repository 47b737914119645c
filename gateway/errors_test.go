package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

func TestErrorBody(t *testing.T) {
	t.Parallel()
	refused := rpcerr.New(codes.PermissionDenied, "FORBIDDEN_NO_PERMISSION", "no", "uri", "debug/x", "caller", "user")
	tests := []struct {
		name    string
		err     error
		want    ErrorBody
		wantLog bool
	}{
		{
			name: "the mesh's typed error passes through", err: fromMesh(refused),
			want: ErrorBody{
				Code: "PERMISSION_DENIED", HTTPStatus: 403, Message: "no", Reason: "FORBIDDEN_NO_PERMISSION",
				Metadata: map[string]string{"uri": "debug/x", "caller": "user"},
			},
		},
		{
			name: "a mesh error without ErrorInfo keeps an empty reason", err: fromMesh(status.Error(codes.Unavailable, "connection refused")),
			want: ErrorBody{Code: "UNAVAILABLE", HTTPStatus: 503, Message: "connection refused", Metadata: map[string]string{}},
		},
		{
			name: "a mesh INVALID_ARGUMENT is not the gateway's", err: fromMesh(status.Error(codes.InvalidArgument, "bad")),
			want: ErrorBody{Code: "INVALID_ARGUMENT", HTTPStatus: 400, Message: "bad", Metadata: map[string]string{}},
		},
		{
			name: "the transcoder refusing a body", err: status.Error(codes.InvalidArgument, "proto: syntax error"),
			want: ErrorBody{
				Code: "INVALID_ARGUMENT", HTTPStatus: 400, Message: "proto: syntax error", Reason: ReasonRequestInvalid,
				Metadata: map[string]string{},
			},
		},
		{
			name: "deferred maps to 400", err: fromMesh(rpcerr.New(codes.FailedPrecondition, "DEFERRED_ASK_TARGET_ENV", "ask", "prompt_target_env", "web")),
			want: ErrorBody{
				Code: "FAILED_PRECONDITION", HTTPStatus: 400, Message: "ask", Reason: "DEFERRED_ASK_TARGET_ENV",
				Metadata: map[string]string{"prompt_target_env": "web"},
			},
		},
		{
			name: "a context error keeps its code", err: context.Canceled,
			want: ErrorBody{Code: "CANCELLED", HTTPStatus: 499, Message: "context canceled", Metadata: map[string]string{}},
		},
		{
			name: "an explicit HTTP status", err: &runtime.HTTPStatusError{HTTPStatus: 405, Err: rpcerr.New(codes.Unimplemented, ReasonMethodNotAllowed, "m")},
			want: ErrorBody{Code: "UNIMPLEMENTED", HTTPStatus: 405, Message: "m", Reason: ReasonMethodNotAllowed, Metadata: map[string]string{}},
		},
		{
			name: "a bare error is INTERNAL with a logged id", err: fmt.Errorf("marshal: %w", errors.New("boom")), wantLog: true,
			want: ErrorBody{Code: "INTERNAL", HTTPStatus: 500, Reason: ReasonInternal},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			g := &Gateway{cfg: Config{MaxBodyBytes: 10}, log: slog.New(slog.NewTextHandler(&logs, nil))}
			got := g.errorBody(context.Background(), tc.err)
			opts := []cmp.Option{}
			if tc.wantLog {
				id := got.Metadata["error_id"]
				if id == "" || !strings.Contains(got.Message, id) || !strings.Contains(logs.String(), id) || !strings.Contains(logs.String(), "boom") {
					t.Errorf("error id %q, message %q, log %q", id, got.Message, logs.String())
				}
				if strings.Contains(got.Message, "boom") {
					t.Errorf("the cause leaked to the client: %q", got.Message)
				}
				opts = append(opts, cmpopts.IgnoreFields(ErrorBody{}, "Message", "Metadata"))
			}
			if diff := cmp.Diff(tc.want, got, opts...); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestBodyTooLargeWins(t *testing.T) {
	t.Parallel()
	g := &Gateway{cfg: Config{MaxBodyBytes: 10}, log: slog.New(slog.DiscardHandler)}
	// The limit is the body's own (an upload's is MaxUploadBytes).
	lb := &limitedBody{limit: 10, done: func() {}}
	lb.exceeded.Store(true)
	ctx := context.WithValue(context.Background(), limitedBodyKey{}, lb)
	got := g.errorBody(ctx, status.Error(codes.InvalidArgument, "unexpected EOF"))
	want := ErrorBody{
		Code: "INVALID_ARGUMENT", HTTPStatus: http.StatusRequestEntityTooLarge, Reason: ReasonBodyTooLarge,
		Message: "the request body is larger than the gateway accepts", Metadata: map[string]string{"limit_bytes": "10"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestWriteErrorChallenges(t *testing.T) {
	t.Parallel()
	g := &Gateway{log: slog.New(slog.DiscardHandler)}
	for _, tc := range []struct {
		reason, want string
	}{
		{"AUTH_REQUIRED", `Bearer realm="continuum"`},
		{"TOKEN_INVALID", `Bearer realm="continuum", error="invalid_token"`},
	} {
		w := httptest.NewRecorder()
		g.writeError(w, httptest.NewRequest("GET", "/v1/x", nil), fromMesh(rpcerr.New(codes.Unauthenticated, tc.reason, "m")))
		if w.Code != 401 || w.Header().Get("WWW-Authenticate") != tc.want {
			t.Errorf("%s: %d %q", tc.reason, w.Code, w.Header().Get("WWW-Authenticate"))
		}
	}
}
