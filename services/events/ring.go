package events

import (
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

// event is one published event. Once sequenced it is never mutated, so many
// subscriptions share it (and its payload) read-only.
type event struct {
	seq       uint64
	topic     string
	at        time.Time
	publisher string
	node      string
	msgID     string
	headers   map[string]string
	// payload is the published payload while the event is being
	// published: encodeEvent reads it, and fan-out reads it for the live
	// subscriptions' filters, both under the stream's lock, which clears
	// it before anyone else can see the event. A retained event keeps only
	// its encoding: a Struct is a tree of maps and Values the collector
	// must trace on every cycle, for every event in every ring (at 10k
	// events/s it put the 1 KB publish->deliver p99 over 2 ms), and the
	// encoding is bytes it does not look into. Filters of subscriptions
	// catching up read payloadStruct, decoded from the encoding.
	payload *structpb.Struct

	// body and enc are the event's shared encoding (see encode.go): body
	// with room for the stream sequence in front, enc the complete bytes
	// once the sequence is sealed in.
	body []byte
	enc  []byte
}

// ring keeps the most recent events of a stream, with consecutive
// sequences, up to a capacity. It grows on demand, so a stream allowed many
// events costs little until it has them. It is not safe for concurrent use.
type ring struct {
	buf  []*event
	head int // index of the oldest event
	n    int
	max  int
}

func newRing(max int) ring { return ring{max: max} }

func (r *ring) len() int { return r.n }

func (r *ring) at(i int) *event { return r.buf[(r.head+i)%len(r.buf)] }

// push appends ev, evicting the oldest event when full.
func (r *ring) push(ev *event) {
	if r.n == len(r.buf) && len(r.buf) < r.max {
		size := 2 * len(r.buf)
		if size < 16 {
			size = 16
		}
		if size > r.max {
			size = r.max
		}
		buf := make([]*event, size)
		for i := 0; i < r.n; i++ {
			buf[i] = r.at(i)
		}
		r.buf, r.head = buf, 0
	}
	if r.n == len(r.buf) {
		r.buf[r.head] = ev
		r.head = (r.head + 1) % len(r.buf)
		return
	}
	r.buf[(r.head+r.n)%len(r.buf)] = ev
	r.n++
}

// popOldest drops the oldest event.
func (r *ring) popOldest() {
	if r.n == 0 {
		return
	}
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.n--
}

// firstSeq is the sequence of the oldest event, or 0 when empty.
func (r *ring) firstSeq() uint64 {
	if r.n == 0 {
		return 0
	}
	return r.at(0).seq
}

// trimBefore drops events published before cutoff.
func (r *ring) trimBefore(cutoff time.Time) {
	for r.n > 0 && r.at(0).at.Before(cutoff) {
		r.popOldest()
	}
}

// trimTo drops the oldest events until at most n remain.
func (r *ring) trimTo(n int) {
	for r.n > n {
		r.popOldest()
	}
}

// after appends to dst the events with after < seq <= limit, at most max.
func (r *ring) after(dst []*event, after, limit uint64, max int) []*event {
	if r.n == 0 {
		return dst
	}
	first := r.at(0).seq
	i := 0
	if after >= first {
		i = int(after - first + 1)
	}
	for ; i < r.n && len(dst) < max; i++ {
		ev := r.at(i)
		if ev.seq > limit {
			break
		}
		dst = append(dst, ev)
	}
	return dst
}

// dedupWindow remembers the msg_ids of one stream for a time window, up to
// a number of entries. It is not safe for concurrent use.
type dedupWindow struct {
	window time.Duration
	max    int
	ids    map[string]*dedupEntry
	order  []dedupOrder // oldest first, from head
	head   int
}

type dedupEntry struct {
	seq uint64
	at  time.Time
	// pending is set while the event waits for its group commit; a
	// duplicate waits for it before it is acknowledged.
	pending *commitBatch
}

type dedupOrder struct {
	id  string
	seq uint64
	at  time.Time
}

func newDedupWindow(window time.Duration, max int) dedupWindow {
	return dedupWindow{window: window, max: max, ids: map[string]*dedupEntry{}}
}

// get returns the entry of id if it is inside the window at now.
func (d *dedupWindow) get(id string, now time.Time) (*dedupEntry, bool) {
	e, ok := d.ids[id]
	if !ok || now.Sub(e.at) > d.window {
		return nil, false
	}
	return e, true
}

// add remembers id for the event seq published at at.
func (d *dedupWindow) add(id string, seq uint64, at time.Time, pending *commitBatch) {
	if d.max <= 0 || d.window <= 0 {
		return
	}
	d.ids[id] = &dedupEntry{seq: seq, at: at, pending: pending}
	d.order = append(d.order, dedupOrder{id: id, seq: seq, at: at})
	d.prune(at)
}

// committed clears the pending batch of id once its event is on disk.
func (d *dedupWindow) committed(id string, seq uint64) {
	if e, ok := d.ids[id]; ok && e.seq == seq {
		e.pending = nil
	}
}

// prune forgets entries older than the window or beyond the entry limit.
func (d *dedupWindow) prune(now time.Time) {
	for d.head < len(d.order) {
		o := d.order[d.head]
		if len(d.order)-d.head <= d.max && now.Sub(o.at) <= d.window {
			break
		}
		if e, ok := d.ids[o.id]; ok && e.seq == o.seq {
			delete(d.ids, o.id)
		}
		d.order[d.head] = dedupOrder{}
		d.head++
	}
	if d.head > 1024 && d.head*2 > len(d.order) {
		n := copy(d.order, d.order[d.head:])
		clear(d.order[n:])
		d.order = d.order[:n]
		d.head = 0
	}
}
