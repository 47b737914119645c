// Package report is issue 8's one-command performance report: it runs every
// headline figure of docs/PERFORMANCE.md beside its anchor, in the same run
// on this machine, and prints one Markdown table (also written, with a JSON
// twin, to --out):
//
//	go run ./tools/bench report [--short] [--out dist/bench] [--only router,events,...]
//
// Each area calls the benchmark package behind its own subcommand as a
// library and takes its structured result (the same figures those commands
// print as their last JSON line): the router (tools/bench/routerbench),
// events against an embedded NATS server (tools/bench/events), the audit
// recorder (tools/bench/auditbench), genome paging against LRU and Belady
// (tools/bench/paging with its generators), hippocampus recall against its
// baselines (tools/bench/recallgen and recall) and gossip at 3, 10 and 30
// in-process members (tools/bench/meshbench). Every row names the command
// that reproduces its figure alone.
//
// The full run takes about 10 minutes; --short about 2; the unit test runs
// it once at tiny sizes so it cannot rot. An area that fails is reported as
// such and the others still run; the command then exits non-zero.
package report

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Row is one figure beside its anchor.
type Row struct {
	Area    string `json:"area"`
	Figure  string `json:"figure"`
	Goal    string `json:"goal"`
	Ours    string `json:"ours"`
	Anchor  string `json:"anchor"`
	Ratio   string `json:"ratio"`
	Met     string `json:"met"`
	Command string `json:"command"`
	// Value and AnchorValue are the compared numbers, in Unit.
	Value       float64 `json:"value"`
	AnchorValue float64 `json:"anchor_value,omitempty"`
	Unit        string  `json:"unit"`
}

// Met values.
const (
	MetYes  = "yes"
	MetNo   = "**no**"
	MetNone = "—" // no goal: the figure is reported beside its anchor
	MetFail = "**error**"
)

// Area is one area's run.
type Area struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	// LoadBefore and LoadAfter are the 1-minute load averages.
	LoadBefore float64 `json:"load_before"`
	LoadAfter  float64 `json:"load_after"`
	Error      string  `json:"error,omitempty"`
	// Raw is the benchmark package's own result.
	Raw any `json:"raw,omitempty"`
}

// Report is the whole run; its JSON is report.json.
type Report struct {
	Mode       string    `json:"mode"`
	Started    time.Time `json:"started"`
	Seconds    float64   `json:"seconds"`
	GoVersion  string    `json:"go_version"`
	OS         string    `json:"os"`
	Arch       string    `json:"arch"`
	CPUs       int       `json:"cpus"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	// LoadStart and LoadEnd are the 1, 5 and 15-minute load averages.
	LoadStart [3]float64 `json:"load_start"`
	LoadEnd   [3]float64 `json:"load_end"`
	Rows      []Row      `json:"rows"`
	Areas     []Area     `json:"areas"`
}

// areaFunc measures one area and returns its rows and raw result.
type areaFunc func(ctx context.Context, s Sizes, out string) ([]Row, any, error)

// areas in the order they run and print.
var areas = []struct {
	name string
	run  areaFunc
}{
	{"router", runRouter},
	{"events", runEvents},
	{"audit", runAudit},
	{"genome", runGenome},
	{"hippocampus", runHippocampus},
	{"mesh", runMesh},
}

// AreaNames lists the areas.
func AreaNames() []string {
	names := make([]string, len(areas))
	for i, a := range areas {
		names[i] = a.name
	}
	return names
}

// Run is the report subcommand.
func Run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench report", flag.ContinueOnError)
	fs.SetOutput(out)
	short := fs.Bool("short", false, "small sizes: about 2 minutes instead of about 10")
	dir := fs.String("out", filepath.Join("dist", "bench"), "directory for report.md, report.json and the areas' own reports")
	only := fs.String("only", "", "comma-separated areas to run: "+strings.Join(AreaNames(), ","))
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := Full()
	if *short {
		s = Short()
	}
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	rep, err := Measure(context.Background(), s, names, *dir, out)
	if err != nil {
		return err
	}
	if failed := rep.Failed(); len(failed) > 0 {
		return fmt.Errorf("areas failed: %s (see %s)", strings.Join(failed, ", "), filepath.Join(*dir, "report.md"))
	}
	return nil
}

// Measure runs the named areas (every area when names is empty) at sizes
// s, writes report.md and report.json under dir, and prints progress and
// then the Markdown report to progress.
func Measure(ctx context.Context, s Sizes, names []string, dir string, progress io.Writer) (*Report, error) {
	for _, n := range names {
		if !slices.Contains(AreaNames(), n) {
			return nil, fmt.Errorf("unknown area %q (one of %s)", n, strings.Join(AreaNames(), ", "))
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rep := &Report{
		Mode: s.Mode, Started: time.Now().UTC(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), LoadStart: loadAvg(),
	}
	for _, a := range areas {
		if len(names) > 0 && !slices.Contains(names, a.name) {
			continue
		}
		fmt.Fprintf(progress, "bench report: %s ...\n", a.name)
		ar := Area{Name: a.name, LoadBefore: loadAvg()[0]}
		start := time.Now()
		rows, raw, err := a.run(ctx, s, dir)
		ar.Seconds = roundTo(time.Since(start).Seconds(), 1)
		ar.LoadAfter = loadAvg()[0]
		ar.Raw = raw
		if err != nil {
			ar.Error = err.Error()
			rows = append(rows, Row{Area: a.name, Figure: "(the area did not finish)", Ours: err.Error(), Met: MetFail})
			fmt.Fprintf(progress, "bench report: %s failed after %.0f s: %v\n", a.name, ar.Seconds, err)
		} else {
			fmt.Fprintf(progress, "bench report: %s done in %.0f s\n", a.name, ar.Seconds)
		}
		rep.Rows = append(rep.Rows, rows...)
		rep.Areas = append(rep.Areas, ar)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	rep.Seconds = roundTo(time.Since(rep.Started).Seconds(), 1)
	rep.LoadEnd = loadAvg()
	md := rep.Markdown()
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := errors.Join(
		os.WriteFile(filepath.Join(dir, "report.md"), []byte(md), 0o644),
		os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644),
	); err != nil {
		return nil, err
	}
	fmt.Fprintln(progress)
	fmt.Fprint(progress, md)
	return rep, nil
}

// Failed lists the areas that did not finish.
func (r *Report) Failed() []string {
	var out []string
	for _, a := range r.Areas {
		if a.Error != "" {
			out = append(out, a.Name)
		}
	}
	return out
}

// Markdown renders the report: one table of every figure beside its
// anchor, then how each area ran.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Bench report (%s)\n\n", r.Mode)
	fmt.Fprintf(&b, "Started %s, took %.0f s. %s/%s, %d CPUs, GOMAXPROCS %d, %s. Load average (1/5/15 min) %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end.\n\n",
		r.Started.Format(time.RFC3339), r.Seconds, r.OS, r.Arch, r.CPUs, r.GOMAXPROCS, r.GoVersion,
		r.LoadStart[0], r.LoadStart[1], r.LoadStart[2], r.LoadEnd[0], r.LoadEnd[1], r.LoadEnd[2])
	regen := "`make bench` (`go run ./tools/bench report`)"
	if r.Mode == ModeShort {
		regen = "`make bench-short` (`go run ./tools/bench report --short`)"
	}
	fmt.Fprintf(&b, "Every anchor was measured in this run on this machine, except where the anchor column says \"published\". Regenerate with %s.\n\n", regen)
	b.WriteString("| area | figure | goal | ours | anchor | ratio | met? | command |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, row := range r.Rows {
		cmd := ""
		if row.Command != "" {
			cmd = "`" + row.Command + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", row.Area, cell(row.Figure), cell(row.Goal), cell(row.Ours),
			cell(row.Anchor), cell(row.Ratio), row.Met, cmd)
	}
	b.WriteString("\n| area | seconds | load average before → after | error |\n| --- | --- | --- | --- |\n")
	for _, a := range r.Areas {
		fmt.Fprintf(&b, "| %s | %.0f | %.2f → %.2f | %s |\n", a.Name, a.Seconds, a.LoadBefore, a.LoadAfter, cell(a.Error))
	}
	return b.String()
}

// cell escapes a table cell.
func cell(s string) string {
	if s == "" {
		return "—"
	}
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// loadAvg reads the load averages; zeros where the system does not say.
func loadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	_, _ = fmt.Sscan(string(b), &l[0], &l[1], &l[2])
	return l
}

func roundTo(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}
