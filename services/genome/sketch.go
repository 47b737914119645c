package genome

// sketch is the TinyLFU frequency sketch: a count-min sketch of 4-bit
// counters (16 to a word, four per key, conservative increments) that
// halves every counter after sampleSize increments, so frequencies age
// and a formerly popular page does not stay admitted forever. It is
// consulted on admission: a page that wants into a full tier must have
// been used more often, recently, than the page it would replace.
//
// Not safe for concurrent use: the manager's lock guards it.
type sketch struct {
	table      []uint64
	mask       uint64 // counters - 1
	additions  int
	sampleSize int
	capacity   int
	period     int // when set, the halving period (the short sketch)
}

func newSketch(capacity int) *sketch {
	s := &sketch{}
	s.resize(capacity)
	return s
}

// resize sizes the sketch for about capacity distinct keys (Caffeine's
// sizing: a word of 16 counters per key, 10 increments per key between
// halvings). Counts are lost; the manager grows the sketch rarely (each
// time the number of pages doubles).
func (s *sketch) resize(capacity int) {
	words := 64
	for words < capacity {
		words <<= 1
	}
	s.capacity = capacity
	s.table = make([]uint64, words)
	s.mask = uint64(words*16 - 1)
	s.additions = 0
	s.sampleSize = 10 * max(capacity, 64)
	if s.period > 0 {
		s.sampleSize = s.period
	}
}

// ensureCapacity grows the sketch when the manager holds more pages than
// it was sized for.
func (s *sketch) ensureCapacity(n int) {
	if n > s.capacity {
		s.resize(2 * n)
	}
}

// positions returns the four counter positions of a key by double hashing.
func (s *sketch) positions(h uint64) [4]uint64 {
	h2 := mix64(h^0x9e3779b97f4a7c15) | 1
	return [4]uint64{h & s.mask, (h + h2) & s.mask, (h + 2*h2) & s.mask, (h + 3*h2) & s.mask}
}

func (s *sketch) get(pos uint64) uint64 {
	return (s.table[pos>>4] >> ((pos & 15) << 2)) & 0xf
}

// frequency is the estimated recent use count of a key, 0..15.
func (s *sketch) frequency(h uint64) uint64 {
	p := s.positions(h)
	f := uint64(15)
	for _, pos := range p {
		f = min(f, s.get(pos))
	}
	return f
}

// increment counts one use of a key.
func (s *sketch) increment(h uint64) {
	p := s.positions(h)
	var c [4]uint64
	m := uint64(15)
	for i, pos := range p {
		c[i] = s.get(pos)
		m = min(m, c[i])
	}
	if m == 15 {
		return
	}
	for i, pos := range p {
		if c[i] == m && (i == 0 || pos != p[0]) && (i < 2 || pos != p[1]) && (i < 3 || pos != p[2]) {
			s.table[pos>>4] += 1 << ((pos & 15) << 2)
		}
	}
	s.additions++
	if s.additions >= s.sampleSize {
		s.halve()
	}
}

// halve ages every counter.
func (s *sketch) halve() {
	for i, w := range s.table {
		s.table[i] = (w >> 1) & 0x7777777777777777
	}
	s.additions /= 2
}

// setPeriod fixes the halving period at n increments.
func (s *sketch) setPeriod(n int) {
	s.period = n
	s.sampleSize = n
}

// The short sketch: the first w-tinylfu tier keeps a second sketch, sized
// like the main one but halved every shortAging × the tier's pages
// increments (the main one: every 10 × the page table, so on 100,000 pages
// the top ~7,300 all saturate at 15 and duels at the boundary of a small
// tier become ties). Which of the two the tier's admission duels follow
// is decided by the guard's shadows: a third shadow, a W-TinyLFU admitting
// by the short sketch, is compared with the one admitting by the main
// sketch on the sampled accesses where they disagree (a decayed score).
// The floor's hot-set test keeps the main sketch's long memory.
const (
	shortAging = 70
	// shortDecay weighs the shadows' disagreements: about the last
	// thousand decide.
	shortDecay = 0.999
)
