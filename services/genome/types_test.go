package genome

import (
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCapacity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		c         Capacity
		available uint64
		util      float64
	}{
		{"empty", Capacity{Total: 100}, 100, 0},
		{"half", Capacity{Total: 100, Used: 50}, 50, 0.5},
		{"full", Capacity{Total: 100, Used: 100}, 0, 1},
		{"over capacity saturates at zero", Capacity{Total: 100, Used: 150}, 0, 1.5},
		{"zero capacity is zero-safe", Capacity{}, 0, 0},
		{"zero capacity with use", Capacity{Used: 7}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.c.Available(); got != tc.available {
				t.Errorf("Available() = %d, want %d", got, tc.available)
			}
			if got := tc.c.Utilization(); got != tc.util {
				t.Errorf("Utilization() = %v, want %v", got, tc.util)
			}
		})
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff([]Role{RoleFast, RoleWarm, RoleBench, RoleCold, RoleFrozen}, Roles()); diff != "" {
		t.Fatalf("Roles() fastest first (-want +got):\n%s", diff)
	}
	for i, r := range Roles() {
		if i > 0 && r <= Roles()[i-1] {
			t.Errorf("%s does not order after %s", r, Roles()[i-1])
		}
		got, err := ParseRole(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v", r.String(), got, err)
		}
		if !r.Valid() {
			t.Errorf("%s is not valid", r)
		}
	}
	if RoleNone.Valid() || Role(9).Valid() {
		t.Error("RoleNone or Role(9) is valid")
	}
	if _, err := ParseRole("ssd"); !errors.Is(err, ErrRoleInvalid) {
		t.Errorf("ParseRole(ssd) = %v, want ErrRoleInvalid", err)
	}
	wantPolicy := map[Role]string{RoleFast: PolicyWTinyLFU, RoleWarm: PolicySLRU, RoleBench: PolicyLRU, RoleCold: PolicyFIFO, RoleFrozen: PolicyHome}
	for r, p := range wantPolicy {
		if got := r.CanonicalPolicy(); got != p {
			t.Errorf("%s.CanonicalPolicy() = %q, want %q", r, got, p)
		}
	}
}

func TestPageRefValidate(t *testing.T) {
	t.Parallel()
	a := ArtifactIDFor(sha256.Sum256([]byte("x")))
	tests := []struct {
		name string
		ref  PageRef
		ok   bool
	}{
		{"whole", WholePage(a), true},
		{"expert", ExpertPage(a, 3), true},
		{"range", RangePage(a, 10, 20), true},
		{"no artifact", PageRef{Kind: KindWhole}, false},
		{"no kind", PageRef{Artifact: a}, false},
		{"unknown kind", PageRef{Kind: 9, Artifact: a}, false},
		{"whole with offset", PageRef{Kind: KindWhole, Artifact: a, Offset: 1}, false},
		{"whole with expert", PageRef{Kind: KindWhole, Artifact: a, Expert: 1}, false},
		{"expert with length", PageRef{Kind: KindExpert, Artifact: a, Length: 1}, false},
		{"empty range", RangePage(a, 10, 0), false},
		{"range with expert", PageRef{Kind: KindByteRange, Artifact: a, Expert: 1, Length: 1}, false},
		{"overflowing range", RangePage(a, 1<<63, 1<<63), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.ref.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrPageRefInvalid) {
				t.Fatalf("Validate() = %v, want ErrPageRefInvalid", err)
			}
			if tc.ok {
				back, err := ParsePageRef(tc.ref.String())
				if err != nil || back != tc.ref {
					t.Fatalf("ParsePageRef(%q) = %v, %v; want %v", tc.ref.String(), back, err, tc.ref)
				}
			}
		})
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	const canonical = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
	tests := []struct {
		in string
		ok bool
	}{
		{canonical, true},
		{"6F1C2B3A-4D5E-4F60-8A7B-9C0D1E2F3A4B", true},
		{"", false},
		{"00000000-0000-0000-0000-000000000000", false},
		{"6f1c2b3a4d5e4f608a7b9c0d1e2f3a4b", false},
		{"{6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b}", false},
		{"urn:uuid:6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b", false},
		{"../../../../etc/passwd-0000-0000-000000", false},
		{"6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4z", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			p, perr := ParsePersonaID(tc.in)
			a, aerr := ParseArtifactID(tc.in)
			if (perr == nil) != tc.ok || (aerr == nil) != tc.ok {
				t.Fatalf("ParsePersonaID = %v, ParseArtifactID = %v, want ok=%v", perr, aerr, tc.ok)
			}
			if !tc.ok {
				if !errors.Is(perr, ErrPersonaIDInvalid) || !errors.Is(aerr, ErrArtifactIDInvalid) {
					t.Fatalf("errors %v, %v are not the typed ones", perr, aerr)
				}
				return
			}
			if p.String() != a.String() || p.IsZero() || a.IsZero() {
				t.Fatalf("round trip: %s %s", p, a)
			}
		})
	}
}

func TestArtifactIDIsContentDerived(t *testing.T) {
	t.Parallel()
	s1 := sha256.Sum256([]byte("adapter bytes"))
	s2 := sha256.Sum256([]byte("other bytes"))
	if a, b := ArtifactIDFor(s1), ArtifactIDFor(s1); a != b {
		t.Fatal("the same digest gave two ids")
	}
	if ArtifactIDFor(s1) == ArtifactIDFor(s2) {
		t.Fatal("two digests gave one id")
	}
	id := ArtifactIDFor(s1)
	if v := id[6] >> 4; v != 5 {
		t.Fatalf("artifact id version %d, want 5 (UUIDv5)", v)
	}
}

func TestHandleAndFault(t *testing.T) {
	t.Parallel()
	if got := (PageHandle{Role: RoleFast, Gen: 42}).String(); got != "fast-2a" {
		t.Errorf("handle = %q", got)
	}
	if !(PageFault{To: RoleFast}).ColdMiss() || (PageFault{From: RoleFrozen, To: RoleFast}).ColdMiss() {
		t.Error("ColdMiss is wrong")
	}
}

func TestParsePageRefRejects(t *testing.T) {
	t.Parallel()
	const a = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b"
	for _, in := range []string{
		"", a + "/", a + "/expert", a + "/expert/x", a + "/expert/-1", a + "/bytes/1", a + "/bytes/1+0",
		a + "/bytes/+1", a + "/pages/1", "x/expert/1", a + "/expert/99999999999",
	} {
		if _, err := ParsePageRef(in); err == nil {
			t.Errorf("ParsePageRef(%q) accepted", in)
		}
	}
}
