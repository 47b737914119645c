package generate

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The shared files are edited as text, at their marker lines, so
// everything else in them stays byte for byte what it was (gofmt aside);
// the results are parsed again to check the entry landed where it means
// something.

// editWiring adds the service's case to the switch of wire() above the
// marker, and the imports the case needs.
func editWiring(src []byte, d data) ([]byte, []string, error) {
	if ok, err := hasCase(src, d.Name); err != nil || ok {
		return src, nil, err
	}
	var changes []string
	pkgPath := d.Module + "/services/" + d.Name
	if name, ok := importName(src, pkgPath); ok {
		// A leftover import of the package: use it as it is.
		d.Alias = name
	} else {
		var err error
		if src, err = addImport(src, d.Module, d.Alias, pkgPath); err != nil {
			return nil, nil, err
		}
		changes = append(changes, "import "+d.Alias+" "+strconv.Quote(pkgPath))
	}
	if _, ok := importName(src, "time"); !ok {
		var err error
		if src, err = addImport(src, d.Module, "", "time"); err != nil {
			return nil, nil, err
		}
	}
	block, err := execute("wire.go.tmpl", d)
	if err != nil {
		return nil, nil, err
	}
	if src, err = insertAbove(src, WiringMarker, string(block)); err != nil {
		return nil, nil, err
	}
	out, err := format.Source(src)
	if err != nil {
		return nil, nil, fmt.Errorf("the case inserted above %q does not parse; the marker must be a line of its own inside wire()'s switch over service names: %w", WiringMarker, err)
	}
	if ok, err := hasCase(out, d.Name); err != nil || !ok {
		return nil, nil, fmt.Errorf("the marker %q is not inside a switch; put it inside wire()'s switch over service names, above its default case", WiringMarker)
	}
	return out, append([]string{fmt.Sprintf("case %q in wire()", d.Name)}, changes...), nil
}

// editConfig adds the name to AllServices above the marker.
func editConfig(src []byte, d data) ([]byte, []string, error) {
	if ok, err := inAllServices(src, d.Name); err != nil || ok {
		return src, nil, err
	}
	src, err := insertAbove(src, ConfigMarker, strconv.Quote(d.Name)+",\n")
	if err != nil {
		return nil, nil, err
	}
	out, err := format.Source(src)
	if err != nil {
		return nil, nil, fmt.Errorf("the name inserted above %q does not parse; the marker must be a line of its own inside the AllServices list: %w", ConfigMarker, err)
	}
	if ok, err := inAllServices(out, d.Name); err != nil || !ok {
		return nil, nil, fmt.Errorf("the marker %q is not inside the AllServices list", ConfigMarker)
	}
	return out, []string{fmt.Sprintf("%q in AllServices", d.Name)}, nil
}

// editCompose adds the service's entry above the marker in the services
// map, mirroring the other services (the x-node anchor, one named data
// volume), and declares the volume.
func editCompose(src []byte, d data) ([]byte, []string, error) {
	if ok, err := composeHasService(src, d.Name); err != nil || ok {
		return src, nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, nil, fmt.Errorf("does not parse: %w", err)
	}
	if !definesAnchor(&doc, "node") {
		return nil, nil, errors.New("the entry merges the x-node anchor (<<: *node) like the other services, but no &node anchor is defined")
	}
	block, err := execute("compose.yml.tmpl", d)
	if err != nil {
		return nil, nil, err
	}
	out, err := insertAbove(src, ComposeMarker, string(block)+"\n")
	if err != nil {
		return nil, nil, err
	}
	changes := []string{fmt.Sprintf("service %s", d.Name)}
	vol := d.Name + "-data"
	out, added, err := addVolume(out, vol)
	if err != nil {
		return nil, nil, err
	}
	if added {
		changes = append(changes, "volume "+vol)
	}
	// Check the result the way compose reads it, merge keys resolved.
	var check struct {
		Services map[string]struct {
			Image   string   `yaml:"image"`
			Command []string `yaml:"command"`
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(out, &check); err != nil {
		return nil, nil, fmt.Errorf("the entry inserted above %q does not parse; the marker must be a line of its own in the services map, at the indentation of its keys: %w", ComposeMarker, err)
	}
	svc, ok := check.Services[d.Name]
	if _, declared := check.Volumes[vol]; !ok || !declared || svc.Image == "" || len(svc.Command) < 2 || svc.Command[1] != d.Name {
		return nil, nil, fmt.Errorf("the entry inserted above %q did not land in the services map; the marker must be at the indentation of its keys", ComposeMarker)
	}
	return out, changes, nil
}

// markerLine returns the offset and indentation of the one line that
// starts with marker.
func markerLine(src []byte, marker string) (int, string, error) {
	start, indent, n := -1, "", 0
	for off := 0; off < len(src); {
		end := bytes.IndexByte(src[off:], '\n')
		if end < 0 {
			end = len(src) - off
		}
		line := string(src[off : off+end])
		trimmed := strings.TrimLeft(line, " \t")
		if strings.HasPrefix(trimmed, marker) {
			n++
			start, indent = off, line[:len(line)-len(trimmed)]
		}
		off += end + 1
	}
	switch {
	case n == 0:
		return 0, "", fmt.Errorf("no line starts with the marker %q, above which the generator inserts (docs/generate.md)", marker)
	case n > 1:
		return 0, "", fmt.Errorf("the marker %q is there %d times; keep one", marker, n)
	}
	return start, indent, nil
}

// insertAbove inserts block (lines ending in "\n") above the marker line,
// each non-blank line indented like the marker.
func insertAbove(src []byte, marker, block string) ([]byte, error) {
	start, indent, err := markerLine(src, marker)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(src) + len(block) + 16*len(indent))
	b.Write(src[:start])
	for _, line := range strings.SplitAfter(block, "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString(indent)
		}
		b.WriteString(line)
	}
	b.Write(src[start:])
	return b.Bytes(), nil
}

// hasCase reports whether the switch around the wiring marker has a case
// for name.
func hasCase(src []byte, name string) (bool, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, parser.ParseComments)
	if err != nil {
		return false, err
	}
	at, _, err := markerLine(src, WiringMarker)
	if err != nil {
		return false, err
	}
	var sw *ast.SwitchStmt
	ast.Inspect(f, func(n ast.Node) bool {
		if s, ok := n.(*ast.SwitchStmt); ok {
			if fset.Position(s.Body.Lbrace).Offset < at && at < fset.Position(s.Body.Rbrace).Offset {
				sw = s // the innermost one wins: Inspect goes outside in
			}
		}
		return true
	})
	if sw == nil {
		return false, fmt.Errorf("the marker %q is not inside a switch; put it inside wire()'s switch over service names, above its default case", WiringMarker)
	}
	for _, st := range sw.Body.List {
		cc, ok := st.(*ast.CaseClause)
		if !ok {
			continue
		}
		for _, e := range cc.List {
			if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && s == name {
					return true, nil
				}
			}
		}
	}
	return false, nil
}

// inAllServices reports whether the AllServices list names name.
func inAllServices(src []byte, name string) (bool, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "", src, 0)
	if err != nil {
		return false, err
	}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, id := range vs.Names {
				if id.Name != "AllServices" || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.CompositeLit)
				if !ok {
					return false, errors.New("AllServices is not a list literal")
				}
				for _, e := range lit.Elts {
					if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
						if s, err := strconv.Unquote(bl.Value); err == nil && s == name {
							return true, nil
						}
					}
				}
				return false, nil
			}
		}
	}
	return false, errors.New("no AllServices variable")
}

// composeHasService reports whether the compose file's services map has
// name.
func composeHasService(src []byte, name string) (bool, error) {
	var f struct {
		Services map[string]any `yaml:"services"`
	}
	if err := yaml.Unmarshal(src, &f); err != nil {
		return false, fmt.Errorf("does not parse: %w", err)
	}
	_, ok := f.Services[name]
	return ok, nil
}

// importName returns the name under which a Go file imports path.
func importName(src []byte, path string) (string, bool) {
	f, err := parser.ParseFile(token.NewFileSet(), "", src, parser.ImportsOnly)
	if err != nil {
		return "", false
	}
	for _, s := range f.Imports {
		if p, err := strconv.Unquote(s.Path.Value); err == nil && p == path {
			if s.Name != nil {
				return s.Name.Name, true
			}
			return path[strings.LastIndexByte(path, '/')+1:], true
		}
	}
	return "", false
}

// addImport adds an import to a Go file, in the group of its kind
// (standard library, this module, others), for gofmt to sort.
func addImport(src []byte, module, name, path string) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "", src, parser.ImportsOnly|parser.ParseComments)
	if err != nil {
		return nil, err
	}
	kind := func(p string) int {
		switch {
		case !strings.Contains(strings.SplitN(p, "/", 2)[0], "."):
			return 0
		case p == module || strings.HasPrefix(p, module+"/"):
			return 2
		}
		return 1
	}
	line := strconv.Quote(path)
	if name != "" {
		line = name + " " + line
	}
	var anchor, last ast.Spec
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.IMPORT || !gd.Lparen.IsValid() {
			continue
		}
		for _, s := range gd.Specs {
			last = s
			if p, err := strconv.Unquote(s.(*ast.ImportSpec).Path.Value); err == nil && kind(p) == kind(path) {
				anchor = s
			}
		}
	}
	if anchor == nil {
		anchor = last
	}
	var at int
	if anchor == nil {
		// No import block: a declaration of its own after the package
		// clause.
		at = fset.Position(f.Name.End()).Offset
		line = "\nimport " + line
	} else {
		at = fset.Position(anchor.End()).Offset
		line = "\n\t" + line
	}
	// After the rest of the anchor's line, so a trailing comment stays.
	if nl := bytes.IndexByte(src[at:], '\n'); nl >= 0 {
		at += nl
	} else {
		at = len(src)
	}
	out := make([]byte, 0, len(src)+len(line))
	out = append(out, src[:at]...)
	out = append(out, line...)
	return append(out, src[at:]...), nil
}

// definesAnchor reports whether a YAML document defines &anchor.
func definesAnchor(n *yaml.Node, anchor string) bool {
	if n.Anchor == anchor {
		return true
	}
	for _, c := range n.Content {
		if definesAnchor(c, anchor) {
			return true
		}
	}
	return false
}

// addVolume declares a named volume in the top-level volumes map, after
// its last entry. It reports false when the volume is already declared.
func addVolume(src []byte, vol string) ([]byte, bool, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, false, fmt.Errorf("does not parse: %w", err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, false, errors.New("is not a YAML mapping")
	}
	top := doc.Content[0]
	var key, val *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "volumes" {
			key, val = top.Content[i], top.Content[i+1]
		}
	}
	lines := strings.SplitAfter(string(src), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	insertAt := func(line int, text string) []byte { // after 1-based line
		var b strings.Builder
		for _, l := range lines[:line] {
			b.WriteString(l)
		}
		if line > 0 && !strings.HasSuffix(lines[line-1], "\n") {
			b.WriteString("\n")
		}
		b.WriteString(text)
		for _, l := range lines[line:] {
			b.WriteString(l)
		}
		return []byte(b.String())
	}
	switch {
	case key == nil:
		return insertAt(len(lines), "\nvolumes:\n  "+vol+":\n"), true, nil
	case val.Kind == yaml.ScalarNode && val.Tag == "!!null":
		return insertAt(key.Line, "  "+vol+":\n"), true, nil
	case val.Kind != yaml.MappingNode:
		return nil, false, errors.New("the top-level volumes is not a map")
	case val.Style&yaml.FlowStyle != 0:
		return nil, false, errors.New("the top-level volumes map is in flow style ({...}); write it as a block for the generator to add to it")
	}
	for i := 0; i+1 < len(val.Content); i += 2 {
		if val.Content[i].Value == vol {
			return src, false, nil
		}
	}
	indent := strings.Repeat(" ", val.Content[0].Column-1)
	// The block ends before the first line at column 0 after the key.
	end := key.Line
	for i := key.Line; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" {
			continue
		}
		if l[0] != ' ' && l[0] != '\t' {
			break
		}
		end = i + 1
	}
	return insertAt(end, indent+vol+":\n"), true, nil
}
