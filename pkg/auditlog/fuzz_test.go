package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// FuzzParseLine checks that no line panics the parser, that what it accepts
// is JSON, and that an accepted entry survives a write and a read with the
// same canonical bytes (so its hashes are stable across re-encoding).
func FuzzParseLine(f *testing.F) {
	for _, e := range chain(3) {
		f.Add(AppendLine(nil, e))
	}
	f.Add([]byte(`{"seq":1,"kind":"refusal","prevChainHash":"` + GenesisHash.String() + `","chainHash":"` + GenesisHash.String() + `"}`))
	f.Add([]byte(`{"seq":1e0,"payload":{"a":[1,{"b":"\ud83d\ude00"}]},"kind":"x","prevChainHash":"","chainHash":""}`))
	f.Add([]byte(`{"seq":1,"seq":2}`))
	f.Add([]byte("{\"payload\":{\"a\":\"\xff\"}}"))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseLine(line)
		var sc canonScratch
		_, fast, fastErr := appendLineCanonical(nil, line, &sc)
		if (err == nil) != (fastErr == nil) {
			t.Fatalf("ParseLine error %v, fast path error %v, for %q", err, fastErr, line)
		}
		if err != nil {
			return
		}
		if want := AppendCanonical(nil, e); !bytes.Equal(fast, want) {
			t.Fatalf("fast path canonical bytes differ for %q:\n%x\n%x", line, want, fast)
		}
		if !json.Valid(line) {
			t.Fatalf("accepted invalid JSON %q", line)
		}
		if err := ValidatePayload(e.Payload); err != nil {
			t.Fatalf("accepted a payload that cannot be written: %v", err)
		}
		want := AppendCanonical(nil, e)
		again, err := ParseLine(AppendLine(nil, e))
		if err != nil {
			t.Fatalf("re-read of %q: %v", AppendLine(nil, e), err)
		}
		if got := AppendCanonical(nil, again); !bytes.Equal(got, want) {
			t.Fatalf("canonical bytes changed across a write and read:\n%x\n%x", want, got)
		}
	})
}

// FuzzScan checks that no input panics the verifier or makes it disagree
// with itself across chunkings.
func FuzzScan(f *testing.F) {
	f.Add(encode(chain(4)), int64(17))
	f.Add([]byte("x\n\n{}\n"), int64(1))
	f.Fuzz(func(t *testing.T, log []byte, chunk int64) {
		// Keep chunks at least a few bytes, or tiny chunks of a big input
		// spend the fuzzing time on buffers.
		chunk = 8 + (chunk&0xffff)%512
		end, err := ValidEnd(bytes.NewReader(log), int64(len(log)))
		if err != nil {
			t.Fatal(err)
		}
		r1, err1 := Scan(context.Background(), bytes.NewReader(log), end, ScanOptions{Workers: 1})
		r2, err2 := Scan(context.Background(), bytes.NewReader(log), end, ScanOptions{Workers: 3, ChunkSize: chunk})
		if r1 != r2 || (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
			t.Fatalf("chunking changed the verdict: %+v %v vs %+v %v", r1, err1, r2, err2)
		}
	})
}
