package genome

import (
	"testing"
)

// Fuzz targets for every parser that reads text or bytes from outside:
// the tier flag, page specs, page file names, frame file headers and the
// catalog. Seeds live in testdata/fuzz/<target>/.

func FuzzParseTiers(f *testing.F) {
	f.Add(DefaultTiersFlag)
	f.Fuzz(func(t *testing.T, s string) {
		tiers, err := ParseTiers(s)
		if err != nil {
			return
		}
		back, err := ParseTiers(FormatTiers(tiers))
		if err != nil || len(back) != len(tiers) {
			t.Fatalf("round trip of %q: %v, %v", s, back, err)
		}
		for i := range back {
			if back[i] != tiers[i] {
				t.Fatalf("round trip of %q: %v != %v", s, back[i], tiers[i])
			}
		}
	})
}

func FuzzParsePageRef(f *testing.F) {
	f.Add("6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b/bytes/10+20")
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParsePageRef(s)
		if err != nil {
			return
		}
		if ref.Validate() != nil {
			t.Fatalf("%q parsed to an invalid ref %v", s, ref)
		}
		back, err := ParsePageRef(ref.String())
		if err != nil || back != ref {
			t.Fatalf("round trip of %q: %v, %v", s, back, err)
		}
	})
}

func FuzzParsePageFileName(f *testing.F) {
	f.Add("6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b.whole.pg")
	f.Fuzz(func(t *testing.T, s string) {
		ref, ok := parsePageFileName(s)
		if !ok {
			return
		}
		if pageFileName(ref) != s {
			t.Fatalf("%q parsed to %v, which names %q", s, ref, pageFileName(ref))
		}
	})
}

func FuzzDecodeHeader(f *testing.F) {
	f.Add(encodeHeader(frameHeader{key: testKey("h"), size: 10, frames: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(b)
		if err != nil {
			return
		}
		if h.key.Validate() != nil || h.frames != framesFor(h.size) {
			t.Fatalf("accepted an inconsistent header %+v", h)
		}
	})
}

func FuzzDecodeCatalog(f *testing.F) {
	f.Add([]byte(`{"version":1,"artifacts":[],"personas":[],"owners":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCatalog(b)
		if err != nil {
			return
		}
		for _, a := range c.artifacts {
			if a.size == 0 || ArtifactIDFor(a.sum) != a.id {
				t.Fatalf("accepted a bad artifact %+v", a)
			}
		}
		for _, p := range c.personas {
			if p.capacity == 0 || p.id.IsZero() {
				t.Fatalf("accepted a bad persona %+v", p)
			}
		}
	})
}
