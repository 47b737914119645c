// Package paging is the genome trace replayer and its report:
//
//	go run ./tools/bench paging --trace FILE --capacity N [--policy w-tinylfu]
//	go run ./tools/bench paging gen --kind zipf [--requests N --keys N --capacity N --seed N] > FILE
//	go run ./tools/bench paging report [--capacity N --requests N --keys N]
//
// A trace has one access per line, "<persona> <artifact-key>", each key a
// unit-size page; blank lines and lines starting with # are skipped. The
// replay runs the trace through the genome manager's real code (New,
// PutArtifact, PageIn) with a Fast tier of N pages above a home tier that
// holds every artifact, and counts a page-in without a fault as a hit. It
// also computes, on the same trace, plain LRU and Belady's optimum (the
// offline MIN policy, allowed to bypass: a page used farther in the future
// than everything cached is not cached). The last line of output is JSON
// with requests, hits and hit_ratio (the manager's), and the baselines.
package paging

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/continuum-mesh/continuum/services/genome"
	"github.com/continuum-mesh/continuum/tools/bench/paging/gen"
)

// Run runs the paging subcommand with its arguments.
func Run(args []string, out io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "gen":
			return runGen(args[1:], out)
		case "report":
			return runReport(args[1:], out)
		}
	}
	return runReplay(args, out)
}

func runReplay(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("paging", flag.ContinueOnError)
	fs.SetOutput(out)
	tracePath := fs.String("trace", "", "trace file: one '<persona> <artifact-key>' per line ('-' reads stdin)")
	capacity := fs.Int("capacity", 0, "Fast tier capacity in pages")
	policy := fs.String("policy", genome.PolicyWTinyLFU, "Fast tier eviction policy: "+strings.Join(genome.Policies(), ", "))
	baselines := fs.Bool("baselines", true, "also compute LRU and Belady's optimum on the same trace")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tracePath == "" || *capacity <= 0 {
		return errors.New("paging: --trace and a positive --capacity are required")
	}
	var r io.Reader = os.Stdin
	if *tracePath != "-" {
		f, err := os.Open(*tracePath)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	tr, err := ReadTrace(r)
	if err != nil {
		return err
	}
	res, err := Compare(tr, *capacity, *policy, *baselines)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "trace %s: %d requests, %d keys, %d personas, capacity %d pages\n", *tracePath, res.Requests, tr.Keys(), len(tr.personas), *capacity)
	fmt.Fprintf(out, "manager (%s): hit ratio %.4f in %s\n", *policy, res.HitRatio, res.Elapsed)
	if *baselines {
		fmt.Fprintf(out, "lru: %.4f  belady: %.4f  belady with bypass: %.4f  manager/belady: %.3f\n",
			*res.LRUHitRatio, *res.BeladyHitRatio, *res.BypassHitRatio, *res.OfBelady)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, string(b))
	return nil
}

func runGen(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("paging gen", flag.ContinueOnError)
	fs.SetOutput(out)
	var s gen.Spec
	fs.StringVar(&s.Kind, "kind", "zipf", "trace kind: "+strings.Join(gen.Kinds(), ", "))
	fs.IntVar(&s.Requests, "requests", 0, "accesses (default 1000000)")
	fs.IntVar(&s.Keys, "keys", 0, "key universe (default 100000)")
	fs.IntVar(&s.Capacity, "capacity", 0, "cache size the loop and scans are sized for (default 2000)")
	fs.IntVar(&s.Personas, "personas", 0, "personas of the personas trace (default 8)")
	fs.Float64Var(&s.Skew, "skew", 0, "Zipf exponent (default 0.9)")
	fs.Uint64Var(&s.Seed, "seed", 0, "random seed (default 1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return gen.Write(out, s)
}

// Trace is a parsed trace: accesses as indexes into its personas and keys.
type Trace struct {
	personas []string
	keys     []string
	persona  []int32
	key      []int32
}

// Len is the number of accesses.
func (t *Trace) Len() int { return len(t.key) }

// Keys is the number of distinct keys.
func (t *Trace) Keys() int { return len(t.keys) }

// ReadTrace parses a trace.
func ReadTrace(r io.Reader) (*Trace, error) {
	t := &Trace{}
	pidx := map[string]int32{}
	kidx := map[string]int32{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.Fields(s)
		if len(f) != 2 {
			return nil, fmt.Errorf("trace line %d: want '<persona> <artifact-key>', got %q", line, s)
		}
		p, ok := pidx[f[0]]
		if !ok {
			p = int32(len(t.personas))
			pidx[f[0]] = p
			t.personas = append(t.personas, f[0])
		}
		k, ok := kidx[f[1]]
		if !ok {
			k = int32(len(t.keys))
			kidx[f[1]] = k
			t.keys = append(t.keys, f[1])
		}
		t.persona = append(t.persona, p)
		t.key = append(t.key, k)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(t.key) == 0 {
		return nil, errors.New("trace is empty")
	}
	return t, nil
}

// Result is a replay's outcome; it is the JSON of the last output line.
type Result struct {
	Requests       int                `json:"requests"`
	Hits           int                `json:"hits"`
	HitRatio       float64            `json:"hit_ratio"`
	Policy         string             `json:"policy"`
	Capacity       int                `json:"capacity"`
	LRUHitRatio    *float64           `json:"lru_hit_ratio,omitempty"`
	BeladyHitRatio *float64           `json:"belady_hit_ratio,omitempty"`
	BypassHitRatio *float64           `json:"belady_bypass_hit_ratio,omitempty"`
	OfBelady       *float64           `json:"of_belady,omitempty"`
	Personas       map[string]float64 `json:"persona_hit_ratio,omitempty"`
	Elapsed        time.Duration      `json:"elapsed_ns"`
}

// Compare replays tr through the manager and, when baselines is set,
// computes LRU and Belady on it.
func Compare(tr *Trace, capacity int, policy string, baselines bool) (Result, error) {
	hits, perPersona, elapsed, err := Replay(tr, capacity, policy)
	if err != nil {
		return Result{}, err
	}
	res := Result{Requests: tr.Len(), Hits: hits, HitRatio: ratio(hits, tr.Len()), Policy: policy, Capacity: capacity, Elapsed: elapsed}
	if len(tr.personas) > 1 {
		res.Personas = perPersona
	}
	if baselines {
		lru, bel, byp := ratio(LRU(tr, capacity), tr.Len()), ratio(Belady(tr, capacity), tr.Len()), ratio(BeladyBypass(tr, capacity), tr.Len())
		res.LRUHitRatio, res.BeladyHitRatio, res.BypassHitRatio = &lru, &bel, &byp
		if bel > 0 {
			of := res.HitRatio / bel
			res.OfBelady = &of
		}
	}
	return res, nil
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// unit is the size of a trace page: each key becomes an artifact of this
// many bytes (derived from the key, so distinct keys are distinct
// artifacts).
const unit = 32

// Replay runs tr through a genome manager whose Fast tier holds capacity
// pages, above a memory home tier holding every artifact. It returns the
// hits (page-ins without a fault), per-persona hit ratios and the time the
// page-ins took.
func Replay(tr *Trace, capacity int, policy string) (int, map[string]float64, time.Duration, error) {
	ctx := context.Background()
	svc, err := genome.New(genome.Config{Node: "replay", Tiers: []genome.TierConfig{
		{Role: genome.RoleFast, CapacityBytes: uint64(capacity) * unit, Policy: policy},
		{Role: genome.RoleWarm, CapacityBytes: uint64(tr.Keys()+1) * unit},
	}}, genome.Deps{})
	if err != nil {
		return 0, nil, 0, err
	}
	defer svc.Close()
	personas := make([]genome.PersonaID, len(tr.personas))
	for i, name := range tr.personas {
		personas[i] = genome.PersonaID(uuid.NewSHA1(uuid.NameSpaceOID, []byte("persona/"+name)))
		if _, err := svc.RegisterPersona(ctx, personas[i], 1<<62); err != nil {
			return 0, nil, 0, err
		}
	}
	refs := make([]genome.PageRef, len(tr.keys))
	put := make([]bool, len(tr.keys))
	hits := 0
	perHits := make([]int, len(tr.personas))
	perReqs := make([]int, len(tr.personas))
	var elapsed time.Duration
	for i, k := range tr.key {
		if !put[k] {
			content := sha256.Sum256([]byte("trace-key/" + tr.keys[k]))
			data := content[:unit]
			sum := sha256.Sum256(data)
			a, err := svc.PutArtifact(ctx, genome.ArtifactHeader{SHA256: fmt.Sprintf("%x", sum), Size: unit}, strings.NewReader(string(data)))
			if err != nil {
				return 0, nil, 0, fmt.Errorf("put %s: %w", tr.keys[k], err)
			}
			refs[k] = genome.WholePage(a.ID)
			put[k] = true
		}
		p := tr.persona[i]
		start := time.Now()
		res, err := svc.PageIn(ctx, personas[p], refs[k])
		elapsed += time.Since(start)
		if err != nil {
			return 0, nil, 0, fmt.Errorf("access %d (%s %s): %w", i, tr.personas[p], tr.keys[k], err)
		}
		perReqs[p]++
		if !res.Faulted {
			hits++
			perHits[p]++
		}
	}
	per := make(map[string]float64, len(tr.personas))
	for i, name := range tr.personas {
		per[name] = ratio(perHits[i], perReqs[i])
	}
	return hits, per, elapsed, nil
}
