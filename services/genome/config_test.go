package genome

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTiers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []TierConfig
		wantErr string
	}{
		{in: "", want: DefaultTiers()},
		{in: DefaultTiersFlag, want: DefaultTiers()},
		{in: "frozen=64GiB, fast=256MiB", want: []TierConfig{{Role: RoleFast, CapacityBytes: 256 << 20}, {Role: RoleFrozen, CapacityBytes: 64 << 30}}},
		{in: "fast=1MB:lru,warm=2KiB:slru", want: []TierConfig{{Role: RoleFast, CapacityBytes: 1e6, Policy: PolicyLRU}, {Role: RoleWarm, CapacityBytes: 2048, Policy: PolicySLRU}}},
		{in: "FAST=10", want: []TierConfig{{Role: RoleFast, CapacityBytes: 10}}},
		{in: "fast=1GiB,fast=2GiB", wantErr: "twice"},
		{in: "ssd=1GiB", wantErr: "not one of"},
		{in: "fast", wantErr: "role=size"},
		{in: "fast=", wantErr: "size"},
		{in: "fast=0", wantErr: "zero"},
		{in: "fast=1mb", wantErr: "size"},
		{in: "fast=-1GiB", wantErr: "size"},
		{in: "fast=99999999999TiB", wantErr: "overflows"},
		{in: "fast=1GiB:mru", wantErr: "unknown policy"},
		{in: "fast=1GiB,", wantErr: "role=size"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTiers(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseTiers(%q) = %v, %v; want error with %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTiers(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("ParseTiers(%q) (-want +got):\n%s", tc.in, diff)
			}
			back, err := ParseTiers(FormatTiers(got))
			if err != nil || !cmp.Equal(back, got) {
				t.Fatalf("FormatTiers round trip: %q -> %v, %v", FormatTiers(got), back, err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		policy  []string
		wantErr string
	}{
		{name: "canonical policies, home last", cfg: Config{DataDir: "/x"}, policy: []string{PolicyWTinyLFU, PolicySLRU, PolicyLRU, PolicyFIFO, PolicyHome}},
		{name: "memory only", cfg: Config{Tiers: memTiers(10, 100)}, policy: []string{PolicyWTinyLFU, PolicyHome}},
		{name: "files need a data dir", cfg: Config{}, wantErr: "data directory"},
		{name: "home takes no policy", cfg: Config{Tiers: []TierConfig{{Role: RoleFast, CapacityBytes: 1, Policy: PolicyLRU}}}, wantErr: "home tier"},
		{name: "order", cfg: Config{Tiers: []TierConfig{{Role: RoleWarm, CapacityBytes: 1}, {Role: RoleFast, CapacityBytes: 1}}}, wantErr: "fastest first"},
		{name: "zero capacity", cfg: Config{Tiers: []TierConfig{{Role: RoleFast}}}, wantErr: "capacity"},
		{name: "empty chain", cfg: Config{Tiers: []TierConfig{}}, wantErr: "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.cfg.withDefaults(nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("withDefaults = %v; want error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var policies []string
			for _, tier := range got.Tiers {
				policies = append(policies, tier.Policy)
			}
			if diff := cmp.Diff(tc.policy, policies); diff != "" {
				t.Fatalf("policies (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]uint64{"1": 1, "1B": 1, "2KiB": 2048, "3MB": 3e6, "1GiB": 1 << 30, "1TB": 1e12, "5 MiB": 5 << 20} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5GiB", "1gib", "0", "x", "18446744073709551616"} {
		if _, err := ParseBytes(in); !errors.Is(err, ErrCapacityInvalid) {
			t.Errorf("ParseBytes(%q) = %v, want ErrCapacityInvalid", in, err)
		}
	}
}
