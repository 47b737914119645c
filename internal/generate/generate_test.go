package generate

import (
	"bytes"
	"errors"
	"go/format"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
)

// fixture copies testdata/repo (copies of the files the generator edits,
// with their markers) into a temporary root, with a go.mod.
func fixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	copyTree(t, filepath.Join("testdata", "repo"), root)
	gomod := "module github.com/continuum-mesh/continuum\n\ngo 1.26.0\n"
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot is every file and directory under root, with contents.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			out[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func read(t *testing.T, root, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// isSubsequence reports whether every line of orig appears in edited, in
// order: the edit only inserted.
func isSubsequence(orig, edited string) bool {
	want := strings.Split(orig, "\n")
	i := 0
	for _, l := range strings.Split(edited, "\n") {
		if i < len(want) && l == want[i] {
			i++
		}
	}
	return i == len(want)
}

var newFiles = []string{
	"proto/continuum/widget/v1/widget.proto",
	"services/widget/widget.go",
	"services/widget/config.go",
	"services/widget/errors.go",
	"services/widget/widget_test.go",
}

func TestServiceWritesEverything(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	before := snapshot(t, root)
	res, err := Service(Options{Root: root, Name: "widget", Methods: []string{"Ping", "GetHTTPStatus"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(newFiles, res.Wrote); diff != "" {
		t.Errorf("Wrote (-want +got):\n%s", diff)
	}
	wantUpdated := []Change{
		{File: ConfigFile, What: `"widget" in AllServices`},
		{File: WiringFile, What: `case "widget" in wire(), import widgetsvc "github.com/continuum-mesh/continuum/services/widget"`},
		{File: ComposeFile, What: "service widget, volume widget-data"},
	}
	if diff := cmp.Diff(wantUpdated, res.Updated); diff != "" {
		t.Errorf("Updated (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"widget/ping", "widget/get-h-t-t-p-status"}, res.Paths); diff != "" {
		t.Errorf("Paths (-want +got):\n%s", diff)
	}

	// Every Go file is gofmt-clean and parses.
	for _, rel := range append(slices.Clone(newFiles[1:]), WiringFile, ConfigFile) {
		src := read(t, root, rel)
		formatted, err := format.Source([]byte(src))
		if err != nil {
			t.Errorf("%s does not parse: %v", rel, err)
			continue
		}
		if string(formatted) != src {
			t.Errorf("%s is not gofmt-clean", rel)
		}
	}

	proto := read(t, root, newFiles[0])
	for _, want := range []string{
		"package continuum.widget.v1;",
		`option go_package = "github.com/continuum-mesh/continuum/proto/continuum/widget/v1;widgetv1";`,
		"service WidgetService {",
		"rpc Ping(PingRequest) returns (PingResponse);",
		"rpc GetHTTPStatus(GetHTTPStatusRequest) returns (GetHTTPStatusResponse);",
		"message GetHTTPStatusResponse {",
		"Idempotent: yes.",
		"(command path widget/get-h-t-t-p-status)",
	} {
		if !strings.Contains(proto, want) {
			t.Errorf("proto lacks %q:\n%s", want, proto)
		}
	}
	svc := read(t, root, "services/widget/widget.go")
	for _, want := range []string{
		"package widget",
		"func New(cfg Config, deps Deps) (*Service, error)",
		"func (s *Service) Register(r grpc.ServiceRegistrar)",
		"func (s *Service) Ping(ctx context.Context, req *widgetv1.PingRequest) (*widgetv1.PingResponse, error)",
		"func (s *Service) GetHTTPStatus(ctx context.Context, req *widgetv1.GetHTTPStatusRequest) (*widgetv1.GetHTTPStatusResponse, error)",
	} {
		if !strings.Contains(svc, want) {
			t.Errorf("widget.go lacks %q", want)
		}
	}
	if strings.Contains(svc, "Unimplemented desc") || strings.Contains(svc, "codes.Unimplemented") {
		t.Error("widget.go answers Unimplemented")
	}
	test := read(t, root, "services/widget/widget_test.go")
	for _, want := range []string{"t.Parallel()", "rpctest.Start(", "protocmp.Transform()", "rpcerr.Reason(err)", `name: "GetHTTPStatus"`, `path: "widget/get-h-t-t-p-status"`} {
		if !strings.Contains(test, want) {
			t.Errorf("widget_test.go lacks %q", want)
		}
	}

	// The shared files only gained lines.
	wiring := read(t, root, WiringFile)
	for _, want := range []string{
		"\t\tcase \"widget\":\n\t\t\tsvc, err := widgetsvc.New(widgetsvc.Config{Node: cfg.Node}, widgetsvc.Deps{Logger: n.log.With(\"service\", \"widget\"), Now: time.Now})\n",
		"\t\t\tsvc.Register(n.server)\n\t\t// continuum:generate:wire",
		"\twidgetsvc \"github.com/continuum-mesh/continuum/services/widget\"\n",
	} {
		if !strings.Contains(wiring, want) {
			t.Errorf("wiring.go lacks %q:\n%s", want, wiring)
		}
	}
	config := read(t, root, ConfigFile)
	if !strings.Contains(config, "\t\"widget\",\n\t// continuum:generate:services") {
		t.Errorf("config.go lacks the name above the marker:\n%s", config)
	}
	compose := read(t, root, ComposeFile)
	for _, rel := range []string{WiringFile, ConfigFile, ComposeFile} {
		if !isSubsequence(before[rel], read(t, root, rel)) {
			t.Errorf("%s lost or changed lines it had", rel)
		}
	}
	var c struct {
		Services map[string]struct {
			Image    string   `yaml:"image"`
			Hostname string   `yaml:"hostname"`
			Command  []string `yaml:"command"`
			Volumes  []string `yaml:"volumes"`
			Networks []string `yaml:"networks"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal([]byte(compose), &c); err != nil {
		t.Fatalf("compose does not parse: %v", err)
	}
	w, g := c.Services["widget"], c.Services["genome"]
	if w.Image == "" || w.Image != g.Image || w.Hostname != "widget" || !slices.Equal(w.Networks, g.Networks) {
		t.Errorf("widget entry %+v does not mirror genome %+v", w, g)
	}
	if !slices.Equal(w.Command[:4], []string{"serve", "widget", "--node", "widget"}) || !slices.Contains(w.Volumes, "widget-data:/data") {
		t.Errorf("widget entry: %+v", w)
	}
	if _, ok := c.Volumes["widget-data"]; !ok {
		t.Errorf("volume widget-data not declared: %v", c.Volumes)
	}
	if !strings.Contains(compose, "    volumes: [certs:/certs, tokens:/tokens:ro, widget-data:/data]\n\n  # continuum:generate:compose") {
		t.Errorf("compose entry not above the marker:\n%s", compose)
	}

	// Nothing else is left behind: no staging directory, no lock.
	after := snapshot(t, root)
	for p := range after {
		if _, ok := before[p]; ok {
			continue
		}
		if !slices.Contains(newFiles, p) && !slices.Contains([]string{"proto/", "proto/continuum/", "proto/continuum/widget/", "proto/continuum/widget/v1/", "services/", "services/widget/"}, p) {
			t.Errorf("unexpected %s left in the tree", p)
		}
	}
}

// TestGeneratedProtoLints runs buf lint (STANDARD) on a generated proto
// when the repository's bin/buf is installed (make tools).
func TestGeneratedProtoLints(t *testing.T) {
	t.Parallel()
	buf, err := filepath.Abs(filepath.Join("..", "..", "bin", "buf"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(buf); err != nil {
		t.Skip("bin/buf is not installed (make tools)")
	}
	d := newData("github.com/continuum-mesh/continuum", "widget", []string{"Ping", "Echo", "GetHTTPStatus", "V2"})
	b, err := execute("proto.tmpl", d)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "proto", "continuum", "widget", "v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"buf.yaml":                               "version: v2\nmodules:\n  - path: proto\nlint:\n  use:\n    - STANDARD\n",
		"proto/continuum/widget/v1/widget.proto": string(b),
	}
	for rel, content := range files {
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(buf, "lint")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buf lint: %v\n%s\n%s", err, out, b)
	}
}

func TestServiceRefusesAnExistingName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		found []string
	}{
		{
			name: "generated before",
			setup: func(t *testing.T, root string) {
				if _, err := Service(Options{Root: root, Name: "widget"}); err != nil {
					t.Fatal(err)
				}
			},
			found: []string{
				"services/widget/", "proto/continuum/widget/", `case "widget" in pkg/node/wiring.go`,
				`"widget" in AllServices in pkg/node/config.go`, `service "widget" in docker-compose.yml`,
			},
		},
		{
			name:  "service directory",
			setup: func(t *testing.T, root string) { mkdir(t, root, "services/widget") },
			found: []string{"services/widget/"},
		},
		{
			name:  "proto directory",
			setup: func(t *testing.T, root string) { mkdir(t, root, "proto/continuum/widget/v1") },
			found: []string{"proto/continuum/widget/"},
		},
		{
			name: "wiring case",
			setup: func(t *testing.T, root string) {
				replace(t, root, WiringFile, "\t\t"+WiringMarker, "\t\tcase \"widget\":\n\t\t"+WiringMarker)
			},
			found: []string{`case "widget" in pkg/node/wiring.go`},
		},
		{
			name: "AllServices entry",
			setup: func(t *testing.T, root string) {
				replace(t, root, ConfigFile, `"mesh", "debug", "router",`, `"mesh", "debug", "router", "widget",`)
			},
			found: []string{`"widget" in AllServices in pkg/node/config.go`},
		},
		{
			name: "compose entry",
			setup: func(t *testing.T, root string) {
				replace(t, root, ComposeFile, "  "+ComposeMarker, "  widget:\n    image: x\n\n  "+ComposeMarker)
			},
			found: []string{`service "widget" in docker-compose.yml`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := fixture(t)
			tc.setup(t, root)
			before := snapshot(t, root)
			_, err := Service(Options{Root: root, Name: "widget", Methods: []string{"Echo"}})
			var exists *ExistsError
			if !errors.As(err, &exists) {
				t.Fatalf("err = %v, want *ExistsError", err)
			}
			if diff := cmp.Diff(tc.found, exists.Found); diff != "" {
				t.Errorf("Found (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, snapshot(t, root)); diff != "" {
				t.Errorf("a refused run changed the tree (-before +after):\n%s", diff)
			}
		})
	}
}

func mkdir(t *testing.T, root, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
		t.Fatal(err)
	}
}

func replace(t *testing.T, root, rel, old, new string) {
	t.Helper()
	src := read(t, root, rel)
	if !strings.Contains(src, old) {
		t.Fatalf("%s lacks %q", rel, old)
	}
	if err := os.WriteFile(filepath.Join(root, rel), []byte(strings.Replace(src, old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestServiceForce(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	if _, err := Service(Options{Root: root, Name: "widget", Methods: []string{"Ping"}}); err != nil {
		t.Fatal(err)
	}
	shared := map[string]string{}
	for _, rel := range []string{WiringFile, ConfigFile, ComposeFile} {
		shared[rel] = read(t, root, rel)
	}
	res, err := Service(Options{Root: root, Name: "widget", Methods: []string{"Echo"}, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(newFiles, res.Wrote); diff != "" {
		t.Errorf("Wrote (-want +got):\n%s", diff)
	}
	if len(res.Updated) != 0 || len(res.Kept) != 3 {
		t.Errorf("Updated %v, Kept %v; want the three shared files kept", res.Updated, res.Kept)
	}
	proto := read(t, root, newFiles[0])
	if !strings.Contains(proto, "rpc Echo(") || strings.Contains(proto, "rpc Ping(") {
		t.Errorf("--force did not replace the proto:\n%s", proto)
	}
	for rel, want := range shared {
		if got := read(t, root, rel); got != want {
			t.Errorf("--force changed %s though it already wired the service", rel)
		}
	}
}

func TestServiceRefusesBadInput(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	before := snapshot(t, root)
	tests := []struct {
		name    string
		opts    Options
		wantErr any
	}{
		{"hyphen", Options{Name: "my-svc"}, new(*InvalidNameError)},
		{"built-in service", Options{Name: "router", Force: true}, new(*InvalidNameError)},
		{"keyword", Options{Name: "func"}, new(*InvalidNameError)},
		{"lower-case method", Options{Name: "widget", Methods: []string{"ping"}}, new(*InvalidMethodError)},
		{"reserved method", Options{Name: "widget", Methods: []string{"Register"}}, new(*InvalidMethodError)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.Root = root
			_, err := Service(tc.opts)
			if err == nil || !errors.As(err, tc.wantErr) {
				t.Fatalf("err = %v, want %T", err, tc.wantErr)
			}
		})
	}
	t.Cleanup(func() {
		if diff := cmp.Diff(before, snapshot(t, root)); diff != "" {
			t.Errorf("refused runs changed the tree (-before +after):\n%s", diff)
		}
	})
}

func TestServiceNeedsItsMarkers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		want  string
	}{
		{"no wiring marker", func(t *testing.T, root string) { replace(t, root, WiringFile, WiringMarker, "// gone") }, WiringMarker},
		{"wiring marker twice", func(t *testing.T, root string) {
			replace(t, root, WiringFile, "\t\t"+WiringMarker, "\t\t"+WiringMarker+"\n\t\t"+WiringMarker)
		}, "2 times"},
		{"wiring marker outside the switch", func(t *testing.T, root string) {
			replace(t, root, WiringFile, "\t\t"+WiringMarker, "\t\t// moved")
			replace(t, root, WiringFile, "\treturn nil\n}\n\n// openPolicy", "\t"+WiringMarker+"\n\treturn nil\n}\n\n// openPolicy")
		}, "not inside a switch"},
		{"no services marker", func(t *testing.T, root string) { replace(t, root, ConfigFile, ConfigMarker, "// gone") }, ConfigMarker},
		{"no compose marker", func(t *testing.T, root string) { replace(t, root, ComposeFile, ComposeMarker, "# gone") }, ComposeMarker},
		{"compose marker at the wrong indentation", func(t *testing.T, root string) {
			replace(t, root, ComposeFile, "  "+ComposeMarker, ComposeMarker)
		}, ComposeMarker},
		{"compose without the node anchor", func(t *testing.T, root string) {
			src := strings.ReplaceAll(read(t, root, ComposeFile), "<<: *node", "image: x")
			if err := os.WriteFile(filepath.Join(root, ComposeFile), []byte(strings.Replace(src, "&node", "", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "&node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := fixture(t)
			tc.setup(t, root)
			before := snapshot(t, root)
			_, err := Service(Options{Root: root, Name: "widget"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
			if diff := cmp.Diff(before, snapshot(t, root)); diff != "" {
				t.Errorf("a failed run changed the tree (-before +after):\n%s", diff)
			}
		})
	}
}

func TestServiceWithoutCompose(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	if err := os.Remove(filepath.Join(root, ComposeFile)); err != nil {
		t.Fatal(err)
	}
	res, err := Service(Options{Root: root, Name: "widget"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Updated) != 2 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], ComposeFile) {
		t.Errorf("Updated %v, Skipped %v", res.Updated, res.Skipped)
	}
	if _, err := os.Stat(filepath.Join(root, ComposeFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("compose file created: %v", err)
	}
}

// TestServiceAgainstTheRepository runs the generator on copies of the
// repository's own shared files, so a marker lost there fails here.
func TestServiceAgainstTheRepository(t *testing.T) {
	t.Parallel()
	repo := filepath.Join("..", "..")
	root := t.TempDir()
	for _, rel := range []string{"go.mod", WiringFile, ConfigFile, ComposeFile} {
		b, err := os.ReadFile(filepath.Join(repo, rel))
		if errors.Is(err, fs.ErrNotExist) && rel == ComposeFile {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		mkdir(t, root, filepath.Dir(rel))
		if err := os.WriteFile(filepath.Join(root, rel), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Service(Options{Root: root, Name: "widget", Methods: []string{"Ping", "Echo"}}); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentRuns races two runs for one name: exactly one wins, the
// other is refused, and the tree holds the winner's service alone.
func TestConcurrentRuns(t *testing.T) {
	t.Parallel()
	for round := range 8 {
		root := fixture(t)
		methods := [2][]string{{"Alpha"}, {"Beta"}}
		var (
			wg   sync.WaitGroup
			errs [2]error
		)
		for i := range 2 {
			wg.Go(func() {
				_, errs[i] = Service(Options{Root: root, Name: "widget", Methods: methods[i]})
			})
		}
		wg.Wait()
		winner, loser := 0, 1
		if errs[0] != nil {
			winner, loser = 1, 0
		}
		if errs[winner] != nil {
			t.Fatalf("round %d: both runs failed: %v; %v", round, errs[0], errs[1])
		}
		var exists *ExistsError
		if !errors.As(errs[loser], &exists) {
			t.Fatalf("round %d: loser err = %v, want *ExistsError", round, errs[loser])
		}
		checkOneService(t, root, methods[winner][0], methods[loser][0])
	}
}

// TestConcurrentForcedRuns: with --force both runs succeed, one after the
// other, and the tree holds the last one's service alone.
func TestConcurrentForcedRuns(t *testing.T) {
	t.Parallel()
	for round := range 8 {
		root := fixture(t)
		if _, err := Service(Options{Root: root, Name: "widget", Methods: []string{"Zero"}}); err != nil {
			t.Fatal(err)
		}
		methods := [2]string{"Alpha", "Beta"}
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				if _, err := Service(Options{Root: root, Name: "widget", Methods: []string{methods[i]}, Force: true}); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		wg.Wait()
		last, other := methods[0], methods[1]
		if strings.Contains(read(t, root, newFiles[0]), "rpc Beta(") {
			last, other = other, last
		}
		checkOneService(t, root, last, other)
	}
}

// checkOneService checks that every generated file holds method and none
// holds other, that the shared files name the service once, and that no
// staging directory or lock is left.
func checkOneService(t *testing.T, root, method, other string) {
	t.Helper()
	for _, rel := range []string{newFiles[0], newFiles[1], newFiles[4]} {
		src := read(t, root, rel)
		if !strings.Contains(src, method+"Request") || strings.Contains(src, other+"Request") {
			t.Errorf("%s is not %s's alone:\n%s", rel, method, src)
		}
	}
	for rel, entry := range map[string]string{WiringFile: `case "widget":`, ConfigFile: `"widget",`, ComposeFile: "\n  widget:\n"} {
		if n := strings.Count(read(t, root, rel), entry); n != 1 {
			t.Errorf("%s has %q %d times", rel, entry, n)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".continuum-generate") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestServiceWaitsForTheLock(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	release, err := lock(filepath.Join(root, LockFile), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Service(Options{Root: root, Name: "widget", LockTimeout: 50 * time.Millisecond})
	var busy *BusyError
	if !errors.As(err, &busy) {
		t.Fatalf("err = %v, want *BusyError", err)
	}
	release()
	if _, err := os.Stat(filepath.Join(root, "services", "widget")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a run that did not get the lock wrote files: %v", err)
	}
	if _, err := Service(Options{Root: root, Name: "widget"}); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, LockFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file left behind: %v", err)
	}
}

// TestCommitRollsBack: when a rename fails midway, what was already moved
// is taken back.
func TestCommitRollsBack(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	if _, err := Service(Options{Root: root, Name: "widget"}); err != nil {
		t.Fatal(err)
	}
	// errors.go becomes a non-empty directory: the rename onto it fails
	// after the proto, widget.go and config.go were replaced.
	errs := filepath.Join(root, "services", "widget", "errors.go")
	if err := os.Remove(errs); err != nil {
		t.Fatal(err)
	}
	mkdir(t, root, "services/widget/errors.go/x")
	before := snapshot(t, root)
	_, err := Service(Options{Root: root, Name: "widget", Methods: []string{"Echo"}, Force: true})
	if err == nil {
		t.Fatal("the run succeeded")
	}
	if diff := cmp.Diff(before, snapshot(t, root)); diff != "" {
		t.Errorf("a failed commit was not rolled back (-before +after):\n%s", diff)
	}
}

func TestNoStagingLeftOnSuccess(t *testing.T) {
	t.Parallel()
	root := fixture(t)
	if _, err := Service(Options{Root: root, Name: "widget"}); err != nil {
		t.Fatal(err)
	}
	matches, err := filepath.Glob(filepath.Join(root, ".continuum-generate*"))
	if err != nil || len(matches) != 0 {
		t.Errorf("left behind: %v %v", matches, err)
	}
}

func TestAddVolume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		added          bool
	}{
		{
			"appended after the last entry", "services: {}\nvolumes:\n  a:\n  b:\n    driver: local\n\nnetworks:\n  mesh:\n",
			"services: {}\nvolumes:\n  a:\n  b:\n    driver: local\n  w-data:\n\nnetworks:\n  mesh:\n", true,
		},
		{"at the end of the file", "services: {}\nvolumes:\n    a:\n", "services: {}\nvolumes:\n    a:\n    w-data:\n", true},
		{"no volumes section", "services: {}\n", "services: {}\n\nvolumes:\n  w-data:\n", true},
		{"empty volumes section", "volumes:\nservices: {}\n", "volumes:\n  w-data:\nservices: {}\n", true},
		{"already declared", "volumes:\n  w-data:\n", "volumes:\n  w-data:\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, added, err := addVolume([]byte(tc.in), "w-data")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" || added != tc.added {
				t.Errorf("added %v (want %v), text (-want +got):\n%s", added, tc.added, diff)
			}
		})
	}
	if _, _, err := addVolume([]byte("volumes: {a: {}}\n"), "w-data"); err == nil {
		t.Error("a flow-style volumes map was edited")
	}
}

func TestAddImport(t *testing.T) {
	t.Parallel()
	const module = "example.com/m"
	src := "package p\n\nimport (\n\t\"fmt\" // why\n\n\t\"example.com/other\"\n\n\t\"example.com/m/a\"\n)\n"
	tests := []struct {
		name, alias, path, want string
	}{
		{"standard library", "", "time", "package p\n\nimport (\n\t\"fmt\" // why\n\t\"time\"\n\n\t\"example.com/other\"\n\n\t\"example.com/m/a\"\n)\n"},
		{"this module", "bsvc", "example.com/m/b", "package p\n\nimport (\n\t\"fmt\" // why\n\n\t\"example.com/other\"\n\n\t\"example.com/m/a\"\n\tbsvc \"example.com/m/b\"\n)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := addImport([]byte(src), module, tc.alias, tc.path)
			if err != nil {
				t.Fatal(err)
			}
			formatted, err := format.Source(got)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(formatted)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	got, err := addImport([]byte("package p\n\nfunc f() {}\n"), module, "", "time")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, []byte("package p\nimport \"time\"\n")) {
		t.Errorf("no import block: %q", got)
	}
}
