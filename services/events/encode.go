package events

import (
	"encoding/binary"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// An event is encoded once, when it is published, in the wire form of a
// Delivery without the two per-subscription fields (subscription_id and
// sequence). Those bytes are the durable record and the body of every
// delivery: a subscription sends its two fields followed by the shared
// bytes as raw fields, so a payload is never re-encoded per subscriber, and
// receivers decode an ordinary Delivery (protobuf fields may come in any
// order). The stream sequence is written last, into room kept in front,
// once the stream has assigned it.

// Field numbers of continuum.events.v1.Delivery.
const (
	fieldSubscriptionID = 1
	fieldTopic          = 2
	fieldSequence       = 3
	fieldStreamSequence = 4
	fieldPublisher      = 5
	fieldPayload        = 6
	fieldPublishedAt    = 7
	fieldHeaders        = 8
	fieldPublisherNode  = 9
	fieldMsgID          = 10

	// seqRoom fits a tag and a 64-bit varint.
	seqRoom = 1 + binary.MaxVarintLen64

	// Field numbers of continuum.events.v1.SubscribeResponse's one-of.
	respDelivery = 2
	respBatch    = 4
)

// encodeEvent renders everything of e but its stream sequence, leaving
// seqRoom bytes in front for seal.
func encodeEvent(e *event) ([]byte, error) {
	// One allocation: room for the fixed fields, the strings, the payload
	// and the headers, each with its tag and length.
	size := 0
	if e.payload != nil {
		size = proto.Size(e.payload)
	}
	n := seqRoom + 64 + len(e.topic) + len(e.publisher) + len(e.node) + len(e.msgID) + size
	for k, v := range e.headers {
		n += 16 + len(k) + len(v)
	}
	b := make([]byte, seqRoom, n)
	b = appendString(b, fieldTopic, e.topic)
	b = appendString(b, fieldPublisher, e.publisher)
	if e.payload != nil {
		b = protowire.AppendTag(b, fieldPayload, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		var err error
		if b, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(b, e.payload); err != nil {
			return nil, err
		}
	}
	if !e.at.IsZero() {
		secs, nanos := e.at.Unix(), int32(e.at.Nanosecond())
		size := 0
		if secs != 0 {
			size += protowire.SizeTag(1) + protowire.SizeVarint(uint64(secs))
		}
		if nanos != 0 {
			size += protowire.SizeTag(2) + protowire.SizeVarint(uint64(nanos))
		}
		b = protowire.AppendTag(b, fieldPublishedAt, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(size))
		if secs != 0 {
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(secs))
		}
		if nanos != 0 {
			b = protowire.AppendTag(b, 2, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(nanos))
		}
	}
	if len(e.headers) > 0 {
		keys := make([]string, 0, len(e.headers))
		for k := range e.headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := e.headers[k]
			size := protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(len(v))
			b = protowire.AppendTag(b, fieldHeaders, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(size))
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, k)
			b = protowire.AppendTag(b, 2, protowire.BytesType)
			b = protowire.AppendString(b, v)
		}
	}
	b = appendString(b, fieldPublisherNode, e.node)
	b = appendString(b, fieldMsgID, e.msgID)
	return b, nil
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// seal gives e its stream sequence and completes its encoding. It is
// called once, under the stream's lock, before anyone else sees e.
func (e *event) seal(seq uint64) error {
	e.seq = seq
	if e.body == nil {
		body, err := encodeEvent(e)
		if err != nil {
			return err
		}
		e.body = body
	}
	start := seqRoom - protowire.SizeTag(fieldStreamSequence) - protowire.SizeVarint(seq)
	head := protowire.AppendTag(e.body[start:start], fieldStreamSequence, protowire.VarintType)
	protowire.AppendVarint(head, seq)
	e.enc = e.body[start:]
	return nil
}

// DeliveriesInFrame counts the deliveries in one encoded SubscribeResponse
// (a delivery, or a batch of them) without decoding them, for a client
// that reads raw frames; 0 for an ack, a lag notice or bytes that are not
// a SubscribeResponse.
func DeliveriesInFrame(b []byte) int {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || typ != protowire.BytesType {
		return 0
	}
	v, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		return 0
	}
	switch num {
	case respDelivery:
		return 1
	case respBatch:
		count := 0
		for len(v) > 0 {
			_, _, k := protowire.ConsumeField(v)
			if k < 0 {
				break
			}
			count++
			v = v[k:]
		}
		return count
	}
	return 0
}

// payloadStruct decodes the payload of a sealed event from its encoding
// (a retained event keeps no decoded payload; see event). An encoding
// that does not decode, which the service never writes, reads as an empty
// payload.
func (e *event) payloadStruct() *structpb.Struct {
	var d eventsv1.Delivery
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(e.enc, &d); err != nil || d.GetPayload() == nil {
		return &structpb.Struct{}
	}
	return d.GetPayload()
}

// encoded returns the shared encoding (see above).
func (e *event) encoded() []byte { return e.enc }

// deliveryFor renders the event for one subscription: its two fields, and
// the shared encoding as raw fields.
func (e *event) deliveryFor(subID string, seq uint64) *eventsv1.Delivery {
	d := &eventsv1.Delivery{SubscriptionId: subID, Sequence: seq}
	d.ProtoReflect().SetUnknown(protoreflect.RawFields(e.enc))
	return d
}

// deliveryBody is the size of a Delivery: the subscription's two fields
// and the event's shared encoding.
func deliveryBody(subID string, seq uint64, enc []byte) int {
	return protowire.SizeTag(fieldSubscriptionID) + protowire.SizeBytes(len(subID)) +
		protowire.SizeTag(fieldSequence) + protowire.SizeVarint(seq) + len(enc)
}

// deliverySize is what appendDelivery appends.
func deliverySize(subID string, seq uint64, enc []byte) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(deliveryBody(subID, seq, enc))
}

// appendDelivery appends one DeliveryBatch.deliveries entry: the
// subscription's two fields and the event's shared encoding.
func appendDelivery(b []byte, subID string, seq uint64, enc []byte) []byte {
	size := deliveryBody(subID, seq, enc)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = protowire.AppendTag(b, fieldSubscriptionID, protowire.BytesType)
	b = protowire.AppendString(b, subID)
	b = protowire.AppendTag(b, fieldSequence, protowire.VarintType)
	b = protowire.AppendVarint(b, seq)
	return append(b, enc...)
}
