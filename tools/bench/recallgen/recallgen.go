// Package recallgen writes deterministic synthetic conversation traces for
// the hippocampus replayer (tools/bench/recall):
//
//	go run ./tools/bench recall-gen --seed 1 --out trace.jsonl
//
// Each line is one turn, in time order:
//
//	{"t": 12.5, "persona": "p1", "channel": "chat", "engram": "p1-000042",
//	 "topics": [...], "entities": [...], "importance": 5,
//	 "needs": "p1-000017" | null, "kind": "shared-entity"}
//
// The model: each persona talks in sessions (one channel each, a focus of a
// few topics and entities, turns 15 s to 2 min apart, sessions hours
// apart); topics and entities are Zipf-popular; a session resumes the last
// session of its channel (same focus) some of the time. Needs are planted
// on turns, of six kinds:
//
//	same-thread    an earlier turn of the current session (2 to 8 back)
//	shared-entity  an older engram (another session) with one of the
//	               session's focus entities (one picked at random), more
//	               recent ones likelier
//	landmark       one of the persona's important (9-10) engrams
//	re-recall      an engram needed before, likelier the more often it was
//	same-channel   an older engram of the same channel, more recent likelier
//	random         any earlier engram, uniformly
//
// "More recent likelier" is a power law in recency rank (weight rank^-0.5),
// the shape Anderson and Schooler found in the environment's own statistics.
// The turn that needs an engram then mentions one of its entities or
// topics. Nothing here looks at any scorer. Sampling is O(log n) per need,
// so traces of 100,000 turns per persona take seconds; the Bayes ceiling
// (--ceiling) is O(n) per need and meant for the default trace size.
package recallgen

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
)

// Turn is one line of a trace.
type Turn struct {
	T          float64  `json:"t"`
	Persona    string   `json:"persona"`
	Channel    string   `json:"channel"`
	Engram     string   `json:"engram"`
	Topics     []string `json:"topics"`
	Entities   []string `json:"entities"`
	Importance int      `json:"importance"`
	Needs      *string  `json:"needs"`
	Kind       string   `json:"kind,omitempty"`
}

// Kinds of planted needs, in the order of Options.Mix.
var Kinds = []string{"same-thread", "shared-entity", "landmark", "re-recall", "same-channel", "random"}

// Options shape a trace.
type Options struct {
	Seed     uint64
	Personas int
	Days     float64
	// Turns, when positive, stops each persona after this many turns
	// (instead of after Days).
	Turns           int
	Channels        int
	Topics          int
	Entities        int
	SessionsPerDay  float64
	MeanTurns       float64
	NeedRate        float64
	ResumeRate      float64
	LandmarkRate    float64
	Mix             []float64 // weights of Kinds
	EntitiesPerTurn int
	// Ceiling computes the Bayes ceiling while generating (O(n) per need).
	Ceiling bool
}

// DefaultOptions is the trace docs/perf-hippocampus.md reports on.
func DefaultOptions() Options {
	return Options{
		Seed:            1,
		Personas:        4,
		Days:            30,
		Channels:        3,
		Topics:          40,
		Entities:        120,
		SessionsPerDay:  6,
		MeanTurns:       12,
		NeedRate:        0.35,
		ResumeRate:      0.4,
		LandmarkRate:    0.03,
		Mix:             []float64{0.25, 0.20, 0.10, 0.15, 0.15, 0.15},
		EntitiesPerTurn: 2,
		Ceiling:         true,
	}
}

var channelNames = []string{"chat", "email", "voice", "slack", "sms", "vr", "tty", "web"}

// Run is the recall-gen subcommand.
func Run(args []string, out io.Writer) error {
	o := DefaultOptions()
	fs := flag.NewFlagSet("recall-gen", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed; the same seed gives the same trace")
	fs.IntVar(&o.Personas, "personas", o.Personas, "personas")
	fs.Float64Var(&o.Days, "days", o.Days, "days of conversation per persona")
	fs.IntVar(&o.Turns, "turns", o.Turns, "turns per persona (overrides --days when positive)")
	fs.IntVar(&o.Channels, "channels", o.Channels, "channels per persona (at most 8)")
	fs.IntVar(&o.Topics, "topics", o.Topics, "topics per persona")
	fs.IntVar(&o.Entities, "entities", o.Entities, "entities per persona")
	fs.Float64Var(&o.SessionsPerDay, "sessions-per-day", o.SessionsPerDay, "sessions per persona per day")
	fs.Float64Var(&o.MeanTurns, "mean-turns", o.MeanTurns, "mean turns per session")
	fs.Float64Var(&o.NeedRate, "need-rate", o.NeedRate, "share of turns that need an earlier engram")
	fs.BoolVar(&o.Ceiling, "ceiling", o.Ceiling, "compute and print the Bayes ceiling (slow for very large traces)")
	mix := fs.String("mix", "", "weights of the need kinds "+strings.Join(Kinds, ",")+" (comma-separated)")
	outPath := fs.String("out", "-", "output file; - is standard output")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("recall-gen: %w", err)
	}
	if *mix != "" {
		var ws []float64
		for _, f := range strings.Split(*mix, ",") {
			var w float64
			if _, err := fmt.Sscan(f, &w); err != nil || w < 0 {
				return fmt.Errorf("recall-gen: bad --mix weight %q", f)
			}
			ws = append(ws, w)
		}
		o.Mix = ws
	}
	if err := o.validate(); err != nil {
		return fmt.Errorf("recall-gen: %w", err)
	}
	w := out
	if *outPath != "-" {
		f, err := os.Create(*outPath)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	n, ceil, err := Generate(o, bw)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if *outPath != "-" {
		fmt.Fprintf(out, "wrote %d turns to %s\n", n, *outPath)
		if o.Ceiling {
			ceil.print(out)
		}
	}
	return nil
}

func (o Options) validate() error {
	switch {
	case o.Personas < 1 || o.Channels < 1 || o.Channels > len(channelNames) || o.Topics < 2 || o.Entities < 2:
		return errors.New("need at least one persona, 1..8 channels, and two topics and entities")
	case o.Days <= 0 && o.Turns <= 0:
		return errors.New("need --days or --turns")
	case o.SessionsPerDay <= 0 || o.MeanTurns < 1 || o.NeedRate < 0 || o.NeedRate > 1:
		return errors.New("sessions per day, mean turns or need rate out of range")
	case len(o.Mix) != len(Kinds):
		return fmt.Errorf("--mix needs %d weights", len(Kinds))
	}
	total := 0.0
	for _, w := range o.Mix {
		total += w
	}
	if total <= 0 {
		return errors.New("--mix weights sum to zero")
	}
	return nil
}

// Generate writes the trace and returns its number of turns and the Bayes
// ceiling of its needs.
func Generate(o Options, w io.Writer) (int, *Ceiling, error) {
	var all []Turn
	ceil := newCeiling()
	for i := range o.Personas {
		all = append(all, genPersona(o, i, ceil)...)
	}
	slices.SortStableFunc(all, func(a, b Turn) int {
		switch {
		case a.T < b.T:
			return -1
		case a.T > b.T:
			return 1
		}
		return strings.Compare(a.Persona, b.Persona)
	})
	enc := json.NewEncoder(w)
	for i := range all {
		if err := enc.Encode(&all[i]); err != nil {
			return i, nil, err
		}
	}
	return len(all), ceil, nil
}

// engram is what the generator remembers of a turn.
type engram struct {
	id         string
	session    int
	channel    int
	t          float64
	topics     []int
	entities   []int
	importance int
}

type focus struct {
	topics   []int
	entities []int
}

type personaGen struct {
	o         Options
	r         *rand.Rand
	name      string
	topicZ    *zipf
	entityZ   *zipf
	chanW     []float64
	engrams   []engram
	byEntity  map[int][]int // engram indices per entity, in order
	byChan    map[int][]int
	landmark  []int
	needed    map[int]int // engram index -> times needed
	neededSq  []int       // needed engrams in order of first need
	neededPos map[int]int // engram index -> position in neededSq
	neededW   fenwick     // times needed, by position in neededSq
	last      map[int]focus
	ceiling   *Ceiling
	ranks     rankSums
}

func genPersona(o Options, idx int, ceil *Ceiling) []Turn {
	g := &personaGen{
		ceiling:   ceil,
		o:         o,
		r:         rand.New(rand.NewPCG(o.Seed, uint64(idx)+1)),
		name:      fmt.Sprintf("p%d", idx+1),
		byEntity:  map[int][]int{},
		byChan:    map[int][]int{},
		needed:    map[int]int{},
		neededPos: map[int]int{},
		last:      map[int]focus{},
	}
	g.topicZ = newZipf(o.Topics, 1.0)
	g.entityZ = newZipf(o.Entities, 1.1)
	for c := range o.Channels {
		g.chanW = append(g.chanW, 1/float64(c+1))
	}
	var out []Turn
	t := g.r.Float64() * 3600
	session := 0
	for {
		if o.Turns > 0 && len(g.engrams) >= o.Turns || o.Turns <= 0 && t > o.Days*86400 {
			break
		}
		out = append(out, g.session(session, &t)...)
		session++
		// Sessions are a Poisson process over the day.
		t += g.r.ExpFloat64() * 86400 / o.SessionsPerDay
	}
	return out
}

func (g *personaGen) session(sid int, t *float64) []Turn {
	o := g.o
	ch := pickWeighted(g.r, g.chanW)
	f, resumed := g.last[ch]
	if !resumed || g.r.Float64() >= o.ResumeRate {
		f = focus{}
		for range 1 + g.r.IntN(2) {
			f.topics = appendNew(f.topics, g.topicZ.draw(g.r))
		}
		for range 2 + g.r.IntN(2) {
			f.entities = appendNew(f.entities, g.entityZ.draw(g.r))
		}
	}
	g.last[ch] = f
	turns := 1 + int(g.r.ExpFloat64()*(o.MeanTurns-1)+0.5)
	var out []Turn
	var inSession []int
	for i := range turns {
		if o.Turns > 0 && len(g.engrams) >= o.Turns {
			break
		}
		if i > 0 {
			*t += 15 + g.r.Float64()*105
		}
		e := engram{id: fmt.Sprintf("%s-%06d", g.name, len(g.engrams)), session: sid, channel: ch, t: *t}
		for _, tp := range f.topics {
			if g.r.Float64() < 0.85 {
				e.topics = appendNew(e.topics, tp)
			}
		}
		if g.r.Float64() < 0.2 || len(e.topics) == 0 {
			e.topics = appendNew(e.topics, g.topicZ.draw(g.r))
		}
		for _, en := range f.entities {
			if len(e.entities) < o.EntitiesPerTurn && g.r.Float64() < 0.6 {
				e.entities = appendNew(e.entities, en)
			}
		}
		if g.r.Float64() < 0.25 || len(e.entities) == 0 {
			e.entities = appendNew(e.entities, g.entityZ.draw(g.r))
		}
		switch x := g.r.Float64(); {
		case x < o.LandmarkRate:
			e.importance = 9 + g.r.IntN(2)
		case x < o.LandmarkRate+0.1:
			e.importance = 7 + g.r.IntN(2)
		default:
			e.importance = 3 + g.r.IntN(4)
		}
		turn := Turn{T: math.Round(*t*1000) / 1000, Persona: g.name, Channel: channelNames[ch], Engram: e.id, Importance: e.importance}
		if len(g.engrams) > 0 && g.r.Float64() < o.NeedRate {
			var mass []float64
			if o.Ceiling {
				mass = g.oracle(inSession, ch, f)
			}
			if need, kind, ok := g.plant(inSession, ch, f); ok {
				if o.Ceiling {
					g.ceiling.add(kind, mass)
				}
				id := g.engrams[need].id
				turn.Needs, turn.Kind = &id, kind
				if g.needed[need] == 0 {
					g.neededSq = append(g.neededSq, need)
					g.neededPos[need] = len(g.neededSq) - 1
				}
				g.needed[need]++
				g.neededW.add(g.neededPos[need], 1)
				// The turn talks about what it needed.
				n := &g.engrams[need]
				if len(n.entities) > 0 {
					e.entities = appendNew(e.entities, n.entities[g.r.IntN(len(n.entities))])
				}
				if len(n.topics) > 0 {
					e.topics = appendNew(e.topics, n.topics[g.r.IntN(len(n.topics))])
				}
			}
		}
		for _, tp := range e.topics {
			turn.Topics = append(turn.Topics, fmt.Sprintf("topic-%02d", tp))
		}
		for _, en := range e.entities {
			turn.Entities = append(turn.Entities, fmt.Sprintf("entity-%03d", en))
		}
		idx := len(g.engrams)
		g.engrams = append(g.engrams, e)
		for _, en := range e.entities {
			g.byEntity[en] = append(g.byEntity[en], idx)
		}
		g.byChan[ch] = append(g.byChan[ch], idx)
		if e.importance >= 9 {
			g.landmark = append(g.landmark, idx)
		}
		inSession = append(inSession, idx)
		out = append(out, turn)
	}
	return out
}

// plant chooses a need for the next turn; it falls back to another kind
// when the chosen one has no candidate.
func (g *personaGen) plant(inSession []int, ch int, f focus) (int, string, bool) {
	kind := pickWeighted(g.r, g.o.Mix)
	for tries := 0; tries < len(Kinds); tries, kind = tries+1, (kind+1)%len(Kinds) {
		switch Kinds[kind] {
		case "same-thread":
			if len(inSession) >= 2 {
				back := 2 + g.r.IntN(min(7, len(inSession)-1))
				return inSession[max(0, len(inSession)-back)], Kinds[kind], true
			}
		case "shared-entity":
			var lists [][]int
			for _, en := range f.entities {
				if l := g.beforeSession(g.byEntity[en], inSession); len(l) > 0 {
					lists = append(lists, l)
				}
			}
			if len(lists) > 0 {
				l := lists[g.r.IntN(len(lists))]
				return l[pickRecent(g.r, &g.ranks, len(l))], Kinds[kind], true
			}
		case "landmark":
			if len(g.landmark) > 0 {
				return g.landmark[g.r.IntN(len(g.landmark))], Kinds[kind], true
			}
		case "re-recall":
			if len(g.neededSq) > 0 {
				return g.neededSq[g.neededW.find(g.r.Float64()*g.neededW.total())], Kinds[kind], true
			}
		case "same-channel":
			if l := g.beforeSession(g.byChan[ch], inSession); len(l) > 0 {
				return l[pickRecent(g.r, &g.ranks, len(l))], Kinds[kind], true
			}
		case "random":
			return g.r.IntN(len(g.engrams)), Kinds[kind], true
		}
	}
	return 0, "", false
}

// beforeSession is l (engram indices in order) without its tail of the
// current session's engrams: they are the most recent, so they end l.
func (g *personaGen) beforeSession(l, inSession []int) []int {
	if len(inSession) == 0 {
		return l
	}
	first := inSession[0]
	end := len(l)
	for end > 0 && l[end-1] >= first {
		end--
	}
	return l[:end]
}

// rankSums[r] is Σ_{j=1..r} j^-0.5, grown on demand.
type rankSums []float64

func (rs *rankSums) upTo(n int) []float64 {
	if len(*rs) == 0 {
		*rs = append(*rs, 0)
	}
	for len(*rs) <= n {
		r := len(*rs)
		*rs = append(*rs, (*rs)[r-1]+1/math.Sqrt(float64(r)))
	}
	return (*rs)[:n+1]
}

// pickRecent picks an index of n ordered oldest first, with weight
// (recency rank)^-0.5: the most recent has rank 1. It is exact and
// O(log n).
func pickRecent(r *rand.Rand, rs *rankSums, n int) int {
	sums := rs.upTo(n)
	x := r.Float64() * sums[n]
	rank, _ := slices.BinarySearch(sums, x) // the first rank whose sum reaches x
	rank = min(max(rank, 1), n)
	return n - rank
}

// fenwick is a binary indexed tree of weights for O(log n) weighted draws.
type fenwick struct{ t []float64 }

func (f *fenwick) add(i int, w float64) {
	for len(f.t) <= i+1 {
		f.t = append(f.t, 0)
		// A new slot's node must cover its range: rebuild lazily by adding
		// the covered sums.
		j := len(f.t) - 1
		for k := j - 1; k > j-(j&-j); k-- {
			f.t[j] += f.raw(k)
		}
	}
	for j := i + 1; j < len(f.t); j += j & -j {
		f.t[j] += w
	}
}

// raw is the weight at 0-based position k-1 (k is 1-based).
func (f *fenwick) raw(k int) float64 {
	s := f.t[k]
	for j := k - 1; j > k-(k&-k); j -= j & -j {
		s -= f.t[j]
	}
	return s
}

func (f *fenwick) total() float64 {
	s := 0.0
	for j := len(f.t) - 1; j > 0; j -= j & -j {
		s += f.t[j]
	}
	return s
}

// find returns the position whose cumulative weight first exceeds x.
func (f *fenwick) find(x float64) int {
	pos := 0
	step := 1
	for step*2 < len(f.t) {
		step *= 2
	}
	for ; step > 0; step /= 2 {
		if next := pos + step; next < len(f.t) && f.t[next] <= x {
			pos = next
			x -= f.t[next]
		}
	}
	return min(pos, len(f.t)-2)
}

func pickWeighted(r *rand.Rand, ws []float64) int {
	total := 0.0
	for _, w := range ws {
		total += w
	}
	x := r.Float64() * total
	for i, w := range ws {
		if x < w {
			return i
		}
		x -= w
	}
	return len(ws) - 1
}

func appendNew(s []int, v int) []int {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// zipf draws 0..n-1 with weight (i+1)^-s.
type zipf struct{ cdf []float64 }

func newZipf(n int, s float64) *zipf {
	z := &zipf{cdf: make([]float64, n)}
	total := 0.0
	for i := range n {
		total += math.Pow(float64(i+1), -s)
		z.cdf[i] = total
	}
	for i := range z.cdf {
		z.cdf[i] /= total
	}
	return z
}

func (z *zipf) draw(r *rand.Rand) int {
	x := r.Float64()
	i, _ := slices.BinarySearch(z.cdf, x)
	return min(i, len(z.cdf)-1)
}

// ceilingKs are the buffer sizes the ceiling is reported for.
var ceilingKs = []int{1, 4, 8, 16}

// Ceiling is the expected hit@K of an oracle that knows this generator:
// before each need it ranks the persona's engrams by their true
// probability of being the one needed (the mixture of the kinds'
// distributions, with the fallbacks plant uses; the oracle does not know
// which kind will be drawn) and stages the K most probable. No predictor
// that sees only the trace can expect to do better. Only the overall figure
// means anything: per kind, the oracle's expectation is the same.
type Ceiling struct {
	needs map[string]int
	mass  map[string][]float64 // per kind, per ceilingKs
}

func newCeiling() *Ceiling {
	return &Ceiling{needs: map[string]int{}, mass: map[string][]float64{}}
}

func (c *Ceiling) add(kind string, mass []float64) {
	c.needs[kind]++
	if c.mass[kind] == nil {
		c.mass[kind] = make([]float64, len(ceilingKs))
	}
	for i, m := range mass {
		c.mass[kind][i] += m
	}
}

// HitAt returns the ceiling's hit@k over every need (k one of 1, 4, 8, 16).
func (c *Ceiling) HitAt(k int) float64 {
	i := slices.Index(ceilingKs, k)
	if i < 0 {
		return math.NaN()
	}
	n, m := 0, 0.0
	for kind, cnt := range c.needs {
		n += cnt
		m += c.mass[kind][i]
	}
	if n == 0 {
		return 0
	}
	return m / float64(n)
}

func (c *Ceiling) print(w io.Writer) {
	n := 0
	for _, cnt := range c.needs {
		n += cnt
	}
	fmt.Fprintf(w, "%d needs; Bayes ceiling (an oracle that knows the generator) hit@1 %.3f, hit@4 %.3f, hit@8 %.3f, hit@16 %.3f\n",
		n, c.HitAt(1), c.HitAt(4), c.HitAt(8), c.HitAt(16))
}

// oracle returns the probability mass of the K most probable engrams under
// the need distribution plant draws from, for each of ceilingKs. It mirrors
// plant exactly.
func (g *personaGen) oracle(inSession []int, ch int, f focus) []float64 {
	dists := make([]map[int]float64, len(Kinds))
	for k, name := range Kinds {
		d := map[int]float64{}
		switch name {
		case "same-thread":
			if len(inSession) >= 2 {
				m := min(7, len(inSession)-1)
				for b := 2; b < 2+m; b++ {
					d[inSession[max(0, len(inSession)-b)]] += 1 / float64(m)
				}
			}
		case "shared-entity":
			var lists [][]int
			for _, en := range f.entities {
				if l := g.beforeSession(g.byEntity[en], inSession); len(l) > 0 {
					lists = append(lists, l)
				}
			}
			for _, l := range lists {
				sub := map[int]float64{}
				addRecent(sub, l)
				for i, q := range sub {
					d[i] += q / float64(len(lists))
				}
			}
		case "landmark":
			for _, i := range g.landmark {
				d[i] += 1 / float64(len(g.landmark))
			}
		case "re-recall":
			total := 0.0
			for _, n := range g.neededSq {
				total += float64(g.needed[n])
			}
			for _, n := range g.neededSq {
				d[n] += float64(g.needed[n]) / total
			}
		case "same-channel":
			addRecent(d, g.beforeSession(g.byChan[ch], inSession))
		case "random":
			for i := range g.engrams {
				d[i] = 1 / float64(len(g.engrams))
			}
		}
		dists[k] = d
	}
	// The kind actually used: the drawn one, or the next with candidates.
	total := 0.0
	for _, w := range g.o.Mix {
		total += w
	}
	p := map[int]float64{}
	for k, w := range g.o.Mix {
		for j := range len(Kinds) {
			kk := (k + j) % len(Kinds)
			if len(dists[kk]) > 0 {
				for i, q := range dists[kk] {
					p[i] += w / total * q
				}
				break
			}
		}
	}
	probs := make([]float64, 0, len(p))
	for _, q := range p {
		probs = append(probs, q)
	}
	slices.Sort(probs)
	slices.Reverse(probs)
	out := make([]float64, len(ceilingKs))
	for j, k := range ceilingKs {
		for i := 0; i < k && i < len(probs); i++ {
			out[j] += probs[i]
		}
	}
	return out
}

func addRecent(d map[int]float64, cands []int) {
	n := len(cands)
	total := 0.0
	for i := range n {
		total += 1 / math.Sqrt(float64(n-i))
	}
	for i, c := range cands {
		d[c] += 1 / math.Sqrt(float64(n-i)) / total
	}
}
