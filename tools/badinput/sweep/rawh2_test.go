package sweep

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/http2/hpack"
)

func TestAppendLiteralHeader(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 126, 127, 128, 255, 16383, 1 << 20} {
		var got []hpack.HeaderField
		dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) { got = append(got, f) })
		dec.SetMaxStringLength(2 << 20)
		if _, err := dec.Write(appendLiteralHeader(nil, "x-badinput-pad", n)); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if len(got) != 1 || got[0].Name != "x-badinput-pad" || len(got[0].Value) != n {
			t.Fatalf("n=%d: decoded %d fields", n, len(got))
		}
		if diff := cmp.Diff(hpack.HeaderField{Name: "x-badinput-pad", Value: got[0].Value}, got[0]); diff != "" {
			t.Errorf("n=%d: %s", n, diff)
		}
	}
}
