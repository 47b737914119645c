package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"gopkg.in/yaml.v3"
)

// The YAML schema (docs/policy.md):
//
//	default: forbid                 # or allow; absent means forbid
//	rules:
//	  - callers: ["admin"]          # principals, "peer:<name>", "anonymous", "*", "peer:*"
//	    uris: ["debug/**"]          # path patterns or airc:// patterns
//	    verdict: forbid             # allow | forbid | defer
//	    reason: no-permission       # FORBIDDEN_NO_PERMISSION
//	    env: web                    # defer only: prompt_target_env
//	    dry_run: false

// MaxBytes bounds the YAML text of a policy.
const MaxBytes = 1 << 20

// The keys of the schema.
var (
	documentKeys = []string{"default", "rules"}
	ruleKeys     = []string{"callers", "uris", "verdict", "reason", "env", "dry_run"}
)

// Load reads and parses a policy file.
func Load(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", path, err)
	}
	return p, nil
}

// Parse compiles a policy from its YAML text. It is strict: unknown fields,
// duplicate keys, wrong types and every rule problem are errors, each an
// *Error naming the rule, the field and the line. The policy remembers the
// text, comments included, for Marshal.
func Parse(src []byte) (*Policy, error) {
	if len(src) > MaxBytes {
		return nil, &Error{
			Rule: DefaultRule, Problem: ProblemTooLarge,
			Detail: fmt.Sprintf("policy is %d bytes; at most %d", len(src), MaxBytes),
		}
	}
	root, err := decodeNode(src)
	if err != nil {
		return nil, err
	}
	d, err := readDocument(root)
	if err != nil {
		return nil, err
	}
	// Backstop: the walk above is what reports problems with their place,
	// but the same text must also pass yaml.v3's own strict decoding into
	// the schema, so the two can never disagree in the permissive direction.
	if err := strictDecode(src); err != nil {
		return nil, err
	}
	p, err := New(d.def, d.rules)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			pe.Line = d.line(pe.Rule, pe.Field)
		}
		return nil, err
	}
	p.source = bytes.Clone(src)
	return p, nil
}

// decodeNode parses the text into a node tree, refusing empty input and
// more than one document. yaml.v3 is not expected to panic, but Parse
// takes untrusted text from PutPolicy, so a panic is turned into an error.
func decodeNode(src []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, &Error{Rule: DefaultRule, Problem: ProblemSyntax, Detail: fmt.Sprintf("YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Rule: DefaultRule, Problem: ProblemEmptyDocument, Detail: "the policy is empty"}
		}
		return nil, &Error{Rule: DefaultRule, Problem: ProblemSyntax, Detail: "YAML: " + err.Error(), Err: err}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, &Error{Rule: DefaultRule, Problem: ProblemSyntax, Detail: "YAML: " + err.Error(), Err: err}
	default:
		return nil, &Error{
			Rule: DefaultRule, Problem: ProblemMultipleDocuments, Line: next.Line,
			Detail: "a policy is one YAML document; found a second one",
		}
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return deref(doc.Content[0]), nil
	}
	return deref(&doc), nil
}

// strictDecode decodes into the schema with yaml.v3's KnownFields.
func strictDecode(src []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &Error{Rule: DefaultRule, Problem: ProblemSyntax, Detail: fmt.Sprintf("YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	var d yamlDocument
	if err := dec.Decode(&d); err != nil {
		return &Error{Rule: DefaultRule, Problem: ProblemSyntax, Detail: "YAML: " + err.Error(), Err: err}
	}
	return nil
}

// document is the walked YAML: the values and where they were.
type document struct {
	def   VerdictKind
	rules []Rule
	lines map[location]int
}

type location struct {
	rule  int
	field string
}

func (d *document) line(rule int, field string) int {
	if l, ok := d.lines[location{rule, field}]; ok {
		return l
	}
	return d.lines[location{rule, ""}]
}

// deref follows aliases (&anchor / *alias) to the node they name. The
// schema is shallow, so the walk stays bounded even for an alias that names
// the node containing it: such a node is always of the wrong kind.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// readDocument walks the node tree, checking the structure of the schema
// with the rule index, field and line of every problem.
func readDocument(root *yaml.Node) (*document, error) {
	d := &document{lines: map[location]int{}}
	if isNull(root) || root.Kind == yaml.DocumentNode {
		return nil, &Error{Rule: DefaultRule, Problem: ProblemEmptyDocument, Detail: "the policy is empty"}
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{
			Rule: DefaultRule, Problem: ProblemWrongType, Line: root.Line,
			Detail: "a policy is a mapping with default and rules",
		}
	}
	d.lines[location{DefaultRule, ""}] = root.Line
	err := walkMapping(root, DefaultRule, documentKeys, func(key string, v *yaml.Node) error {
		switch key {
		case "default":
			s, err := scalarString(v, DefaultRule, key)
			if err != nil || s == "" {
				return err // absent (null) means forbid
			}
			switch s {
			case "allow":
				d.def = Allowed
			case "forbid":
				d.def = Forbidden
			default:
				return &Error{
					Rule: DefaultRule, Field: key, Problem: ProblemUnknownDefault, Line: v.Line,
					Detail: "default must be allow or forbid, not " + quoteShort(s),
				}
			}
		case "rules":
			return d.readRules(v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (d *document) readRules(v *yaml.Node) error {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		return &Error{
			Rule: DefaultRule, Field: "rules", Problem: ProblemWrongType, Line: v.Line,
			Detail: "rules must be a list of rules",
		}
	}
	if len(v.Content) > MaxRules {
		return &Error{
			Rule: DefaultRule, Field: "rules", Problem: ProblemTooManyRules, Line: v.Line,
			Detail: fmt.Sprintf("%d rules; at most %d", len(v.Content), MaxRules),
		}
	}
	for i, item := range v.Content {
		item = deref(item)
		if item == nil || item.Kind != yaml.MappingNode {
			line := v.Line
			if item != nil {
				line = item.Line
			}
			return &Error{
				Rule: i, Problem: ProblemWrongType, Line: line,
				Detail: "a rule is a mapping with callers, uris, verdict, reason, env and dry_run",
			}
		}
		d.lines[location{i, ""}] = item.Line
		r, err := d.readRule(i, item)
		if err != nil {
			return err
		}
		d.rules = append(d.rules, r)
	}
	return nil
}

func (d *document) readRule(i int, n *yaml.Node) (Rule, error) {
	var r Rule
	err := walkMapping(n, i, ruleKeys, func(key string, v *yaml.Node) error {
		d.lines[location{i, key}] = v.Line
		var err error
		switch key {
		case "callers":
			r.Callers, err = d.stringList(v, i, key)
		case "uris":
			r.URIs, err = d.stringList(v, i, key)
		case "verdict":
			var s string
			if s, err = scalarString(v, i, key); err == nil && s != "" {
				k, ok := verdictWord(s)
				if !ok {
					return &Error{
						Rule: i, Field: key, Problem: ProblemUnknownVerdict, Line: v.Line,
						Detail: "unknown verdict " + quoteShort(s) + "; give allow, forbid or defer",
					}
				}
				r.Verdict = k
			}
		case "reason":
			r.Reason, err = scalarString(v, i, key)
		case "env":
			r.Env, err = scalarString(v, i, key)
		case "dry_run":
			r.DryRun, err = scalarBool(v, i, key)
		}
		return err
	})
	return r, err
}

// walkMapping calls f for each key of a mapping, refusing keys outside
// known (as yaml.v3's KnownFields does) and keys given twice.
func walkMapping(n *yaml.Node, rule int, known []string, f func(key string, v *yaml.Node) error) error {
	seen := make(map[string]int, len(known))
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := deref(n.Content[j]), deref(n.Content[j+1])
		if k == nil || k.Kind != yaml.ScalarNode {
			return &Error{
				Rule: rule, Problem: ProblemWrongType, Line: n.Content[j].Line,
				Detail: "a mapping key must be a plain string",
			}
		}
		key := k.Value
		if !contains(known, key) {
			return &Error{
				Rule: rule, Field: key, Problem: ProblemUnknownField, Line: k.Line,
				Detail: "unknown field " + quoteShort(key) + "; the fields are " + fmt.Sprint(known),
			}
		}
		if first, dup := seen[key]; dup {
			return &Error{
				Rule: rule, Field: key, Problem: ProblemDuplicateKey, Line: k.Line,
				Detail: key + " is given twice (first on line " + strconv.Itoa(first) + ")",
			}
		}
		seen[key] = k.Line
		if v == nil {
			return &Error{Rule: rule, Field: key, Problem: ProblemWrongType, Line: k.Line, Detail: key + " has no value"}
		}
		if err := f(key, v); err != nil {
			return err
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// scalarString returns a scalar as a string; null is "" (absent). Any plain
// YAML scalar is accepted as its text (so "reason: 404" is "404"); lists,
// mappings, binary data and custom tags are not.
func scalarString(v *yaml.Node, rule int, field string) (string, error) {
	if isNull(v) {
		return "", nil
	}
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!str", "!!int", "!!float", "!!bool", "!!timestamp":
			return v.Value, nil
		}
	}
	return "", &Error{Rule: rule, Field: field, Problem: ProblemWrongType, Line: v.Line, Detail: field + " must be a string"}
}

func scalarBool(v *yaml.Node, rule int, field string) (bool, error) {
	if isNull(v) {
		return false, nil
	}
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
		var b bool
		if err := v.Decode(&b); err == nil {
			return b, nil
		}
	}
	return false, &Error{Rule: rule, Field: field, Problem: ProblemWrongType, Line: v.Line, Detail: field + " must be true or false"}
}

// stringList reads a list of strings; null is an empty list (and then an
// empty-list error from New, which names the field).
func (d *document) stringList(v *yaml.Node, rule int, field string) ([]string, error) {
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, &Error{
			Rule: rule, Field: field, Problem: ProblemWrongType, Line: v.Line,
			Detail: field + " must be a list of strings (write [\"x\"] for one)",
		}
	}
	out := make([]string, 0, len(v.Content))
	for j, item := range v.Content {
		f := field + "[" + strconv.Itoa(j) + "]"
		item = deref(item)
		if item == nil {
			return nil, &Error{Rule: rule, Field: f, Problem: ProblemWrongType, Line: v.Line, Detail: f + " must be a string"}
		}
		d.lines[location{rule, f}] = item.Line
		s, err := scalarString(item, rule, f)
		if err != nil {
			return nil, err
		}
		out = append(out, s) // "" (null) is refused by New as an empty pattern
	}
	return out, nil
}

// The canonical YAML form.

type yamlDocument struct {
	Default string     `yaml:"default"`
	Rules   []yamlRule `yaml:"rules"`
}

type yamlRule struct {
	Callers []string `yaml:"callers,flow"`
	URIs    []string `yaml:"uris,flow"`
	Verdict string   `yaml:"verdict"`
	Reason  string   `yaml:"reason,omitempty"`
	Env     string   `yaml:"env,omitempty"`
	DryRun  bool     `yaml:"dry_run,omitempty"`
}

// Marshal returns the policy as YAML for GetPolicy and for files: the text
// it was parsed from, comments and all, when it came from Parse, so that an
// operator who reads, edits and puts back a policy keeps its comments; else
// its canonical rendering (Canonical).
func (p *Policy) Marshal() ([]byte, error) {
	if p.source != nil {
		return bytes.Clone(p.source), nil
	}
	return p.Canonical()
}

// Canonical renders the policy as YAML in the schema's field order, without
// comments. Parse(Canonical()) yields a policy that evaluates identically.
func (p *Policy) Canonical() ([]byte, error) {
	d := yamlDocument{Default: p.def.word(), Rules: make([]yamlRule, len(p.rules))}
	for i, r := range p.rules {
		d.Rules[i] = yamlRule{
			Callers: r.Callers, URIs: r.URIs, Verdict: r.Verdict.word(),
			Reason: r.Reason, Env: r.Env, DryRun: r.DryRun,
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("marshal policy: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal policy: %w", err)
	}
	return buf.Bytes(), nil
}
