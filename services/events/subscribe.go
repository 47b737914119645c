package events

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/topic"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// Subscribe streams an ack, an optional replay, then live deliveries.
func (s *Service) Subscribe(req *eventsv1.SubscribeRequest, out grpc.ServerStreamingServer[eventsv1.SubscribeResponse]) error {
	ctx := out.Context()
	return toStatus(ctx, s.log, s.subscribe(ctx, req, out))
}

func (s *Service) subscribe(ctx context.Context, req *eventsv1.SubscribeRequest, out grpc.ServerStreamingServer[eventsv1.SubscribeResponse]) error {
	if s.closed.Load() {
		return errShuttingDown
	}
	sel, err := selectorOf(req)
	if err != nil {
		return err
	}
	f, err := compileFilter(req.GetFilter())
	if err != nil {
		return err
	}
	startAfter, lastN := req.GetStartAfterSequence(), int(req.GetLastN())
	if startAfter > 0 && lastN > 0 {
		return errStartConflict
	}
	queue := int(req.GetQueueSize())
	switch {
	case queue == 0:
		queue = s.cfg.DefaultQueue
	case queue > s.cfg.MaxQueue:
		return failure(errQueueTooLarge, "", "max_queue", strconv.Itoa(s.cfg.MaxQueue))
	}
	maxBatch := int(req.GetMaxBatch())
	if maxBatch > maxBatchLimit {
		return failure(errBatchTooLarge, "", "max_batch", strconv.Itoa(maxBatchLimit))
	}
	caller := auth.Caller(ctx)
	if _, err := gate.Check(ctx, s.gate, caller, GateURI(sel.String(), ActionSubscribe)); err != nil {
		return err
	}

	// A start position replays one stream from pos, then hands over to live.
	var st *stream
	var pos uint64
	if replay := startAfter > 0 || lastN > 0; replay {
		var ok bool
		if st, ok = s.reg.resolveOne(sel); !ok {
			return failure(errStartAmbiguous,
				"the selector spans several streams; use an exact topic or key, or a pattern inside one class (audit:> under class audit)",
				"selector", sel.String())
		}
		if startAfter > 0 {
			if last := st.lastSeq(); startAfter > last {
				return failure(errStartBeyondEnd, "", "stream", st.name,
					"last_sequence", strconv.FormatUint(last, 10), "start_after_sequence", strconv.FormatUint(startAfter, 10))
			}
			pos = startAfter
		} else {
			pos, err = st.startForLastN(lastN, func(ev *event) bool { return sel.Match(ev.topic) && f.matchEvent(ev) })
			if err != nil {
				return err
			}
		}
	}

	sub := newSubscription(newID(), caller, sel, f, queue)
	if err := s.addSubscription(sub); err != nil {
		return err
	}
	defer func() {
		s.removeSubscription(sub)
		sub.close(nil)
	}()
	if st == nil {
		// Live before the ack: whatever is published once the subscriber
		// holds the ack is queued for it.
		s.index.add(sub)
	}
	ack := &eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Ack{Ack: &eventsv1.SubscribeAck{SubscriptionId: sub.id}}}
	if err := out.Send(ack); err != nil {
		return err
	}
	snd := &sender{svc: s, sub: sub, stream: out, maxBatch: maxBatch}
	if st != nil {
		if err := snd.catchUp(ctx, st, pos); err != nil {
			return err
		}
	}
	return snd.loop(ctx)
}

// selectorOf reads the selector of a request. An artifact selector without
// a match kind is exact.
func selectorOf(req *eventsv1.SubscribeRequest) (topic.Selector, error) {
	switch x := req.GetSelector().(type) {
	case *eventsv1.SubscribeRequest_Pattern:
		return topic.PatternSelector(x.Pattern)
	case *eventsv1.SubscribeRequest_Artifact:
		switch m := x.Artifact.GetMatch(); m {
		case eventsv1.ArtifactMatch_ARTIFACT_MATCH_EXACT, eventsv1.ArtifactMatch_ARTIFACT_MATCH_UNSPECIFIED:
			return topic.ArtifactExactSelector(x.Artifact.GetKey())
		case eventsv1.ArtifactMatch_ARTIFACT_MATCH_PREFIX:
			return topic.ArtifactPrefixSelector(x.Artifact.GetKey())
		default:
			return topic.Selector{}, failure(topic.ErrInvalidArtifact, "unknown match kind "+strconv.Itoa(int(m)))
		}
	}
	return topic.Selector{}, errSelectorMissing
}

// sender writes one subscription's stream. Only the subscription's handler
// goroutine uses it.
type sender struct {
	svc      *Service
	sub      *subscription
	stream   grpc.ServerStreamingServer[eventsv1.SubscribeResponse]
	maxBatch int
	seq      uint64
	buf      []item
	// batch is the wire form of the next message: frameRoom bytes kept in
	// front for its SubscribeResponse field header, then its deliveries,
	// each as a DeliveryBatch.deliveries entry (see flush). It is reused
	// from message to message.
	batch  []byte
	nBatch int
	// resp carries the wire form of each message; gRPC marshals it
	// (copies the bytes) before Send returns, so it is reused too.
	resp eventsv1.SubscribeResponse
	// verdicts caches the gate's answer per concrete topic for wildcard
	// subscriptions.
	verdicts map[string]verdict
}

type verdict struct {
	allowed bool
	until   time.Time
}

const (
	takeBatch     = 256
	replayBatch   = 256
	maxVerdicts   = 4096
	maxBatchLimit = 1024
	// maxBatchBytes bounds the encoded DeliveryBatch of one message, so
	// the whole SubscribeResponse fits gRPC's 32 KiB buffer tier. gRPC
	// marshals (and the receiver materializes) a message into a pooled
	// buffer of the next power-of-two tier and zeroes the whole buffer:
	// above 32 KiB that is the 1 MiB tier, and a 64-delivery batch of 1 KB
	// events cost a 1 MiB clear on each side, the largest single item of
	// a fan-out profile. A batch this size still packs 30 deliveries of a
	// 1 KB event.
	maxBatchBytes = 32<<10 - 16
)

// loop sends queued deliveries and lag notices until the subscription ends
// (nil after Unsubscribe) or the stream's context does.
func (x *sender) loop(ctx context.Context) error {
	for {
		x.buf = x.sub.take(x.buf[:0], max(takeBatch, x.maxBatch))
		if len(x.buf) == 0 {
			select {
			case <-x.sub.wake:
				continue
			case <-x.sub.done:
				return x.sub.err()
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := x.sendItems(ctx, x.buf)
		clear(x.buf)
		if err != nil {
			return err
		}
	}
}

// catchUp replays the stream after pos, then makes the subscription live
// at the exact sequence the replay reached. Events retention already
// dropped are reported with a lag notice.
func (x *sender) catchUp(ctx context.Context, st *stream, pos uint64) error {
	for {
		select {
		case <-x.sub.done:
			return x.sub.err()
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		evs, first, err := st.readAfter(pos, replayBatch)
		if err != nil {
			return err
		}
		if first > pos+1 {
			// Retention dropped pos+1 .. first-1; resuming after first-1
			// recovers everything that is left.
			if err := x.sendLag(lagEntry{stream: st, firstSeq: first, missed: first - 1 - pos}); err != nil {
				return err
			}
			pos = first - 1
		}
		if len(evs) == 0 {
			if st.attach(pos, func() { x.svc.index.add(x.sub) }) {
				return nil
			}
			continue
		}
		items := x.buf[:0]
		for _, ev := range evs {
			if !x.sub.sel.Match(ev.topic) {
				continue
			}
			if !x.sub.filter.matchEvent(ev) {
				x.sub.filtered.Add(1)
				continue
			}
			items = append(items, item{ev: ev, stream: st})
		}
		err = x.sendItems(ctx, items)
		clear(items)
		x.buf = items
		if err != nil {
			return err
		}
		pos = evs[len(evs)-1].seq
	}
}

// sendItems writes items in order: lag notices as they come, and
// deliveries (skipping topics the gate refuses a wildcard subscriber) one
// per message, or packed up to maxBatch per DeliveryBatch when the
// subscription asked for batches.
func (x *sender) sendItems(ctx context.Context, items []item) error {
	for _, it := range items {
		if it.lag != nil {
			if err := x.flush(); err != nil {
				return err
			}
			for _, l := range it.lag {
				if err := x.sendLag(l); err != nil {
					return err
				}
			}
			continue
		}
		if x.sub.gatePerTopic {
			ok, err := x.allowed(ctx, it.ev.topic)
			if err != nil {
				return err
			}
			if !ok {
				x.sub.denied.Add(1)
				continue
			}
		}
		if err := x.add(it.ev); err != nil {
			return err
		}
	}
	return x.flush()
}

// add appends one delivery to the next message, sending the message
// first when the delivery would take it past maxBatchBytes, and after it
// when it holds maxBatch deliveries (one without max_batch).
func (x *sender) add(ev *event) error {
	if x.nBatch > 0 && len(x.batch)+deliverySize(x.sub.id, x.seq+1, ev.encoded()) > frameRoom+maxBatchBytes {
		if err := x.flush(); err != nil {
			return err
		}
	}
	if x.nBatch == 0 {
		x.batch = append(x.batch[:0], make([]byte, frameRoom)...)
	}
	x.seq++
	x.nBatch++
	x.batch = appendDelivery(x.batch, x.sub.id, x.seq, ev.encoded())
	if x.nBatch >= x.maxBatch {
		return x.flush()
	}
	return nil
}

// frameRoom is kept in front of a message's deliveries for the tag and
// length of its SubscribeResponse.batch field (a length below 2 MiB).
const frameRoom = 4

// flush sends the next message: a lone delivery as an ordinary
// SubscribeResponse.delivery, more as one SubscribeResponse.batch. The
// message is sent as its wire form (the unknown fields of an empty
// SubscribeResponse, which the receiver decodes as the one-of it is), so
// a delivery costs one copy of the event's shared encoding and allocates
// nothing here; the bytes are the ones the generated types would encode.
func (x *sender) flush() error {
	if x.nBatch == 0 {
		return nil
	}
	var frame []byte
	if x.nBatch == 1 {
		// A batch entry is DeliveryBatch field 1 holding a Delivery:
		// the same bytes as SubscribeResponse field 2 but for the tag.
		frame = x.batch[frameRoom:]
		frame[0] = byte(protowire.EncodeTag(respDelivery, protowire.BytesType))
	} else {
		size := len(x.batch) - frameRoom
		start := frameRoom - protowire.SizeTag(respBatch) - protowire.SizeVarint(uint64(size))
		head := protowire.AppendTag(x.batch[start:start], respBatch, protowire.BytesType)
		protowire.AppendVarint(head, uint64(size))
		frame = x.batch[start:]
	}
	x.resp.ProtoReflect().SetUnknown(protoreflect.RawFields(frame))
	n := x.nBatch
	err := x.stream.Send(&x.resp)
	x.resp.ProtoReflect().SetUnknown(nil)
	x.batch, x.nBatch = x.batch[:0], 0
	if cap(x.batch) > 4<<20 {
		x.batch = nil
	}
	if err != nil {
		return err
	}
	x.sub.sent.Add(uint64(n))
	return nil
}

func (x *sender) sendLag(l lagEntry) error {
	return x.stream.Send(&eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Lag{Lag: &eventsv1.Lag{
		SubscriptionId:      x.sub.id,
		Missed:              l.missed,
		ResumeAfterSequence: l.firstSeq - 1,
		Topic:               l.topic,
		Stream:              l.stream.name,
	}}})
}

// allowed asks the gate whether the subscriber may see topic t, caching
// the answer for GateCacheTTL. A gate that cannot answer ends the stream
// with its error rather than skipping events silently.
func (x *sender) allowed(ctx context.Context, t string) (bool, error) {
	now := x.svc.now()
	if v, ok := x.verdicts[t]; ok && now.Before(v.until) {
		return v.allowed, nil
	}
	v, err := gate.Check(ctx, x.svc.gate, x.sub.subscriber, GateURI(t, ActionSubscribe))
	if err != nil && v == nil {
		return false, err
	}
	if x.verdicts == nil || len(x.verdicts) >= maxVerdicts {
		x.verdicts = map[string]verdict{}
	}
	x.verdicts[t] = verdict{allowed: err == nil, until: now.Add(x.svc.cfg.GateCacheTTL)}
	return err == nil, nil
}

// Unsubscribe ends a subscription. It is never gated, but only the
// principal that subscribed may end it.
func (s *Service) Unsubscribe(ctx context.Context, req *eventsv1.UnsubscribeRequest) (*eventsv1.UnsubscribeResponse, error) {
	resp, err := s.unsubscribe(ctx, req)
	return resp, toStatus(ctx, s.log, err)
}

func (s *Service) unsubscribe(ctx context.Context, req *eventsv1.UnsubscribeRequest) (*eventsv1.UnsubscribeResponse, error) {
	id := req.GetSubscriptionId()
	if id == "" {
		return nil, errSubscriptionIDEmpty
	}
	s.subsMu.Lock()
	sub, ok := s.subs[id]
	s.subsMu.Unlock()
	if !ok {
		return &eventsv1.UnsubscribeResponse{Closed: false}, nil
	}
	if caller := auth.Caller(ctx); caller != sub.subscriber {
		return nil, failure(errNotOwner, "", "subscription_id", id, "caller", caller.Name)
	}
	closed := sub.close(nil)
	s.removeSubscription(sub)
	return &eventsv1.UnsubscribeResponse{Closed: closed}, nil
}
