package sweep

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Classes of outcome.
const (
	// ClassAccepted: the call succeeded, or a stream stayed open.
	ClassAccepted = "accepted"
	// ClassRefused: a typed refusal, with a google.rpc.ErrorInfo reason.
	ClassRefused = "refused"
	// ClassTransport: refused by gRPC or HTTP/2 itself before any service
	// code ran (message over the size limit, bytes the protobuf codec
	// cannot decode, headers over the limit), or a context status. These
	// carry no ErrorInfo and are not violations.
	ClassTransport = "transport"
	// ClassViolation: a broken promise (see Outcome.Problem).
	ClassViolation = "violation"
)

// Pseudo-codes for outcomes that are not a gRPC status.
const (
	// CodeOpen: a server stream answered nothing wrong within the window
	// and was cancelled by the sweep.
	CodeOpen = "OPEN"
	// CodeHTTP2Refused: the server reset the raw HTTP/2 stream or
	// connection.
	CodeHTTP2Refused = "HTTP2_REFUSED"
	// CodeTimeout: no answer before the sweep's deadline.
	CodeTimeout = "TIMEOUT"
	// CodeProbeFailed: the raw HTTP/2 probe could not talk to the server.
	CodeProbeFailed = "PROBE_FAILED"
)

// Outcome is one call's result as the sweep judges it.
type Outcome struct {
	// Code is the canonical gRPC code name (INVALID_ARGUMENT) or a
	// pseudo-code (OPEN, HTTP2_REFUSED, TIMEOUT, PROBE_FAILED).
	Code    string `json:"code"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// ErrorID is the error_id the server attached to an INTERNAL error.
	ErrorID string `json:"error_id,omitempty"`
	Class   string `json:"class"`
	// Transport says which layer refused, for ClassTransport.
	Transport string `json:"transport,omitempty"`
	// Problem says what is wrong, for ClassViolation.
	Problem string `json:"problem,omitempty"`
}

// CodeName is the canonical upper-case name of a gRPC code, as the
// project's docs and grpcurl write it.
func CodeName(c codes.Code) string {
	switch c {
	case codes.OK:
		return "OK"
	case codes.Canceled:
		return "CANCELLED"
	case codes.Unknown:
		return "UNKNOWN"
	case codes.InvalidArgument:
		return "INVALID_ARGUMENT"
	case codes.DeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	case codes.NotFound:
		return "NOT_FOUND"
	case codes.AlreadyExists:
		return "ALREADY_EXISTS"
	case codes.PermissionDenied:
		return "PERMISSION_DENIED"
	case codes.ResourceExhausted:
		return "RESOURCE_EXHAUSTED"
	case codes.FailedPrecondition:
		return "FAILED_PRECONDITION"
	case codes.Aborted:
		return "ABORTED"
	case codes.OutOfRange:
		return "OUT_OF_RANGE"
	case codes.Unimplemented:
		return "UNIMPLEMENTED"
	case codes.Internal:
		return "INTERNAL"
	case codes.Unavailable:
		return "UNAVAILABLE"
	case codes.DataLoss:
		return "DATA_LOSS"
	case codes.Unauthenticated:
		return "UNAUTHENTICATED"
	}
	return fmt.Sprintf("CODE_%d", uint32(c))
}

// errorInfo returns a status's google.rpc.ErrorInfo, or nil.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// transportLayer recognises a status gRPC itself produced, which carries
// no ErrorInfo: grpc-go has no typed signal for these, so its own message
// text is what tells them apart. It returns "" for anything else.
func transportLayer(st *status.Status) string {
	msg := st.Message()
	switch st.Code() {
	case codes.ResourceExhausted:
		if strings.Contains(msg, "larger than max") {
			return "message size"
		}
	case codes.Internal:
		switch {
		// grpc-go reports a request its codec cannot decode as INTERNAL;
		// the server's handlers and interceptors never see it.
		case strings.HasPrefix(msg, "grpc: failed to unmarshal"), strings.HasPrefix(msg, "grpc: error unmarshalling"):
			return "codec"
		case strings.Contains(msg, "header list size"):
			return "header size (client refused to send)"
		case strings.Contains(msg, "stream terminated by RST_STREAM"):
			return "stream reset"
		}
	case codes.Canceled, codes.DeadlineExceeded:
		return "context"
	case codes.Unavailable:
		// Connection-level trouble; whether the server survived is what
		// the health check after the batch decides.
		return "connection"
	}
	return ""
}

// classify judges one response against its case.
func classify(c Case, r response) Outcome {
	switch {
	case r.raw != nil:
		return classifyRaw(c, *r.raw)
	case r.timedOut:
		return Outcome{Code: CodeTimeout, Class: ClassViolation, Problem: "no answer before the deadline: the server hangs on this input"}
	case r.open:
		return accepted(c, Outcome{Code: CodeOpen, Class: ClassAccepted})
	case r.st == nil || r.st.Code() == codes.OK:
		return accepted(c, Outcome{Code: "OK", Class: ClassAccepted})
	}
	return classifyStatus(c, r.st)
}

func accepted(c Case, o Outcome) Outcome {
	if c.expect.refused {
		o.Class = ClassViolation
		o.Problem = "accepted; want " + c.expect.String() + c.expect.because()
	}
	return o
}

func (e expectation) because() string {
	if e.why == "" {
		return ""
	}
	return " (" + e.why + ")"
}

func classifyStatus(c Case, st *status.Status) Outcome {
	o := Outcome{Code: CodeName(st.Code()), Message: truncateMsg(st.Message())}
	info := errorInfo(st)
	if info != nil {
		o.Reason = info.GetReason()
		o.ErrorID = info.GetMetadata()["error_id"]
	}
	switch {
	case st.Code() == codes.Internal && info != nil:
		o.Class, o.Problem = ClassViolation, "INTERNAL from the server (a panic or an unmapped error; error_id "+o.ErrorID+")"
		return o
	case st.Code() == codes.Unknown:
		o.Class, o.Problem = ClassViolation, "UNKNOWN: the server returned an error that is not a gRPC status"
		return o
	case info != nil && info.GetReason() != "":
		o.Class = ClassRefused
	default:
		layer := transportLayer(st)
		if layer == "" {
			o.Class = ClassViolation
			switch st.Code() {
			case codes.Internal:
				o.Problem = "INTERNAL without an ErrorInfo"
			case codes.Unimplemented:
				o.Problem = "the service is registered but this method is not implemented"
			default:
				o.Problem = "refusal without a google.rpc.ErrorInfo reason"
			}
			return o
		}
		o.Class, o.Transport = ClassTransport, layer
	}
	if c.expect.refused && !c.expect.met(st.Code(), o.Reason, o.Class == ClassTransport) {
		o.Problem = "want " + c.expect.String() + c.expect.because()
		o.Class = ClassViolation
	}
	return o
}

func classifyRaw(c Case, r rawResult) Outcome {
	switch {
	case r.err != nil:
		return Outcome{Code: CodeProbeFailed, Class: ClassViolation, Message: r.err.Error(), Problem: "the raw HTTP/2 request got no answer"}
	case r.refused:
		return Outcome{Code: CodeHTTP2Refused, Class: ClassTransport, Transport: "http2", Message: r.how}
	}
	o := Outcome{Code: "OK", Class: ClassAccepted}
	if r.st.Code() != codes.OK {
		o = classifyStatus(Case{Name: c.Name}, r.st)
	}
	if c.expect.refused && o.Class != ClassViolation {
		o.Class = ClassViolation
		o.Problem = fmt.Sprintf("the server took the headers (answered %s); want %s", o.Code, c.expect.String())
	}
	return o
}

// met reports whether a refusal is the one expected.
func (e expectation) met(code codes.Code, reason string, transport bool) bool {
	if transport {
		return e.transport && (len(e.transportCodes) == 0 || slices.Contains(e.transportCodes, code))
	}
	if e.onlyTransport {
		return false
	}
	if len(e.codes) > 0 && !slices.Contains(e.codes, code) {
		return false
	}
	return len(e.reasons) == 0 || slices.Contains(e.reasons, reason)
}

func (e expectation) String() string {
	var parts []string
	for _, c := range e.codes {
		parts = append(parts, CodeName(c))
	}
	want := strings.Join(parts, " or ")
	if len(e.reasons) > 0 {
		want += " " + strings.Join(e.reasons, " or ")
	}
	if e.transport {
		by := "a refusal by the transport"
		if len(e.transportCodes) > 0 {
			var tc []string
			for _, c := range e.transportCodes {
				tc = append(tc, CodeName(c))
			}
			by = strings.Join(tc, " or ") + " from the transport"
		}
		if want == "" || e.onlyTransport {
			return by
		}
		return want + " or " + by
	}
	if want == "" {
		return "a refusal"
	}
	return strings.TrimSpace(want)
}

// truncateMsg keeps messages short in reports (a 1 MiB value echoed in a
// message would otherwise fill them).
func truncateMsg(s string) string {
	const limit = 300
	if len(s) <= limit {
		return s
	}
	return s[:limit] + fmt.Sprintf("… (%d bytes)", len(s))
}
