package hippocampus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/wait"
	hippocampusv1 "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
)

// Sharding and hand-off.
//
// Every persona-scoped call first asks the Ring who owns the persona. A call
// for a persona another member owns answers PERSONA_NOT_OWNED (with the
// owner), one whose owner crashed PERSONA_OWNER_DOWN: never an empty memory.
//
// A persona moves when its owner changes:
//
//   - push: on every membership change (and every MaintainInterval) a member
//     hands each persona it holds but no longer owns to the owner
//     (ImportPersona), and drops its copy once the owner acknowledged;
//   - pull: the owner, asked about a persona it does not hold, asks the
//     previous owner and then every other member to hand it over
//     (ExportPersona, which makes the holder push). The request waits up
//     to LocateWait; a persona that takes longer answers PERSONA_MOVING
//     until it has arrived. Only when every member answered that it does not
//     hold the persona is it new;
//   - leave: a member leaving gracefully hands every persona to the member
//     that owns it once it is gone (Leave), before it stops.
//
// While a persona streams away its holder answers PERSONA_MOVING and
// accepts no writes, so nothing acknowledged is left behind; the receiver
// makes it durable before acknowledging; an import merges by engram id, so
// a repeated or crossed hand-off loses nothing either.

// handOffTimeout bounds one hand-off.
const handOffTimeout = 10 * time.Minute

// maxAbsent bounds the cache of personas known to exist nowhere.
const maxAbsent = 100000

type locateResult struct {
	err     error // *MovingError, *OwnerDownError or nil
	present bool  // the persona arrived (or was here)
}

type locateCall struct {
	done chan struct{}
	res  locateResult
}

// acquire returns the persona for a call, after checking that this member
// owns it: nil (with no error) when it exists nowhere and create is false.
func (s *Service) acquire(ctx context.Context, name string, create bool) (*persona, error) {
	if s.closing.Load() {
		return nil, ErrClosed
	}
	if s.ring == nil {
		if create {
			return s.held(name, true)
		}
		return s.held(name, false)
	}
	self := s.ring.Self()
	owner, err := s.ring.Owner(name)
	if err != nil {
		if errors.Is(err, ErrOwnerDown) {
			return nil, &OwnerDownError{Persona: name, Owner: owner}
		}
		return nil, &MeshError{Err: err}
	}
	if owner != self {
		return nil, &NotOwnedError{Persona: name, Owner: owner}
	}
	if p := s.mem.get(name); p != nil {
		state, handedTo := p.state(), p.handedOff()
		switch {
		case state == stateActive:
			return p, nil
		case state == stateMovingOut:
			return nil, &MovingError{Persona: name}
		case handedTo != "":
			return nil, &NotOwnedError{Persona: name, Owner: handedTo}
		}
	}
	if s.leaving.Load() {
		to, _ := s.ring.PreviousOwner(name, self)
		return nil, &NotOwnedError{Persona: name, Owner: to}
	}
	if !s.knownAbsent(name) {
		res := s.locate(ctx, name)
		if res.err != nil {
			return nil, res.err
		}
		if !res.present {
			s.markAbsent(name)
		}
	}
	return s.held(name, create)
}

// held returns the persona this member holds, creating it when asked.
func (s *Service) held(name string, create bool) (*persona, error) {
	if !create {
		p := s.mem.get(name)
		if p == nil {
			return nil, nil
		}
		return p, nil
	}
	for range 3 {
		p := s.mem.getOrCreate(name)
		switch p.state() {
		case stateActive:
			return p, nil
		case stateMovingOut:
			return nil, &MovingError{Persona: name}
		}
		s.mem.detach(p) // a destroyed persona: start afresh
	}
	return nil, &MovingError{Persona: name}
}

func (s *Service) knownAbsent(name string) bool {
	s.locMu.Lock()
	defer s.locMu.Unlock()
	e, ok := s.absent[name]
	return ok && e == s.epoch.Load()
}

func (s *Service) markAbsent(name string) {
	s.locMu.Lock()
	defer s.locMu.Unlock()
	if len(s.absent) >= maxAbsent {
		clear(s.absent)
	}
	s.absent[name] = s.epoch.Load()
}

func (s *Service) forgetAbsent(name string) {
	s.locMu.Lock()
	delete(s.absent, name)
	s.locMu.Unlock()
}

// locate looks for a persona this member owns but does not hold, once per
// persona at a time, and waits for the answer up to LocateWait.
func (s *Service) locate(ctx context.Context, name string) locateResult {
	s.locMu.Lock()
	c := s.locating[name]
	if c == nil {
		c = &locateCall{done: make(chan struct{})}
		s.locating[name] = c
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			c.res = s.doLocate(s.life, name)
			s.locMu.Lock()
			delete(s.locating, name)
			s.locMu.Unlock()
			close(c.done)
		}()
	}
	s.locMu.Unlock()
	wait := time.NewTimer(s.cfg.LocateWait)
	defer wait.Stop()
	select {
	case <-c.done:
		return c.res
	case <-wait.C:
		return locateResult{err: &MovingError{Persona: name}}
	case <-ctx.Done():
		return locateResult{err: ctx.Err()}
	}
}

// doLocate asks the previous owner, then every other live member, to hand
// the persona over. A crashed previous owner may hold it: then the persona
// is unavailable until it is back.
func (s *Service) doLocate(ctx context.Context, name string) locateResult {
	self := s.ring.Self()
	members := s.ring.Members()
	var candidates []string
	if prev, ok := s.ring.PreviousOwner(name, self); ok && prev != self {
		if !slices.Contains(members, prev) {
			return locateResult{err: &OwnerDownError{Persona: name, Owner: prev}}
		}
		candidates = append(candidates, prev)
	}
	for _, m := range members {
		if m != self && !slices.Contains(candidates, m) {
			candidates = append(candidates, m)
		}
	}
	uncertain := false
	for _, m := range candidates {
		err := s.askExport(ctx, m, name, self)
		switch {
		case err == nil:
			s.log.Info("persona pulled", "persona", name, "from", m)
			return locateResult{present: true}
		case rpcerr.Reason(err) == ReasonPersonaUnknown:
		default:
			s.log.Warn("persona locate: member did not answer", "persona", name, "member", m, "error", err)
			uncertain = true
		}
	}
	if s.mem.get(name) != nil {
		return locateResult{present: true} // pushed to us meanwhile
	}
	if uncertain {
		return locateResult{err: &MovingError{Persona: name}}
	}
	return locateResult{}
}

func (s *Service) askExport(ctx context.Context, member, name, to string) error {
	cc, err := s.ring.Conn(ctx, member)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, handOffTimeout)
	defer cancel()
	_, err = hippocampusv1.NewHippocampusServiceClient(cc).ExportPersona(ctx, &hippocampusv1.ExportPersonaRequest{Persona: name, To: to})
	return err
}

// exportTo hands a persona this member holds to `to`, which must own it in
// this member's view (or succeed this member, when it is leaving).
func (s *Service) exportTo(ctx context.Context, name, to string) (engrams, size int, err error) {
	if s.ring == nil {
		return 0, 0, &NotOwnedError{Persona: name, Owner: s.cfg.Node}
	}
	p := s.mem.get(name)
	if p == nil {
		return 0, 0, ErrPersonaUnknown
	}
	self := s.ring.Self()
	owner, oerr := s.ring.Owner(name)
	ok := oerr == nil && owner == to && to != self
	if !ok && s.leaving.Load() {
		succ, found := s.ring.PreviousOwner(name, self)
		ok = found && succ == to
	}
	if !ok {
		if oerr != nil {
			owner = self
		}
		return 0, 0, &NotOwnedError{Persona: name, Owner: owner}
	}
	return s.push(ctx, p, to, s.leaving.Load())
}

// push streams a persona to `to` and drops it here once `to` acknowledged.
// While it streams, the persona answers PERSONA_MOVING here.
func (s *Service) push(ctx context.Context, p *persona, to string, leaving bool) (engrams, size int, err error) {
	p.mu.Lock()
	if err := usable(p); err != nil {
		p.mu.Unlock()
		var notOwned *NotOwnedError
		if errors.As(err, &notOwned) {
			return 0, 0, ErrPersonaUnknown
		}
		return 0, 0, err
	}
	p.setState(stateMovingOut)
	data := p.encodeSnapshot(nil)
	engrams = int(p.live.Load())
	p.mu.Unlock()

	if err := s.send(ctx, to, p.name, data, leaving); err != nil {
		p.mu.Lock()
		p.setState(stateActive)
		p.mu.Unlock()
		return 0, 0, &HandOffError{Persona: p.name, To: to, Err: err}
	}
	if err := s.mem.drop(p, to); err != nil {
		return 0, 0, err
	}
	s.runner.RemovePersona(RegionID, p.name)
	s.log.Info("persona handed off", "persona", p.name, "to", to, "engrams", engrams, "bytes", len(data), "leaving", leaving)
	return engrams, len(data), nil
}

// send streams a snapshot to a member's ImportPersona.
func (s *Service) send(ctx context.Context, to, name string, data []byte, leaving bool) error {
	ctx, cancel := context.WithTimeout(ctx, handOffTimeout)
	defer cancel()
	cc, err := s.ring.Conn(ctx, to)
	if err != nil {
		return err
	}
	stream, err := hippocampusv1.NewHippocampusServiceClient(cc).ImportPersona(ctx)
	if err != nil {
		return err
	}
	first := true
	for off := 0; first || off < len(data); off += s.cfg.HandOffChunk {
		end := min(off+s.cfg.HandOffChunk, len(data))
		msg := &hippocampusv1.ImportPersonaRequest{Chunk: data[off:end]}
		if first {
			msg.Persona, msg.From, msg.Leaving = name, s.ring.Self(), leaving
			first = false
		}
		if err := stream.Send(msg); err != nil {
			if errors.Is(err, io.EOF) {
				_, err = stream.CloseAndRecv()
			}
			return err
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

// importChunks is the receiving side of a hand-off: it checks that this
// member is the persona's owner, collects the chunks, and merges the
// snapshot durably.
func (s *Service) importChunks(recv func() (*hippocampusv1.ImportPersonaRequest, error)) (engrams, edges int, err error) {
	if s.closing.Load() {
		return 0, 0, ErrClosed
	}
	// Counted before acceptImport reads leaving (both sequentially
	// consistent atomics): either this import sees leaving and refuses,
	// or Leave sees it in flight and waits for it.
	s.imports.Add(1)
	defer s.imports.Add(-1)
	first, err := recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, 0, invalid(ReasonChunkInvalid, "persona", "the stream ended before the first chunk")
		}
		return 0, 0, err
	}
	name := first.GetPersona()
	if err := checkPersona(name); err != nil {
		return 0, 0, err
	}
	if err := s.acceptImport(name, first.GetFrom(), first.GetLeaving()); err != nil {
		return 0, 0, err
	}
	data := append([]byte(nil), first.GetChunk()...)
	for {
		msg, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		if msg.GetPersona() != "" && msg.GetPersona() != name {
			return 0, 0, invalid(ReasonChunkInvalid, "persona", "a hand-off carries one persona")
		}
		if int64(len(data))+int64(len(msg.GetChunk())) > s.cfg.MaxImportBytes {
			return 0, 0, &LimitError{Reason: ReasonSnapshotTooLarge, Msg: fmt.Sprintf("persona snapshot exceeds %d bytes", s.cfg.MaxImportBytes)}
		}
		data = append(data, msg.GetChunk()...)
	}
	snap, err := decodeSnapshot(data)
	if err != nil {
		return 0, 0, err
	}
	if snap.persona != name {
		return 0, 0, &SnapshotError{Msg: fmt.Sprintf("snapshot of %q sent as %q", snap.persona, name)}
	}
	engrams, edges, err = s.mem.importSnapshot(snap)
	if err != nil {
		return 0, 0, err
	}
	s.forgetAbsent(name)
	s.log.Info("persona imported", "persona", name, "from", first.GetFrom(), "engrams", engrams, "edges", edges)
	return engrams, edges, nil
}

// acceptImport: this member takes a persona it owns, and any persona a
// leaving member hands it. A leaving member's view of who succeeds it may
// lag the gossip (several members leave at once in a scale-down), and
// refusing would strand the persona on a member about to stop; taken in,
// it is safe here, and rebalance moves it on if another member owns it.
// A member that is leaving itself takes nothing.
func (s *Service) acceptImport(name, from string, leaving bool) error {
	if s.ring == nil {
		return nil
	}
	self := s.ring.Self()
	if s.leaving.Load() {
		to, _ := s.ring.PreviousOwner(name, self)
		return &NotOwnedError{Persona: name, Owner: to}
	}
	if leaving && from != "" && from != self {
		return nil
	}
	owner, err := s.ring.Owner(name)
	if err == nil && owner == self {
		return nil
	}
	return &NotOwnedError{Persona: name, Owner: owner}
}

// rebalance hands every persona this member holds but no longer owns to
// its owner. Failures are logged and retried at the next change or
// maintenance pass.
func (s *Service) rebalance(ctx context.Context) {
	if s.ring == nil || s.leaving.Load() {
		return
	}
	self := s.ring.Self()
	var move []*persona
	s.mem.each(func(p *persona) bool {
		if owner, err := s.ring.Owner(p.name); err == nil && owner != self {
			move = append(move, p)
		}
		return true
	})
	for _, p := range move {
		if ctx.Err() != nil {
			return
		}
		owner, err := s.ring.Owner(p.name)
		if err != nil || owner == self {
			continue
		}
		if _, _, err := s.push(ctx, p, owner, false); err != nil {
			var moving *MovingError
			if !errors.As(err, &moving) && !errors.Is(err, ErrPersonaUnknown) {
				s.log.Warn("persona hand-off failed; will retry", "persona", p.name, "to", owner, "error", err)
			}
		}
	}
}

// leaveRetry is how long Leave waits before it tries the hand-offs that
// failed again, with a fresher view of the mesh.
const leaveRetry = 200 * time.Millisecond

// Leave hands every persona this member holds to the member that owns it
// once this one is gone, then refuses new personas. Call it when the member
// leaves the mesh gracefully, before it stops serving (and after the mesh
// says this member is draining, so the others stop counting it as an
// owner); requests for a persona already handed over answer
// PERSONA_NOT_OWNED with its new owner.
//
// Several members may leave at once (a scale-down from 3 to 1), each with
// a view of the others that lags the gossip: a hand-off to a member that
// is leaving too is refused, and a persona may arrive here while this
// member leaves. So Leave tries the owner, then every other live member,
// waits for hand-offs under way into this member, and goes round again
// until it holds nothing or ctx ends. It returns the hand-offs that still
// failed then (those personas stay on this member's disk and come back
// with it).
func (s *Service) Leave(ctx context.Context) error {
	if s.ring == nil {
		return nil
	}
	s.leaving.Store(true)
	for {
		for s.imports.Load() > 0 {
			if !wait.Sleep(ctx, 5*time.Millisecond) {
				return fmt.Errorf("leave: %d hand-offs into this member still under way: %w", s.imports.Load(), ctx.Err())
			}
		}
		var all []*persona
		s.mem.each(func(p *persona) bool {
			all = append(all, p)
			return true
		})
		if len(all) == 0 {
			return nil
		}
		if !slices.ContainsFunc(s.ring.Members(), func(m string) bool { return m != s.ring.Self() }) {
			// The last member: nothing to hand to, so the personas stay
			// on this member's disk and come back with it. Not a failure.
			s.log.Info("last hippocampus member leaving: personas stay on its disk", "personas", len(all))
			return nil
		}
		var errs []error
		for _, p := range all {
			if err := s.handOnLeaving(ctx, p); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 {
			continue // look again: a persona may have arrived meanwhile
		}
		if !wait.Sleep(ctx, leaveRetry) {
			return fmt.Errorf("leave: %d personas not handed off: %w", len(errs), errors.Join(errs...))
		}
	}
}

// handOnLeaving pushes one persona away from a leaving member: to its
// owner, else its successor, else any other live member that takes it.
func (s *Service) handOnLeaving(ctx context.Context, p *persona) error {
	self := s.ring.Self()
	var targets []string
	if owner, err := s.ring.Owner(p.name); err == nil && owner != self {
		targets = append(targets, owner)
	}
	if succ, ok := s.ring.PreviousOwner(p.name, self); ok && succ != self && !slices.Contains(targets, succ) {
		targets = append(targets, succ)
	}
	for _, m := range s.ring.Members() {
		if m != self && !slices.Contains(targets, m) {
			targets = append(targets, m)
		}
	}
	if len(targets) == 0 {
		return fmt.Errorf("persona %q: no other member serves the hippocampus", p.name)
	}
	var errs []error
	for _, to := range targets {
		_, _, err := s.push(ctx, p, to, true)
		if err == nil || errors.Is(err, ErrPersonaUnknown) {
			return nil // handed off (or gone meanwhile)
		}
		var moving *MovingError
		if errors.As(err, &moving) {
			return err // another hand-off of it is under way; look again later
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}
