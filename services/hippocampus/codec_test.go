package hippocampus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func sampleRecords() []*record {
	return []*record{
		{kind: recRemember, lsn: 7, persona: "maya", rem: rememberRec{
			id: "e-1", content: "hello", channel: "chat", replyTo: "e-0", entities: []string{"ada"}, topics: []string{"engines", "math"},
			importance: 9, at: 1700000000000000000, edges: []edgeRec{{"e-1", "e-0", EdgeConversationalRepl, 1}, {"e-0", "e-1", EdgeConversationalRepl, 1}},
		}},
		{kind: recConsume, lsn: 8, persona: "maya", con: consumeRec{channel: "chat", at: -5, ids: []string{"e-0", "e-1"}, edges: []edgeRec{{"e-0", "e-1", EdgeRecallCoOccurrence, 0.8}}}},
		{kind: recLink, lsn: 9, persona: "maya", link: edgeRec{"e-0", "e-1", EdgeTaskOutcome, 2.5}},
		{kind: recForget, lsn: 10, persona: "maya", forget: forgetRec{id: "e-0", at: 42}},
		{kind: recDrop, lsn: 11, persona: "maya"},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range sampleRecords() {
		b := encodeRecord(nil, r)
		got, err := decodeRecord(b)
		if err != nil {
			t.Fatalf("decode %v: %v", r.kind, err)
		}
		if diff := cmp.Diff(r, got, cmp.AllowUnexported(record{}, rememberRec{}, consumeRec{}, edgeRec{}, forgetRec{})); diff != "" {
			t.Errorf("kind %v (-want +got):\n%s", r.kind, diff)
		}
		// Every truncation is an error, never a panic.
		for i := range len(b) {
			if _, err := decodeRecord(b[:i]); err == nil {
				t.Errorf("kind %v: a %d-byte prefix decoded", r.kind, i)
			}
		}
	}
}

func TestFrames(t *testing.T) {
	t.Parallel()
	var buf []byte
	for _, r := range sampleRecords() {
		buf = appendFrame(buf, encodeRecord(nil, r))
	}
	n := 0
	for rest := buf; len(rest) > 0; n++ {
		var err error
		if _, rest, err = nextFrame(rest); err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
	}
	if n != 5 {
		t.Fatalf("%d frames, want 5", n)
	}
	bad := bytes.Clone(buf)
	bad[frameHeader+2] ^= 0xff
	if _, _, err := nextFrame(bad); !errors.Is(err, errTornFrame) {
		t.Errorf("a flipped byte = %v, want a torn frame", err)
	}
}

// TestSnapshotRoundTrip: a persona encoded, decoded and merged into an
// empty persona encodes to the same bytes, and merging it again changes
// nothing (imports are idempotent).
func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	s := newTestService(t, Config{}, Deps{})
	workload(t, s, "maya")
	p := s.mem.get("maya")
	p.mu.RLock()
	orig := p.encodeSnapshot(nil)
	p.mu.RUnlock()

	snap, err := decodeSnapshot(orig)
	if err != nil {
		t.Fatal(err)
	}
	q := newPersona("maya")
	q.mergeSnapshot(snap, 1)
	q.lsn = p.lsn
	again := q.encodeSnapshot(nil)
	if !bytes.Equal(orig, again) {
		t.Fatalf("re-encoded snapshot differs (%d vs %d bytes)", len(orig), len(again))
	}
	q.mergeSnapshot(snap, 1)
	if twice := q.encodeSnapshot(nil); !bytes.Equal(orig, twice) {
		t.Error("merging the same snapshot twice changed the persona")
	}
	for _, cut := range []int{0, 3, 4, 10, len(orig) / 2, len(orig) - 1} {
		if _, err := decodeSnapshot(orig[:cut]); err == nil {
			t.Errorf("a %d-byte prefix decoded", cut)
		}
	}
}

// TestSnapshotMergeKeepsTombstones: a stale copy handed over late cannot
// bring back an engram forgotten since.
func TestSnapshotMergeKeepsTombstones(t *testing.T) {
	t.Parallel()
	s := newTestService(t, Config{}, Deps{})
	s.conversation("maya", "chat", 5)
	p := s.mem.get("maya")
	stale := s.mem.exportSnapshot(p)
	s.clock.Advance(time.Minute)
	if ok, err := s.Forget(t.Context(), "maya", "maya-chat-001"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	snap, err := decodeSnapshot(stale)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.mem.importSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.byID["maya-chat-001"]; ok {
		t.Error("a stale hand-off resurrected a forgotten engram")
	}
	if p.live.Load() != 4 {
		t.Errorf("%d engrams after the merge, want 4", p.live.Load())
	}
}

// FuzzDecodeRecord: no input panics the decoder; what decodes re-encodes
// to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(encodeRecord(nil, r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if again := encodeRecord(nil, r); !bytes.Equal(again, b) {
			if r2, err := decodeRecord(again); err != nil || r2.lsn != r.lsn || r2.kind != r.kind {
				t.Fatalf("re-encoding changed the record: %v", err)
			}
		}
	})
}

// FuzzDecodeSnapshot: no input panics the decoder or the merge; what
// decodes merges into a persona whose snapshot decodes again.
func FuzzDecodeSnapshot(f *testing.F) {
	p := newPersona("maya")
	at := int64(1700000000000000000)
	p.applyRemember(&rememberRec{id: "a", content: "x", channel: "chat", entities: []string{"ada"}, importance: 5, at: at}, 1)
	p.applyRemember(&rememberRec{
		id: "b", content: "y z", channel: "mail", topics: []string{"math"}, importance: 9, at: at + 1,
		edges: []edgeRec{{"a", "b", EdgeCitedIn, 0.9}},
	}, 1)
	p.applyConsume(&consumeRec{channel: "chat", at: at + 2, ids: []string{"a", "b"}}, 1)
	p.applyForget(&forgetRec{id: "gone", at: at})
	f.Add(p.encodeSnapshot(nil))
	f.Add(newPersona("empty").encodeSnapshot(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Fix the checksum up so mutations reach the parser instead of
		// stopping at the CRC.
		if len(b) >= len(snapshotMagic)+4 {
			b = bytes.Clone(b)
			binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		}
		s, err := decodeSnapshot(b)
		if err != nil {
			return
		}
		q := newPersona(s.persona)
		q.mergeSnapshot(s, 1)
		if _, err := decodeSnapshot(q.encodeSnapshot(nil)); err != nil {
			t.Fatalf("a merged persona's snapshot does not decode: %v", err)
		}
	})
}
