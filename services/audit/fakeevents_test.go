package audit

import (
	"context"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// fakeEvents is an in-memory events service with the replay semantics the
// recorder relies on: durable streams (one sequence for "audit" and every
// "audit:..." topic, one per artifact key), subscriptions that replay
// after a stream sequence and then stream live, restarts that break every
// live subscription but keep the streams, and injectable lag notices.
type fakeEvents struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced when anything changes
	streams map[string][]fakeEvent
	classes map[string]*eventsv1.EventClass
	epoch   int
	down    bool
	lag     map[string]int
	hold    map[string]uint64
	// subscribes counts Subscribe calls, by start_after_sequence.
	subscribes []uint64
}

type fakeEvent struct {
	seq       uint64
	topic     string
	payload   *structpb.Struct
	publisher string
}

func newFakeEvents() *fakeEvents {
	return &fakeEvents{
		changed: make(chan struct{}),
		streams: map[string][]fakeEvent{},
		classes: map[string]*eventsv1.EventClass{},
		lag:     map[string]int{},
		hold:    map[string]uint64{},
	}
}

// fakeStreamOf names the durable stream of a topic.
func fakeStreamOf(topic string) string {
	if topic == "audit" || strings.HasPrefix(topic, "audit:") {
		return "audit"
	}
	return topic
}

// notify wakes every waiting subscription. Call with mu held.
func (f *fakeEvents) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// publish appends an event and returns its stream sequence.
func (f *fakeEvents) publish(topic string, payload map[string]any) uint64 {
	p, err := structpb.NewStruct(payload)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := fakeStreamOf(topic)
	seq := uint64(len(f.streams[key]) + 1)
	f.streams[key] = append(f.streams[key], fakeEvent{seq: seq, topic: topic, payload: p, publisher: "peer:router-node"})
	f.notify()
	return seq
}

// last is the highest sequence of a stream.
func (f *fakeEvents) last(key string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return uint64(len(f.streams[key]))
}

// restart breaks every live subscription (the events service restarted);
// the durable streams survive.
func (f *fakeEvents) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epoch++
	f.notify()
}

// setDown makes every call fail with UNAVAILABLE while down.
func (f *fakeEvents) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	f.epoch++
	f.notify()
}

// injectLag makes the next Recv on a subscription to stream key drop n
// deliveries and report them in a lag notice.
func (f *fakeEvents) injectLag(key string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lag[key] = n
	f.notify()
}

// holdAfter stops deliveries of stream key beyond seq until release.
func (f *fakeEvents) holdAfter(key string, seq uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold[key] = seq
}

func (f *fakeEvents) release(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.hold, key)
	f.notify()
}

func (f *fakeEvents) subscribeCalls() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.subscribes...)
}

func (f *fakeEvents) DeclareClass(_ context.Context, in *eventsv1.DeclareClassRequest, _ ...grpc.CallOption) (*eventsv1.DeclareClassResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, status.Error(codes.Unavailable, "events down")
	}
	c := in.GetClass()
	if old, ok := f.classes[c.GetName()]; ok {
		if !proto.Equal(old, c) {
			return nil, status.Error(codes.AlreadyExists, "class conflict")
		}
		return &eventsv1.DeclareClassResponse{Class: old}, nil
	}
	f.classes[c.GetName()] = proto.Clone(c).(*eventsv1.EventClass)
	return &eventsv1.DeclareClassResponse{Class: c, Created: true}, nil
}

func (f *fakeEvents) Subscribe(ctx context.Context, in *eventsv1.SubscribeRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[eventsv1.SubscribeResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, status.Error(codes.Unavailable, "events down")
	}
	f.subscribes = append(f.subscribes, in.GetStartAfterSequence())
	sub := &fakeSub{f: f, ctx: ctx, epoch: f.epoch, pos: in.GetStartAfterSequence()}
	switch {
	case in.GetPattern() == "audit:>":
		sub.key, sub.match = "audit", func(t string) bool { return strings.HasPrefix(t, "audit:") }
	case in.GetArtifact().GetMatch() == eventsv1.ArtifactMatch_ARTIFACT_MATCH_EXACT:
		key := in.GetArtifact().GetKey()
		sub.key, sub.match = key, func(t string) bool { return t == key }
	default:
		return nil, status.Error(codes.InvalidArgument, "the fake serves audit:> and exact artifact keys only")
	}
	return sub, nil
}

// fakeSub is one subscription's client stream.
type fakeSub struct {
	grpc.ClientStream // unused methods; only Recv and Context are called

	f     *fakeEvents
	ctx   context.Context
	epoch int
	key   string
	match func(string) bool
	pos   uint64
	n     uint64
	acked bool
}

func (s *fakeSub) Context() context.Context { return s.ctx }

func (s *fakeSub) Recv() (*eventsv1.SubscribeResponse, error) {
	if !s.acked {
		s.acked = true
		return &eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Ack{Ack: &eventsv1.SubscribeAck{SubscriptionId: "sub"}}}, nil
	}
	for {
		s.f.mu.Lock()
		if s.f.epoch != s.epoch || s.f.down {
			s.f.mu.Unlock()
			return nil, status.Error(codes.Unavailable, "events restarted")
		}
		stream := s.f.streams[s.key]
		if n := s.f.lag[s.key]; n > 0 {
			delete(s.f.lag, s.key)
			missed := 0
			for _, ev := range stream {
				if ev.seq > s.pos && s.match(ev.topic) && missed < n {
					missed++
					s.pos = ev.seq
				}
			}
			s.f.mu.Unlock()
			return &eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Lag{Lag: &eventsv1.Lag{
				SubscriptionId: "sub", Missed: uint64(missed), ResumeAfterSequence: s.pos,
			}}}, nil
		}
		var next *fakeEvent
		for i := range stream {
			if stream[i].seq > s.pos && s.match(stream[i].topic) {
				next = &stream[i]
				break
			}
		}
		if h, held := s.f.hold[s.key]; held && next != nil && next.seq > h {
			next = nil
		}
		changed := s.f.changed
		s.f.mu.Unlock()
		if next != nil {
			s.pos = next.seq
			s.n++
			return &eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Delivery{Delivery: &eventsv1.Delivery{
				SubscriptionId: "sub", Topic: next.topic, Sequence: s.n, StreamSequence: next.seq,
				Publisher: next.publisher, Payload: next.payload,
			}}}, nil
		}
		select {
		case <-s.ctx.Done():
			return nil, status.FromContextError(s.ctx.Err()).Err()
		case <-changed:
		}
	}
}
