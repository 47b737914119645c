package events

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// TestSharedEncoding checks the hand-written event encoding against the
// generated code: what a subscriber decodes equals the ordinary message.
func TestSharedEncoding(t *testing.T) {
	t.Parallel()
	full, _ := structpb.NewStruct(map[string]any{"text": "héllo", "n": 2.5, "list": []any{1, "a", nil}, "obj": map[string]any{"b": true}})
	tests := []struct {
		name string
		ev   *event
		seq  uint64
	}{
		{"everything", &event{
			topic: "data:chat:created", at: time.Unix(1_900_000_000, 123456789), publisher: "admin", node: "n1",
			msgID: "m-1", headers: map[string]string{"b": "2", "a": "1", "": "empty-key"}, payload: full,
		}, 42},
		{"minimal", &event{topic: "a", payload: &structpb.Struct{}}, 1},
		{"zero time and no payload", &event{topic: "genome/working_set.page_fault", publisher: "peer:x"}, 7},
		{"before 1970", &event{topic: "a", at: time.Unix(-5, 3), payload: &structpb.Struct{}}, 9},
		{"largest sequence", &event{topic: "a", at: time.Unix(1, 0), payload: &structpb.Struct{}}, math.MaxUint64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.ev.seal(tc.seq); err != nil {
				t.Fatal(err)
			}
			want := tc.ev.delivery("", 0)
			if tc.ev.at.IsZero() {
				want.PublishedAt = nil
			}
			var got eventsv1.Delivery
			if err := proto.Unmarshal(tc.ev.encoded(), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, &got, protocmp.Transform()); diff != "" {
				t.Errorf("shared encoding (-want +got):\n%s", diff)
			}

			want.SubscriptionId, want.Sequence = "sub_1", 3
			b, err := proto.Marshal(tc.ev.deliveryFor("sub_1", 3))
			if err != nil {
				t.Fatal(err)
			}
			got.Reset()
			if err := proto.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, &got, protocmp.Transform()); diff != "" {
				t.Errorf("delivery (-want +got):\n%s", diff)
			}

			batch := appendDelivery(appendDelivery(nil, "sub_1", 3, tc.ev.encoded()), "sub_1", 4, tc.ev.encoded())
			var db eventsv1.DeliveryBatch
			if err := proto.Unmarshal(batch, &db); err != nil {
				t.Fatal(err)
			}
			second := proto.Clone(want).(*eventsv1.Delivery)
			second.Sequence = 4
			if diff := cmp.Diff(&eventsv1.DeliveryBatch{Deliveries: []*eventsv1.Delivery{want, second}}, &db, protocmp.Transform()); diff != "" {
				t.Errorf("batch (-want +got):\n%s", diff)
			}
		})
	}
}

// delivery renders the event for one subscription as an ordinary message
// (what the shared encoding must decode to).
func (e *event) delivery(subID string, seq uint64) *eventsv1.Delivery {
	return &eventsv1.Delivery{
		SubscriptionId: subID,
		Topic:          e.topic,
		Sequence:       seq,
		StreamSequence: e.seq,
		Publisher:      e.publisher,
		Payload:        e.payload,
		PublishedAt:    timestamppb.New(e.at),
		Headers:        e.headers,
		PublisherNode:  e.node,
		MsgId:          e.msgID,
	}
}

func TestDeliveriesInFrame(t *testing.T) {
	t.Parallel()
	d := &eventsv1.Delivery{SubscriptionId: "s", Sequence: 1, Topic: "a"}
	frame := func(r *eventsv1.SubscribeResponse) []byte {
		b, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want int
	}{
		{"one delivery", frame(&eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Delivery{Delivery: d}}), 1},
		{"a batch of three", frame(&eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Batch{Batch: &eventsv1.DeliveryBatch{Deliveries: []*eventsv1.Delivery{d, d, d}}}}), 3},
		{"an ack", frame(&eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Ack{Ack: &eventsv1.SubscribeAck{SubscriptionId: "s"}}}), 0},
		{"a lag notice", frame(&eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Lag{Lag: &eventsv1.Lag{Missed: 2}}}), 0},
		{"garbage", []byte{0xff, 0xff, 0xff}, 0},
		{"empty", nil, 0},
	} {
		if got := DeliveriesInFrame(tc.b); got != tc.want {
			t.Errorf("%s: %d deliveries, want %d", tc.name, got, tc.want)
		}
	}
}
