package hippocampus

import (
	"context"
	"strings"
	"time"
)

// Recall limits.
const (
	maxCueLen      = 4096
	maxRecallK     = 64
	defaultRecallK = 8
	// recallPostings bounds how many of a cue feature's most recent
	// engrams are scored.
	recallPostings = 4096
)

// RecallResult is an explicit recall's answer.
type RecallResult struct {
	Items []Item
	// Partial: the recall timeout cut the search short.
	Partial bool
}

// Recall ranks the persona's engrams for an explicit cue: candidates are
// the engrams having the cue's entities, topics or content words, ranked by
// base level, importance, the channel's bias and the cue association. An
// empty cue ranks by activation alone (what a tick would stage). It is
// bounded by the recall timeout, and is a request but not an access.
func (s *Service) Recall(ctx context.Context, persona, channel, cue string, k int) (RecallResult, error) {
	if err := checkPersona(persona); err != nil {
		return RecallResult{}, err
	}
	if channel != "" {
		if err := checkChannel(channel); err != nil {
			return RecallResult{}, err
		}
	}
	if len(cue) > maxCueLen {
		return RecallResult{}, invalid(ReasonCueTooLarge, "cue", "the cue is %d bytes; the limit is %d", len(cue), maxCueLen)
	}
	if k == 0 {
		k = defaultRecallK
	}
	if k < 0 || k > maxRecallK {
		return RecallResult{}, invalid(ReasonKOutOfRange, "k", "k %d is outside 1..%d", k, maxRecallK)
	}
	p, err := s.acquire(ctx, persona, false)
	if err != nil || p == nil {
		return RecallResult{}, err
	}
	s.requests.Add(1)
	if channel != "" {
		if t := p.target(channel); t != nil {
			s.reg.request(t)
		}
	}
	deadline := time.Now().Add(s.cfg.RecallTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	sc := getScratch()
	defer putScratch(sc)
	p.mu.RLock()
	defer p.mu.RUnlock()
	now := s.mem.now()
	if strings.TrimSpace(cue) == "" {
		sel := s.mem.pred.predict(p, predictArgs{channel: channel, now: now, share: 0, k: k, budgetScale: 1}, sc)
		for i := range sel.items {
			sel.items[i].Pool = PoolNone
		}
		return RecallResult{Items: sel.items}, nil
	}
	return s.recallCue(ctx, p, channel, cue, k, now, deadline, sc), nil
}

// cueFeatures finds the persona's features a cue names: entities and
// topics by their normalised name (phrases of up to three words), content
// words by themselves.
func cueFeatures(p *persona, cue string) []uint32 {
	words := strings.Fields(normalizeFeature(cue))
	var out []uint32
	seen := map[uint32]bool{}
	add := func(id uint32) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for n := 3; n >= 1; n-- {
		for i := 0; i+n <= len(words); i++ {
			phrase := strings.Trim(strings.Join(words[i:i+n], " "), ".,;:!?\"'()[]")
			for _, kind := range []featureKind{featEntity, featTopic} {
				if id, ok := p.feats.lookup(kind, phrase); ok {
					add(id)
				}
			}
		}
	}
	for _, w := range contentTerms(cue) {
		if id, ok := p.feats.lookup(featTerm, w); ok {
			add(id)
		}
	}
	return out
}

func (s *Service) recallCue(ctx context.Context, p *persona, channel, cue string, k int, now int64, deadline time.Time, sc *scratch) RecallResult {
	feats := cueFeatures(p, cue)
	if len(feats) == 0 {
		return RecallResult{}
	}
	sc.reset(len(p.engrams))
	for _, f := range feats {
		sc.sources = append(sc.sources, source{feat: f, w: 1 / float64(len(feats))})
	}
	m := &s.cfg.Model
	n := int(p.live.Load())
	ch, chKnown := p.chanIdx[channel]
	var nc float64
	channels := float64(len(p.chans))
	if chKnown {
		nc = float64(p.chans[ch].events)
	} else {
		channels++
	}
	partial := false
	work := 0
scan:
	for _, src := range sc.sources {
		post := p.feats.list[src.feat].postings
		for j, taken := len(post)-1, 0; j >= 0 && taken < recallPostings; j-- {
			slot := post[j]
			if !p.engrams[slot].live() || sc.mark[slot] == sc.epoch {
				continue
			}
			sc.mark[slot] = sc.epoch
			taken++
			if work++; work%1024 == 0 && (time.Now().After(deadline) || ctx.Err() != nil) {
				partial = true
				break scan
			}
			e := &p.engrams[slot]
			var cue float64
			for _, ids := range [3][]uint32{e.entities, e.topics, e.terms} {
				for _, f := range ids {
					for _, sr := range sc.sources {
						if sr.feat == f {
							cue += sr.w * featureStrength(n, p.feats.list[f].fan)
							break
						}
					}
				}
			}
			var cb float64
			if chKnown {
				var ni float64
				for _, cc := range e.chans {
					ni += float64(cc.n)
				}
				cb = channelBias(nc, float64(p.events), channels, float64(e.eventsIn(ch)), ni, m.ChannelPrior)
			}
			score := baseLevel(&e.acc, now, m.D) + m.LambdaImp*e.lnImp + m.WChannel*cb + max(m.WContext, 1)*cue
			sc.cands = append(sc.cands, cand{slot: slot, assoc: score})
		}
	}
	var items []Item
	for _, i := range sc.rank.top(sc.cands, k, byAssoc, nil) {
		c := sc.cands[i]
		items = append(items, Item{Slot: c.slot, ID: p.engrams[c.slot].id, Score: c.assoc})
	}
	return RecallResult{Items: items, Partial: partial}
}
