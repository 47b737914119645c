package genome

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/continuum-mesh/continuum/pkg/auth"
)

// PageIn makes a page resident in the persona's working set, in the
// fastest tier big enough for it. A resident page returns at once, without
// a lock or an allocation; otherwise the page faults in from the tier that
// holds it (or is cut from its artifact's home copy), and victims are
// demoted down the chain by each tier's policy. Concurrent page-ins of
// one page load it once.
func (s *Service) PageIn(ctx context.Context, p PersonaID, ref PageRef) (PageInResult, error) {
	h := ref.hash()
	if e := s.table.get(ref, h); e != nil {
		if v := e.view.Load(); v != nil && v.hitFor(p, e.fit) && !s.closing.Load() {
			s.recordHit(e)
			return PageInResult{Resident: ResidentPage{
				Ref: ref, Role: v.role, Size: e.size, Pinned: v.pinned,
				Handle: PageHandle{Role: v.role, Gen: v.gen},
			}}, nil
		}
	}
	return s.pageIn(ctx, p, ref, h, false, auth.Caller(ctx).Name)
}

// recordHit notes a lock-free hit for the policy.
func (s *Service) recordHit(e *pageEntry) {
	b := &s.reads[(e.hash>>32)%readStripes]
	if b.add(e) && s.mu.TryLock() {
		s.drainReads()
		s.mu.Unlock()
	}
}

// drainReads applies the recorded hits (mu).
func (s *Service) drainReads() {
	for i := range s.reads {
		s.reads[i].drain(s.applyHit)
	}
}

func (s *Service) applyHit(e *pageEntry) {
	if e.removed || e.loading || e.pos < 0 {
		return
	}
	s.sketch.increment(e.hash)
	if s.short != nil {
		s.short.increment(e.hash)
	}
	s.touch(e, e.tierCharge)
	s.tiers[e.pos].sampleAccess(true, e.hash, e.size)
}

// touch records a use of e in its tier (mu).
func (s *Service) touch(e *pageEntry, p PersonaID) {
	s.useTick++
	e.lastUse = s.useTick
	t := s.tiers[e.pos]
	if t.home {
		return
	}
	t.access(e, p)
	if t.role.Medium() != "memory" {
		t.store.ObserveAccess(e.ref, s.now())
	}
}

// fitPos is the position of the fastest tier big enough for size bytes;
// the home tier holds every artifact, so it always fits.
func (s *Service) fitPos(size uint64) int {
	for _, t := range s.tiers {
		if size <= t.capacity {
			return t.pos
		}
	}
	return s.home.pos
}

// pageIn is the slow path of PageIn, also used by prefetches.
func (s *Service) pageIn(ctx context.Context, p PersonaID, ref PageRef, h uint64, prefetch bool, caller string) (PageInResult, error) {
	const op = "page in"
	if err := ref.Validate(); err != nil {
		return PageInResult{}, opErr(op, p, ref, err)
	}
	s.mu.Lock()
	homeRetry := false
	for {
		if s.closed {
			s.mu.Unlock()
			return PageInResult{}, ErrClosed
		}
		s.drainReads()
		per, art, off, n, err := s.resolve("page-in", p, ref, caller)
		if err != nil {
			s.mu.Unlock()
			return PageInResult{}, opErr(op, p, ref, err)
		}
		e := s.table.get(ref, h)
		if e != nil && e.loading {
			if err := s.waitLoad(ctx, e); err != nil {
				return PageInResult{}, opErr(op, p, ref, err)
			}
			continue
		}
		s.sketch.increment(h)
		if s.short != nil {
			s.short.increment(h)
		}
		fit := s.fitPos(n)
		if e == nil && fit == s.home.pos {
			// Bigger than every upper tier: the page is resident where
			// its bytes already are, in the home copy.
			e = s.newEntry(ref, h, off, n, fit, art)
			e.pos = s.home.pos
		}
		if e != nil && e.pos != -1 && e.pos <= fit {
			res, recs, err := s.residentFor(ctx, per, e)
			s.mu.Unlock()
			s.outbox.evictions(recs)
			return res, opErr(op, p, ref, err)
		}
		res, err := s.fault(ctx, per, art, e, ref, h, off, n, fit, prefetch, caller)
		if err != nil && !homeRetry && errors.Is(err, errRetryFromHome) {
			homeRetry = true
			continue
		}
		s.mu.Unlock()
		if err == nil {
			s.outbox.evictions(res.Evictions)
		}
		return res, opErr(op, p, ref, err)
	}
}

// residentFor answers a page-in of a page that needs no bytes moved: it
// joins the persona's working set if it is not in it yet (mu).
func (s *Service) residentFor(ctx context.Context, per *persona, e *pageEntry) (PageInResult, []EvictionRecord, error) {
	var recs []EvictionRecord
	if !e.holds(per.id) {
		if err := s.canJoin(per, e.size, e); err != nil {
			if len(e.holders) == 0 {
				s.dropEntry(e)
			}
			return PageInResult{}, nil, err
		}
		recs = s.trimFor(ctx, per, e.size, e)
		s.addHolder(per, e)
		if len(e.holders) == 1 {
			s.table.put(e)
		}
		e.publish(s.tiers[e.pos].role)
	}
	s.touch(e, per.id)
	s.tiers[e.pos].sampleAccess(true, e.hash, e.size)
	return PageInResult{Resident: s.resident(e), Evictions: recs}, recs, nil
}

// errRetryFromHome asks pageIn to fault again from the home copy after a
// corrupt or vanished upper-tier copy was dropped.
var errRetryFromHome = errors.New("upper-tier copy dropped; retry from the home copy")

// fault pages e (nil when no tier holds it) into the tier at fit. It is
// called and returns with mu held, releasing it while bytes are read.
func (s *Service) fault(ctx context.Context, per *persona, art *artifact, e *pageEntry, ref PageRef, h, off, n uint64,
	fit int, prefetch bool, caller string,
) (PageInResult, error) {
	target := s.tiers[fit]
	from := RoleNone
	var src *tierIndex
	switch {
	case e != nil:
		src = s.tiers[e.pos]
		from = src.role
	case ref.Kind == KindWhole:
		from = s.home.role
	}
	if !target.canHold(n) {
		return PageInResult{}, fmt.Errorf("%w: the %s tier (%d of %d bytes used, %d pinned, %d in flight) cannot make room for %d bytes",
			ErrNoEvictionCandidate, target.role, target.used, target.capacity, target.pinned, target.busy, n)
	}
	joining := e == nil || !e.holds(per.id)
	if joining {
		if err := s.canJoin(per, n, e); err != nil {
			return PageInResult{}, err
		}
	}
	var recs []EvictionRecord
	if joining {
		recs = s.trimFor(ctx, per, n, e)
	}
	if e == nil {
		e = s.newEntry(ref, h, off, n, fit, art)
	}
	if joining {
		s.addHolder(per, e)
	}
	if src == nil {
		s.table.put(e)
	}
	e.charged = per.id
	if src != nil {
		src.unplace(e)
		src.addPhantom(n)
	}
	e.loading = true
	e.ready = make(chan struct{})
	target.insert(e, per.id)
	target.markBusy(e)
	more, err := s.makeRoom(ctx, target, per.id, e)
	recs = append(recs, more...)
	target.settle()
	if err != nil {
		// canHold said there was room; losing it means the books are
		// wrong. Undo and report rather than overfill.
		s.log.Error("genome: no victim although the tier had room", "role", target.role.String(), "error", err)
		s.abortLoad(ctx, e, src, target, per, joining, err)
		return PageInResult{Evictions: recs}, err
	}
	e.pos = target.pos
	e.publish(target.role)
	meta := PageMeta{Persona: per.id}
	s.ops.Add(1)
	s.mu.Unlock()

	err = s.loadBytes(context.WithoutCancel(ctx), e.ref, src, target, art, off, n, meta)

	s.mu.Lock()
	s.ops.Done()
	if err != nil {
		if src != nil && (errors.Is(err, ErrPageCorrupt) || errors.Is(err, ErrPageNotStored)) {
			s.log.Warn("genome: dropping a bad upper-tier copy", "role", src.role.String(), "page", ref.String(), "error", err)
			target.unplace(e)
			src.removePhantom(n)
			if evErr := src.store.Evict(context.WithoutCancel(ctx), ref); evErr != nil {
				s.log.Warn("genome: evict bad copy", "role", src.role.String(), "error", evErr)
			}
			e.loading = false
			e.loadErr = err
			close(e.ready)
			s.dropEntry(e)
			return PageInResult{Evictions: recs}, errRetryFromHome
		}
		if errors.Is(err, ErrPageNotStored) {
			art.lost = true
			err = fmt.Errorf("%w: the %s tier has no copy of artifact %s", ErrArtifactDataLost, s.home.role, art.id)
		}
		s.abortLoad(ctx, e, src, target, per, joining, err)
		return PageInResult{Evictions: recs}, err
	}
	if src != nil {
		if evErr := src.store.Evict(context.WithoutCancel(ctx), ref); evErr != nil {
			s.log.Warn("genome: evict promoted copy", "role", src.role.String(), "page", ref.String(), "error", evErr)
		}
		src.removePhantom(n)
	}
	target.clearBusy(e)
	e.loading = false
	close(e.ready)
	s.gen++
	e.gen = s.gen
	e.publish(target.role)
	target.faults++
	target.sampleAccess(false, h, n)
	s.touch(e, per.id)
	fault := PageFault{From: from, To: target.role}
	s.outbox.pageFault(per.id, ref, fault, n, prefetch, caller)
	return PageInResult{Resident: s.resident(e), Faulted: true, Fault: fault, Evictions: recs}, nil
}

// abortLoad undoes a fault that could not load its bytes: the page goes
// back where it was, without the persona that joined for this fault (mu).
func (s *Service) abortLoad(ctx context.Context, e *pageEntry, src, target *tierIndex, per *persona, joined bool, err error) {
	target.unplace(e)
	e.loading = false
	e.loadErr = err
	close(e.ready)
	if joined {
		e.holders = slices.DeleteFunc(e.holders, func(h PersonaID) bool { return h == per.id })
		delete(per.pages, e)
		per.used -= e.size
	}
	if src == nil {
		s.dropEntry(e)
		return
	}
	src.removePhantom(e.size)
	if len(e.holders) == 0 {
		if evErr := src.store.Evict(context.WithoutCancel(ctx), e.ref); evErr != nil {
			s.log.Warn("genome: evict abandoned page", "role", src.role.String(), "error", evErr)
		}
		s.dropEntry(e)
		return
	}
	if !e.holds(e.charged) {
		e.charged = e.holders[0]
	}
	src.insert(e, e.charged)
	e.pos = src.pos
	e.publish(src.role)
}

// loadBytes copies a page into the target tier from its source: an upper
// tier, or the artifact's home copy.
func (s *Service) loadBytes(ctx context.Context, ref PageRef, src, target *tierIndex, art *artifact, off, n uint64, meta PageMeta) error {
	if src != nil {
		return s.copyPage(ctx, ref, src.store, target.store, meta, n)
	}
	if ref.Kind == KindWhole {
		return s.copyPage(ctx, ref, s.home.store, target.store, meta, n)
	}
	data, err := s.home.store.Read(ctx, WholePage(art.id))
	if err != nil {
		return err
	}
	defer data.Close()
	rc, err := data.OpenRange(off, n)
	if err != nil {
		return err
	}
	defer rc.Close()
	return target.store.Write(ctx, ref, meta, n, rc)
}

// copyPage copies one page between stores: by hard link between file
// stores of one codec, without a copy between memory stores.
func (s *Service) copyPage(ctx context.Context, ref PageRef, from, to TierStore, meta PageMeta, n uint64) error {
	if sf, ok := from.(*FileStore); ok {
		if df, ok := to.(*FileStore); ok {
			linked, err := df.linkFrom(ref, meta, n, sf)
			if err != nil || linked {
				return err
			}
		}
	}
	data, err := from.Read(ctx, ref)
	if err != nil {
		return err
	}
	defer data.Close()
	if data.Size() != n {
		return fmt.Errorf("%w: the %s tier holds %d bytes for %s, want %d", ErrPageCorrupt, from.Role(), data.Size(), ref, n)
	}
	rc, err := data.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	return to.Write(ctx, ref, meta, n, rc)
}

// makeRoom evicts from t until it is within capacity (mu). keep is the
// page being placed, never a victim.
func (s *Service) makeRoom(ctx context.Context, t *tierIndex, requester PersonaID, keep *pageEntry) ([]EvictionRecord, error) {
	var recs []EvictionRecord
	for t.used > t.capacity {
		v := t.nextVictim(requester, keep)
		if v == nil {
			return recs, fmt.Errorf("%w in the %s tier", ErrNoEvictionCandidate, t.role)
		}
		t.evictions++
		recs = append(recs, s.demote(ctx, v, t, t.pos+1)...)
	}
	return recs, nil
}

// demote moves e out of tier from into the first tier at or below
// startPos that can hold it, evicting there in turn, or drops it when it
// reaches the home tier (mu). The last record is e's own move.
func (s *Service) demote(ctx context.Context, e *pageEntry, from *tierIndex, startPos int) []EvictionRecord {
	ctx = context.WithoutCancel(ctx)
	from.unplace(e)
	from.addPhantom(e.size)
	meta := PageMeta{Persona: e.charged}
	var recs []EvictionRecord
	for pos := startPos; pos < len(s.tiers); pos++ {
		d := s.tiers[pos]
		if d.home || !d.canHold(e.size) {
			continue
		}
		d.insert(e, e.charged)
		d.markBusy(e)
		sub, err := s.makeRoom(ctx, d, e.charged, e)
		recs = append(recs, sub...)
		if err == nil {
			err = s.copyPage(ctx, e.ref, from.store, d.store, meta, e.size)
		}
		if err != nil {
			s.log.Warn("genome: demotion failed; trying the next tier", "page", e.ref.String(), "from", from.role.String(), "to", d.role.String(), "error", err)
			d.unplace(e)
			continue
		}
		d.clearBusy(e)
		d.settle()
		s.finishMove(ctx, e, from)
		e.pos = d.pos
		s.gen++
		e.gen = s.gen
		e.publish(d.role)
		return append(recs, EvictionRecord{Page: e.ref, Persona: e.charged, From: from.role, To: d.role, Policy: from.policy, Size: e.size})
	}
	s.finishMove(ctx, e, from)
	to := RoleNone
	if e.ref.Kind == KindWhole {
		to = s.home.role
	}
	rec := EvictionRecord{Page: e.ref, Persona: e.charged, From: from.role, To: to, Policy: from.policy, Size: e.size}
	s.dropEntry(e)
	return append(recs, rec)
}

// finishMove removes the bytes a page left behind in tier from.
func (s *Service) finishMove(ctx context.Context, e *pageEntry, from *tierIndex) {
	if err := from.store.Evict(ctx, e.ref); err != nil {
		s.log.Warn("genome: evict moved page", "role", from.role.String(), "page", e.ref.String(), "error", err)
	}
	from.removePhantom(e.size)
}

// newEntry makes an entry for a page that is in no working set (mu).
func (s *Service) newEntry(ref PageRef, h, off, n uint64, fit int, art *artifact) *pageEntry {
	e := &pageEntry{ref: ref, hash: h, size: n, off: off, fit: fit, pos: -1}
	e.owners = s.ownersOf(art, off, n)
	art.entries[e] = struct{}{}
	s.sketch.ensureCapacity(int(s.table.count.Load()) + 1)
	if s.short != nil {
		s.short.ensureCapacity(int(s.table.count.Load()) + 1)
	}
	return e
}

// dropEntry removes a page from every working set and the table (mu).
// Its bytes must already be gone from the upper tiers.
func (s *Service) dropEntry(e *pageEntry) {
	for _, h := range e.holders {
		if per := s.personas[h]; per != nil {
			delete(per.pages, e)
			per.used -= e.size
		}
	}
	e.holders, e.pins = nil, nil
	if art := s.artifacts[e.ref.Artifact]; art != nil {
		delete(art.entries, e)
	}
	e.removed = true
	e.pos = -1
	e.publish(RoleNone)
	s.table.delete(e)
}

func (s *Service) addHolder(per *persona, e *pageEntry) {
	e.holders = append(e.holders, per.id)
	per.pages[e] = struct{}{}
	per.used += e.size
	if e.charged.IsZero() {
		e.charged = per.id
	}
}

// resident describes e as a resident page (mu).
func (s *Service) resident(e *pageEntry) ResidentPage {
	role := s.tiers[e.pos].role
	return ResidentPage{Ref: e.ref, Role: role, Size: e.size, Pinned: len(e.pins) > 0, Handle: PageHandle{Role: role, Gen: e.gen}}
}

// waitLoad waits, without mu, for a load in flight; it returns with mu
// held, or without it and the context's error.
func (s *Service) waitLoad(ctx context.Context, e *pageEntry) error {
	ch := e.ready
	s.mu.Unlock()
	select {
	case <-ch:
		s.mu.Lock()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// canJoin reports whether n more bytes fit the persona's working set,
// possibly after leaving pages it does not pin (mu).
func (s *Service) canJoin(per *persona, n uint64, keep *pageEntry) error {
	if n > per.capacity {
		return fmt.Errorf("%w: the page is %d bytes, the working set holds %d", ErrWorkingSetFull, n, per.capacity)
	}
	if per.used+n <= per.capacity {
		return nil
	}
	var free uint64
	for e := range per.pages {
		if e != keep && !e.loading && !e.pinnedBy(per.id) {
			free += e.size
		}
	}
	if per.used-free+n > per.capacity {
		return fmt.Errorf("%w: %d of %d bytes used, %d of them pinned or loading", ErrWorkingSetFull, per.used, per.capacity, per.used-free)
	}
	return nil
}

// trimFor leaves pages of the persona's working set until n more bytes
// fit: pages in the slowest tier first, least recently used first. A page
// no working set holds any more is dropped from its tier (mu).
func (s *Service) trimFor(ctx context.Context, per *persona, n uint64, keep *pageEntry) []EvictionRecord {
	var recs []EvictionRecord
	for per.used+n > per.capacity {
		var v *pageEntry
		for e := range per.pages {
			if e == keep || e.loading || e.pinnedBy(per.id) {
				continue
			}
			if v == nil || e.pos > v.pos || (e.pos == v.pos && e.lastUse < v.lastUse) {
				v = e
			}
		}
		if v == nil {
			return recs
		}
		if rec, dropped := s.leave(ctx, per, v); dropped {
			recs = append(recs, rec)
		}
	}
	return recs
}

// leave takes a page out of one persona's working set, dropping it when
// no working set holds it any more (mu).
func (s *Service) leave(ctx context.Context, per *persona, e *pageEntry) (EvictionRecord, bool) {
	e.holders = slices.DeleteFunc(e.holders, func(h PersonaID) bool { return h == per.id })
	delete(per.pages, e)
	per.used -= e.size
	t := s.tiers[e.pos]
	if len(e.holders) > 0 {
		if e.charged == per.id {
			e.charged = e.holders[0]
			if !t.home {
				t.recharge(e, e.charged)
			}
		}
		e.publish(t.role)
		return EvictionRecord{}, false
	}
	rec := EvictionRecord{Page: e.ref, Persona: per.id, From: t.role, Policy: "working-set", Size: e.size}
	dropped := !t.home
	if dropped {
		t.evictions++
		t.unplace(e)
		if err := t.store.Evict(context.WithoutCancel(ctx), e.ref); err != nil {
			s.log.Warn("genome: evict trimmed page", "role", t.role.String(), "page", e.ref.String(), "error", err)
		}
		rec.To = RoleNone
		if e.ref.Kind == KindWhole {
			rec.To = s.home.role
		}
	}
	s.dropEntry(e)
	return rec, dropped
}

// resolve checks that the persona and artifact exist, that the ref lies
// in the artifact and that no other persona owns the page; a refusal is
// recorded and published (mu).
func (s *Service) resolve(op string, p PersonaID, ref PageRef, caller string) (*persona, *artifact, uint64, uint64, error) {
	per := s.personas[p]
	if per == nil {
		return nil, nil, 0, 0, ErrPersonaUnknown
	}
	art := s.artifacts[ref.Artifact]
	if art == nil {
		return nil, nil, 0, 0, ErrArtifactUnknown
	}
	off, n, err := art.span(ref)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	if owner, denied := s.deniedBy(p, art, off, n); denied {
		rec := AccessDenied{Actor: p, Caller: caller, Owner: owner, Page: ref, Reason: DenyOwnedByAnother, Operation: op, At: s.now()}
		s.outbox.deny(rec)
		return nil, nil, 0, 0, &AccessDeniedError{Record: rec}
	}
	if art.lost {
		return nil, nil, 0, 0, fmt.Errorf("%w: the %s tier has no copy of artifact %s", ErrArtifactDataLost, s.home.role, art.id)
	}
	return per, art, off, n, nil
}

// deniedBy returns the owner of a page overlapping [off, off+n) that is
// not p, if any (mu).
func (s *Service) deniedBy(p PersonaID, art *artifact, off, n uint64) (PersonaID, bool) {
	for _, o := range s.owners[art.id] {
		if o.owner == p {
			continue
		}
		if oo, on, err := art.span(o.ref); err == nil && overlaps(off, n, oo, on) {
			return o.owner, true
		}
	}
	return PersonaID{}, false
}

// ownersOf lists the owners of pages overlapping [off, off+n) (mu).
func (s *Service) ownersOf(art *artifact, off, n uint64) []PersonaID {
	var out []PersonaID
	for _, o := range s.owners[art.id] {
		if oo, on, err := art.span(o.ref); err == nil && overlaps(off, n, oo, on) && !slices.Contains(out, o.owner) {
			out = append(out, o.owner)
		}
	}
	return out
}

func overlaps(aOff, aN, bOff, bN uint64) bool { return aOff < bOff+bN && bOff < aOff+aN }

// lookupHeld finds the persona's resident page, waiting out a load in
// flight (mu held on success; released on error).
func (s *Service) lookupHeld(ctx context.Context, op string, p PersonaID, ref PageRef, caller string) (*persona, *artifact, *pageEntry, error) {
	h := ref.hash()
	for {
		if s.closed {
			s.mu.Unlock()
			return nil, nil, nil, ErrClosed
		}
		s.drainReads()
		per, art, _, _, err := s.resolve(op, p, ref, caller)
		if err != nil {
			s.mu.Unlock()
			return nil, nil, nil, err
		}
		e := s.table.get(ref, h)
		if e != nil && e.loading {
			if err := s.waitLoad(ctx, e); err != nil {
				return nil, nil, nil, err
			}
			continue
		}
		return per, art, e, nil
	}
}

// ReadPage opens the bytes of a page resident in the persona's working
// set. The caller closes the reader.
func (s *Service) ReadPage(ctx context.Context, p PersonaID, ref PageRef) (io.ReadCloser, uint64, error) {
	const op = "read page"
	if err := ref.Validate(); err != nil {
		return nil, 0, opErr(op, p, ref, err)
	}
	s.mu.Lock()
	_, art, e, err := s.lookupHeld(ctx, "read-page", p, ref, auth.Caller(ctx).Name)
	if err != nil {
		return nil, 0, opErr(op, p, ref, err)
	}
	defer s.mu.Unlock()
	if e == nil || !e.holds(p) {
		return nil, 0, opErr(op, p, ref, ErrPageNotResident)
	}
	t := s.tiers[e.pos]
	var data PageData
	if t.home {
		data, err = t.store.Read(ctx, WholePage(art.id))
	} else {
		data, err = t.store.Read(ctx, ref)
	}
	if err != nil {
		if errors.Is(err, ErrPageNotStored) {
			err = fmt.Errorf("%w: the %s tier lost the page", ErrPageCorrupt, t.role)
		}
		return nil, 0, opErr(op, p, ref, err)
	}
	defer data.Close()
	var rc io.ReadCloser
	if t.home && ref.Kind != KindWhole {
		rc, err = data.OpenRange(e.off, e.size)
	} else {
		rc, err = data.Open()
	}
	if err != nil {
		return nil, 0, opErr(op, p, ref, err)
	}
	s.touch(e, p)
	return rc, e.size, nil
}

// PageOut demotes a page of the persona's working set to the target role,
// or lower when the target cannot make room. A pinned page is skipped.
func (s *Service) PageOut(ctx context.Context, p PersonaID, ref PageRef, target Role) (PageOutResult, error) {
	const op = "page out"
	if err := ref.Validate(); err != nil {
		return PageOutResult{}, opErr(op, p, ref, err)
	}
	if !target.Valid() {
		return PageOutResult{}, opErr(op, p, ref, fmt.Errorf("%w: target %s", ErrRoleInvalid, target))
	}
	s.mu.Lock()
	_, _, e, err := s.lookupHeld(ctx, "page-out", p, ref, auth.Caller(ctx).Name)
	if err != nil {
		return PageOutResult{}, opErr(op, p, ref, err)
	}
	d := s.byRole[target]
	if d == nil {
		s.mu.Unlock()
		return PageOutResult{}, opErr(op, p, ref, &RoleNotConfiguredError{Role: target})
	}
	if e == nil || !e.holds(p) {
		s.mu.Unlock()
		return PageOutResult{}, opErr(op, p, ref, ErrPageNotResident)
	}
	cur := s.tiers[e.pos].role
	switch {
	case len(e.pins) > 0:
		s.mu.Unlock()
		return PageOutResult{SkippedPinned: true, From: cur, To: cur}, nil
	case d.pos <= e.pos:
		s.mu.Unlock()
		return PageOutResult{From: cur, To: cur}, nil
	}
	from := s.tiers[e.pos]
	recs := s.demote(ctx, e, from, d.pos)
	own := recs[len(recs)-1]
	own.Policy = "page-out"
	recs[len(recs)-1] = own
	s.mu.Unlock()
	s.outbox.evictions(recs)
	return PageOutResult{Moved: true, From: own.From, To: own.To, Evictions: recs[:len(recs)-1]}, nil
}

// Pin keeps a page of the persona's working set where it is: never
// evicted, skipped by page-out, never left by a working-set trim.
func (s *Service) Pin(ctx context.Context, p PersonaID, ref PageRef) (ResidentPage, error) {
	const op = "pin"
	if err := ref.Validate(); err != nil {
		return ResidentPage{}, opErr(op, p, ref, err)
	}
	s.mu.Lock()
	_, _, e, err := s.lookupHeld(ctx, "pin", p, ref, auth.Caller(ctx).Name)
	if err != nil {
		return ResidentPage{}, opErr(op, p, ref, err)
	}
	defer s.mu.Unlock()
	if e == nil || !e.holds(p) {
		return ResidentPage{}, opErr(op, p, ref, ErrPageNotResident)
	}
	if !e.pinnedBy(p) {
		t := s.tiers[e.pos]
		if len(e.pins) == 0 && !t.home {
			t.pin(e)
		}
		e.pins = append(e.pins, p)
		e.publish(t.role)
	}
	return s.resident(e), nil
}

// Unpin releases the persona's pin on a page. It reports false when the
// persona held no pin on it.
func (s *Service) Unpin(ctx context.Context, p PersonaID, ref PageRef) (bool, error) {
	const op = "unpin"
	if err := ref.Validate(); err != nil {
		return false, opErr(op, p, ref, err)
	}
	s.mu.Lock()
	_, _, e, err := s.lookupHeld(ctx, "unpin", p, ref, auth.Caller(ctx).Name)
	if err != nil {
		return false, opErr(op, p, ref, err)
	}
	defer s.mu.Unlock()
	if e == nil || !e.pinnedBy(p) {
		return false, nil
	}
	e.pins = slices.DeleteFunc(e.pins, func(q PersonaID) bool { return q == p })
	t := s.tiers[e.pos]
	if len(e.pins) == 0 && !t.home {
		t.unpin(e)
	}
	e.publish(t.role)
	return true, nil
}

// WorkingSet lists a persona's resident pages, fastest tier first. An
// unknown persona is ErrPersonaUnknown, never an empty set.
func (s *Service) WorkingSet(_ context.Context, p PersonaID) (WorkingSet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drainReads()
	per := s.personas[p]
	if per == nil {
		return WorkingSet{}, fmt.Errorf("working set of %s: %w", p, ErrPersonaUnknown)
	}
	ws := WorkingSet{Persona: p, Capacity: Capacity{Total: per.capacity, Used: per.used}, Pages: make([]ResidentPage, 0, len(per.pages))}
	for e := range per.pages {
		ws.Pages = append(ws.Pages, s.resident(e))
	}
	slices.SortFunc(ws.Pages, func(a, b ResidentPage) int {
		if a.Role != b.Role {
			return int(a.Role) - int(b.Role)
		}
		return strings.Compare(a.Ref.String(), b.Ref.String())
	})
	return ws, nil
}

// Tiers reports each configured tier, fastest first.
func (s *Service) Tiers() []TierStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TierStatus, 0, len(s.tiers))
	for _, t := range s.tiers {
		out = append(out, TierStatus{
			Role: t.role, Capacity: Capacity{Total: t.capacity, Used: t.used}, Policy: t.policy,
			Pages: uint64(t.pages), Home: t.home, Evictions: t.evictions, Faults: t.faults,
		})
	}
	return out
}

// RegisterPersona creates a persona's working set, or changes its
// capacity (leaving pages beyond a smaller one). It reports whether the
// persona is new.
func (s *Service) RegisterPersona(ctx context.Context, p PersonaID, capacity uint64) (bool, error) {
	if p.IsZero() {
		return false, ErrPersonaIDInvalid
	}
	if capacity == 0 {
		return false, fmt.Errorf("%w: a working set needs at least 1 byte", ErrCapacityInvalid)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false, ErrClosed
	}
	per := s.personas[p]
	created := per == nil
	var recs []EvictionRecord
	switch {
	case created:
		s.personas[p] = &persona{id: p, capacity: capacity, pages: map[*pageEntry]struct{}{}}
	case per.capacity != capacity:
		per.capacity = capacity
		recs = s.trimFor(ctx, per, 0, nil)
	default:
		s.mu.Unlock()
		return false, nil
	}
	snap := s.catalogSnapshot()
	s.mu.Unlock()
	s.outbox.evictions(recs)
	if err := s.writeCatalog(snap); err != nil {
		return created, fmt.Errorf("register persona %s: %w", p, err)
	}
	return created, nil
}

// RegisterPageOwner makes owner the owner of a page: other personas are
// denied it and every page overlapping its bytes. It reports whether the
// ownership is new.
func (s *Service) RegisterPageOwner(_ context.Context, ref PageRef, owner PersonaID) (bool, error) {
	const op = "register page owner"
	if err := ref.Validate(); err != nil {
		return false, opErr(op, owner, ref, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false, ErrClosed
	}
	if s.personas[owner] == nil {
		s.mu.Unlock()
		return false, opErr(op, owner, ref, ErrPersonaUnknown)
	}
	art := s.artifacts[ref.Artifact]
	if art == nil {
		s.mu.Unlock()
		return false, opErr(op, owner, ref, ErrArtifactUnknown)
	}
	off, n, err := art.span(ref)
	if err != nil {
		s.mu.Unlock()
		return false, opErr(op, owner, ref, err)
	}
	for _, o := range s.owners[art.id] {
		if o.ref == ref && o.owner == owner {
			s.mu.Unlock()
			return false, nil
		}
	}
	if other, taken := s.deniedBy(owner, art, off, n); taken {
		s.mu.Unlock()
		return false, opErr(op, owner, ref, fmt.Errorf("%w: persona %s owns an overlapping page", ErrPageOwned, other))
	}
	s.owners[art.id] = append(s.owners[art.id], ownerSpan{ref: ref, owner: owner})
	for e := range art.entries {
		e.owners = s.ownersOf(art, e.off, e.size)
		if e.pos >= 0 {
			e.publish(s.tiers[e.pos].role)
		}
	}
	snap := s.catalogSnapshot()
	s.mu.Unlock()
	if err := s.writeCatalog(snap); err != nil {
		return true, fmt.Errorf("register owner of %s: %w", ref, err)
	}
	return true, nil
}
