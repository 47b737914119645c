package sweep

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Report is the result of a sweep.
type Report struct {
	// Calls counts requests sent (health and known-good checks excluded).
	Calls int `json:"calls"`
	// ByCode counts outcomes by code over every method.
	ByCode map[string]int `json:"by_code"`
	// Methods are the per-method results, in the order swept.
	Methods []MethodReport `json:"methods"`
	// Violations are the broken promises, in the order found.
	Violations []Violation `json:"violations"`
	// Notes are things worth knowing that are not violations (skipped
	// seeds, restored state).
	Notes []string `json:"notes,omitempty"`
}

// MethodReport is one method's tally.
type MethodReport struct {
	Method string `json:"method"`
	// Kind is unary, server-stream, client-stream or bidi-stream.
	Kind   string         `json:"kind"`
	Calls  int            `json:"calls"`
	ByCode map[string]int `json:"by_code"`
	// ByClass counts accepted, refused, transport and violation.
	ByClass map[string]int `json:"by_class"`
	// Serving is false when the health or known-good check after this
	// method's batch failed.
	Serving bool `json:"serving"`
	// Seconds is how long the batch took.
	Seconds float64 `json:"seconds"`
}

// Violation is one call that broke a promise, or a failed serving check.
type Violation struct {
	Method string `json:"method"`
	// Case names the input ("seed: uri: 1 MiB string").
	Case    string `json:"case"`
	Code    string `json:"code"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Problem says what promise was broken.
	Problem string `json:"problem"`
	// ServerLog is what the server logged for an INTERNAL error_id
	// (embedded sweeps only): the panic or the unmapped error and where.
	ServerLog string `json:"server_log,omitempty"`
}

// Summary is the last line of the output.
type Summary struct {
	Calls      int            `json:"calls"`
	Violations int            `json:"violations"`
	ByCode     map[string]int `json:"by_code"`
	Methods    int            `json:"methods"`
}

// Summary returns the report's last-line summary.
func (r Report) Summary() Summary {
	byCode := r.ByCode
	if byCode == nil {
		byCode = map[string]int{}
	}
	return Summary{Calls: r.Calls, Violations: len(r.Violations), ByCode: byCode, Methods: len(r.Methods)}
}

// printer writes the sweep's output as it goes: a line per method, then
// the violations and notes, and last the summary as one JSON line. In JSON
// mode every line is a JSON object (JSON Lines), the summary still last.
type printer struct {
	out  io.Writer
	json bool
	err  error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.out, format+"\n", args...)
	}
}

func (p *printer) object(v any) {
	if p.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		p.err = err
		return
	}
	_, p.err = fmt.Fprintf(p.out, "%s\n", b)
}

func (p *printer) method(m MethodReport) {
	if p.json {
		p.object(struct {
			Type string `json:"type"`
			MethodReport
		}{"method", m})
		return
	}
	var notes []string
	if n := m.ByClass[ClassTransport]; n > 0 {
		notes = append(notes, fmt.Sprintf("%d refused by the transport", n))
	}
	if n := m.ByClass[ClassViolation]; n > 0 {
		notes = append(notes, fmt.Sprintf("%d VIOLATIONS", n))
	}
	if !m.Serving {
		notes = append(notes, "SERVER STOPPED SERVING")
	}
	extra := ""
	if len(notes) > 0 {
		extra = "  (" + strings.Join(notes, ", ") + ")"
	}
	p.line("%-62s %-13s %4d calls %6.1fs  %s%s", m.Method, m.Kind, m.Calls, m.Seconds, formatCounts(m.ByCode), extra)
}

func (p *printer) finish(r Report) {
	if p.json {
		for _, v := range r.Violations {
			p.object(struct {
				Type string `json:"type"`
				Violation
			}{"violation", v})
		}
		for _, n := range r.Notes {
			p.object(struct {
				Type string `json:"type"`
				Note string `json:"note"`
			}{"note", n})
		}
		p.object(r.Summary())
		return
	}
	if len(r.Notes) > 0 {
		p.line("")
		p.line("notes:")
		for _, n := range r.Notes {
			p.line("  - %s", n)
		}
	}
	p.line("")
	if len(r.Violations) == 0 {
		p.line("violations: none")
	} else {
		p.line("violations (%d):", len(r.Violations))
		for _, v := range r.Violations {
			reason := ""
			if v.Reason != "" {
				reason = " " + v.Reason
			}
			p.line("  - %s", v.Method)
			p.line("      case:    %s", v.Case)
			p.line("      got:     %s%s: %s", v.Code, reason, v.Message)
			p.line("      problem: %s", v.Problem)
			if v.ServerLog != "" {
				p.line("      server:  %s", strings.ReplaceAll(v.ServerLog, "\n", "\n               "))
			}
		}
	}
	p.object(r.Summary())
}

// formatCounts renders counts as "INVALID_ARGUMENT=12 OK=3", largest
// first.
func formatCounts(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
