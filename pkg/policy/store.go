package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Store holds a node's current policy and its version. Reads are lock-free
// (an atomic pointer), because the gate reads the policy on every command;
// Put serialises writers and, for a store opened on a file, persists the
// policy before anyone can read it.
//
// Versions start at 1 and every accepted Put adds one. A persistent store
// keeps the version in "<file>.version" beside the policy file, with the
// SHA-256 of the policy text it belongs to, so that a restart keeps
// counting and a policy file edited by hand while the node was down counts
// as a new version (see Drifted).
type Store struct {
	cur     atomic.Pointer[snapshot]
	mu      sync.Mutex // serialises Put
	path    string     // "" for an in-memory store
	drifted bool
}

type snapshot struct {
	policy  *Policy
	version uint64
}

// NewStore returns an in-memory store holding p at version 1. A nil p is an
// empty policy whose default is forbid.
func NewStore(p *Policy) *Store {
	if p == nil {
		p = emptyPolicy()
	}
	s := &Store{}
	s.cur.Store(&snapshot{policy: p, version: 1})
	return s
}

func emptyPolicy() *Policy {
	p, _ := New(Forbidden, nil) // cannot fail: no rules
	return p
}

// versionFile is the JSON beside a persisted policy.
type versionFile struct {
	Version uint64 `json:"version"`
	// SHA256 is the hex SHA-256 of the policy text this version names.
	SHA256 string `json:"sha256"`
}

// OpenStore opens a store persisted at path. If the file exists it is
// parsed (a policy that does not load is an error, never a silent
// fallback) and its version read from path+".version": version 1 when
// there is none, the stored version when the text is the one it was
// stored with, and the stored version plus one when the file was changed
// behind the store's back. If the file does not exist, initial is written
// there as version 1 (with its comments, when it was parsed from YAML); a
// nil initial is then an error.
func OpenStore(path string, initial *Policy) (*Store, error) {
	s := &Store{path: path}
	text, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if initial == nil {
			return nil, fmt.Errorf("open policy store: %w", err)
		}
		if err := s.persist(initial, 1); err != nil {
			return nil, fmt.Errorf("open policy store: %w", err)
		}
		s.cur.Store(&snapshot{policy: initial, version: 1})
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("open policy store: %w", err)
	}
	p, err := Parse(text)
	if err != nil {
		return nil, fmt.Errorf("open policy store %s: %w", path, err)
	}
	version, err := s.readVersion(text)
	if err != nil {
		return nil, fmt.Errorf("open policy store %s: %w", path, err)
	}
	s.cur.Store(&snapshot{policy: p, version: version})
	return s, nil
}

// readVersion returns the version of the policy text at s.path, writing the
// version file when it is missing or stale.
func (s *Store) readVersion(text []byte) (uint64, error) {
	sum := sha256.Sum256(text)
	hash := hex.EncodeToString(sum[:])
	b, err := os.ReadFile(s.versionPath())
	var vf versionFile
	switch {
	case errors.Is(err, fs.ErrNotExist):
		vf = versionFile{Version: 1, SHA256: hash}
	case err != nil:
		return 0, fmt.Errorf("read version: %w", err)
	default:
		if err := json.Unmarshal(b, &vf); err != nil || vf.Version == 0 {
			return 0, fmt.Errorf("version file %s is corrupt; remove it to restart counting at 1", s.versionPath())
		}
		if vf.SHA256 == hash {
			return vf.Version, nil
		}
		// The policy file is not the text this version was stored with: it
		// was edited while the node was down, or a crash fell between
		// writing the policy and its version. Either way it is new.
		vf = versionFile{Version: vf.Version + 1, SHA256: hash}
		s.drifted = true
	}
	if err := writeVersion(s.versionPath(), vf); err != nil {
		return 0, err
	}
	return vf.Version, nil
}

func (s *Store) versionPath() string { return s.path + ".version" }

// Drifted reports whether, when the store was opened, the policy file was
// not the text its version file names: it was edited behind the store's
// back, and its version was bumped. The router publishes that as policy
// drift.
func (s *Store) Drifted() bool { return s.drifted }

// Path is the policy file of a persistent store, "" for an in-memory one.
func (s *Store) Path() string { return s.path }

// Get returns the current policy and its version. It takes no lock.
func (s *Store) Get() (*Policy, uint64) {
	sn := s.cur.Load()
	return sn.policy, sn.version
}

// Put makes p the current policy and returns its version. With
// expectedVersion non-zero it is a compare-and-swap: unless the current
// version is expectedVersion, nothing changes and the error is a
// *VersionMismatchError (errors.Is ErrVersionMismatch). A persistent store
// writes the policy and its version to disk before the new policy becomes
// visible; if that fails, nothing changes.
func (s *Store) Put(p *Policy, expectedVersion uint64) (uint64, error) {
	if p == nil {
		return 0, errors.New("put policy: nil policy")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	if expectedVersion != 0 && expectedVersion != cur.version {
		return 0, &VersionMismatchError{Expected: expectedVersion, Current: cur.version}
	}
	next := cur.version + 1
	if s.path != "" {
		if err := s.persist(p, next); err != nil {
			return 0, fmt.Errorf("put policy: %w", err)
		}
	}
	s.cur.Store(&snapshot{policy: p, version: next})
	return next, nil
}

// persist writes the policy, then its version. A crash between the two
// leaves a policy whose hash the version file does not name, which
// OpenStore counts as the next version: the one being written.
func (s *Store) persist(p *Policy, version uint64) error {
	text, err := p.Marshal()
	if err != nil {
		return err
	}
	if len(text) > MaxBytes {
		// It could not be loaded again on restart.
		return &Error{
			Rule: DefaultRule, Problem: ProblemTooLarge,
			Detail: fmt.Sprintf("policy renders to %d bytes of YAML; at most %d", len(text), MaxBytes),
		}
	}
	if err := writeFileAtomic(s.path, text); err != nil {
		return err
	}
	sum := sha256.Sum256(text)
	return writeVersion(s.versionPath(), versionFile{Version: version, SHA256: hex.EncodeToString(sum[:])})
}

func writeVersion(path string, vf versionFile) error {
	b, err := json.Marshal(vf)
	if err != nil {
		return fmt.Errorf("write version: %w", err)
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic replaces path with data so that readers and a crash see
// the old file or the new one, never a torn one: write a temporary file in
// the same directory, fsync it, rename it over path, fsync the directory.
// An existing file keeps its permissions; a new one is 0600.
func writeFileAtomic(path string, data []byte) (err error) {
	perm := fs.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = syncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
