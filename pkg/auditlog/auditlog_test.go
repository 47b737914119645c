package auditlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// chain builds n sealed entries the way the recorder does.
func chain(n int) []*Entry {
	var out []*Entry
	prev := GenesisHash
	for i := 1; i <= n; i++ {
		e := &Entry{
			Seq:            uint64(i),
			TimestampMs:    1_700_000_000_000 + int64(i),
			RawTimestampMs: 1_700_000_000_000 + int64(i),
			Kind:           Kinds[i%len(Kinds)],
			Payload: map[string]any{
				"uri": fmt.Sprintf("genome/page-in?i=%d", i), "caller": "user", "dry_run": i%2 == 0,
				"rule": float64(i), "nested": map[string]any{"list": []any{1.5, "x", nil, true}},
			},
			Source:        Source{Topic: "audit:refusal", StreamSequence: uint64(i + 10), Publisher: "peer:n1"},
			PrevChainHash: prev,
		}
		Seal(e, nil)
		prev = e.ChainHash
		out = append(out, e)
	}
	return out
}

func encode(entries []*Entry) []byte {
	var b []byte
	for _, e := range entries {
		b = AppendLine(b, e)
	}
	return b
}

func lines(b []byte) [][]byte {
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func TestLineRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload map[string]any
	}{
		{"empty", map[string]any{}},
		{"nil is empty", nil},
		{"scalars", map[string]any{"s": "x", "t": true, "f": false, "n": nil, "i": 42.0, "neg": -7.0}},
		{"floats", map[string]any{"tiny": 1e-300, "big": 1.7976931348623157e308, "third": 1.0 / 3, "e21": 1e21, "small": 1e-7}},
		{"escapes", map[string]any{"q": "a\"b\\c\n\r\t\x00\x1f<>&\u2028 é 😀", "": "empty key"}},
		{"nesting", map[string]any{"a": []any{[]any{map[string]any{"b": []any{}}}, map[string]any{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := &Entry{
				Seq: 3, TimestampMs: -5, RawTimestampMs: math.MinInt64, Kind: KindRefusal, Payload: tt.payload,
				Source: Source{Topic: "genome/working_set.access_denied", StreamSequence: math.MaxUint64, Publisher: "peer:x"},
			}
			Seal(e, nil)
			line := AppendLine(nil, e)
			if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
				t.Fatalf("line is not one line: %q", line)
			}
			if !json.Valid(line) {
				t.Fatalf("line is not JSON: %s", line)
			}
			got, err := ParseLine(line)
			if err != nil {
				t.Fatalf("ParseLine: %v", err)
			}
			want := *e
			if want.Payload == nil {
				want.Payload = map[string]any{}
			}
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			if h, _ := Seal(got, nil); got.ChainHash != e.ChainHash || h != LeafHashOf(AppendCanonical(nil, e)) {
				t.Errorf("hashes changed across the round trip")
			}
		})
	}
}

// TestReencodedLogVerifies rewrites every line with encoding/json (other
// key order, integers through float64, HTML escapes, whitespace inside the
// line) and checks the log still verifies with the same head.
func TestReencodedLogVerifies(t *testing.T) {
	t.Parallel()
	entries := chain(20)
	prev := GenesisHash
	for _, e := range entries {
		e.Payload["html"] = "<&> é"
		e.PrevChainHash = prev
		Seal(e, nil)
		prev = e.ChainHash
	}
	orig := encode(entries)
	var re []byte
	for _, l := range lines(orig) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(m) // keys sorted, seq and timestamps through float64, <&> escaped
		if err != nil {
			t.Fatal(err)
		}
		var ind bytes.Buffer
		if err := json.Indent(&ind, b, " ", "  "); err != nil {
			t.Fatal(err)
		}
		re = append(re, bytes.ReplaceAll(ind.Bytes(), []byte("\n"), []byte(" "))...)
		re = append(re, '\n')
	}
	if bytes.Equal(re, orig) {
		t.Fatal("re-encoding did not change the bytes; the test proves nothing")
	}
	got, err := Scan(context.Background(), bytes.NewReader(re), int64(len(re)), ScanOptions{ChunkSize: 300, Workers: 3})
	if err != nil {
		t.Fatalf("re-encoded log fails: %v", err)
	}
	if got.Size != 20 || got.Head != entries[19].ChainHash {
		t.Errorf("re-encoded log: size %d head %s, want 20 %s", got.Size, got.Head, entries[19].ChainHash)
	}
}

func TestParseLineRejects(t *testing.T) {
	t.Parallel()
	good := string(AppendLine(nil, chain(1)[0]))
	deep := strings.Repeat(`{"a":`, MaxPayloadDepth) + "1" + strings.Repeat("}", MaxPayloadDepth)
	tests := []struct {
		name string
		line string
	}{
		{"empty", ""},
		{"not an object", "[1,2]"},
		{"truncated", good[:len(good)/2]},
		{"trailing data", strings.TrimSuffix(good, "\n") + " {}"},
		{"duplicate top-level key", strings.Replace(good, `{"seq":1,`, `{"seq":1,"seq":1,`, 1)},
		{"duplicate payload key", strings.Replace(good, `"payload":{`, `"payload":{"caller":"x",`, 1)},
		{"payload is an array", strings.Replace(good, `"payload":{`, `"payload":[1],"x":{`, 1)},
		{"missing seq", strings.Replace(good, `"seq":1,`, ``, 1)},
		{"missing chainHash", strings.Replace(good, `,"chainHash"`, `,"otherHash"`, 1)},
		{"null seq", strings.Replace(good, `"seq":1,`, `"seq":null,`, 1)},
		{"negative seq", strings.Replace(good, `"seq":1,`, `"seq":-1,`, 1)},
		{"fractional seq", strings.Replace(good, `"seq":1,`, `"seq":1.5,`, 1)},
		{"seq as string", strings.Replace(good, `"seq":1,`, `"seq":"1",`, 1)},
		{"number out of range", strings.Replace(good, `"rule":1`, `"rule":1e999`, 1)},
		{"leading zero", strings.Replace(good, `"rule":1`, `"rule":01`, 1)},
		{"invalid UTF-8", strings.Replace(good, `"user"`, "\"us\xffer\"", 1)},
		{"lone high surrogate", strings.Replace(good, `"user"`, `"\ud800x"`, 1)},
		{"lone low surrogate", strings.Replace(good, `"user"`, `"\udc00"`, 1)},
		{"raw control character", strings.Replace(good, `"user"`, "\"a\tb\"", 1)},
		{"bad escape", strings.Replace(good, `"user"`, `"\x41"`, 1)},
		{"short hash", strings.Replace(good, `"prevChainHash":"00`, `"prevChainHash":"`, 1)},
		{"too deep", strings.Replace(good, `"payload":{`, `"payload":{"deep":`+deep+`,`, 1)},
		{"source not an object", strings.Replace(good, `"source":{`, `"source":7,"x":{`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ParseLine([]byte(tt.line)); !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseLine(%q) = %v, want ErrMalformed", tt.line, err)
			}
		})
	}
}

func TestParseLineAccepts(t *testing.T) {
	t.Parallel()
	e := chain(1)[0]
	good := string(AppendLine(nil, e))
	tests := []struct {
		name string
		line string
	}{
		{"as written", good},
		{"crlf", strings.TrimSuffix(good, "\n") + "\r\n"},
		{"unknown member", strings.Replace(good, `{"seq":1,`, `{"seq":1,"note":{"x":[1,2]},`, 1)},
		{"integer as float", strings.Replace(good, `"seq":1,`, `"seq":1.0e0,`, 1)},
		{"escaped slash and unicode", strings.Replace(good, `"user"`, `"\u0075\u0073\u0065\u0072"`, 1)},
		{"null optional members", strings.Replace(good, `"source":{`, `"extra":null,"source":{"x":null,`, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseLine([]byte(tt.line))
			if err != nil {
				t.Fatalf("ParseLine: %v", err)
			}
			if got.Compute() != e.ChainHash {
				t.Errorf("chain hash changed")
			}
		})
	}
}

func (e *Entry) Compute() Hash { return ChainHashOf(AppendCanonical(nil, e)) }

func TestCanonicalIsIndependentOfSpelling(t *testing.T) {
	t.Parallel()
	base := func(p map[string]any) Hash {
		e := &Entry{Seq: 1, Kind: KindRefusal, Payload: p}
		return e.Compute()
	}
	if base(map[string]any{"z": 0.0}) != base(map[string]any{"z": math.Copysign(0, -1)}) {
		t.Error("-0 and 0 hash differently")
	}
	if base(map[string]any{"a": 1.0, "b": 2.0}) == base(map[string]any{"a": 2.0, "b": 1.0}) {
		t.Error("swapped values hash the same")
	}
	// Strings and keys are length-prefixed: moving bytes between adjacent
	// fields changes the hash.
	if base(map[string]any{"ab": "c"}) == base(map[string]any{"a": "bc"}) {
		t.Error("length prefixes do not separate key and value")
	}
	if base(map[string]any{"x": []any{"a", "b"}}) == base(map[string]any{"x": []any{"ab"}}) {
		t.Error("array members are not separated")
	}
	if base(map[string]any{"x": "1"}) == base(map[string]any{"x": 1.0}) {
		t.Error("types are not tagged")
	}
}

func TestValidatePayload(t *testing.T) {
	t.Parallel()
	deep := map[string]any{}
	cur := deep
	for range MaxPayloadDepth {
		next := map[string]any{}
		cur["a"] = next
		cur = next
	}
	tests := []struct {
		name string
		p    map[string]any
		ok   bool
	}{
		{"fine", map[string]any{"a": []any{1.0, "x", nil, true, map[string]any{}}}, true},
		{"NaN", map[string]any{"a": math.NaN()}, false},
		{"Inf in list", map[string]any{"a": []any{math.Inf(1)}}, false},
		{"bad UTF-8", map[string]any{"a": "\xff"}, false},
		{"bad UTF-8 key", map[string]any{"\xff": 1.0}, false},
		{"not JSON", map[string]any{"a": 3}, false},
		{"too deep", deep, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidatePayload(tt.p)
			if (err == nil) != tt.ok {
				t.Errorf("ValidatePayload = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrPayloadInvalid) {
				t.Errorf("error %v does not wrap ErrPayloadInvalid", err)
			}
		})
	}
}

// mutate returns a copy of the log's lines after f changed them.
func mutate(log []byte, f func(ls [][]byte) [][]byte) []byte {
	ls := lines(log)
	cp := make([][]byte, len(ls))
	for i, l := range ls {
		cp[i] = bytes.Clone(l)
	}
	return bytes.Join(f(cp), nil)
}

func TestVerify(t *testing.T) {
	t.Parallel()
	entries := chain(40)
	log := encode(entries)
	// backward is a log whose writer did not clamp: entry 17's timestamp
	// is before entry 16's, yet every hash is right.
	backward := chain(40)
	backward[16].TimestampMs = backward[15].TimestampMs - 1
	for i := 16; i < len(backward); i++ {
		backward[i].PrevChainHash = backward[i-1].ChainHash
		Seal(backward[i], nil)
	}
	tests := []struct {
		name     string
		log      []byte
		want     *VerifyError
		wantSize uint64
	}{
		{name: "intact", log: log, wantSize: 40},
		{name: "empty", log: nil, wantSize: 0},
		{name: "tampered payload", log: mutate(log, func(ls [][]byte) [][]byte {
			ls[9] = bytes.Replace(ls[9], []byte(`"caller":"user"`), []byte(`"caller":"root"`), 1)
			return ls
		}), want: &VerifyError{Reason: ReasonChainBroken, Seq: 10}},
		{name: "tampered source", log: mutate(log, func(ls [][]byte) [][]byte {
			ls[4] = bytes.Replace(ls[4], []byte(`"streamSequence":15`), []byte(`"streamSequence":99`), 1)
			return ls
		}), want: &VerifyError{Reason: ReasonChainBroken, Seq: 5}},
		{name: "deleted middle entry", log: mutate(log, func(ls [][]byte) [][]byte {
			return append(ls[:20], ls[21:]...)
		}), want: &VerifyError{Reason: ReasonSequenceGap, Seq: 21, Expected: 21, Got: 22}},
		{name: "reordered entries", log: mutate(log, func(ls [][]byte) [][]byte {
			ls[30], ls[31] = ls[31], ls[30]
			return ls
		}), want: &VerifyError{Reason: ReasonSequenceGap, Seq: 31, Expected: 31, Got: 32}},
		{name: "duplicated entry", log: mutate(log, func(ls [][]byte) [][]byte {
			return append(ls[:8], append([][]byte{ls[7]}, ls[8:]...)...)
		}), want: &VerifyError{Reason: ReasonSequenceGap, Seq: 9, Expected: 9, Got: 8}},
		{name: "renumbered after deletion", log: mutate(log, func(ls [][]byte) [][]byte {
			ls = append(ls[:20], ls[21:]...)
			for i := 20; i < len(ls); i++ {
				ls[i] = bytes.Replace(ls[i], fmt.Appendf(nil, `{"seq":%d,`, i+2), fmt.Appendf(nil, `{"seq":%d,`, i+1), 1)
			}
			return ls
		}), want: &VerifyError{Reason: ReasonChainBroken, Seq: 21}},
		{
			name: "first entry not genesis", log: mutate(log, func(ls [][]byte) [][]byte { return ls[1:] }),
			want: &VerifyError{Reason: ReasonSequenceGap, Seq: 1, Expected: 1, Got: 2},
		},
		{name: "garbage line", log: mutate(log, func(ls [][]byte) [][]byte {
			ls[12] = []byte("not json\n")
			return ls
		}), want: &VerifyError{Reason: ReasonChainBroken, Seq: 13}},
		{
			name: "backward timestamp", log: encode(backward),
			want: &VerifyError{Reason: ReasonTimestampWentBackward, Seq: 17},
		},
	}
	for _, tt := range tests {
		for _, opts := range []ScanOptions{{}, {Workers: 3, ChunkSize: 97}, {Workers: 2, ChunkSize: 13}} {
			t.Run(fmt.Sprintf("%s/chunk=%d", tt.name, opts.ChunkSize), func(t *testing.T) {
				t.Parallel()
				res, err := Scan(context.Background(), bytes.NewReader(tt.log), int64(len(tt.log)), opts)
				if tt.want == nil {
					if err != nil {
						t.Fatalf("Scan: %v", err)
					}
					if res.Size != tt.wantSize || res.End != int64(len(tt.log)) {
						t.Errorf("Scan = size %d end %d, want %d %d", res.Size, res.End, tt.wantSize, len(tt.log))
					}
					if tt.wantSize > 0 && res.Head != entries[tt.wantSize-1].ChainHash {
						t.Errorf("head %s, want %s", res.Head, entries[tt.wantSize-1].ChainHash)
					}
					return
				}
				var ve *VerifyError
				if !errors.As(err, &ve) {
					t.Fatalf("Scan error %v, want a *VerifyError", err)
				}
				got := *ve
				got.Offset, got.Detail = 0, ""
				if diff := cmp.Diff(*tt.want, got); diff != "" {
					t.Errorf("VerifyError (-want +got):\n%s\n(%v)", diff, ve)
				}
				if res.Size != tt.want.Seq-1 {
					t.Errorf("verified prefix %d, want %d", res.Size, tt.want.Seq-1)
				}
			})
		}
	}
}

func TestScanVisitsInOrder(t *testing.T) {
	t.Parallel()
	entries := chain(100)
	log := encode(entries)
	var tree TreeBuilder
	var got []uint64
	var off int64
	_, err := Scan(context.Background(), bytes.NewReader(log), int64(len(log)), ScanOptions{
		Workers: 4, ChunkSize: 512,
		Visit: func(li LineInfo) error {
			if li.Offset != off {
				return fmt.Errorf("seq %d at offset %d, want %d", li.Seq, li.Offset, off)
			}
			off += li.Length
			got = append(got, li.Seq)
			tree.Add(li.Leaf)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("visit %d saw seq %d", i, s)
		}
	}
	if len(got) != 100 {
		t.Fatalf("visited %d entries, want 100", len(got))
	}
	var hashes []tlog.Hash
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e.Canonical(), tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for j, x := range idx {
				out[j] = hashes[x]
			}
			return out, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	want, err := tlog.TreeHash(100, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			out[j] = hashes[x]
		}
		return out, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if tree.Root() != want {
		t.Errorf("TreeBuilder root %s, tlog %s", tree.Root(), want)
	}
}

func (e *Entry) Canonical() []byte { return AppendCanonical(nil, e) }

func TestTreeBuilderMatchesTlog(t *testing.T) {
	t.Parallel()
	var hashes []tlog.Hash
	reader := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			out[j] = hashes[x]
		}
		return out, nil
	})
	var tb TreeBuilder
	for n := int64(0); n <= 70; n++ {
		want, err := tlog.TreeHash(n, reader)
		if err != nil {
			t.Fatal(err)
		}
		if tb.Root() != want {
			t.Fatalf("size %d: root %s, want %s", n, tb.Root(), want)
		}
		data := fmt.Appendf(nil, "leaf %d", n)
		hs, err := tlog.StoredHashes(n, data, reader)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
		tb.Add(tlog.RecordHash(data))
	}
}

func TestValidEnd(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 200<<10)
	tests := []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"abc", 0},
		{"a\n", 2},
		{"a\nb", 2},
		{"a\nb\n", 4},
		{"a\n" + long, 2},
		{long + "\n" + long, int64(len(long)) + 1},
	}
	for _, tt := range tests {
		got, err := ValidEnd(strings.NewReader(tt.in), int64(len(tt.in)))
		if err != nil || got != tt.want {
			t.Errorf("ValidEnd(%d bytes) = %d, %v, want %d", len(tt.in), got, err, tt.want)
		}
	}
}

func TestVerifyFileReportsTornTail(t *testing.T) {
	t.Parallel()
	entries := chain(5)
	log := encode(entries)
	torn := append(bytes.Clone(log), AppendLine(nil, chain(6)[5])[:40]...)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := VerifyFile(context.Background(), path, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != 5 || res.Head != entries[4].ChainHash || res.TornBytes != 40 {
		t.Errorf("VerifyFile = size %d head %s torn %d, want 5 %s 40", res.Size, res.Head, res.TornBytes, entries[4].ChainHash)
	}
}

func TestCheckpoint(t *testing.T) {
	t.Parallel()
	skey, vkey, err := note.GenerateKey(rand.Reader, "continuum.mesh/audit/n1")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	cp := Checkpoint{Origin: "continuum.mesh/audit/n1", Size: 42, Root: tlog.RecordHash([]byte("x"))}
	signed, err := SignCheckpoint(cp, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenCheckpoint(signed, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if got != cp {
		t.Errorf("OpenCheckpoint = %+v, want %+v", got, cp)
	}
	_, otherV, _ := note.GenerateKey(rand.Reader, "continuum.mesh/audit/n1")
	if _, err := OpenCheckpoint(signed, otherV); err == nil {
		t.Error("a checkpoint opened with another key")
	}
	tampered := bytes.Replace(signed, []byte("\n42\n"), []byte("\n43\n"), 1)
	if _, err := OpenCheckpoint(tampered, vkey); err == nil {
		t.Error("a tampered checkpoint opened")
	}
	otherSkey, otherVkey, _ := note.GenerateKey(rand.Reader, "other")
	otherSigner, err := note.NewSigner(otherSkey)
	if err != nil {
		t.Fatal(err)
	}
	other, err := SignCheckpoint(cp, otherSigner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(other, otherVkey); err == nil {
		t.Error("a checkpoint whose origin is not the key's name opened")
	}
	for _, bad := range []string{"", "o\n1\n", "o\nx\nAAAA\n", "o\n01\n" + strings.Repeat("A", 44) + "\n", "\n1\n" + strings.Repeat("A", 44) + "\n"} {
		if _, err := ParseCheckpoint(bad); err == nil {
			t.Errorf("ParseCheckpoint(%q) succeeded", bad)
		}
	}
}

// TestCanonicalKnownAnswer pins the canonical encoding to the worked
// example in docs/audit.md (computed there independently, in Python, from
// the written spec). A change here breaks every existing log.
func TestCanonicalKnownAnswer(t *testing.T) {
	t.Parallel()
	e1 := &Entry{
		Seq: 1, TimestampMs: 1700000000000, RawTimestampMs: 1700000000000, Kind: "refusal",
		Payload: map[string]any{"uri": "genome/page-in", "dry_run": false, "rule": 2.0},
		Source:  Source{Topic: "audit:refusal", StreamSequence: 7, Publisher: "peer:n1"},
	}
	leaf1, _ := Seal(e1, nil)
	e2 := &Entry{
		Seq: 2, TimestampMs: 1700000000000, RawTimestampMs: 1699999999000, Kind: "access-denied",
		Source: Source{Publisher: "admin"}, PrevChainHash: e1.ChainHash,
	}
	leaf2, _ := Seal(e2, nil)
	var tree TreeBuilder
	tree.Add(leaf1)
	tree.Add(leaf2)
	root := tree.Root()
	got := []string{
		fmt.Sprint(len(AppendCanonical(nil, e1))), e1.ChainHash.String(), fmt.Sprintf("%x", leaf1[:]),
		e2.ChainHash.String(), fmt.Sprintf("%x", leaf2[:]), fmt.Sprintf("%x", root[:]),
	}
	want := []string{
		"188",
		"6b2113f5f144e2ce5b8add097d28efdf5a6f48544df62c06292a8d5790716e16",
		"30298b8667deaf631ab3f9358373fab902dab180108a44dbea1f59b4f903406e",
		"c38a4b3f83f596f99b521c9473f71409bef1af0f1abc13ca7f7e7e9e172d8249",
		"508e288a954176766c84f3d09e92e60217a50deb6c8039209dea34adc6f9b5ef",
		"80997d2629bace213b1daa576755bf4e81582dc5caf3885ce063648d76c54170",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("known answers (-want +got):\n%s", diff)
	}
	wantLine := `{"seq":1,"timestampMs":1700000000000,"rawTimestampMs":1700000000000,"kind":"refusal","payload":{"dry_run":false,"rule":2,"uri":"genome/page-in"},"source":{"topic":"audit:refusal","streamSequence":7,"publisher":"peer:n1"},"prevChainHash":"0000000000000000000000000000000000000000000000000000000000000000","chainHash":"6b2113f5f144e2ce5b8add097d28efdf5a6f48544df62c06292a8d5790716e16"}` + "\n"
	if got := string(AppendLine(nil, e1)); got != wantLine {
		t.Errorf("line:\n%s\nwant:\n%s", got, wantLine)
	}
}
