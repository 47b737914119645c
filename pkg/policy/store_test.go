package policy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/continuum-mesh/continuum/pkg/policy"
	"github.com/continuum-mesh/continuum/pkg/uri"
)

const allowUsers = `# users may read
rules:
  - callers: ["user"]
    uris: ["**"]
    verdict: allow
`

func TestStoreVersionsAndCompareAndSwap(t *testing.T) {
	t.Parallel()
	s := policy.NewStore(policy.Default())
	p, v := s.Get()
	if v != 1 || p == nil {
		t.Fatalf("Get = %v, %d; want the initial policy at version 1", p, v)
	}
	next := mustParse(t, allowUsers)
	v2, err := s.Put(next, 1)
	if err != nil || v2 != 2 {
		t.Fatalf("Put(expected 1) = %d, %v; want 2", v2, err)
	}
	_, err = s.Put(policy.Default(), 1)
	if !errors.Is(err, policy.ErrVersionMismatch) {
		t.Fatalf("stale Put error = %v, want ErrVersionMismatch", err)
	}
	var vm *policy.VersionMismatchError
	if !errors.As(err, &vm) || vm.Expected != 1 || vm.Current != 2 {
		t.Fatalf("stale Put error = %#v, want expected 1 current 2", err)
	}
	if got, v := s.Get(); got != next || v != 2 {
		t.Fatalf("a refused Put changed the store: %d", v)
	}
	v3, err := s.Put(policy.Default(), 0)
	if err != nil || v3 != 3 {
		t.Fatalf("unconditional Put = %d, %v; want 3", v3, err)
	}
	if _, err := s.Put(nil, 0); err == nil {
		t.Fatal("Put(nil) accepted")
	}
}

func TestNewStoreNilIsForbidAll(t *testing.T) {
	t.Parallel()
	p, _ := policy.NewStore(nil).Get()
	if v := p.Evaluate(admin, uri.MustParse("x")).Effective; v.Kind != policy.Forbidden {
		t.Fatalf("empty store allows: %+v", v)
	}
}

func TestOpenStoreWritesInitialAndKeepsCounting(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	s, err := policy.OpenStore(path, policy.Default())
	if err != nil {
		t.Fatal(err)
	}
	if _, v := s.Get(); v != 1 {
		t.Fatalf("version %d, want 1", v)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(policy.DefaultYAML()), string(text)); diff != "" {
		t.Fatalf("written policy is not DefaultYAML, comments included (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("policy file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if _, err := s.Put(mustParse(t, allowUsers), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(mustParse(t, allowUsers), 2); err != nil {
		t.Fatal(err)
	}

	// A restart reads the last policy and keeps counting.
	r, err := policy.OpenStore(path, policy.Default())
	if err != nil {
		t.Fatal(err)
	}
	p, v := r.Get()
	if v != 3 || r.Drifted() {
		t.Fatalf("reopened at version %d (drifted %v), want 3 without drift", v, r.Drifted())
	}
	if diff := cmp.Diff(mustParse(t, allowUsers).Proto(), p.Proto(), protocmp.Transform()); diff != "" {
		t.Errorf("reopened policy (-want +got):\n%s", diff)
	}
	if b, _ := p.Marshal(); string(b) != allowUsers {
		t.Errorf("reopened policy lost its text:\n%s", b)
	}
	if n, err := r.Put(policy.Default(), 3); err != nil || n != 4 {
		t.Fatalf("Put after reopen = %d, %v; want 4", n, err)
	}
	// Nothing but the policy and its version is left in the directory.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"policy.yaml", "policy.yaml.version"}, names); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
}

func TestOpenStoreDetectsEditsBehindItsBack(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	s, err := policy.OpenStore(path, policy.Default())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(policy.Default(), 0); err != nil { // version 2
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(allowUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := policy.OpenStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, v := r.Get(); v != 3 || !r.Drifted() {
		t.Fatalf("hand-edited policy opened at version %d (drifted %v), want 3 and drifted", v, r.Drifted())
	}
	// Opening again without a change is not drift.
	r2, err := policy.OpenStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, v := r2.Get(); v != 3 || r2.Drifted() {
		t.Fatalf("second open at version %d (drifted %v), want 3 without drift", v, r2.Drifted())
	}
}

func TestOpenStoreHandWrittenFileStartsAtOne(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(allowUsers), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := policy.OpenStore(path, policy.Default())
	if err != nil {
		t.Fatal(err)
	}
	if _, v := s.Get(); v != 1 || s.Drifted() {
		t.Fatalf("version %d drifted %v, want 1 without drift", v, s.Drifted())
	}
	if _, err := s.Put(policy.Default(), 1); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("Put changed the file's mode to %v (%v); want it kept at 0644", fi.Mode(), err)
	}
}

func TestOpenStoreErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := policy.OpenStore(filepath.Join(dir, "missing.yaml"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file without initial: %v, want ErrNotExist", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - callers: [a]\n    uris: [x]\n    verdict: deny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := policy.OpenStore(bad, policy.Default())
	if pe := asError(t, err); pe.Problem != policy.ProblemUnknownVerdict {
		t.Errorf("invalid policy file: %v", err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(allowUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good+".version", []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := policy.OpenStore(good, nil); err == nil {
		t.Error("corrupt version file accepted")
	}
}

func TestStorePutFailureChangesNothing(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := policy.OpenStore(filepath.Join(dir, "policy.yaml"), policy.Default())
	if err != nil {
		t.Fatal(err)
	}
	before, _ := s.Get()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(mustParse(t, allowUsers), 1); err == nil {
		t.Fatal("Put succeeded with its directory gone")
	}
	if p, v := s.Get(); p != before || v != 1 {
		t.Fatalf("failed Put changed the store to version %d", v)
	}
}

// Readers evaluate while writers put; run with -race.
func TestStoreConcurrentReadersAndWriters(t *testing.T) {
	t.Parallel()
	s := policy.NewStore(policy.Default())
	policies := []*policy.Policy{policy.Default(), mustParse(t, allowUsers)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := uri.MustParse("genome/page-in")
			last := uint64(0)
			for ctx.Err() == nil {
				p, v := s.Get()
				if v < last {
					t.Errorf("version went backwards: %d after %d", v, last)
					return
				}
				last = v
				if e := p.Evaluate(user, u); e.Effective.Kind != policy.Allowed {
					t.Errorf("user page-in = %+v", e.Effective)
					return
				}
			}
		}()
	}
	const puts = 200
	var writers sync.WaitGroup
	for w := 0; w < 2; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; i < puts; i++ {
				for {
					_, v := s.Get()
					_, err := s.Put(policies[i%2], v)
					if err == nil {
						break
					}
					if !errors.Is(err, policy.ErrVersionMismatch) {
						t.Errorf("Put: %v", err)
						return
					}
				}
			}
		}()
	}
	writers.Wait()
	cancel()
	wg.Wait()
	if _, v := s.Get(); v != 1+2*puts {
		t.Errorf("final version %d, want %d: a compare-and-swap was lost", v, 1+2*puts)
	}
}
