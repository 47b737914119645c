package events

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

func TestPublishValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := strings.Repeat("x", 1<<20)
	tests := []struct {
		name   string
		req    *eventsv1.PublishRequest
		reason string
	}{
		{"empty topic", &eventsv1.PublishRequest{}, "TOPIC_INVALID"},
		{"wildcard topic", &eventsv1.PublishRequest{Topic: "data:*"}, "TOPIC_INVALID"},
		{"tail topic", &eventsv1.PublishRequest{Topic: "data:>"}, "TOPIC_INVALID"},
		{"bad artifact", &eventsv1.PublishRequest{Topic: "genome//x"}, "TOPIC_INVALID"},
		{"artifact prefix", &eventsv1.PublishRequest{Topic: "genome/"}, "TOPIC_INVALID"},
		{"control in msg id", &eventsv1.PublishRequest{Topic: "a", MsgId: "a\nb"}, "MSG_ID_INVALID"},
		{"long msg id", &eventsv1.PublishRequest{Topic: "a", MsgId: strings.Repeat("m", 257)}, "MSG_ID_INVALID"},
		{"empty header name", &eventsv1.PublishRequest{Topic: "a", Headers: map[string]string{"": "v"}}, "HEADER_INVALID"},
		{"reserved header", &eventsv1.PublishRequest{Topic: "a", Headers: map[string]string{"Continuum-Publisher": "admin"}}, "HEADER_INVALID"},
		{"control character in a header value", &eventsv1.PublishRequest{Topic: "a", Headers: map[string]string{"note": "line\nforged: yes"}}, "HEADER_INVALID"},
		{"control character in a schema version", &eventsv1.PublishRequest{Topic: "a", SchemaVersion: "1\n2"}, "SCHEMA_VERSION_INVALID"},
		{"too large", &eventsv1.PublishRequest{Topic: "a", Payload: &structpb.Struct{Fields: map[string]*structpb.Value{
			"x": structpb.NewStringValue(big),
		}}}, "EVENT_TOO_LARGE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := e.admin.Publish(ctxT(t), tc.req)
			wantCode(t, err, codes.InvalidArgument, tc.reason)
		})
	}
}

func TestSubscribeValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nested, _ := structpb.NewStruct(map[string]any{"a": map[string]any{"b": 1}})
	list, _ := structpb.NewStruct(map[string]any{"a": []any{1, 2}})
	withFilter := func(f *structpb.Struct) *eventsv1.SubscribeRequest {
		r := pattern("a:>")
		r.Filter = f
		return r
	}
	tests := []struct {
		name   string
		req    *eventsv1.SubscribeRequest
		code   codes.Code
		reason string
	}{
		{"no selector", &eventsv1.SubscribeRequest{}, codes.InvalidArgument, "SELECTOR_MISSING"},
		{"empty pattern", pattern(""), codes.InvalidArgument, "PATTERN_INVALID"},
		{"tail not last", pattern("a:>:b"), codes.InvalidArgument, "PATTERN_INVALID"},
		{"partial glob", pattern("a:b*"), codes.InvalidArgument, "PATTERN_INVALID"},
		{"artifact key as pattern", pattern("genome/x"), codes.InvalidArgument, "PATTERN_INVALID"},
		{"colon topic as artifact", artifact("genome", eventsv1.ArtifactMatch_ARTIFACT_MATCH_EXACT), codes.InvalidArgument, "ARTIFACT_INVALID"},
		{"glob in artifact", artifact("genome/*", eventsv1.ArtifactMatch_ARTIFACT_MATCH_EXACT), codes.InvalidArgument, "ARTIFACT_INVALID"},
		{"prefix without slash", artifact("genome", eventsv1.ArtifactMatch_ARTIFACT_MATCH_PREFIX), codes.InvalidArgument, "ARTIFACT_INVALID"},
		{"unknown match", artifact("genome/x", 9), codes.InvalidArgument, "ARTIFACT_INVALID"},
		{"nested filter", withFilter(nested), codes.InvalidArgument, "FILTER_INVALID"},
		{"list filter", withFilter(list), codes.InvalidArgument, "FILTER_INVALID"},
		{
			"both starts", &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "a"}, StartAfterSequence: 1, LastN: 1},
			codes.InvalidArgument, "START_CONFLICT",
		},
		{
			"ambiguous start", &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "a:>"}, LastN: 1},
			codes.InvalidArgument, "START_AMBIGUOUS",
		},
		{
			"ambiguous prefix start", &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Artifact{
				Artifact: &eventsv1.ArtifactSelector{Key: "genome/", Match: eventsv1.ArtifactMatch_ARTIFACT_MATCH_PREFIX},
			}, StartAfterSequence: 1},
			codes.InvalidArgument, "START_AMBIGUOUS",
		},
		{
			"start beyond end", &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "fresh"}, StartAfterSequence: 5},
			codes.OutOfRange, "START_BEYOND_END",
		},
		{
			"queue too large", &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: "a"}, QueueSize: 1 << 30},
			codes.InvalidArgument, "QUEUE_TOO_LARGE",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantCode(t, subscribe(t, e.admin, tc.req).refused(), tc.code, tc.reason)
		})
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		filter map[string]any
		want   []string // ids delivered
	}{
		{"absent matches all", nil, []string{"a", "b", "c", "d"}},
		{"empty matches all", map[string]any{}, []string{"a", "b", "c", "d"}},
		{"string", map[string]any{"kind": "x"}, []string{"a", "c"}},
		{"number", map[string]any{"n": 2}, []string{"b"}},
		{"bool", map[string]any{"ok": true}, []string{"a", "b"}},
		{"null matches null only", map[string]any{"gone": nil}, []string{"c"}},
		{"all fields", map[string]any{"kind": "x", "ok": true}, []string{"a"}},
		{"type matters", map[string]any{"m": "2"}, nil},
		{"missing field", map[string]any{"nope": 1}, nil},
	}
	tails := make([]*tail, len(tests))
	for i, tc := range tests {
		req := pattern("f:e")
		if tc.filter != nil {
			req.Filter = payload(t, tc.filter)
		}
		tails[i] = subscribe(t, e.admin, req)
		tails[i].ack()
	}
	for _, ev := range []map[string]any{
		{"id": "a", "kind": "x", "n": 1, "ok": true},
		{"id": "b", "kind": "y", "n": 2, "m": 2, "ok": true},
		{"id": "c", "kind": "x", "n": 3, "ok": false, "gone": nil},
		{"id": "d", "n": []any{2}, "ok": map[string]any{"true": true}},
	} {
		publish(t, e.admin, "f:e", ev)
	}
	publish(t, e.admin, "f:e", map[string]any{"id": "end", "kind": "x", "n": 2, "m": "2", "ok": true, "gone": nil, "nope": 1})
	for i, tc := range tests {
		var got []string
		for {
			id := tails[i].delivery().GetPayload().GetFields()["id"].GetStringValue()
			if id == "end" {
				break
			}
			got = append(got, id)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: delivered %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDedupDeliversOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	x := subscribe(t, e.admin, pattern("d:>"))
	x.ack()
	first, err := e.admin.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "d:a", MsgId: "m1", Payload: payload(t, map[string]any{"v": 1})})
	if err != nil || first.GetDuplicate() || first.GetDelivered() != 1 {
		t.Fatalf("first publish = %v, %v", first, err)
	}
	again, err := e.user.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "d:a", MsgId: "m1", Payload: payload(t, map[string]any{"v": 2})})
	if err != nil || !again.GetDuplicate() || again.GetStreamSequence() != first.GetStreamSequence() || again.GetDelivered() != 0 {
		t.Fatalf("repeat publish = %v, %v; want a duplicate of %d", again, err, first.GetStreamSequence())
	}
	// The same msg_id on another stream is another event.
	if other := publish(t, e.admin, "d:b", nil); other.GetDuplicate() {
		t.Fatal("dedup crossed streams")
	}
	if d := x.delivery(); d.GetTopic() != "d:a" || d.GetPayload().GetFields()["v"].GetNumberValue() != 1 {
		t.Fatalf("first delivery %v", d)
	}
	if d := x.delivery(); d.GetTopic() != "d:b" {
		t.Fatalf("second delivery is %v; the duplicate must not be delivered", d)
	}
}

func TestPublisherIsStampedAndCannotBeForged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	x := subscribe(t, e.admin, pattern("p:>"))
	x.ack()

	publish(t, e.user, "p:user", nil)
	if d := x.delivery(); d.GetPublisher() != "user" || d.GetPublisherNode() != "test-node" {
		t.Fatalf("publisher %q node %q, want user on test-node", d.GetPublisher(), d.GetPublisherNode())
	}

	// A token caller claiming another identity in metadata is refused
	// before the service sees the call.
	forged := auth.OnBehalfOf(ctxT(t), auth.Principal{Name: "admin", Kind: auth.KindToken})
	_, err := e.user.Publish(forged, &eventsv1.PublishRequest{Topic: "p:forged"})
	wantCode(t, err, codes.Unauthenticated, rpc.ReasonIdentityForged)
	raw := metadata.AppendToOutgoingContext(ctxT(t), auth.CallerHeader, "token;admin")
	_, err = e.user.Publish(raw, &eventsv1.PublishRequest{Topic: "p:forged"})
	wantCode(t, err, codes.Unauthenticated, rpc.ReasonIdentityForged)

	// A mesh peer may carry its caller: the delivery names that caller.
	onBehalf := auth.OnBehalfOf(ctxT(t), auth.Principal{Name: "maya", Kind: auth.KindToken})
	if _, err := e.peer.Publish(onBehalf, &eventsv1.PublishRequest{Topic: "p:relayed"}); err != nil {
		t.Fatal(err)
	}
	if d := x.delivery(); d.GetTopic() != "p:relayed" || d.GetPublisher() != "maya" {
		t.Fatalf("relayed delivery %v, want publisher maya", d)
	}
	// Without a carried caller the mesh peer publishes as itself.
	if _, err := e.peer.Publish(context.Background(), &eventsv1.PublishRequest{Topic: "p:peer"}); err != nil {
		t.Fatal(err)
	}
	if d := x.delivery(); d.GetPublisher() != "peer:test-node" {
		t.Fatalf("peer delivery publisher %q", d.GetPublisher())
	}
}
