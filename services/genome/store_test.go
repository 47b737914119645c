package genome

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testKey(seed string) PageRef { return WholePage(ArtifactIDFor(sha256.Sum256([]byte(seed)))) }

// storeKinds builds each TierStore implementation over dir.
func storeKinds(t *testing.T) map[string]func(capacity uint64) TierStore {
	return map[string]func(uint64) TierStore{
		"memory": func(c uint64) TierStore { return NewMemoryStore(RoleFast, c) },
		"files": func(c uint64) TierStore {
			s, err := OpenFileStore(RoleBench, t.TempDir(), c, FileStoreOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"compressed durable files": func(c uint64) TierStore {
			s, err := OpenFileStore(RoleFrozen, t.TempDir(), c, FileStoreOptions{Compressed: true, Durable: true})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
}

func TestTierStores(t *testing.T) {
	t.Parallel()
	for name, open := range storeKinds(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			const frames = 2*frameSize + 12345
			s := open(frames + 100)
			defer s.Close()
			big := blob(1, frames)
			// Highly compressible, to exercise compressed frames too.
			text := bytes.Repeat([]byte("continuum genome "), 5000)
			kBig, kText := testKey("big"), RangePage(testKey("text").Artifact, 0, uint64(len(text)))

			if err := s.Write(ctx, kBig, PageMeta{}, uint64(len(big)), bytes.NewReader(big)); err != nil {
				t.Fatalf("Write big: %v", err)
			}
			err := s.Write(ctx, kText, PageMeta{}, uint64(len(text)), bytes.NewReader(text))
			if !errors.Is(err, ErrTierFull) {
				t.Fatalf("Write over capacity = %v, want ErrTierFull", err)
			}
			if got := s.Capacity(); got.Used != frames || got.Total != frames+100 {
				t.Fatalf("Capacity = %+v", got)
			}
			d, err := s.Read(ctx, kBig)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Size() != frames {
				t.Fatalf("Size = %d", d.Size())
			}
			for _, r := range []struct{ off, n uint64 }{{0, frames}, {0, 1}, {frameSize - 10, 20}, {frameSize, frameSize}, {frames - 1, 1}, {5, 2*frameSize + 100}} {
				rc, err := d.OpenRange(r.off, r.n)
				if err != nil {
					t.Fatalf("OpenRange(%d, %d): %v", r.off, r.n, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, big[r.off:r.off+r.n]) {
					t.Fatalf("OpenRange(%d, %d): %d bytes, err %v, equal %v", r.off, r.n, len(got), err, bytes.Equal(got, big[r.off:r.off+r.n]))
				}
			}
			if _, err := d.OpenRange(frames, 1); err == nil {
				t.Fatal("OpenRange beyond the page succeeded")
			}
			// Evict while the data is open: it stays readable.
			if err := s.Evict(ctx, kBig); err != nil {
				t.Fatal(err)
			}
			rc, err := d.Open()
			if err != nil {
				t.Fatalf("Open after evict: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("read after evict: err %v, equal %v", err, bytes.Equal(got, big))
			}
			if _, err := s.Read(ctx, kBig); !errors.Is(err, ErrPageNotStored) {
				t.Fatalf("Read evicted = %v, want ErrPageNotStored", err)
			}
			if err := s.Evict(ctx, kBig); err != nil {
				t.Fatalf("Evict twice: %v", err)
			}
			if err := s.Write(ctx, kText, PageMeta{Persona: PersonaID{1}}, uint64(len(text)), bytes.NewReader(text)); err != nil {
				t.Fatalf("Write after evict: %v", err)
			}
			// A short reader stores nothing.
			err = s.Write(ctx, kBig, PageMeta{}, 100, bytes.NewReader(big[:10]))
			if err == nil {
				t.Fatal("Write from a short reader succeeded")
			}
			list, err := s.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := []StoredPage{{Key: kText, Size: uint64(len(text)), Meta: PageMeta{Persona: PersonaID{1}}}}
			if diff := cmp.Diff(want, list, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".LastAccess" }, cmp.Ignore())); diff != "" {
				t.Fatalf("List (-want +got):\n%s", diff)
			}
			if got := s.Capacity(); got.Used != uint64(len(text)) {
				t.Fatalf("Used = %d after failed write, want %d", got.Used, len(text))
			}
		})
	}
}

func TestFileStoreRestartAndCorruption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	for _, compressed := range []bool{false, true} {
		dir := filepath.Join(dir, map[bool]string{false: "plain", true: "zstd"}[compressed])
		opts := FileStoreOptions{Compressed: compressed, Durable: true}
		s, err := OpenFileStore(RoleCold, dir, 1<<30, opts)
		if err != nil {
			t.Fatal(err)
		}
		good, torn := testKey("good"), testKey("torn")
		gb := blob(2, frameSize+77)
		p := PersonaID{7}
		for _, k := range []PageRef{good, torn} {
			if err := s.Write(ctx, k, PageMeta{Persona: p}, uint64(len(gb)), bytes.NewReader(gb)); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		// A torn page, a leftover temporary file, a file that is not ours.
		tornPath := filepath.Join(dir, pageFileName(torn))
		if err := os.Truncate(tornPath, 200); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, tmpPrefix+"x"), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "README"), []byte("hi"), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err = OpenFileStore(RoleCold, dir, 1<<30, opts)
		if err != nil {
			t.Fatal(err)
		}
		list, _ := s.List(ctx)
		if len(list) != 1 || list[0].Key != good || list[0].Meta.Persona != p || list[0].Size != uint64(len(gb)) {
			t.Fatalf("after restart List = %+v, want only the good page", list)
		}
		if _, err := os.Stat(tornPath); !os.IsNotExist(err) {
			t.Errorf("torn page not removed: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, tmpPrefix+"x")); !os.IsNotExist(err) {
			t.Errorf("temporary file not removed: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "README")); err != nil {
			t.Errorf("a file that is not ours was touched: %v", err)
		}
		// Flip a byte inside the second frame: reads of that frame fail,
		// reads of the first frame still work.
		path := filepath.Join(dir, pageFileName(good))
		raw, _ := os.ReadFile(path)
		ff, err := openFrames(path, s.fc)
		if err != nil {
			t.Fatal(err)
		}
		pos := ff.index[1].off + uint64(ff.index[1].n)/2
		ff.f.Close()
		raw[pos] ^= 0xff
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := s.Read(ctx, good)
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := d.OpenRange(0, 100)
		if b, err := io.ReadAll(rc); err != nil || !bytes.Equal(b, gb[:100]) {
			t.Errorf("first frame after corrupting the second: %v", err)
		}
		rc.Close()
		rc, _ = d.Open()
		if _, err := io.ReadAll(rc); !errors.Is(err, ErrPageCorrupt) {
			t.Errorf("reading a corrupt frame = %v, want ErrPageCorrupt", err)
		}
		rc.Close()
		d.Close()
		s.Close()
	}
}

func TestMemoryStoreSharesBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := NewMemoryStore(RoleWarm, 100), NewMemoryStore(RoleFast, 100)
	k := testKey("m")
	if err := a.Write(ctx, k, PageMeta{}, 10, strings.NewReader("0123456789")); err != nil {
		t.Fatal(err)
	}
	d, _ := a.Read(ctx, k)
	rc, _ := d.OpenRange(2, 5)
	if err := b.Write(ctx, k, PageMeta{}, 5, rc); err != nil {
		t.Fatal(err)
	}
	got, _ := b.Read(ctx, k)
	if string(got.(memData)) != "23456" {
		t.Fatalf("got %q", got.(memData))
	}
	if &got.(memData)[0] != &d.(memData)[2] {
		t.Error("memory-to-memory write copied the bytes")
	}
}

func TestPageFileNames(t *testing.T) {
	t.Parallel()
	a := testKey("n").Artifact
	for _, k := range []PageRef{WholePage(a), ExpertPage(a, 0), ExpertPage(a, 4294967295), RangePage(a, 0, 1), RangePage(a, 1<<40, 7)} {
		name := pageFileName(k)
		if strings.ContainsAny(name, `/\`) {
			t.Errorf("file name %q has a separator", name)
		}
		got, ok := parsePageFileName(name)
		if !ok || got != k {
			t.Errorf("parsePageFileName(%q) = %v, %v; want %v", name, got, ok, k)
		}
	}
	for _, name := range []string{
		"", ".pg", a.String() + ".pg", a.String() + ".whole", a.String() + ".e01.pg", a.String() + ".e-1.pg",
		a.String() + ".r1-0.pg", a.String() + ".r01-1.pg", strings.ToUpper(a.String()) + ".whole.pg", "../" + a.String()[3:] + ".whole.pg",
		"00000000-0000-0000-0000-000000000000.whole.pg",
	} {
		if k, ok := parsePageFileName(name); ok {
			t.Errorf("parsePageFileName(%q) accepted as %v", name, k)
		}
	}
}
