package events

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// stream is one sequence of events: a class's (covering every topic the
// class covers) or a single topic's when no class covers it. It assigns
// stream sequences, keeps recent events for replay, remembers msg_ids, and
// hands each event to the matching subscriptions in sequence order.
//
// A durable stream also owns a segmentLog and a committer goroutine: a
// publish joins the open batch and waits; the committer writes and syncs
// the whole batch at once (group commit) and only then delivers its events
// and acknowledges their publishers.
type stream struct {
	name      string
	class     *eventsv1.EventClass // nil for a topic without a class
	durable   bool
	maxEvents uint64
	retention time.Duration
	fanout    func(st *stream, ev *event) uint32
	log       *slog.Logger
	lastUsed  atomic.Int64 // unix nanos of the last publish, for eviction

	mu sync.Mutex
	// last is the newest sequence handed to subscriptions: every event up
	// to it is retained (or expired) and, for durable streams, synced.
	last   uint64
	ring   ring
	dedup  dedupWindow
	closed bool

	// Durable streams only.
	store   *segmentLog
	next    uint64       // newest sequence assigned
	open    *commitBatch // collecting publishes for the next commit
	failed  error        // sticky: the store failed
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
}

// commitBatch is the events of one group commit and what their publishers
// wait for.
type commitBatch struct {
	events    []*event
	delivered []uint32
	err       error
	done      chan struct{}
}

type streamOptions struct {
	name      string
	class     *eventsv1.EventClass
	maxEvents uint64
	retention time.Duration
	ringSize  int
	dedup     dedupWindow
	fanout    func(st *stream, ev *event) uint32
	log       *slog.Logger
}

func newMemoryStream(o streamOptions) *stream {
	return &stream{
		name: o.name, class: o.class, maxEvents: o.maxEvents, retention: o.retention,
		fanout: o.fanout, log: o.log, ring: newRing(o.ringSize), dedup: o.dedup,
	}
}

// newDurableStream wraps an opened log: it rebuilds the dedup window and
// warms the replay cache from the log's tail, then starts the committer.
func newDurableStream(o streamOptions, store *segmentLog, now time.Time) (*stream, error) {
	st := newMemoryStream(o)
	st.durable, st.store = true, store
	first, last := store.bounds()
	st.last, st.next = last, last
	from := store.firstSince(now.Add(-st.dedup.window))
	if cache := uint64(o.ringSize); last >= cache && last-cache+1 < from {
		from = last - cache + 1
	}
	from = max(from, first)
	for after := from - 1; after < last; {
		evs, _, err := store.readAfter(after, last, 4096, 16<<20)
		if err != nil {
			return nil, fmt.Errorf("recover stream %s: %w", o.name, err)
		}
		if len(evs) == 0 {
			return nil, fmt.Errorf("recover stream %s: %w: no record after %d", o.name, errStoreCorrupt, after)
		}
		for _, ev := range evs {
			st.ring.push(ev)
			if ev.msgID != "" && now.Sub(ev.at) <= st.dedup.window {
				st.dedup.add(ev.msgID, ev.seq, ev.at, nil)
			}
		}
		after = evs[len(evs)-1].seq
	}
	st.kick = make(chan struct{}, 1)
	st.stop = make(chan struct{})
	st.stopped = make(chan struct{})
	go st.runCommitter()
	return st, nil
}

// publishResult is what a publish tells its caller.
type publishResult struct {
	seq       uint64
	delivered uint32
	duplicate bool
}

// pending is a sequenced publish; wait returns its outcome.
type pending struct {
	res publishResult
	err error
	// batch is the group commit a durable publish (or the duplicate of one
	// still in flight) waits for; idx is the event's place in it, -1 for a
	// duplicate.
	batch *commitBatch
	idx   int
}

func (p pending) wait() (publishResult, error) {
	if p.err != nil {
		return publishResult{}, p.err
	}
	if p.batch == nil {
		return p.res, nil
	}
	<-p.batch.done
	if p.batch.err != nil {
		return publishResult{}, p.batch.err
	}
	if p.idx >= 0 {
		p.res.delivered = p.batch.delivered[p.idx]
	}
	return p.res, nil
}

// submit sequences ev without waiting for the disk: a memory stream
// delivers it at once; a durable stream adds it to the open group commit.
// Publishes submitted in order are sequenced in that order.
func (st *stream) submit(ev *event) pending {
	st.lastUsed.Store(ev.at.UnixNano())
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return pending{err: errShuttingDown}
	}
	if ev.msgID != "" {
		if e, ok := st.dedup.get(ev.msgID, ev.at); ok {
			return pending{res: publishResult{seq: e.seq, duplicate: true}, batch: e.pending, idx: -1}
		}
	}
	if !st.durable {
		if err := ev.seal(st.last + 1); err != nil {
			return pending{err: fmt.Errorf("%w: %w", errPublishPayload, err)}
		}
		st.last++
		st.ring.push(ev)
		if st.retention > 0 {
			st.ring.trimBefore(ev.at.Add(-st.retention))
		}
		if ev.msgID != "" {
			st.dedup.add(ev.msgID, ev.seq, ev.at, nil)
		}
		n := st.fanout(st, ev)
		ev.payload = nil // retained as its encoding only (see event)
		return pending{res: publishResult{seq: ev.seq, delivered: n}}
	}
	if st.failed != nil {
		return pending{err: st.failed}
	}
	if err := ev.seal(st.next + 1); err != nil {
		return pending{err: fmt.Errorf("%w: %w", errPublishPayload, err)}
	}
	st.next++
	b := st.open
	if b == nil {
		b = &commitBatch{done: make(chan struct{})}
		st.open = b
		select {
		case st.kick <- struct{}{}:
		default:
		}
	}
	b.events = append(b.events, ev)
	if ev.msgID != "" {
		st.dedup.add(ev.msgID, ev.seq, ev.at, b)
	}
	return pending{res: publishResult{seq: ev.seq}, batch: b, idx: len(b.events) - 1}
}

// runCommitter commits batches until stop, then commits what is left.
func (st *stream) runCommitter() {
	defer close(st.stopped)
	for {
		select {
		case <-st.kick:
			st.commitPending()
		case <-st.stop:
			st.commitPending()
			return
		}
	}
}

// commitPending writes and syncs every open batch, then delivers its
// events in sequence order and releases its publishers.
func (st *stream) commitPending() {
	for {
		st.mu.Lock()
		b, failed := st.open, st.failed
		st.open = nil
		st.mu.Unlock()
		if b == nil {
			return
		}
		err := failed
		if err == nil {
			err = st.store.append(b.events)
		}
		st.mu.Lock()
		if err != nil {
			if st.failed == nil {
				st.failed = fmt.Errorf("%w: stream %s: %w", errStoreFailed, st.name, err)
				st.log.Error("events: durable stream failed; it takes no more publishes until restart",
					"stream", st.name, "error", err)
			}
			b.err = st.failed
		} else {
			b.delivered = make([]uint32, len(b.events))
			for i, ev := range b.events {
				st.ring.push(ev)
				st.last = ev.seq
				if ev.msgID != "" {
					st.dedup.committed(ev.msgID, ev.seq)
				}
				b.delivered[i] = st.fanout(st, ev)
				ev.payload = nil // retained as its encoding only (see event)
			}
		}
		st.mu.Unlock()
		close(b.done)
	}
}

// lastSeq returns the newest delivered sequence.
func (st *stream) lastSeq() uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.last
}

// readAfter returns up to max delivered events with seq > after, and the
// first sequence the stream still retains (events before it are gone).
func (st *stream) readAfter(after uint64, max int) ([]*event, uint64, error) {
	st.mu.Lock()
	last := st.last
	ringFirst := st.ring.firstSeq()
	if !st.durable || (st.ring.len() > 0 && after+1 >= ringFirst) {
		evs := st.ring.after(nil, after, last, max)
		if st.ring.len() == 0 {
			ringFirst = last + 1
		}
		st.mu.Unlock()
		return evs, ringFirst, nil
	}
	st.mu.Unlock()
	if after >= last {
		first, _ := st.store.bounds()
		return nil, first, nil
	}
	return st.store.readAfter(after, last, max, 4<<20)
}

// startForLastN returns the sequence to replay after so that the last n
// retained events for which match is true are replayed.
func (st *stream) startForLastN(n int, match func(*event) bool) (uint64, error) {
	st.mu.Lock()
	count := 0
	for i := st.ring.len() - 1; i >= 0; i-- {
		if ev := st.ring.at(i); match(ev) {
			if count++; count == n {
				st.mu.Unlock()
				return ev.seq - 1, nil
			}
		}
	}
	hi := st.last
	if st.ring.len() > 0 {
		hi = st.ring.firstSeq() - 1
	}
	st.mu.Unlock()
	if !st.durable {
		return hi, nil
	}
	first, _ := st.store.bounds()
	const chunk = 1024
	for hi >= first && hi > 0 {
		lo := first
		if hi >= first+chunk {
			lo = hi - chunk + 1
		}
		evs, _, err := st.store.readAfter(lo-1, hi, chunk, 64<<20)
		if err != nil {
			return 0, err
		}
		for i := len(evs) - 1; i >= 0; i-- {
			if match(evs[i]) {
				if count++; count == n {
					return evs[i].seq - 1, nil
				}
			}
		}
		hi = lo - 1
	}
	return first - 1, nil
}

// attach runs add when the stream's newest delivered sequence is pos, with
// deliveries held off, so a replaying subscription goes live without a gap
// or a duplicate. It reports whether it did.
func (st *stream) attach(pos uint64, add func()) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.last != pos {
		return false
	}
	add()
	return true
}

// enforceRetention drops what the class's retention no longer keeps.
func (st *stream) enforceRetention(now time.Time) error {
	st.mu.Lock()
	if st.retention > 0 {
		st.ring.trimBefore(now.Add(-st.retention))
	}
	if st.maxEvents > 0 && uint64(st.ring.len()) > st.maxEvents {
		st.ring.trimTo(int(st.maxEvents))
	}
	st.dedup.prune(now)
	st.mu.Unlock()
	if st.durable {
		if _, err := st.store.enforce(st.maxEvents, st.retention, now); err != nil {
			return fmt.Errorf("retention of %s: %w", st.name, err)
		}
	}
	return nil
}

// close stops taking publishes, commits what is pending and closes the log.
func (st *stream) close() error {
	st.mu.Lock()
	already := st.closed
	st.closed = true
	st.mu.Unlock()
	if already || !st.durable {
		return nil
	}
	close(st.stop)
	<-st.stopped
	return st.store.close()
}
