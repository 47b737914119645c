package uri

import "strconv"

// Reason names what is wrong with a URI, a pattern or a command path. The
// string values are a wire contract: services copy them verbatim into
// google.rpc.ErrorInfo.reason, so clients switch on them. Never rename one;
// add a new constant instead.
type Reason string

// Reasons returned in ParseError.Reason.
const (
	// ReasonEmpty: the input is the empty string.
	ReasonEmpty Reason = "URI_EMPTY"
	// ReasonTooLong: the input is longer than MaxLength bytes.
	ReasonTooLong Reason = "URI_TOO_LONG"
	// ReasonInvalidCharacter: whitespace, a control or format character, or
	// invalid UTF-8 anywhere in the input.
	ReasonInvalidCharacter Reason = "URI_INVALID_CHARACTER"
	// ReasonUnknownScheme: a scheme other than airc://, or "airc:" without "//".
	ReasonUnknownScheme Reason = "URI_UNKNOWN_SCHEME"
	// ReasonEmptyPath: no path after the authority, or nothing before ?/# in
	// the bare form.
	ReasonEmptyPath Reason = "URI_EMPTY_PATH"
	// ReasonInvalidPath: a leading "/", an empty segment ("//"), or a dot
	// segment ("." / "..", also percent-encoded).
	ReasonInvalidPath Reason = "URI_INVALID_PATH"
	// ReasonEmptyPeer: an authority with "@node" or ":env" but no peer.
	ReasonEmptyPeer Reason = "URI_EMPTY_PEER"
	// ReasonInvalidPeer: a peer name with characters outside [A-Za-z0-9._-],
	// or made only of dots.
	ReasonInvalidPeer Reason = "URI_INVALID_PEER"
	// ReasonInvalidPeerUUID: a peer with the 8-4-4-4-12 shape that is not hex.
	ReasonInvalidPeerUUID Reason = "URI_INVALID_PEER_UUID"
	// ReasonReservedPeer: a peer named "room" (any case); address it by UUID.
	ReasonReservedPeer Reason = "URI_RESERVED_PEER"
	// ReasonEmptyNode: "@" followed by nothing.
	ReasonEmptyNode Reason = "URI_EMPTY_NODE"
	// ReasonInvalidNode: a node name with characters outside [A-Za-z0-9._-],
	// or made only of dots.
	ReasonInvalidNode Reason = "URI_INVALID_NODE"
	// ReasonEmptyEnv: ":" followed by nothing.
	ReasonEmptyEnv Reason = "URI_EMPTY_ENV"
	// ReasonUnknownEnv: an env that is not web, tty, cli, vr, ar, headless,
	// x-<vendor-name> or *.
	ReasonUnknownEnv Reason = "URI_UNKNOWN_ENV"
	// ReasonEmptyRoom: "room:" followed by no room id.
	ReasonEmptyRoom Reason = "URI_EMPTY_ROOM"
	// ReasonInvalidRoomUUID: a room id that is not an 8-4-4-4-12 hex UUID.
	ReasonInvalidRoomUUID Reason = "URI_INVALID_ROOM_UUID"
	// ReasonNotACommand: a path that is not <service>/<method> in kebab case
	// (MethodFor only).
	ReasonNotACommand Reason = "URI_NOT_A_COMMAND"
	// ReasonInvalidPattern: a misplaced or partial wildcard, or a query or
	// fragment in a pattern (ValidatePattern only).
	ReasonInvalidPattern Reason = "URI_INVALID_PATTERN"
)

// ParseError is the only error type this package returns. Callers find it
// with errors.As and switch on Reason; Detail is for humans only.
type ParseError struct {
	Reason Reason // machine-readable, stable
	Input  string // the input as given (may be long; Error truncates it)
	Detail string // what exactly is wrong, for logs and messages
}

// maxQuotedInput bounds how much of the input Error repeats, so a 4 KiB
// (or, for URI_TOO_LONG, arbitrarily long) input does not flood logs.
const maxQuotedInput = 96

func (e *ParseError) Error() string {
	in := e.Input
	if len(in) > maxQuotedInput {
		in = in[:maxQuotedInput] + "..."
	}
	msg := "uri " + strconv.Quote(in) + ": " + string(e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func newError(r Reason, input, detail string) *ParseError {
	return &ParseError{Reason: r, Input: input, Detail: detail}
}
