// Package generate implements `continuum generate service`: it scaffolds a
// new service of the mesh the way the others are built (STYLE.md) — a proto
// in proto/continuum/<name>/v1, a service package in services/<name> with
// New, Register, config.go, errors.go and a table test through the real
// interceptor chain — and wires it into `continuum up`/`serve`
// (pkg/node/wiring.go, pkg/node/config.go) and docker-compose.yml at the
// marker lines those files carry for it.
//
// A run is all or nothing, also against a concurrent run: every output is
// rendered and staged in a temporary directory inside the repository, an
// exclusive lock (<root>/.continuum-generate.lock) is taken, the name is
// checked again under the lock, the edits of the shared files are computed
// from their current contents under the same lock, and only then is each
// staged file renamed into place (a failed rename restores what was already
// moved). Two runs for one name therefore never leave a mix of both: the
// second finds the first's service and refuses, or, with --force, replaces
// all of it.
//
// The generator runs nothing itself; docs/generate.md has the next steps.
package generate

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"go/format"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"golang.org/x/mod/modfile"
)

// Files the generator edits, relative to the repository root, and the
// marker lines it inserts above.
const (
	WiringFile    = "pkg/node/wiring.go"
	ConfigFile    = "pkg/node/config.go"
	ComposeFile   = "docker-compose.yml"
	WiringMarker  = "// continuum:generate:wire"
	ConfigMarker  = "// continuum:generate:services"
	ComposeMarker = "# continuum:generate:compose"
	// LockFile is the lock every run takes before it touches the tree.
	LockFile = ".continuum-generate.lock"
	// DefaultMethod is the method a service gets when none is named.
	DefaultMethod = "Ping"
	// DefaultLockTimeout bounds the wait for another run's lock.
	DefaultLockTimeout = 30 * time.Second
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").ParseFS(templateFS, "templates/*.tmpl"))

// Options are one run's inputs.
type Options struct {
	// Root is the repository root (holding go.mod). Required.
	Root string
	// Name is the service's name. Required; see ValidateName.
	Name string
	// Methods are the RPC names; nil is [DefaultMethod].
	Methods []string
	// Force overwrites the files of an existing generated service; the
	// wiring entries it already has are kept.
	Force bool
	// LockTimeout bounds the wait for another run's lock; zero is
	// DefaultLockTimeout.
	LockTimeout time.Duration
}

// Result says what a run did, in repository-relative paths.
type Result struct {
	// Wrote are the files created, or overwritten with Force.
	Wrote []string
	// Updated are the shared files edited, each with what was added.
	Updated []Change
	// Kept are entries already present (with Force) and left as they were.
	Kept []Change
	// Skipped says what was not done and why.
	Skipped []string
	// Paths are the new service's command paths, one per method.
	Paths []string
}

// Change is an edit of a shared file.
type Change struct {
	File, What string
}

// data is what the templates see.
type data struct {
	// Module is the Go module path, from go.mod.
	Module string
	// Name is the service name ("widget"); Title the proto service's stem
	// ("Widget"); Package the proto package ("continuum.widget.v1");
	// GoProto the generated Go package ("widgetv1").
	Name, Title, Package, GoProto string
	// Alias is the service package's import name in wiring.go.
	Alias   string
	Methods []methodData
}

type methodData struct {
	// Name is the RPC name ("GetStatus"); Path its command path
	// ("widget/get-status").
	Name, Path string
}

// output is one file a run writes.
type output struct {
	rel     string
	content []byte
	mode    fs.FileMode
}

// Service scaffolds the service opts names. See the package comment.
func Service(opts Options) (*Result, error) {
	if opts.Root == "" {
		return nil, errors.New("generate: no repository root given")
	}
	if len(opts.Methods) == 0 {
		opts.Methods = []string{DefaultMethod}
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if err := ValidateName(opts.Name); err != nil {
		return nil, err
	}
	if err := ValidateMethods(opts.Name, opts.Methods); err != nil {
		return nil, err
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	module, err := modulePath(root)
	if err != nil {
		return nil, err
	}
	d := newData(module, opts.Name, opts.Methods)
	files, err := render(d)
	if err != nil {
		return nil, err
	}
	// Fail fast before staging anything; the check that counts is the one
	// under the lock.
	if found, err := existing(root, d); err != nil {
		return nil, err
	} else if len(found) > 0 && !opts.Force {
		return nil, &ExistsError{Name: d.Name, Found: found}
	}

	staging, err := os.MkdirTemp(root, ".continuum-generate-")
	if err != nil {
		return nil, fmt.Errorf("generate: staging directory: %w", err)
	}
	defer os.RemoveAll(staging)
	staged := make([]string, 0, len(files)+3)
	stage := func(o output) error {
		p := filepath.Join(staging, fmt.Sprintf("%02d-%s", len(staged), filepath.Base(o.rel)))
		if err := writeSynced(p, o.content, o.mode); err != nil {
			return fmt.Errorf("generate: stage %s: %w", o.rel, err)
		}
		staged = append(staged, p)
		return nil
	}
	for _, f := range files {
		if err := stage(f); err != nil {
			return nil, err
		}
	}

	release, err := lock(filepath.Join(root, LockFile), opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer release()

	found, err := existing(root, d)
	if err != nil {
		return nil, err
	}
	if len(found) > 0 && !opts.Force {
		return nil, &ExistsError{Name: d.Name, Found: found}
	}
	res := &Result{}
	for _, f := range files {
		res.Wrote = append(res.Wrote, f.rel)
	}
	for _, m := range d.Methods {
		res.Paths = append(res.Paths, m.Path)
	}
	edits, err := editShared(root, d, res)
	if err != nil {
		return nil, err
	}
	for _, e := range edits {
		if err := stage(e); err != nil {
			return nil, err
		}
	}
	if err := commit(root, append(files, edits...), staged); err != nil {
		return nil, err
	}
	return res, nil
}

func newData(module, name string, methods []string) data {
	d := data{
		Module: module, Name: name, Title: title(name), Package: protoPackage(name),
		GoProto: name + "v1", Alias: name + "svc",
	}
	for _, m := range methods {
		d.Methods = append(d.Methods, methodData{Name: m, Path: commandPath(name, m)})
	}
	return d
}

// targets are the files a run creates, relative to the root.
func targets(name string) (proto, service, config, errs, test string) {
	return filepath.Join("proto", "continuum", name, "v1", name+".proto"),
		filepath.Join("services", name, name+".go"),
		filepath.Join("services", name, "config.go"),
		filepath.Join("services", name, "errors.go"),
		filepath.Join("services", name, name+"_test.go")
}

// render renders the new files; Go files are gofmt'ed.
func render(d data) ([]output, error) {
	proto, service, config, errs, test := targets(d.Name)
	var out []output
	for _, f := range []struct{ tmpl, rel string }{
		{"proto.tmpl", proto},
		{"service.go.tmpl", service},
		{"config.go.tmpl", config},
		{"errors.go.tmpl", errs},
		{"service_test.go.tmpl", test},
	} {
		b, err := execute(f.tmpl, d)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(f.rel, ".go") {
			if b, err = format.Source(b); err != nil {
				return nil, fmt.Errorf("generate: %s does not format (a bug in the template): %w", f.rel, err)
			}
		}
		out = append(out, output{rel: f.rel, content: b, mode: 0o644})
	}
	return out, nil
}

func execute(name string, d data) ([]byte, error) {
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, name, d); err != nil {
		return nil, fmt.Errorf("generate: template %s: %w", name, err)
	}
	return buf.Bytes(), nil
}

// modulePath reads the module path from root/go.mod.
func modulePath(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("generate: %s is not the repository root (use --root): %w", root, err)
	}
	m := modfile.ModulePath(b)
	if m == "" {
		return "", fmt.Errorf("generate: %s has no module line", filepath.Join(root, "go.mod"))
	}
	return m, nil
}

// existing lists what of the service is already there: its directories
// and files, and its entries in the shared files.
func existing(root string, d data) ([]string, error) {
	var found []string
	for _, dir := range []string{filepath.Join("services", d.Name), filepath.Join("proto", "continuum", d.Name)} {
		if _, err := os.Stat(filepath.Join(root, dir)); err == nil {
			found = append(found, dir+"/")
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("generate: %w", err)
		}
	}
	wiring, err := os.ReadFile(filepath.Join(root, WiringFile))
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if ok, err := hasCase(wiring, d.Name); err != nil {
		return nil, fmt.Errorf("generate: %s: %w", WiringFile, err)
	} else if ok {
		found = append(found, fmt.Sprintf("case %q in %s", d.Name, WiringFile))
	}
	config, err := os.ReadFile(filepath.Join(root, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if ok, err := inAllServices(config, d.Name); err != nil {
		return nil, fmt.Errorf("generate: %s: %w", ConfigFile, err)
	} else if ok {
		found = append(found, fmt.Sprintf("%q in AllServices in %s", d.Name, ConfigFile))
	}
	compose, err := os.ReadFile(filepath.Join(root, ComposeFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("generate: %w", err)
	default:
		if ok, err := composeHasService(compose, d.Name); err != nil {
			return nil, fmt.Errorf("generate: %s: %w", ComposeFile, err)
		} else if ok {
			found = append(found, fmt.Sprintf("service %q in %s", d.Name, ComposeFile))
		}
	}
	return found, nil
}

// editShared computes the new contents of the shared files from what they
// hold now, and records the changes in res.
func editShared(root string, d data, res *Result) ([]output, error) {
	var out []output
	type edit struct {
		rel      string
		optional bool
		apply    func([]byte) ([]byte, []string, error)
	}
	for _, e := range []edit{
		{rel: ConfigFile, apply: func(b []byte) ([]byte, []string, error) { return editConfig(b, d) }},
		{rel: WiringFile, apply: func(b []byte) ([]byte, []string, error) { return editWiring(b, d) }},
		{rel: ComposeFile, optional: true, apply: func(b []byte) ([]byte, []string, error) { return editCompose(b, d) }},
	} {
		path := filepath.Join(root, e.rel)
		fi, err := os.Stat(path)
		if e.optional && errors.Is(err, fs.ErrNotExist) {
			res.Skipped = append(res.Skipped, e.rel+" does not exist: no compose entry written")
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		b, changes, err := e.apply(src)
		if err != nil {
			return nil, fmt.Errorf("generate: %s: %w", e.rel, err)
		}
		if bytes.Equal(b, src) {
			res.Kept = append(res.Kept, Change{File: e.rel, What: "already has " + d.Name + "; left as it is"})
			continue
		}
		res.Updated = append(res.Updated, Change{File: e.rel, What: strings.Join(changes, ", ")})
		out = append(out, output{rel: e.rel, content: b, mode: fi.Mode().Perm()})
	}
	return out, nil
}

// commit renames the staged files into place, in order. When a rename
// fails it puts back what it already replaced and removes what it created.
func commit(root string, outs []output, staged []string) (err error) {
	type undo struct {
		path    string
		old     []byte
		mode    fs.FileMode
		existed bool
	}
	var (
		done    []undo
		newDirs []string
	)
	defer func() {
		if err == nil {
			return
		}
		for i := len(done) - 1; i >= 0; i-- {
			u := done[i]
			var rerr error
			if u.existed {
				rerr = os.WriteFile(u.path, u.old, u.mode)
			} else {
				rerr = os.Remove(u.path)
			}
			if rerr != nil {
				err = errors.Join(err, fmt.Errorf("generate: roll back %s: %w", u.path, rerr))
			}
		}
		for i := len(newDirs) - 1; i >= 0; i-- {
			_ = os.Remove(newDirs[i]) // only when empty
		}
	}()
	for i, o := range outs {
		dst := filepath.Join(root, o.rel)
		dirs, err := mkdirs(filepath.Dir(dst))
		newDirs = append(newDirs, dirs...)
		if err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		u := undo{path: dst, mode: o.mode}
		if old, err := os.ReadFile(dst); err == nil {
			u.old, u.existed = old, true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("generate: %w", err)
		}
		if err := os.Rename(staged[i], dst); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		done = append(done, u)
	}
	return nil
}

// mkdirs creates dir and its missing parents, returning those it created,
// outermost first.
func mkdirs(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append([]string{d}, missing...)
		if filepath.Dir(d) == d {
			break
		}
	}
	for i, d := range missing {
		if err := os.Mkdir(d, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return missing[:i], err
		}
	}
	return missing, nil
}

// writeSynced writes a file and flushes it to disk, so a rename never
// publishes a file whose contents are not there yet.
func writeSynced(path string, b []byte, mode fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Creation honours the umask; the file is to have exactly mode.
	return os.Chmod(path, mode)
}
