package genome

import "math"

// Eviction inside one tier. A tier keeps its pages in one eviction order
// (up to three LRU lists) and counts, per persona, the bytes charged to it.
//
//   - w-tinylfu: new pages enter an LRU window. A page leaving the window
//     must beat the main space's victim by TinyLFU frequency (a count-min
//     sketch of recent uses) to stay; the main space is a segmented LRU
//     (pages used again move from probation to a protected segment of
//     80%). Loops and scans do not flush the main space: their pages lose
//     the duel. This is Caffeine's W-TinyLFU. The window adapts: a hill
//     climber, gated so that it moves only on a significant change of the
//     hit rate, and a guard running sequential tests (CUSUM) on sampled
//     shadows of the tier: it makes the window the whole tier (an LRU)
//     when a shadow LRU clearly beats the tier, and gives the tier back to
//     frequency (a 1% window) when a shadow W-TinyLFU clearly beats the
//     shadow LRU. A new tier starts as an LRU, so it cannot lose to one
//     while the evidence builds up. Frequency-heavy traffic gets a small
//     window; recency-heavy traffic keeps an LRU instead of collapsing
//     below one.
//   - slru: the segmented LRU without window and admission.
//   - lru and fifo: one list, moved on use or not.
//
// Isolation between personas is a guaranteed floor: a persona active in
// the tier that holds less than half its fair share (capacity over the
// active personas) loses no page of its hot set (pages used more than
// once) to another persona's demand; the victim search passes over them
// (moving them to the front: a second chance). Below its floor a persona
// also gets its window candidates admitted on their second use instead of
// having to out-frequency a louder persona's pages. Above the floor, pages
// compete on the policy's terms, so a busy persona may use what others
// leave idle (one global order is several percent better than hard
// per-persona partitions on the persona traces), but no persona's scan or
// sheer volume can push another below its floor. A persona that has not
// touched the tier lately has no floor, and its pages go first.
//
// Pinned pages are off the lists; pages being loaded or moved stay listed
// but are marked busy. Both are counted in the tier and never chosen.

type segment uint8

const (
	segNone segment = iota
	segWindow
	segProbation
	segProtected
)

const (
	windowFraction    = 0.01
	protectedFraction = 0.80
	floorFraction     = 0.50
)

// pageList is an intrusive doubly linked list, most recent at the front.
type pageList struct {
	head, tail *pageEntry
	n          int
	bytes      uint64
}

func (l *pageList) pushFront(e *pageEntry) {
	e.prev, e.next = nil, l.head
	if l.head != nil {
		l.head.prev = e
	} else {
		l.tail = e
	}
	l.head = e
	l.n++
	l.bytes += e.size
}

func (l *pageList) remove(e *pageEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
	l.n--
	l.bytes -= e.size
}

// share is one persona's use of one tier.
type share struct {
	persona  PersonaID
	bytes    uint64 // every byte charged to the persona here, listed or not
	lastTick uint64
	// its listed pages, most recently used first
	head, tail *pageEntry
}

func (sh *share) pushFront(e *pageEntry) {
	e.sprev, e.snext = nil, sh.head
	if sh.head != nil {
		sh.head.sprev = e
	} else {
		sh.tail = e
	}
	sh.head = e
}

func (sh *share) remove(e *pageEntry) {
	if e.sprev != nil {
		e.sprev.snext = e.snext
	} else {
		sh.head = e.snext
	}
	if e.snext != nil {
		e.snext.sprev = e.sprev
	} else {
		sh.tail = e.sprev
	}
	e.sprev, e.snext = nil, nil
}

// tierIndex is the manager's view of one tier: what is placed there, for
// whom, and in which eviction order. The manager's lock guards it.
type tierIndex struct {
	pos      int
	role     Role
	store    TierStore
	policy   string
	home     bool
	capacity uint64

	used   uint64 // bytes placed here, including loads in flight
	pinned uint64 // bytes of pinned pages
	busy   uint64 // bytes of pages being loaded or moved
	pages  int

	window, probation, protected pageList

	shares map[PersonaID]*share
	tick   uint64
	sketch *sketch
	// the short sketch (first w-tinylfu tier only), whether the duels
	// follow it, and the shadows' score for it (see shortAging)
	short      *sketch
	useShort   bool
	shortScore float64

	// The window's size (w-tinylfu): see climb and guardLRU.
	windowTarget float64 // bytes
	climbStep    float64 // bytes, signed
	sampleHits   uint64
	sampleMisses uint64
	prevHitRate  float64
	shadow       *shadows
	// the guard's two CUSUM statistics, and the window it last chose
	cusumLRU, cusumFreq, cusumShadow float64
	guardMin, boost                  float64

	evictions uint64
	faults    uint64
}

func newTierIndex(pos int, role Role, store TierStore, policy string, home bool, capacity uint64, sk *sketch) *tierIndex {
	return &tierIndex{
		pos: pos, role: role, store: store, policy: policy, home: home, capacity: capacity,
		shares: map[PersonaID]*share{}, sketch: sk,
		// A new tier starts as an LRU (the window is the whole tier),
		// which cannot lose to LRU while there is no evidence; the guard
		// hands it to frequency as soon as its shadows show frequency wins.
		windowTarget: float64(capacity), boost: (1 - windowFraction) * float64(capacity), guardMin: float64(capacity), climbStep: climbStepFraction * float64(capacity), prevHitRate: -1,
	}
}

const (
	climbStepFraction = 0.0625 // first step: 6.25% of the tier
	climbStepDecay    = 0.98   // later steps shrink while the hit rate holds
	climbRestart      = 0.05   // a hit-rate change this large restarts the steps
)

// sampleAccess counts one access that looked for a page in this tier (a
// hit, or a miss that faulted the page in) and climbs once a sample is
// complete.
func (t *tierIndex) sampleAccess(hit bool, h, size uint64) {
	if t.policy != PolicyWTinyLFU {
		return
	}
	if hit {
		t.sampleHits++
	} else {
		t.sampleMisses++
	}
	if t.shadow == nil {
		t.shadow = newShadows(t.capacity, t.sketch, t.short)
	}
	sampled, lruHit, tlfuHit, shortHit := t.shadow.access(h, size)
	if sampled && ((lruHit != hit && t.guardLRU(lruHit)) || (lruHit != tlfuHit && t.guardBoost(tlfuHit))) {
		// The guard moved the window: start a fresh sample.
		t.sampleHits, t.sampleMisses = 0, 0
		return
	}
	if a := t.short; a != nil {
		// The short sketch ages with the tier's page count (within 1/8),
		// and the shadows score it against the main one.
		if want := shortAging * max(t.pages, 64); want > a.period+a.period/8 || want < a.period-a.period/8 {
			a.setPeriod(want)
		}
		if sampled && tlfuHit != shortHit {
			t.shortScore *= shortDecay
			if shortHit {
				t.shortScore++
			} else {
				t.shortScore--
			}
			t.useShort = t.shortScore > 0
		}
	}
	period := 10 * max(uint64(t.pages), 100)
	if n := t.sampleHits + t.sampleMisses; n >= period {
		t.climb(float64(t.sampleHits)/float64(n), n)
		t.sampleHits, t.sampleMisses = 0, 0
	}
}

// The guard's sequential tests (see guardLRU).
const (
	// guardWin is the alternative hypothesis: the better policy wins this
	// share of the disagreements (the null: half).
	guardWin = 0.7
	// guardThreshold is where the tier-against-LRU CUSUMs fire: about
	// e^12 disagreements between false alarms when the policies are equal.
	guardThreshold = 12.0
	// boostThreshold is where the shadows' CUSUM hands the tier back to
	// frequency. Lower, because a tier that starts as an LRU must not stay
	// one for long on frequency traffic, and a false alarm on recency
	// traffic is improbable: there the shadow TinyLFU loses most
	// disagreements, and the statistic drifts down, not up.
	boostThreshold = 3.0
)

// guardLRU is a sequential test on the sampled accesses where the tier and
// a shadow LRU of its size disagree (one hits, the other misses): only
// those carry information about which is better. Two CUSUM statistics
// (Page's test) accumulate the log-likelihood ratio of "the winner of a
// disagreement is LRU with probability guardWin" against "either, equally",
// one for each direction, floored at zero. When the LRU one crosses
// guardThreshold the window becomes the whole tier (an LRU); when the
// other does, the window eases back a quarter of the tier. Under equal policies a crossing takes on the
// order of e^guardThreshold disagreements, so noise does not move the
// window, while a policy clearly losing is caught within a few dozen
// disagreements, warm-up included. It reports whether it moved.
func (t *tierIndex) guardLRU(lruWon bool) bool {
	win, lose := math.Log(2*guardWin), math.Log(2*(1-guardWin))
	if lruWon {
		t.cusumLRU = max(0, t.cusumLRU+win)
		t.cusumFreq = max(0, t.cusumFreq+lose)
	} else {
		t.cusumLRU = max(0, t.cusumLRU+lose)
		t.cusumFreq = max(0, t.cusumFreq+win)
	}
	floor := windowFraction * float64(t.capacity)
	switch {
	case t.cusumLRU > guardThreshold:
		// Recency wins: the tier becomes an LRU at once; guardBoost
		// takes it back when frequency would win again.
		grown := float64(t.capacity)
		t.boost += grown - t.windowTarget
		t.windowTarget = grown
		t.climbStep = climbStepFraction * float64(t.capacity)
		t.guardMin = t.windowTarget
		t.cusumShadow = 0
	case t.cusumFreq > guardThreshold && t.windowTarget > floor:
		// Frequency wins: shrink the window back towards its 1% as fast.
		t.windowTarget = max(t.windowTarget-0.25*float64(t.capacity), floor)
		t.boost = max(0, t.boost-0.25*float64(t.capacity))
		t.climbStep = -climbStepFraction * float64(t.capacity)
		t.guardMin = t.windowTarget
	case t.cusumFreq > guardThreshold:
		t.cusumFreq = 0
		t.guardMin = 0
		return false
	default:
		return false
	}
	t.cusumLRU, t.cusumFreq = 0, 0
	t.prevHitRate = -1
	return true
}

// guardBoost undoes the window the guard added for recency once the
// shadows show that a 1% window would now beat LRU: with the window grown
// to the whole tier, the tier itself is an LRU and its comparison with the
// shadow LRU carries no evidence either way. A CUSUM on the disagreements
// of the two shadows, like guardLRU's; it reports whether it moved.
func (t *tierIndex) guardBoost(tlfuWon bool) bool {
	if t.boost <= 0 {
		t.cusumShadow = 0
		return false
	}
	if tlfuWon {
		t.cusumShadow = max(0, t.cusumShadow+math.Log(2*guardWin))
	} else {
		t.cusumShadow = max(0, t.cusumShadow+math.Log(2*(1-guardWin)))
	}
	if t.cusumShadow <= boostThreshold {
		return false
	}
	floor := windowFraction * float64(t.capacity)
	t.windowTarget = max(t.windowTarget-t.boost, floor)
	t.boost = 0
	t.guardMin = 0
	t.climbStep = -climbStepFraction * float64(t.capacity)
	t.cusumLRU, t.cusumFreq, t.cusumShadow = 0, 0, 0
	t.prevHitRate = -1
	return true
}

// shadows simulates, on a spatial sample of the tier's pages (one hash in
// rate, in caches rate times smaller: the SHARDS method), two policies of
// the tier's size: a plain LRU, and a W-TinyLFU with its window fixed at
// 1% (admission by the tier's sketch). The guard compares the tier with
// the LRU to tell whether plain recency would do better, and the two
// shadows with each other to tell, whatever the tier's window is now,
// whether frequency would. A third, a W-TinyLFU admitting by the short
// sketch, tells which sketch the tier's duels should follow.
type shadows struct {
	rate     uint64
	capacity uint64
	// every sampled page any shadow holds, once: a sampled access looks
	// its page up once for the three shadows
	pages map[uint64]*shadowPage
	lru   shadowCache
	tlfu  shadowCache
	freq  *sketch
	// a W-TinyLFU admitting by the short sketch, when the tier has one
	short   *shadowCache
	shortSk *sketch
}

// shadowPage is one sampled page: its node in each shadow, and which
// shadows hold it (bit i for node i).
type shadowPage struct {
	h, size uint64
	in      uint8
	gone    bool // deleted from pages while the access that holds it runs
	nodes   [3]shadowNode
}

// shadowCache is one simulated cache: an LRU window (the whole cache for
// the LRU) and, for the TinyLFU, a main LRU behind it.
type shadowCache struct {
	slot                uint8 // its node in each shadowPage
	count               int
	capacity, windowCap uint64
	used, windowUsed    uint64
	pages               map[uint64]*shadowPage
	window, main        shadowList
}

type shadowNode struct {
	page       *shadowPage
	inWindow   bool
	prev, next *shadowNode
}

type shadowList struct{ head, tail *shadowNode }

// shadowPages is about how many pages each shadow tracks at most. The
// three shadows do their bookkeeping on every sampled access, hits
// included; a sparser sample (512) made the hit path as cheap as with the
// single shadow before, but at 8000 pages (one page in 16) the guard then
// missed that drift traffic was 0.0067 below LRU. See perf-genome.md.
const shadowPages = 4096

func newShadows(capacity uint64, freq, short *sketch) *shadows {
	s := &shadows{rate: 1, capacity: capacity, freq: freq, shortSk: short, pages: map[uint64]*shadowPage{}}
	if short != nil {
		s.short = &shadowCache{slot: 2, capacity: capacity, windowCap: uint64(windowFraction * float64(capacity)), pages: s.pages}
	}
	s.lru = shadowCache{slot: 0, capacity: capacity, windowCap: capacity, pages: s.pages}
	s.tlfu = shadowCache{slot: 1, capacity: capacity, windowCap: uint64(windowFraction * float64(capacity)), pages: s.pages}
	return s
}

// access simulates one access; it reports whether the page is in the
// sample and, if so, whether each shadow hit.
func (s *shadows) access(h, size uint64) (sampled, lruHit, tlfuHit, shortHit bool) {
	if s.lru.count+s.tlfu.count > 2*shadowPages && s.capacity/2 > 0 {
		// Too many pages to follow: sample half as many.
		s.rate *= 2
		s.capacity /= 2
		for k, p := range s.pages {
			if (k>>40)%s.rate != 0 {
				for _, c := range []*shadowCache{&s.lru, &s.tlfu, s.short} {
					if c != nil && p.in&(1<<c.slot) != 0 {
						c.drop(&p.nodes[c.slot])
					}
				}
			}
		}
		s.lru.resize(s.capacity, s.capacity)
		s.tlfu.resize(s.capacity, uint64(windowFraction*float64(s.capacity)))
		if s.short != nil {
			s.short.resize(s.capacity, uint64(windowFraction*float64(s.capacity)))
		}
	}
	if (h>>40)%s.rate != 0 {
		return false, false, false, false
	}
	p := s.pages[h]
	if p == nil {
		p = &shadowPage{h: h, size: size}
		s.pages[h] = p
	}
	if s.short != nil {
		shortHit = s.short.access(p, s.shortSk)
	}
	lruHit = s.lru.access(p, nil)
	tlfuHit = s.tlfu.access(p, s.freq)
	switch {
	case p.in != 0 && p.gone:
		s.pages[h] = p
		p.gone = false
	case p.in == 0 && !p.gone:
		delete(s.pages, h)
		p.gone = true
	}
	return true, lruHit, tlfuHit, shortHit
}

// resize shrinks the cache to its new size.
func (c *shadowCache) resize(capacity, windowCap uint64) {
	c.capacity, c.windowCap = capacity, windowCap
	for c.used > c.capacity {
		c.evictOne()
	}
}

// access simulates one access to the cache: an LRU when freq is nil, a
// W-TinyLFU admitting by freq otherwise. It reports a hit.
func (c *shadowCache) access(p *shadowPage, freq *sketch) bool {
	n := &p.nodes[c.slot]
	if p.in&(1<<c.slot) != 0 {
		l := &c.main
		if n.inWindow {
			l = &c.window
		}
		l.unlink(n)
		l.pushFront(n)
		return true
	}
	if p.size > c.capacity {
		return false
	}
	*n = shadowNode{page: p, inWindow: true}
	p.in |= 1 << c.slot
	c.count++
	c.window.pushFront(n)
	c.used += p.size
	c.windowUsed += p.size
	if freq != nil {
		for c.windowUsed > c.windowCap && c.window.tail != c.window.head {
			cand := c.window.tail
			c.window.unlink(cand)
			c.windowUsed -= cand.page.size
			cand.inWindow = false
			c.main.pushFront(cand)
			if c.used <= c.capacity {
				continue
			}
			v := c.main.tail
			if v != cand && freq.frequency(cand.page.h) <= freq.frequency(v.page.h) {
				v = cand
			}
			c.drop(v)
		}
	}
	for c.used > c.capacity {
		c.evictOne()
	}
	return false
}

func (c *shadowCache) evictOne() {
	if c.main.tail != nil {
		c.drop(c.main.tail)
		return
	}
	c.drop(c.window.tail)
}

func (c *shadowCache) drop(n *shadowNode) {
	p := n.page
	if n.inWindow {
		c.window.unlink(n)
		c.windowUsed -= p.size
	} else {
		c.main.unlink(n)
	}
	c.used -= p.size
	c.count--
	p.in &^= 1 << c.slot
	if p.in == 0 && !p.gone {
		delete(c.pages, p.h)
		p.gone = true
	}
}

func (l *shadowList) pushFront(n *shadowNode) {
	n.prev, n.next = nil, l.head
	if l.head != nil {
		l.head.prev = n
	} else {
		l.tail = n
	}
	l.head = n
}

func (l *shadowList) unlink(n *shadowNode) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

// climb is Caffeine's hill climber: after each sample of accesses the hit
// rate is compared with the last sample's, and the window keeps moving in
// the direction that helped (steps decaying by 2% a sample, restarting at
// 6.25% of the tier after a large change) or turns back.
func (t *tierIndex) climb(hitRate float64, n uint64) {
	if t.prevHitRate < 0 {
		t.prevHitRate = hitRate // the first sample only sets the baseline
		return
	}
	change := hitRate - t.prevHitRate
	t.prevHitRate = hitRate
	// Move only on a change the sample can tell from noise (two standard
	// deviations of the difference of two sampled hit rates): a window
	// that wanders on noise costs several percent on stationary traffic.
	p := min(max(hitRate, 0.01), 0.99)
	if math.Abs(change) < 2*math.Sqrt(2*p*(1-p)/float64(n)) {
		return
	}
	amount := t.climbStep
	if change < 0 {
		amount = -amount
	}
	next := climbStepDecay * amount
	if change >= climbRestart || change <= -climbRestart {
		next = climbStepFraction * float64(t.capacity)
		if amount < 0 {
			next = -next
		}
	}
	t.climbStep = next
	// Never below the window the guard chose: only the guard's own
	// evidence takes back what it gave (a climber step on noise would).
	t.windowTarget = min(max(t.windowTarget+amount, t.guardMin), float64(t.capacity))
}

func (t *tierIndex) free() uint64 {
	if t.used >= t.capacity {
		return 0
	}
	return t.capacity - t.used
}

// evictable is the bytes the tier could give up.
func (t *tierIndex) evictable() uint64 { return t.used - t.pinned - t.busy }

// canHold reports whether the tier could make room for size bytes.
func (t *tierIndex) canHold(size uint64) bool {
	return size <= t.capacity && t.free()+t.evictable() >= size
}

func (t *tierIndex) list(s segment) *pageList {
	switch s {
	case segWindow:
		return &t.window
	case segProbation:
		return &t.probation
	case segProtected:
		return &t.protected
	}
	return nil
}

func (t *tierIndex) share(p PersonaID) *share {
	sh := t.shares[p]
	if sh == nil {
		sh = &share{persona: p}
		t.shares[p] = sh
	}
	return sh
}

// charge moves size bytes of persona p in or out of the tier's books.
func (t *tierIndex) charge(p PersonaID, size uint64, add bool) {
	sh := t.share(p)
	if add {
		sh.bytes += size
		return
	}
	sh.bytes -= size
	if sh.bytes == 0 {
		delete(t.shares, p)
	}
}

// insert places e in the tier, charged to p, and lists it as a new
// arrival. The caller then evicts while the tier is over capacity and
// settles the window.
func (t *tierIndex) insert(e *pageEntry, p PersonaID) {
	e.tierCharge = p
	t.charge(p, e.size, true)
	t.used += e.size
	t.pages++
	t.touchShare(p)
	t.enlist(e)
}

// unplace removes e from the tier entirely.
func (t *tierIndex) unplace(e *pageEntry) {
	t.delist(e)
	if e.busy {
		t.clearBusy(e)
	}
	t.charge(e.tierCharge, e.size, false)
	t.used -= e.size
	t.pages--
}

// enlist puts a placed page on the lists, as a new arrival.
func (t *tierIndex) enlist(e *pageEntry) {
	switch t.policy {
	case PolicyWTinyLFU, PolicyLRU, PolicyFIFO:
		e.seg = segWindow
	default:
		e.seg = segProbation
	}
	t.list(e.seg).pushFront(e)
	t.share(e.tierCharge).pushFront(e)
}

// settle moves the window overflow into probation once no eviction is
// needed: with room in the tier nothing has to lose a duel.
func (t *tierIndex) settle() {
	if t.used > t.capacity {
		return
	}
	for t.windowOver() {
		e := idleBack(&t.window, nil)
		if e == nil {
			return
		}
		t.window.remove(e)
		t.probation.pushFront(e)
		e.seg = segProbation
	}
}

// delist takes e off the lists (it becomes pinned or leaves).
func (t *tierIndex) delist(e *pageEntry) {
	if l := t.list(e.seg); l != nil {
		l.remove(e)
		t.share(e.tierCharge).remove(e)
	}
	e.seg = segNone
}

// recharge moves e's bytes from its persona to p.
func (t *tierIndex) recharge(e *pageEntry, p PersonaID) {
	if e.tierCharge == p {
		return
	}
	listed := e.seg != segNone
	if listed {
		t.share(e.tierCharge).remove(e)
	}
	t.charge(e.tierCharge, e.size, false)
	t.charge(p, e.size, true)
	e.tierCharge = p
	if listed {
		t.share(p).pushFront(e)
	}
}

func (t *tierIndex) touchShare(p PersonaID) {
	t.tick++
	t.share(p).lastTick = t.tick
}

// access records a use of e in this tier by persona p.
func (t *tierIndex) access(e *pageEntry, p PersonaID) {
	if sh := t.shares[p]; sh != nil {
		t.tick++
		sh.lastTick = t.tick
	} else {
		t.tick++
	}
	if sh := t.shares[e.tierCharge]; sh != nil {
		sh.lastTick = t.tick
		if e.seg != segNone {
			sh.remove(e)
			sh.pushFront(e)
		}
	}
	switch e.seg {
	case segWindow:
		if t.policy != PolicyFIFO {
			t.window.remove(e)
			t.window.pushFront(e)
		}
	case segProbation:
		t.probation.remove(e)
		t.protected.pushFront(e)
		e.seg = segProtected
		t.demoteProtected()
	case segProtected:
		t.protected.remove(e)
		t.protected.pushFront(e)
	}
}

// demoteProtected keeps the protected segment within its share of the
// main space.
func (t *tierIndex) demoteProtected() {
	limit := uint64(protectedFraction * float64(t.probation.bytes+t.protected.bytes))
	for t.protected.bytes > limit && t.protected.n > 1 {
		e := t.protected.tail
		t.protected.remove(e)
		t.probation.pushFront(e)
		e.seg = segProbation
	}
}

// windowOver reports whether the window holds more than its share and has
// a candidate other than its newest page.
func (t *tierIndex) windowOver() bool {
	return t.policy == PolicyWTinyLFU && t.window.n > 1 && float64(t.window.bytes) > t.windowTarget
}

// activeWindow is how many tier ticks a persona may go without touching
// the tier before it loses its floor.
func (t *tierIndex) activeWindow() uint64 { return max(2*uint64(t.pages), 256) }

func (t *tierIndex) active(sh *share) bool { return t.tick-sh.lastTick <= t.activeWindow() }

// floorGuard says, for one eviction, which pages the floor protects.
type floorGuard struct {
	floor     uint64 // bytes: half of a fair share among active personas
	requester PersonaID
}

// guard computes the floor as seen by requester, whose own demand may
// always take its own pages.
func (t *tierIndex) guard(requester PersonaID) *floorGuard {
	n := 0
	seenReq := false
	for p, sh := range t.shares {
		if t.active(sh) {
			n++
			seenReq = seenReq || p == requester
		}
	}
	if !seenReq {
		n++
	}
	return &floorGuard{floor: uint64(floorFraction * float64(t.capacity) / float64(n)), requester: requester}
}

// belowFloor reports whether persona p is active and holds no more than
// its floor.
func (t *tierIndex) belowFloor(p PersonaID, g *floorGuard) bool {
	sh := t.shares[p]
	return g != nil && sh != nil && t.active(sh) && sh.bytes <= g.floor
}

// spared reports whether the floor protects e from the requester's
// demand: its persona is another one below its floor, and the page is
// part of that persona's hot set (settled, or used more than once), not
// a page seen once that a scan parked there.
func (t *tierIndex) spared(e *pageEntry, g *floorGuard, settled bool) bool {
	if g == nil || e.tierCharge == g.requester || !t.belowFloor(e.tierCharge, g) {
		return false
	}
	return settled || t.sketch.frequency(e.hash) >= 2
}

// idleBack is the least recent page of l that is neither keep nor busy.
func idleBack(l *pageList, keep *pageEntry) *pageEntry {
	for e := l.tail; e != nil; e = e.prev {
		if e != keep && !e.busy {
			return e
		}
	}
	return nil
}

// victimIn is the least recent page of l that may be evicted: not keep,
// not busy, not spared by the floor guard g (nil spares nothing; settled
// says the list holds settled pages). Spared pages met on the way get a
// second chance at the front, so a later search does not walk them again.
// It returns nil after one pass.
func (t *tierIndex) victimIn(l *pageList, keep *pageEntry, g *floorGuard, settled bool) *pageEntry {
	e := l.tail
	for range l.n {
		if e == nil {
			return nil
		}
		prev := e.prev
		switch {
		case e == keep, e.busy:
		case t.spared(e, g, settled):
			l.remove(e)
			l.pushFront(e)
		default:
			return e
		}
		e = prev
	}
	return nil
}

// mainVictim is the page the policy gives up, sparing personas below
// their floor while anyone else has a page to give.
func (t *tierIndex) mainVictim(keep *pageEntry, g *floorGuard) *pageEntry {
	if t.policy == PolicyLRU || t.policy == PolicyFIFO {
		if e := t.victimIn(&t.window, keep, g, true); e != nil {
			return e
		}
		return t.victimIn(&t.window, keep, nil, true)
	}
	if e := t.victimIn(&t.probation, keep, g, false); e != nil {
		return e
	}
	if e := t.victimIn(&t.protected, keep, g, true); e != nil {
		return e
	}
	// The window is last: it is the whole tier when the guard has turned
	// the tier into an LRU, and the floor holds there too.
	if e := t.victimIn(&t.window, keep, g, false); e != nil {
		return e
	}
	for _, l := range []*pageList{&t.probation, &t.protected, &t.window} {
		if e := t.victimIn(l, keep, nil, false); e != nil {
			return e
		}
	}
	return nil
}

// nextVictim chooses the page to evict so that requester's incoming page
// keep fits. For w-tinylfu the window's overflow duels the main space's
// victim by frequency and the loser goes; the candidate, if it wins,
// enters probation.
func (t *tierIndex) nextVictim(requester PersonaID, keep *pageEntry) *pageEntry {
	if v := t.idleVictim(keep); v != nil {
		if t.windowOver() {
			if c := t.victimIn(&t.window, keep, nil, false); c != nil && c != v {
				t.window.remove(c)
				t.probation.pushFront(c)
				c.seg = segProbation
			}
		}
		return v
	}
	g := t.guard(requester)
	v := t.mainVictim(keep, g)
	if v == nil || !t.windowOver() {
		return v
	}
	c := t.victimIn(&t.window, keep, nil, false)
	if c == nil || c == v {
		return v
	}
	// The candidate wins on frequency, or, when its persona is below its
	// floor and the victim's is not, on having been used more than once:
	// a persona must be able to build its floor even beside a louder one.
	fc := t.sketch.frequency(c.hash)
	duel := t.sketch
	if t.useShort {
		duel = t.short
	}
	if duel.frequency(c.hash) > duel.frequency(v.hash) || (fc >= 2 && t.belowFloor(c.tierCharge, g) && !t.belowFloor(v.tierCharge, g)) {
		t.window.remove(c)
		t.probation.pushFront(c)
		c.seg = segProbation
		return v
	}
	return c
}

// idleVictim is the least recently used page of the persona that has gone
// longest without touching the tier, if that persona is no longer active:
// a persona whose session ended hands its pages back first, however
// often they were used while it was active.
func (t *tierIndex) idleVictim(keep *pageEntry) *pageEntry {
	var best *share
	var victim *pageEntry
	for _, sh := range t.shares {
		if t.active(sh) || (best != nil && sh.lastTick >= best.lastTick) {
			continue
		}
		for e := sh.tail; e != nil; e = e.sprev {
			if e != keep && !e.busy {
				best, victim = sh, e
				break
			}
		}
	}
	return victim
}

// pin takes e off the lists (until unpin).
func (t *tierIndex) pin(e *pageEntry) {
	t.delist(e)
	t.pinned += e.size
}

// unpin lists e again, as if just arrived.
func (t *tierIndex) unpin(e *pageEntry) {
	t.pinned -= e.size
	t.enlist(e)
	t.settle()
}

// markBusy keeps e from being chosen while its bytes move; it keeps its
// place on the lists.
func (t *tierIndex) markBusy(e *pageEntry) {
	if !e.busy {
		e.busy = true
		t.busy += e.size
	}
}

func (t *tierIndex) clearBusy(e *pageEntry) {
	if e.busy {
		e.busy = false
		t.busy -= e.size
	}
}

// addPhantom counts bytes a page left behind while they are copied out:
// they still take room in the store, so nothing may be planned into it.
func (t *tierIndex) addPhantom(n uint64) {
	t.used += n
	t.busy += n
}

func (t *tierIndex) removePhantom(n uint64) {
	t.used -= n
	t.busy -= n
}
