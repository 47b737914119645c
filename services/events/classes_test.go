package events

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

func TestDeclareClassValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	global := eventsv1.ChannelStrategy_CHANNEL_STRATEGY_GLOBAL
	tests := []struct {
		name   string
		class  *eventsv1.EventClass
		code   codes.Code
		reason string
	}{
		{"no class", nil, codes.InvalidArgument, "CLASS_EMPTY_NAME"},
		{"empty name", &eventsv1.EventClass{SchemaVersion: "1"}, codes.InvalidArgument, "CLASS_EMPTY_NAME"},
		{"wildcard name", &eventsv1.EventClass{Name: "data:>", SchemaVersion: "1"}, codes.InvalidArgument, "CLASS_INVALID_NAME"},
		{"bad name", &eventsv1.EventClass{Name: "data chat", SchemaVersion: "1"}, codes.InvalidArgument, "CLASS_INVALID_NAME"},
		{"empty schema version", &eventsv1.EventClass{Name: "a"}, codes.InvalidArgument, "CLASS_EMPTY_SCHEMA_VERSION"},
		{"bad schema version", &eventsv1.EventClass{Name: "a", SchemaVersion: "1 2"}, codes.InvalidArgument, "CLASS_INVALID_SCHEMA_VERSION"},
		{
			"broadcast without channel", &eventsv1.EventClass{Name: "a", SchemaVersion: "1", Broadcast: true},
			codes.InvalidArgument, "CLASS_BROADCAST_WITHOUT_CHANNEL",
		},
		{
			"channel without broadcast", &eventsv1.EventClass{Name: "a", SchemaVersion: "1", ChannelStrategy: global},
			codes.InvalidArgument, "CLASS_CHANNEL_WITHOUT_BROADCAST",
		},
		{
			"unknown channel", &eventsv1.EventClass{Name: "a", SchemaVersion: "1", Broadcast: true, ChannelStrategy: 99},
			codes.InvalidArgument, "CLASS_CHANNEL_INVALID",
		},
		{"artifact class by room", &eventsv1.EventClass{
			Name: "genome/x", SchemaVersion: "1", Broadcast: true,
			ChannelStrategy: eventsv1.ChannelStrategy_CHANNEL_STRATEGY_BY_ROOM,
		}, codes.InvalidArgument, "CLASS_CHANNEL_INVALID"},
		{
			"unknown schema policy", &eventsv1.EventClass{Name: "a", SchemaVersion: "1", OnUnknownSchema: 7},
			codes.InvalidArgument, "CLASS_SCHEMA_POLICY_INVALID",
		},
		{
			"negative retention", &eventsv1.EventClass{Name: "a", SchemaVersion: "1", Retention: durationpb.New(-time.Second)},
			codes.InvalidArgument, "CLASS_RETENTION_INVALID",
		},
		{
			"invalid retention", &eventsv1.EventClass{Name: "a", SchemaVersion: "1", Retention: &durationpb.Duration{Seconds: 1, Nanos: -1}},
			codes.InvalidArgument, "CLASS_RETENTION_INVALID",
		},
		{
			"durable without disk", &eventsv1.EventClass{Name: "a", SchemaVersion: "1", Durable: true},
			codes.FailedPrecondition, "DURABLE_UNAVAILABLE",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := e.admin.DeclareClass(ctxT(t), &eventsv1.DeclareClassRequest{Class: tc.class})
			wantCode(t, err, tc.code, tc.reason)
		})
	}
}

func TestDeclareClassIsIdempotentAndRefusesConflicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	class := &eventsv1.EventClass{
		Name: "chat:message", SchemaVersion: "1", Broadcast: true,
		ChannelStrategy: eventsv1.ChannelStrategy_CHANNEL_STRATEGY_BY_ROOM,
	}
	want := &eventsv1.EventClass{
		Name: "chat:message", SchemaVersion: "1", Broadcast: true,
		ChannelStrategy: eventsv1.ChannelStrategy_CHANNEL_STRATEGY_BY_ROOM,
		OnUnknownSchema: eventsv1.UnknownSchemaPolicy_UNKNOWN_SCHEMA_POLICY_FAIL,
	}
	for i, created := range []bool{true, false} {
		resp, err := e.admin.DeclareClass(ctxT(t), &eventsv1.DeclareClassRequest{Class: class})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&eventsv1.DeclareClassResponse{Class: want, Created: created}, resp, protocmp.Transform()); diff != "" {
			t.Errorf("declare %d (-want +got):\n%s", i, diff)
		}
	}
	// The explicit default policy is the same declaration.
	same := &eventsv1.EventClass{
		Name: "chat:message", SchemaVersion: "1", Broadcast: true,
		ChannelStrategy: eventsv1.ChannelStrategy_CHANNEL_STRATEGY_BY_ROOM,
		OnUnknownSchema: eventsv1.UnknownSchemaPolicy_UNKNOWN_SCHEMA_POLICY_FAIL, Retention: durationpb.New(0),
	}
	if resp, err := e.admin.DeclareClass(ctxT(t), &eventsv1.DeclareClassRequest{Class: same}); err != nil || resp.GetCreated() {
		t.Fatalf("equivalent redeclare = %v, %v", resp, err)
	}
	for _, conflict := range []*eventsv1.EventClass{
		{Name: "chat:message", SchemaVersion: "2", Broadcast: true, ChannelStrategy: eventsv1.ChannelStrategy_CHANNEL_STRATEGY_BY_ROOM},
		{Name: "chat:message", SchemaVersion: "1", Broadcast: true, ChannelStrategy: eventsv1.ChannelStrategy_CHANNEL_STRATEGY_BY_PEER},
		{Name: "chat:message", SchemaVersion: "1", Broadcast: true, ChannelStrategy: eventsv1.ChannelStrategy_CHANNEL_STRATEGY_BY_ROOM, MaxEvents: 5},
	} {
		_, err := e.admin.DeclareClass(ctxT(t), &eventsv1.DeclareClassRequest{Class: conflict})
		wantCode(t, err, codes.AlreadyExists, ReasonClassConflict)
	}
	got, err := e.user.GetClass(ctxT(t), &eventsv1.GetClassRequest{Name: "chat:message"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got.GetClass(), protocmp.Transform()); diff != "" {
		t.Errorf("GetClass (-want +got):\n%s", diff)
	}
	_, err = e.user.GetClass(ctxT(t), &eventsv1.GetClassRequest{Name: "nope"})
	wantCode(t, err, codes.NotFound, "CLASS_UNKNOWN")
	declare(t, e.admin, &eventsv1.EventClass{Name: "audit", SchemaVersion: "1"})
	list, err := e.user.ListClasses(ctxT(t), &eventsv1.ListClassesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list.GetClasses() {
		names = append(names, c.GetName())
	}
	if diff := cmp.Diff([]string{"audit", "chat:message"}, names); diff != "" {
		t.Errorf("ListClasses (-want +got):\n%s", diff)
	}
}

func TestResolveChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, s := range map[string]eventsv1.ChannelStrategy{
		"c:global": eventsv1.ChannelStrategy_CHANNEL_STRATEGY_GLOBAL,
		"c:local":  eventsv1.ChannelStrategy_CHANNEL_STRATEGY_LOCAL,
		"c:room":   eventsv1.ChannelStrategy_CHANNEL_STRATEGY_BY_ROOM,
		"c:peer":   eventsv1.ChannelStrategy_CHANNEL_STRATEGY_BY_PEER,
		"c:custom": eventsv1.ChannelStrategy_CHANNEL_STRATEGY_CUSTOM,
	} {
		declare(t, e.admin, &eventsv1.EventClass{Name: name, SchemaVersion: "1", Broadcast: true, ChannelStrategy: s})
	}
	declare(t, e.admin, &eventsv1.EventClass{Name: "c:quiet", SchemaVersion: "1"})
	room := "6f1c2a9e-1b2c-4d5e-8f90-123456789abc"
	tests := []struct {
		name   string
		req    *eventsv1.ResolveChannelRequest
		want   string
		code   codes.Code
		reason string
	}{
		{"global", &eventsv1.ResolveChannelRequest{ClassName: "c:global", Room: room}, "c:global", codes.OK, ""},
		{"local", &eventsv1.ResolveChannelRequest{ClassName: "c:local"}, "c:local:node:test-node", codes.OK, ""},
		{"by room", &eventsv1.ResolveChannelRequest{ClassName: "c:room", Room: room}, "c:room:room:" + room, codes.OK, ""},
		{"by peer", &eventsv1.ResolveChannelRequest{ClassName: "c:peer", Peer: "maya"}, "c:peer:peer:maya", codes.OK, ""},
		{"custom", &eventsv1.ResolveChannelRequest{ClassName: "c:custom", Custom: "lobby:east"}, "c:custom:lobby:east", codes.OK, ""},
		{"room missing", &eventsv1.ResolveChannelRequest{ClassName: "c:room", Peer: "maya"}, "", codes.InvalidArgument, "CHANNEL_CONTEXT_MISSING"},
		{"peer missing", &eventsv1.ResolveChannelRequest{ClassName: "c:peer"}, "", codes.InvalidArgument, "CHANNEL_CONTEXT_MISSING"},
		{"custom missing", &eventsv1.ResolveChannelRequest{ClassName: "c:custom"}, "", codes.InvalidArgument, "CHANNEL_CONTEXT_MISSING"},
		{"bad peer", &eventsv1.ResolveChannelRequest{ClassName: "c:peer", Peer: "a b"}, "", codes.InvalidArgument, "CHANNEL_INVALID"},
		{"bad custom", &eventsv1.ResolveChannelRequest{ClassName: "c:custom", Custom: "x:>"}, "", codes.InvalidArgument, "CHANNEL_INVALID"},
		{"not broadcast", &eventsv1.ResolveChannelRequest{ClassName: "c:quiet"}, "", codes.FailedPrecondition, "CLASS_NOT_BROADCAST"},
		{"unknown", &eventsv1.ResolveChannelRequest{ClassName: "c:nope"}, "", codes.NotFound, "CLASS_UNKNOWN"},
		{"empty", &eventsv1.ResolveChannelRequest{}, "", codes.InvalidArgument, "CLASS_EMPTY_NAME"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, err := e.user.ResolveChannel(ctxT(t), tc.req)
			if tc.code != codes.OK {
				wantCode(t, err, tc.code, tc.reason)
				return
			}
			if err != nil || resp.GetChannel() != tc.want {
				t.Fatalf("ResolveChannel = %q, %v; want %q", resp.GetChannel(), err, tc.want)
			}
		})
	}
}

func TestClassSharesOneStreamAndChecksSchemas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	declare(t, e.admin, &eventsv1.EventClass{Name: "audit", SchemaVersion: "2"})
	declare(t, e.admin, &eventsv1.EventClass{
		Name: "lax", SchemaVersion: "1",
		OnUnknownSchema: eventsv1.UnknownSchemaPolicy_UNKNOWN_SCHEMA_POLICY_WARN,
	})
	var seqs []uint64
	for _, topic := range []string{"audit", "audit:refusal", "audit:policy-drift", "audit:refusal"} {
		seqs = append(seqs, publish(t, e.admin, topic, nil).GetStreamSequence())
	}
	if diff := cmp.Diff([]uint64{1, 2, 3, 4}, seqs); diff != "" {
		t.Errorf("class stream sequences (-want +got):\n%s", diff)
	}
	if got := publish(t, e.admin, "auditor", nil).GetStreamSequence(); got != 1 {
		t.Errorf("a topic outside the class has its own stream; got sequence %d", got)
	}
	_, err := e.admin.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "audit:refusal", SchemaVersion: "3"})
	wantCode(t, err, codes.InvalidArgument, "SCHEMA_UNKNOWN")
	if _, err := e.admin.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "audit:refusal", SchemaVersion: "2"}); err != nil {
		t.Fatalf("publish with the class's version: %v", err)
	}
	if _, err := e.admin.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "lax:x", SchemaVersion: "9"}); err != nil {
		t.Fatalf("a warn class accepts unknown versions: %v", err)
	}
}
