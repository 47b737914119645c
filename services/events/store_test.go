package events

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/structpb"
)

func testLogOptions() logOptions {
	return logOptions{segmentBytes: 4096, maxBody: 1 << 20, now: time.Now, log: discardLogger()}
}

func testEvent(seq uint64) *event {
	p, _ := structpb.NewStruct(map[string]any{"seq": float64(seq), "pad": "0123456789abcdef0123456789abcdef"})
	ev := &event{topic: "t:x", at: time.Unix(1_900_000_000, int64(seq)), publisher: "p", node: "n", msgID: fmt.Sprint("m", seq), payload: p}
	if err := ev.seal(seq); err != nil {
		panic(err)
	}
	return ev
}

func appendRange(t testing.TB, l *segmentLog, from, to uint64, batch int) {
	t.Helper()
	for seq := from; seq <= to; {
		var evs []*event
		for ; seq <= to && len(evs) < batch; seq++ {
			evs = append(evs, testEvent(seq))
		}
		if err := l.append(evs); err != nil {
			t.Fatal(err)
		}
	}
}

func seqsOf(evs []*event) []uint64 {
	var out []uint64
	for _, ev := range evs {
		out = append(out, ev.seq)
	}
	return out
}

func TestLogReadsAcrossSegments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := openLog(dir, "s", testLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	appendRange(t, l, 1, 500, 7)
	if len(l.segs) < 5 {
		t.Fatalf("want several segments, have %d", len(l.segs))
	}
	check := func(l *segmentLog) {
		t.Helper()
		tests := []struct {
			after, limit uint64
			max          int
			want         []uint64
		}{
			{0, 500, 3, []uint64{1, 2, 3}},
			{63, 500, 3, []uint64{64, 65, 66}},
			{64, 500, 2, []uint64{65, 66}},
			{497, 500, 10, []uint64{498, 499, 500}},
			{500, 500, 10, nil},
			{10, 12, 10, []uint64{11, 12}},
			{0, 500, 1000, seqRange(1, 500)},
		}
		for _, tc := range tests {
			evs, first, err := l.readAfter(tc.after, tc.limit, tc.max, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if first != 1 {
				t.Errorf("first = %d", first)
			}
			if diff := cmp.Diff(tc.want, seqsOf(evs)); diff != "" {
				t.Errorf("readAfter(%d, %d, %d) (-want +got):\n%s", tc.after, tc.limit, tc.max, diff)
			}
		}
		evs, _, err := l.readAfter(99, 500, 1, 1<<30)
		if err != nil || len(evs) != 1 {
			t.Fatal(err)
		}
		if got := evs[0]; got.msgID != "m100" || got.topic != "t:x" || got.payloadStruct().GetFields()["seq"].GetNumberValue() != 100 {
			t.Errorf("record 100 decoded as %+v", got)
		}
	}
	check(l)
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	l, err = openLog(dir, "s", testLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	if first, last := l.bounds(); first != 1 || last != 500 {
		t.Fatalf("reopened bounds %d..%d", first, last)
	}
	check(l)
	appendRange(t, l, 501, 510, 3)
	if _, last := l.bounds(); last != 510 {
		t.Fatalf("append after reopen: last %d", last)
	}
	if _, err := openLog(dir, "other", testLogOptions()); err == nil {
		t.Fatal("opened a stream directory under another name")
	}
}

func TestLogRecoversATornTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tail func(good []byte) []byte
	}{
		{"partial header", func([]byte) []byte { return []byte{9, 0, 0} }},
		{"length beyond the file", func([]byte) []byte { return []byte{0xff, 0xff, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 1} }},
		{"bad checksum", func(good []byte) []byte {
			b := append([]byte(nil), good...)
			b[len(b)-1] ^= 1
			return b
		}},
		{"half a record", func(good []byte) []byte { return good[:len(good)/2] }},
		{"zeros", func([]byte) []byte { return make([]byte, 64) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l, err := openLog(dir, "s", testLogOptions())
			if err != nil {
				t.Fatal(err)
			}
			appendRange(t, l, 1, 5, 5)
			path := l.segs[len(l.segs)-1].path
			size := l.segs[len(l.segs)-1].size
			if err := l.close(); err != nil {
				t.Fatal(err)
			}
			// A well-formed sixth record, to damage.
			other, err := openLog(t.TempDir(), "s", testLogOptions())
			if err != nil {
				t.Fatal(err)
			}
			appendRange(t, other, 1, 1, 1)
			rec, err := os.ReadFile(other.segs[0].path)
			if err != nil {
				t.Fatal(err)
			}
			_ = other.close()
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(tc.tail(rec)); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()

			l, err = openLog(dir, "s", testLogOptions())
			if err != nil {
				t.Fatal(err)
			}
			defer l.close()
			if _, last := l.bounds(); last != 5 {
				t.Fatalf("recovered last %d, want 5", last)
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() != size {
				t.Fatalf("segment is %d bytes after recovery, want %d (%v)", fi.Size(), size, err)
			}
			appendRange(t, l, 6, 8, 2)
			evs, _, err := l.readAfter(0, 8, 100, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(seqRange(1, 8), seqsOf(evs)); diff != "" {
				t.Fatalf("records after recovery (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLogRefusesStrayFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "12.seg"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := openLog(dir, "s", testLogOptions()); err == nil {
		t.Fatal("opened a log with a misnamed segment")
	}
}

func TestLogRetention(t *testing.T) {
	t.Parallel()
	l, err := openLog(t.TempDir(), "s", testLogOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	appendRange(t, l, 1, 300, 10)
	now := time.Unix(1_900_000_000, 0).Add(time.Minute)
	first, err := l.enforce(100, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if first > 201 || first < 100 {
		t.Fatalf("kept from %d for max 100 of 300", first)
	}
	evs, got, err := l.readAfter(0, 300, 1, 1<<30)
	if err != nil || got != first || evs[0].seq != first {
		t.Fatalf("read after retention: first %d, %v, %v", got, seqsOf(evs), err)
	}
	// Everything older than a second goes; the sequence stays.
	if first, err = l.enforce(0, time.Second, now); err != nil || first != 301 {
		t.Fatalf("age retention kept from %d (%v)", first, err)
	}
	appendRange(t, l, 301, 301, 1)
}

func FuzzScanSegment(f *testing.F) {
	dir := f.TempDir()
	l, err := openLog(dir, "s", testLogOptions())
	if err != nil {
		f.Fatal(err)
	}
	appendRange(f, l, 1, 3, 3)
	good, err := os.ReadFile(l.segs[0].path)
	if err != nil {
		f.Fatal(err)
	}
	_ = l.close()
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var prevEnd int64
		good, _ := scanSegment(bytes.NewReader(data), 0, int64(len(data)), 1<<16, func(seq uint64, off int64, body []byte) error {
			if off != prevEnd {
				t.Fatalf("record at %d after a record ending at %d", off, prevEnd)
			}
			prevEnd = off + recordHeader + int64(len(body))
			_, _ = decodeRecord(seq, body) // must not panic
			return nil
		})
		if good != prevEnd || good > int64(len(data)) {
			t.Fatalf("scan ended at %d, last record ended at %d, size %d", good, prevEnd, len(data))
		}
	})
}
