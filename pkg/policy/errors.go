package policy

import (
	"errors"
	"fmt"
	"strconv"
)

// Problem names what is wrong with a policy that does not load. The values
// are stable: the router copies them into google.rpc.ErrorInfo metadata
// ("problem") next to the rule and the field.
type Problem string

// The problems a policy can have.
const (
	// ProblemSyntax: the text is not YAML.
	ProblemSyntax Problem = "syntax"
	// ProblemTooLarge: the text is longer than MaxBytes.
	ProblemTooLarge Problem = "too-large"
	// ProblemEmptyDocument: nothing but comments or whitespace (or a nil
	// proto). An empty policy is far more likely a truncated file than a
	// wish to forbid everything, so it is refused.
	ProblemEmptyDocument Problem = "empty-document"
	// ProblemMultipleDocuments: more than one YAML document ("---").
	ProblemMultipleDocuments Problem = "multiple-documents"
	// ProblemUnknownField: a key the schema does not have (a typo such as
	// "verdit", or a YAML merge key "<<").
	ProblemUnknownField Problem = "unknown-field"
	// ProblemDuplicateKey: the same key twice in one mapping.
	ProblemDuplicateKey Problem = "duplicate-key"
	// ProblemWrongType: a list where a string belongs, or the reverse, or a
	// dry_run that is not a boolean.
	ProblemWrongType Problem = "wrong-type"
	// ProblemMissingField: verdict absent, reason absent on a forbid or defer
	// rule, env absent on a defer rule.
	ProblemMissingField Problem = "missing-field"
	// ProblemUnexpectedField: env on a rule that is not defer.
	ProblemUnexpectedField Problem = "unexpected-field"
	// ProblemEmptyList: callers or uris missing or empty.
	ProblemEmptyList Problem = "empty-list"
	// ProblemUnknownDefault: default is neither allow nor forbid.
	ProblemUnknownDefault Problem = "unknown-default"
	// ProblemUnknownVerdict: verdict is not allow, forbid or defer.
	ProblemUnknownVerdict Problem = "unknown-verdict"
	// ProblemInvalidReason: reason is not kebab-case or too long.
	ProblemInvalidReason Problem = "invalid-reason"
	// ProblemInvalidEnv: env is not an env a caller can be prompted in.
	ProblemInvalidEnv Problem = "invalid-env"
	// ProblemInvalidCaller: a malformed caller pattern.
	ProblemInvalidCaller Problem = "invalid-caller"
	// ProblemInvalidURI: a URI pattern pkg/uri rejects ("**" not last, a bad
	// airc:// authority, ...); Err is the *uri.ParseError.
	ProblemInvalidURI Problem = "invalid-uri"
	// ProblemTooManyRules: more than MaxRules rules.
	ProblemTooManyRules Problem = "too-many-rules"
)

// Error is a policy that does not load: the first problem found, where it
// is, and what is wrong. Every error Parse, FromProto and New return is an
// *Error; find it with errors.As.
type Error struct {
	// Rule is the index of the rule, or -1 (DefaultRule) for the policy's
	// own fields and for the document as a whole.
	Rule int
	// Field is the field as the YAML names it, with a list index where
	// there is one: "default", "rules", "callers[1]", "uris[0]", "verdict",
	// "reason", "env", "dry_run", or the unknown key itself. Empty when the
	// problem is the whole document.
	Field   string
	Problem Problem
	// Line is the 1-based line in the YAML text; 0 when the policy did not
	// come from YAML or the line is unknown.
	Line int
	// Detail says what is wrong, for people.
	Detail string
	// Err is the underlying error, if any (a *uri.ParseError for
	// ProblemInvalidURI, the YAML library's error for ProblemSyntax).
	Err error
}

// Where renders the location: "rules[2].uris[0]", "default", or "" for the
// whole document.
func (e *Error) Where() string {
	switch {
	case e.Rule >= 0 && e.Field != "":
		return "rules[" + strconv.Itoa(e.Rule) + "]." + e.Field
	case e.Rule >= 0:
		return "rules[" + strconv.Itoa(e.Rule) + "]"
	}
	return e.Field
}

func (e *Error) Error() string {
	msg := "policy"
	if w := e.Where(); w != "" {
		msg += ": " + w
	}
	if e.Line > 0 {
		msg += " (line " + strconv.Itoa(e.Line) + ")"
	}
	return msg + ": " + e.Detail
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// ErrVersionMismatch is the sentinel of a compare-and-swap Put whose
// expected version is not the current one. The error Put returns is a
// *VersionMismatchError, which matches it with errors.Is.
var ErrVersionMismatch = errors.New("policy version mismatch")

// VersionMismatchError says which version a Put expected and which is
// current, so the caller can re-read and retry.
type VersionMismatchError struct {
	Expected, Current uint64
}

func (e *VersionMismatchError) Error() string {
	return fmt.Sprintf("policy version mismatch: expected %d, current is %d", e.Expected, e.Current)
}

// Is makes errors.Is(err, ErrVersionMismatch) true.
func (e *VersionMismatchError) Is(target error) bool { return target == ErrVersionMismatch }

// quoteShort quotes s for a detail, cutting it when long.
func quoteShort(s string) string { return strconv.Quote(truncate(s)) }
