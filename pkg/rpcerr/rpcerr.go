// Package rpcerr builds and reads the typed errors of the mesh: a gRPC status
// with a google.rpc.ErrorInfo detail whose reason clients switch on.
package rpcerr

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the ErrorInfo domain of every error the mesh returns.
const Domain = "continuum.mesh"

// New builds a gRPC status error with a google.rpc.ErrorInfo detail
// carrying reason and metadata (alternating key, value strings). Clients
// switch on the reason, never on the message.
func New(code codes.Code, reason, msg string, kv ...string) error {
	st := status.New(code, msg)
	info := &errdetails.ErrorInfo{Reason: reason, Domain: Domain}
	if len(kv) > 0 {
		info.Metadata = make(map[string]string, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			info.Metadata[kv[i]] = kv[i+1]
		}
	}
	if withInfo, err := st.WithDetails(info); err == nil {
		st = withInfo
	}
	return st.Err()
}

// Errorf is New with a formatted message and no metadata.
func Errorf(code codes.Code, reason, format string, args ...any) error {
	return New(code, reason, fmt.Sprintf(format, args...))
}

// Info returns the ErrorInfo of an error, or nil when it carries none.
func Info(err error) *errdetails.ErrorInfo {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// Reason returns the ErrorInfo reason of an error, or "".
func Reason(err error) string {
	if info := Info(err); info != nil {
		return info.GetReason()
	}
	return ""
}

// Metadata returns the ErrorInfo metadata of an error as sorted key=value
// pairs, for logs and command-line output.
func Metadata(err error) []string {
	info := Info(err)
	if info == nil {
		return nil
	}
	out := make([]string, 0, len(info.GetMetadata()))
	for k, v := range info.GetMetadata() {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// FromContext maps context errors to their gRPC codes (Canceled,
// DeadlineExceeded) and returns nil for anything else.
func FromContext(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return nil
}

// Clip bounds a caller-supplied value echoed in an error's message or
// metadata: at most 256 bytes, valid UTF-8 (status details must marshal).
func Clip(s string) string {
	const maxLen = 256
	if len(s) > maxLen {
		return strings.ToValidUTF8(s[:maxLen], "") + "..."
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
