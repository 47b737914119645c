package events

import (
	"sync"
	"sync/atomic"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/topic"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// subscription is one live subscription: what it selects, and a bounded
// queue between the publishers (who never wait on it) and the stream that
// sends its deliveries.
//
// When the queue is full an event is dropped and counted per stream; the
// next event that fits is preceded by a lag marker, and a sender that finds
// the queue empty while a lag is pending takes the marker at once. So the
// subscriber learns of every loss before its next delivery, and its
// per-subscription sequence (assigned when sending) stays gapless.
type subscription struct {
	id         string
	subscriber auth.Principal
	sel        topic.Selector
	filter     filter
	// gatePerTopic is set for wildcard and prefix selectors: each concrete
	// topic is gated before its first delivery.
	gatePerTopic bool
	queueCap     int

	mu       sync.Mutex
	queue    []item
	head     int
	nEvents  int
	lag      []lagEntry
	closed   bool
	closeErr error

	wake chan struct{} // a publish queued something
	done chan struct{} // closed by close

	sent, dropped, filtered, denied atomic.Uint64
}

// item is a queued event or a lag marker.
type item struct {
	ev     *event
	stream *stream
	lag    []lagEntry
}

// lagEntry counts what one stream's events a subscription missed.
type lagEntry struct {
	stream   *stream
	topic    string // of the first missed event
	firstSeq uint64
	missed   uint64
}

func newSubscription(id string, subscriber auth.Principal, sel topic.Selector, f filter, queueCap int) *subscription {
	k := sel.Kind()
	return &subscription{
		id: id, subscriber: subscriber, sel: sel, filter: f, queueCap: queueCap,
		gatePerTopic: k == topic.SelectArtifactPrefix || k == topic.SelectPattern && !sel.Pattern().IsExact(),
		wake:         make(chan struct{}, 1),
		done:         make(chan struct{}),
	}
}

// offer queues ev unless the filter refuses it or the queue is full. It
// never blocks on the subscriber. It reports whether ev was queued.
func (s *subscription) offer(st *stream, ev *event) bool {
	if !s.filter.match(ev.payload) {
		s.filtered.Add(1)
		return false
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if s.nEvents >= s.queueCap {
		s.noteDrop(st, ev)
		s.mu.Unlock()
		s.dropped.Add(1)
		return false
	}
	if len(s.lag) > 0 {
		s.queue = append(s.queue, item{lag: s.lag})
		s.lag = nil
	}
	s.queue = append(s.queue, item{ev: ev, stream: st})
	s.nEvents++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return true
}

// noteDrop records a dropped event. The caller holds mu.
func (s *subscription) noteDrop(st *stream, ev *event) {
	for i := range s.lag {
		if s.lag[i].stream == st {
			s.lag[i].missed++
			return
		}
	}
	s.lag = append(s.lag, lagEntry{stream: st, topic: ev.topic, firstSeq: ev.seq, missed: 1})
}

// take moves up to max queued items into dst. With the queue empty and a
// lag pending, it returns the lag marker.
func (s *subscription) take(dst []item, max int) []item {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.head < len(s.queue) && len(dst) < max {
		it := s.queue[s.head]
		s.queue[s.head] = item{}
		s.head++
		if it.ev != nil {
			s.nEvents--
		}
		dst = append(dst, it)
	}
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
		if len(dst) == 0 && len(s.lag) > 0 {
			dst = append(dst, item{lag: s.lag})
			s.lag = nil
		}
	} else if s.head > 1024 && 2*s.head > len(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	return dst
}

// close ends the subscription with err (nil: it was unsubscribed). It
// reports whether this call closed it.
func (s *subscription) close(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.closed, s.closeErr = true, err
	s.queue, s.head, s.nEvents, s.lag = nil, 0, 0, nil
	close(s.done)
	return true
}

func (s *subscription) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeErr
}

func (s *subscription) stats(node string) *eventsv1.SubscriptionStats {
	s.mu.Lock()
	queued := s.nEvents
	s.mu.Unlock()
	return &eventsv1.SubscriptionStats{
		SubscriptionId: s.id,
		Subscriber:     s.subscriber.Name,
		Selector:       s.sel.String(),
		Sent:           s.sent.Load(),
		Dropped:        s.dropped.Load(),
		Filtered:       s.filtered.Load(),
		Queued:         uint32(queued),
		Denied:         s.denied.Load(),
		Node:           node,
	}
}

// subIndex finds the live subscriptions an event's topic matches: exact
// topics and keys by map, wildcards and prefixes by a scan.
type subIndex struct {
	mu    sync.RWMutex
	exact map[string][]*subscription
	wild  []*subscription
}

func newSubIndex() *subIndex { return &subIndex{exact: map[string][]*subscription{}} }

func (x *subIndex) add(s *subscription) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if t, ok := s.sel.Exact(); ok {
		x.exact[t] = append(x.exact[t], s)
		return
	}
	x.wild = append(x.wild, s)
}

func (x *subIndex) remove(s *subscription) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if t, ok := s.sel.Exact(); ok {
		list := x.exact[t]
		for i, o := range list {
			if o == s {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(x.exact, t)
		} else {
			x.exact[t] = list
		}
		return
	}
	for i, o := range x.wild {
		if o == s {
			last := len(x.wild) - 1
			x.wild[i] = x.wild[last]
			x.wild[last] = nil
			x.wild = x.wild[:last]
			break
		}
	}
}

// offer hands ev to every matching subscription and returns how many
// queued it.
func (x *subIndex) offer(st *stream, ev *event) uint32 {
	var n uint32
	x.mu.RLock()
	for _, s := range x.exact[ev.topic] {
		if s.offer(st, ev) {
			n++
		}
	}
	for _, s := range x.wild {
		if s.sel.Match(ev.topic) && s.offer(st, ev) {
			n++
		}
	}
	x.mu.RUnlock()
	return n
}
