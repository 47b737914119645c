package audit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/continuum-mesh/continuum/pkg/auditevents"
	"github.com/continuum-mesh/continuum/pkg/auditlog"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

func TestKindOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		topic, kind, stream string
	}{
		{"audit:refusal", "refusal", "audit"},
		{"audit:access-denied", "access-denied", "audit"},
		{"genome/working_set.access_denied", "access-denied", "genome/working_set.access_denied"},
		{"audit:governor-override", "governor-override", "audit"},
		{"audit:policy-drift", "federation-policy-drift", "audit"},
		{"audit:federation-policy-drift", "federation-policy-drift", "audit"},
		{"audit:other", "", "audit"},
		{"audit", "", "audit"},
		{"auditx:refusal", "", ""},
		{"", "", ""},
		{"genome/working_set.page_fault", "", ""},
	}
	for _, tt := range tests {
		kind, ok := kindOf(tt.topic)
		if kind != tt.kind || ok != (tt.kind != "") || streamKey(tt.topic) != tt.stream {
			t.Errorf("%q: kind %q %v stream %q, want %q %q", tt.topic, kind, ok, streamKey(tt.topic), tt.kind, tt.stream)
		}
	}
}

// published is what the test expects in the log for one event.
type published struct {
	topic   string
	seq     uint64
	kind    string
	payload map[string]any
}

// burst publishes events number from..to-1 across every audit source.
func burst(f *fakeEvents, from, to int) []published {
	var out []published
	for i := from; i < to; i++ {
		var topic, kind string
		switch i % 7 {
		case 0, 1, 2:
			topic, kind = auditevents.TopicRefusal, auditlog.KindRefusal
		case 3:
			topic, kind = auditevents.ArtifactAccessDenied, auditlog.KindAccessDenied
		case 4:
			topic, kind = auditevents.TopicAccessDenied, auditlog.KindAccessDenied
		case 5:
			topic, kind = auditevents.TopicGovernorOverride, auditlog.KindGovernorOverride
		case 6:
			topic, kind = auditevents.TopicPolicyDrift, auditlog.KindFederationPolicyDrift
		}
		payload := map[string]any{"uri": fmt.Sprintf("genome/page-in?n=%d", i), "caller": "user", "dry_run": i%2 == 0, "n": float64(i)}
		seq := f.publish(topic, payload)
		out = append(out, published{topic: topic, seq: seq, kind: kind, payload: payload})
		if i%50 == 0 {
			// An event on an audit topic with no kind is skipped, not recorded.
			f.publish("audit:unknown-kind", map[string]any{"n": float64(i)})
		}
	}
	return out
}

// readEntries reads the whole log.
func readEntries(t testing.TB, s *Service) []*auditlog.Entry {
	t.Helper()
	var out []*auditlog.Entry
	if err := s.store.read(context.Background(), 1, 0, func(e *auditlog.Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkExactlyOnce checks every published event is in the log exactly
// once, with its kind and payload, in stream order per source.
func checkExactlyOnce(t *testing.T, entries []*auditlog.Entry, want []published) {
	t.Helper()
	type id struct {
		stream string
		seq    uint64
	}
	got := map[id]*auditlog.Entry{}
	last := map[string]uint64{}
	for _, e := range entries {
		k := id{streamKey(e.Source.Topic), e.Source.StreamSequence}
		if prev, dup := got[k]; dup {
			t.Fatalf("event %v recorded twice: seq %d and %d", k, prev.Seq, e.Seq)
		}
		got[k] = e
		if e.Source.StreamSequence <= last[k.stream] {
			t.Fatalf("event %v recorded after %d of its stream", k, last[k.stream])
		}
		last[k.stream] = e.Source.StreamSequence
	}
	for _, p := range want {
		e, ok := got[id{streamKey(p.topic), p.seq}]
		if !ok {
			t.Fatalf("event %s #%d was never recorded", p.topic, p.seq)
		}
		if e.Kind != p.kind || e.Source.Topic != p.topic || e.Source.Publisher != "peer:router-node" {
			t.Errorf("event %s #%d recorded as kind %q topic %q publisher %q", p.topic, p.seq, e.Kind, e.Source.Topic, e.Source.Publisher)
		}
		if diff := cmp.Diff(p.payload, e.Payload); diff != "" {
			t.Errorf("event %s #%d payload (-published +recorded):\n%s", p.topic, p.seq, diff)
		}
	}
	if len(entries) != len(want) {
		t.Errorf("log holds %d entries, want %d", len(entries), len(want))
	}
}

func run(t *testing.T, s *Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
	}
}

// TestExactlyOnceAcrossRecorderRestart records a burst of refusals (and
// the other audit events) with the recorder stopped in the middle of it
// and started again; then the events service restarts twice and a
// subscription lags. In one case the recorder's append is failing when it
// stops, so a batch it had taken from the stream was never written. Every
// event lands in the chain exactly once.
func TestExactlyOnceAcrossRecorderRestart(t *testing.T) {
	t.Parallel()
	for _, failing := range []bool{false, true} {
		t.Run(map[bool]string{false: "stopped mid-burst", true: "stopped with its append failing"}[failing], func(t *testing.T) {
			t.Parallel()
			fake := newFakeEvents()
			cfg := testConfig(t)
			const held = 100
			fake.holdAfter(auditevents.ClassName, held)
			want := burst(fake, 0, 300) // waiting before the recorder first starts

			s1, ff := openFaulty(t, cfg, Deps{Events: fake})
			stop1 := run(t, s1)
			waitFor(t, "the first recorder to reach the hold", 20*time.Second, func() bool {
				return s1.Stats().HighWater[auditevents.ClassName] == held
			})
			more := make(chan []published, 1)
			go func() { more <- burst(fake, 300, 600) }()
			if failing {
				ff.set(func(f *faultyFile) { f.failSync = true })
				fake.release(auditevents.ClassName)
				waitFor(t, "the first recorder's append to fail", 20*time.Second, func() bool { return s1.Stats().Failed != nil })
			}
			stop1()
			if err := s1.Close(); err != nil {
				t.Fatal(err)
			}

			s2 := open(t, cfg, Deps{Events: fake})
			if got := s2.Stats().HighWater[auditevents.ClassName]; got != held {
				t.Fatalf("high-water mark rebuilt as %d, want %d", got, held)
			}
			stop2 := run(t, s2)
			fake.release(auditevents.ClassName)
			fake.injectLag(auditevents.ClassName, 7)
			fake.restart()
			want = append(want, <-more...)
			waitFor(t, "the second recorder to catch up", 20*time.Second, func() bool {
				hw := s2.Stats().HighWater
				return hw[auditevents.ClassName] == fake.last(auditevents.ClassName) &&
					hw[auditevents.ArtifactAccessDenied] == fake.last(auditevents.ArtifactAccessDenied)
			})
			fake.restart()
			want = append(want, burst(fake, 600, 650)...)
			waitFor(t, "the tail to be recorded", 20*time.Second, func() bool { return s2.Stats().Entries == uint64(len(want)) })
			stop2()

			checkExactlyOnce(t, readEntries(t, s2), want)
			if s2.Stats().UnknownTopics == 0 {
				t.Error("events on a topic with no kind were not skipped")
			}
			mustVerify(t, s2)
			resumed := false
			for _, after := range fake.subscribeCalls() {
				resumed = resumed || after == held
			}
			if !resumed {
				t.Errorf("no subscription resumed after %d: %v", held, fake.subscribeCalls())
			}
			if diff := cmp.Diff(auditevents.Class(), fake.classes[auditevents.ClassName], protocmp.Transform()); diff != "" {
				t.Errorf("declared audit class (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(auditevents.AccessDeniedClass(), fake.classes[auditevents.ArtifactAccessDenied], protocmp.Transform()); diff != "" {
				t.Errorf("declared access-denied class (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRecorderWaitsForEvents starts the recorder while the events service
// is down; it retries, then records everything once it is up.
func TestRecorderWaitsForEvents(t *testing.T) {
	t.Parallel()
	fake := newFakeEvents()
	fake.setDown(true)
	want := burst(fake, 0, 40)
	s := open(t, testConfig(t), Deps{Events: fake})
	stop := run(t, s)
	defer stop()
	waitFor(t, "a few failed attempts", 10*time.Second, func() bool { return s.Stats().Subscriptions == 0 })
	fake.setDown(false)
	waitFor(t, "the backlog to be recorded", 20*time.Second, func() bool { return s.Stats().Entries == uint64(len(want)) })
	checkExactlyOnce(t, readEntries(t, s), want)
}

// TestRecorderConflictingClass: someone else declared the audit class
// differently; the recorder still subscribes and records.
func TestRecorderConflictingClass(t *testing.T) {
	t.Parallel()
	fake := newFakeEvents()
	other := auditevents.Class()
	other.SchemaVersion = "2"
	if _, err := fake.DeclareClass(context.Background(), &eventsv1.DeclareClassRequest{Class: other}); err != nil {
		t.Fatal(err)
	}
	want := burst(fake, 0, 10)
	s := open(t, testConfig(t), Deps{Events: fake})
	stop := run(t, s)
	defer stop()
	waitFor(t, "events to be recorded", 20*time.Second, func() bool { return s.Stats().Entries == uint64(len(want)) })
}

// TestRecorderKeepsRejectedPayloads records a placeholder for an event
// whose payload is too large to keep, rather than dropping it silently.
func TestRecorderKeepsRejectedPayloads(t *testing.T) {
	t.Parallel()
	fake := newFakeEvents()
	cfg := testConfig(t)
	cfg.MaxPayloadBytes = 100
	fake.publish(auditevents.TopicRefusal, map[string]any{"big": strings.Repeat("x", 200)})
	fake.publish(auditevents.TopicRefusal, map[string]any{"small": "y"})
	s := open(t, cfg, Deps{Events: fake})
	stop := run(t, s)
	defer stop()
	waitFor(t, "both events to be recorded", 20*time.Second, func() bool { return s.Stats().Entries == 2 })
	es := readEntries(t, s)
	if _, ok := es[0].Payload["payloadRejected"]; !ok || es[0].Source.StreamSequence != 1 {
		t.Errorf("entry 1 = %+v, want a payloadRejected placeholder for stream sequence 1", es[0])
	}
	if es[1].Payload["small"] != "y" {
		t.Errorf("entry 2 payload %v", es[1].Payload)
	}
	if s.Stats().RejectedPayloads != 1 {
		t.Errorf("rejected payloads %d, want 1", s.Stats().RejectedPayloads)
	}
}
