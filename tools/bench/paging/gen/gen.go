// Package gen writes synthetic paging traces for the genome trace
// replayer: one access per line, "<persona> <artifact-key>", each key a
// unit-size page. Every generator is deterministic for a seed.
package gen

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
)

// Spec describes a trace.
type Spec struct {
	// Kind is one of Kinds().
	Kind string
	// Requests is the number of accesses.
	Requests int
	// Keys is the size of the key universe (per persona for "personas").
	Keys int
	// Capacity is the cache size the trace is aimed at, in pages: the loop
	// is just over it and scans are twice it.
	Capacity int
	// Personas is how many personas the "personas" trace has.
	Personas int
	// Skew is the Zipf exponent; zero is 0.9.
	Skew float64
	Seed uint64
}

// Kinds are the trace kinds.
func Kinds() []string { return []string{"zipf", "zipf-scan", "drift", "personas", "loop", "recency"} }

// Defaults fills zero fields with the report's defaults.
func (s Spec) Defaults() Spec {
	if s.Requests == 0 {
		s.Requests = 1_000_000
	}
	if s.Keys == 0 {
		s.Keys = 100_000
	}
	if s.Capacity == 0 {
		s.Capacity = 2_000
	}
	if s.Personas == 0 {
		s.Personas = 8
	}
	if s.Skew == 0 {
		s.Skew = 0.9
	}
	if s.Seed == 0 {
		s.Seed = 1
	}
	return s
}

// Write writes the trace to w.
func Write(w io.Writer, s Spec) error {
	s = s.Defaults()
	if s.Requests < 0 || s.Keys <= 0 || s.Capacity <= 0 || s.Personas <= 0 || s.Skew <= 0 {
		return fmt.Errorf("trace %s: requests, keys, capacity, personas and skew must be positive", s.Kind)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	rng := rand.New(rand.NewPCG(s.Seed, 0x9e3779b97f4a7c15))
	emit := func(persona string, key string) {
		bw.WriteString(persona)
		bw.WriteByte(' ')
		bw.WriteString(key)
		bw.WriteByte('\n')
	}
	switch s.Kind {
	case "zipf":
		z := newZipf(rng, s.Keys, s.Skew)
		for range s.Requests {
			emit("p0", key("k", z.next()))
		}
	case "zipf-scan":
		zipfScan(rng, s, emit)
	case "drift":
		drift(rng, s, emit)
	case "personas":
		personas(rng, s, emit)
	case "loop":
		n := s.Capacity + s.Capacity/20 + 1
		for i := range s.Requests {
			emit("p0", key("k", i%n))
		}
	case "recency":
		recency(rng, s, emit)
	default:
		return fmt.Errorf("unknown trace kind %q (want one of %v)", s.Kind, Kinds())
	}
	return bw.Flush()
}

func key(prefix string, i int) string { return fmt.Sprintf("%s%d", prefix, i) }

// zipfScan is Zipf traffic in which, every so often, a scan reads twice
// the cache's worth of keys that are never seen again (a backup, a batch
// job walking every adapter). A quarter of the accesses are scans.
func zipfScan(rng *rand.Rand, s Spec, emit func(string, string)) {
	z := newZipf(rng, s.Keys, s.Skew)
	scanLen := 2 * s.Capacity
	period := 4 * scanLen // 3 scanLen of Zipf, then one scan
	scanned := 0
	for i := 0; i < s.Requests; {
		for j := 0; j < period-scanLen && i < s.Requests; j++ {
			emit("p0", key("k", z.next()))
			i++
		}
		for j := 0; j < scanLen && i < s.Requests; j++ {
			emit("p0", key("scan", scanned))
			scanned++
			i++
		}
	}
}

// drift is Zipf traffic whose popular keys change: every tenth of the
// trace, a tenth of the key universe is re-ranked, so yesterday's hot
// adapters cool down and new ones heat up.
func drift(rng *rand.Rand, s Spec, emit func(string, string)) {
	z := newZipf(rng, s.Keys, s.Skew)
	perm := rng.Perm(s.Keys)
	phase := max(s.Requests/10, 1)
	for i := range s.Requests {
		if i > 0 && i%phase == 0 {
			// shift the ranking: the hottest ranks now map to other keys
			shift := s.Keys / 10
			perm = append(perm[shift:], perm[:shift]...)
		}
		emit("p0", key("k", perm[z.next()]))
	}
}

// personas is persona sessions: each persona has its own Zipf working set
// of Keys/Personas adapters plus a shared base model (a tenth of the
// accesses go to 64 shared expert pages). Sessions come and go: at any
// time three personas are active, interleaved, and every tenth of the
// trace one session ends and another persona's begins. One persona in
// four is a batch persona that, in its sessions, streams through adapters
// it never reuses (a scan), to show that one persona's scan does not flush
// another's hot set.
func personas(rng *rand.Rand, s Spec, emit func(string, string)) {
	per := max(s.Keys/s.Personas, 1)
	zs := make([]*zipf, s.Personas)
	for i := range zs {
		zs[i] = newZipf(rng, per, s.Skew)
	}
	shared := newZipf(rng, 64, s.Skew)
	active := []int{0, 1, 2}
	for i := range active {
		active[i] %= s.Personas
	}
	next := 3 % s.Personas
	phase := max(s.Requests/10, 1)
	scanned := make([]int, s.Personas)
	for i := range s.Requests {
		if i > 0 && i%phase == 0 {
			active = append(active[1:], next)
			next = (next + 1) % s.Personas
		}
		p := active[rng.IntN(len(active))]
		name := fmt.Sprintf("p%d", p)
		switch {
		case p%4 == 3:
			emit(name, fmt.Sprintf("p%d/scan%d", p, scanned[p]))
			scanned[p]++
		case rng.IntN(10) == 0:
			emit(name, key("base/e", shared.next()))
		default:
			emit(name, fmt.Sprintf("p%d/k%d", p, zs[p].next()))
		}
	}
}

// recency is traffic where only recency matters, the case frequency-based
// policies are known to lose to LRU: conversations come and go, each
// using a few adapters for a while. Three accesses in ten load an adapter
// never seen before; the others reuse an earlier one, the most recently
// loaded the likeliest (an exponential distance back, with a mean of a
// tenth of the capacity). LRU is optimal here.
func recency(rng *rand.Rand, s Spec, emit func(string, string)) {
	live := make([]int, 0, 2*s.Capacity)
	next := 0
	mean := max(float64(s.Capacity)/10, 1)
	for range s.Requests {
		var k int
		if len(live) == 0 || rng.IntN(10) < 3 {
			k = next
			next++
			live = append(live, k)
			if len(live) > 2*s.Capacity {
				live = live[1:]
			}
		} else {
			j := len(live) - 1 - int(rng.ExpFloat64()*mean)
			k = live[max(j, 0)]
		}
		emit("p0", key("k", k))
	}
}

// zipf samples ranks 0..n-1 with P(k) ∝ 1/(k+1)^s, for any s > 0 (the
// standard library's Zipf needs s > 1). Ranks are mapped to keys through
// a random permutation so that key names do not give popularity away.
type zipf struct {
	rng  *rand.Rand
	cdf  []float64
	perm []int
}

func newZipf(rng *rand.Rand, n int, s float64) *zipf {
	cdf := make([]float64, n)
	sum := 0.0
	for k := range n {
		sum += 1 / math.Pow(float64(k+1), s)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	return &zipf{rng: rng, cdf: cdf, perm: rng.Perm(n)}
}

func (z *zipf) next() int {
	u := z.rng.Float64()
	k := sort.SearchFloat64s(z.cdf, u)
	if k >= len(z.cdf) {
		k = len(z.cdf) - 1
	}
	return z.perm[k]
}
