package router

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/uri"
)

// Reasons the router itself returns (refusals are FORBIDDEN_* and
// DEFERRED_*, built by pkg/gate; URI errors carry the parser's URI_*).
const (
	ReasonParamsInvalid      = "PARAMS_INVALID"
	ReasonServiceUnknown     = "SERVICE_UNKNOWN"
	ReasonMethodUnknown      = "METHOD_UNKNOWN"
	ReasonMethodNotUnary     = "METHOD_NOT_UNARY"
	ReasonPeerUnknown        = "PEER_UNKNOWN"
	ReasonPeerUnreachable    = "PEER_UNREACHABLE"
	ReasonRoomUnknown        = "ROOM_UNKNOWN"
	ReasonServiceUnavailable = "SERVICE_UNAVAILABLE"
	ReasonRouteLoop          = "ROUTE_LOOP"
	ReasonNotAdmin           = "FORBIDDEN_NOT_ADMIN"
	ReasonPolicyInvalid      = "POLICY_INVALID"
	ReasonVersionMismatch    = "POLICY_VERSION_MISMATCH"
	ReasonNotATopic          = "URI_NOT_A_TOPIC"
	ReasonCallerNotAllowed   = "CALLER_OVERRIDE_FORBIDDEN"
	ReasonHandleInvalid      = "HANDLE_INVALID"
	ReasonDeliveryForeign    = "DELIVERY_FOREIGN"
)

// uriError maps a URI parse error to INVALID_ARGUMENT with its reason.
func uriError(raw string, err error) error {
	var pe *uri.ParseError
	if errors.As(err, &pe) {
		return rpcerr.New(codes.InvalidArgument, string(pe.Reason), pe.Error(), "uri", truncate(raw, 256))
	}
	return rpcerr.New(codes.InvalidArgument, "URI_INVALID", err.Error(), "uri", truncate(raw, 256))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// candidates renders a sorted, bounded list for NOT_FOUND errors.
func candidates(names []string) string {
	sort.Strings(names)
	if len(names) > 40 {
		names = append(names[:40], fmt.Sprintf("(+%d more)", len(names)-40))
	}
	return strings.Join(names, ", ")
}
