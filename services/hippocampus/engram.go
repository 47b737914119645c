package hippocampus

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/btree"
)

// engram is one memory in a persona's slot array. A forgotten slot keeps
// its place (id empty) so slots held by buffers and scratch never point at
// another engram; slots are compacted when a persona is loaded.
type engram struct {
	id         string
	content    string
	entities   []uint32 // feature slots
	topics     []uint32
	terms      []uint32 // content words, for Recall only
	importance uint8
	lnImp      float64
	channel    uint16 // where it was remembered
	seq        uint32 // its position among the channel's engrams
	replyTo    string
	at         int64 // unix nanoseconds
	acc        accessHistory
	chans      []chanCount // events per channel (creation and consumptions)
	stableKey  float64
	// recency list links (slot+1; 0 is none)
	prev, next uint32
}

func (e *engram) live() bool { return e.id != "" }

type chanCount struct {
	ch uint16
	n  uint32
}

func (e *engram) eventsIn(ch uint16) uint32 {
	for _, c := range e.chans {
		if c.ch == ch {
			return c.n
		}
	}
	return 0
}

func (e *engram) addEvent(ch uint16) {
	for i := range e.chans {
		if e.chans[i].ch == ch {
			e.chans[i].n++
			return
		}
	}
	e.chans = append(e.chans, chanCount{ch: ch, n: 1})
}

// featureKind separates the name spaces of features.
type featureKind uint8

const (
	featEntity featureKind = 1
	featTopic  featureKind = 2
	featTerm   featureKind = 3
)

// feature is an entity, topic or content word with its postings (engram
// slots in insertion order; forgotten slots are skipped when read) and its
// fan (live engrams that have it).
type feature struct {
	kind     featureKind
	name     string
	postings []uint32
	fan      int
}

type featureKey struct {
	kind featureKind
	name string
}

// featureIndex is a persona's features.
type featureIndex struct {
	list  []feature
	index map[featureKey]uint32
}

func (fi *featureIndex) lookup(kind featureKind, name string) (uint32, bool) {
	id, ok := fi.index[featureKey{kind, name}]
	return id, ok
}

func (fi *featureIndex) intern(kind featureKind, name string) uint32 {
	if id, ok := fi.index[featureKey{kind, name}]; ok {
		return id
	}
	if fi.index == nil {
		fi.index = map[featureKey]uint32{}
	}
	id := uint32(len(fi.list))
	fi.list = append(fi.list, feature{kind: kind, name: name})
	fi.index[featureKey{kind, name}] = id
	return id
}

// channelStat is what a persona knows about one of its channels.
type channelStat struct {
	name   string
	events uint64 // N_c: events (creations and consumptions) in the channel
	// recent are the last engrams remembered in the channel, oldest first
	// (the seeds of spreading are the last three).
	recent []uint32
	lastAt int64 // when the last engram was remembered here
	// count is how many engrams were remembered here (the next seq).
	count uint32
	// Transient state for edge derivation (not persisted): engrams consumed
	// by the last request here, which the next engram remembered here cites.
	pendingCites []uint32
	pendingAt    int64
}

// recentPerChannel is how many remembered engrams a channel keeps as
// candidates; the last three are the seeds.
const recentPerChannel = 64

// stableEntry orders the stable index: highest key first, newest first on
// ties.
type stableEntry struct {
	key  float64
	slot uint32
}

func stableLess(a, b stableEntry) bool {
	if a.key != b.key {
		return a.key > b.key
	}
	return a.slot > b.slot
}

func newStableIndex() *btree.BTreeG[stableEntry] {
	return btree.NewG(32, stableLess)
}

// normalizeFeature lower-cases a feature and folds runs of white space.
func normalizeFeature(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

// stopWords are not indexed as content terms.
var stopWords = map[string]bool{
	"the": true, "and": true, "for": true, "that": true, "this": true, "with": true, "you": true,
	"are": true, "was": true, "were": true, "but": true, "not": true, "have": true, "has": true,
	"had": true, "from": true, "they": true, "them": true, "their": true, "what": true, "when": true,
	"which": true, "who": true, "will": true, "would": true, "could": true, "should": true, "about": true,
	"there": true, "then": true, "than": true, "into": true, "our": true, "out": true, "your": true,
	"its": true, "it's": true, "can": true, "just": true, "also": true, "all": true, "any": true,
}

// maxTermsPerEngram bounds the content words indexed per engram.
const maxTermsPerEngram = 64

// contentTerms splits text into lower-case words of at least three runes,
// without stop words or repeats, at most maxTermsPerEngram.
func contentTerms(text string) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	}) {
		w = strings.Trim(w, "'")
		if utf8.RuneCountInString(w) < 3 || len(w) > 64 || stopWords[w] || seen[w] {
			continue
		}
		seen[w] = true
		out = append(out, w)
		if len(out) == maxTermsPerEngram {
			break
		}
	}
	return out
}
