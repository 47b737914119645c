package genome

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// The catalog is the manager's small durable state: the artifacts (not
// their bytes: those are in the home tier), the personas and their
// capacities, and who owns which page. It is a JSON file rewritten whole
// (temporary file, fsync, rename, fsync of the directory) after every
// change, so a crash leaves either the old or the new catalog, never a
// torn one. Changes are rare control-plane calls; a catalog of 100 000
// artifacts is a few tens of MiB and still rewrites in well under a second.

const catalogVersion = 1

type catalogJSON struct {
	Version   int            `json:"version"`
	Artifacts []artifactJSON `json:"artifacts"`
	Personas  []personaJSON  `json:"personas"`
	Owners    []ownerJSON    `json:"owners"`
}

type artifactJSON struct {
	ID            string    `json:"id"`
	Name          string    `json:"name,omitempty"`
	SHA256        string    `json:"sha256"`
	SizeBytes     uint64    `json:"size_bytes"`
	ExpertOffsets []uint64  `json:"expert_offsets,omitempty"`
	Created       time.Time `json:"created"`
}

type personaJSON struct {
	ID            string `json:"id"`
	CapacityBytes uint64 `json:"capacity_bytes"`
}

type ownerJSON struct {
	Page  pageJSON `json:"page"`
	Owner string   `json:"owner"`
}

type pageJSON struct {
	Kind     string `json:"kind"`
	Artifact string `json:"artifact"`
	Expert   uint32 `json:"expert,omitempty"`
	Offset   uint64 `json:"offset,omitempty"`
	Length   uint64 `json:"length,omitempty"`
}

func pageToJSON(r PageRef) pageJSON {
	return pageJSON{Kind: r.Kind.String(), Artifact: r.Artifact.String(), Expert: r.Expert, Offset: r.Offset, Length: r.Length}
}

func pageFromJSON(p pageJSON) (PageRef, error) {
	a, err := ParseArtifactID(p.Artifact)
	if err != nil {
		return PageRef{}, err
	}
	r := PageRef{Artifact: a, Expert: p.Expert, Offset: p.Offset, Length: p.Length}
	switch p.Kind {
	case "whole":
		r.Kind = KindWhole
	case "expert":
		r.Kind = KindExpert
	case "bytes":
		r.Kind = KindByteRange
	default:
		return PageRef{}, fmt.Errorf("%w: kind %q", ErrPageRefInvalid, p.Kind)
	}
	return r, r.Validate()
}

// catalogData is a decoded, validated catalog.
type catalogData struct {
	artifacts []*artifact
	personas  []*persona
	owners    []ownerSpan
}

// decodeCatalog parses and validates a catalog: every id canonical, every
// artifact id the one its digest gives, every layout valid, nothing twice.
func decodeCatalog(b []byte) (*catalogData, error) {
	var c catalogJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if dec.More() {
		return nil, errors.New("catalog: trailing data")
	}
	if c.Version != catalogVersion {
		return nil, fmt.Errorf("catalog: version %d, want %d", c.Version, catalogVersion)
	}
	out := &catalogData{}
	seenA := map[ArtifactID]bool{}
	for i, j := range c.Artifacts {
		id, err := ParseArtifactID(j.ID)
		if err != nil {
			return nil, fmt.Errorf("catalog: artifact %d: %w", i, err)
		}
		sum, ok := parseSHA256(j.SHA256)
		if !ok || ArtifactIDFor(sum) != id {
			return nil, fmt.Errorf("catalog: artifact %s: sha256 does not give its id", id)
		}
		if seenA[id] {
			return nil, fmt.Errorf("catalog: artifact %s listed twice", id)
		}
		seenA[id] = true
		if j.SizeBytes == 0 || j.SizeBytes > 1<<62 {
			return nil, fmt.Errorf("catalog: artifact %s: size %d", id, j.SizeBytes)
		}
		if err := validName(j.Name); err != nil {
			return nil, fmt.Errorf("catalog: artifact %s: %w", id, err)
		}
		experts, err := expertLayout(j.SizeBytes, 0, j.ExpertOffsets)
		if err != nil {
			return nil, fmt.Errorf("catalog: artifact %s: %w", id, err)
		}
		out.artifacts = append(out.artifacts, &artifact{
			id: id, name: j.Name, sum: sum, size: j.SizeBytes,
			experts: experts, created: j.Created, entries: map[*pageEntry]struct{}{},
		})
	}
	seenP := map[PersonaID]bool{}
	for i, j := range c.Personas {
		id, err := ParsePersonaID(j.ID)
		if err != nil {
			return nil, fmt.Errorf("catalog: persona %d: %w", i, err)
		}
		if seenP[id] || j.CapacityBytes == 0 {
			return nil, fmt.Errorf("catalog: persona %s listed twice or with no capacity", id)
		}
		seenP[id] = true
		out.personas = append(out.personas, &persona{id: id, capacity: j.CapacityBytes, pages: map[*pageEntry]struct{}{}})
	}
	seenO := map[PageRef]bool{}
	for i, j := range c.Owners {
		ref, err := pageFromJSON(j.Page)
		if err != nil {
			return nil, fmt.Errorf("catalog: owner %d: %w", i, err)
		}
		owner, err := ParsePersonaID(j.Owner)
		if err != nil {
			return nil, fmt.Errorf("catalog: owner %d: %w", i, err)
		}
		if !seenP[owner] || seenO[ref] {
			return nil, fmt.Errorf("catalog: owner of %s: unknown persona or listed twice", ref)
		}
		seenO[ref] = true
		out.owners = append(out.owners, ownerSpan{ref: ref, owner: owner})
	}
	return out, nil
}

// catalogSnapshot renders the catalog (under mu). Artifacts whose home is
// a memory tier are left out: they do not survive a restart anyway.
func (s *Service) catalogSnapshot() *catalogSnap {
	if s.catalog == nil {
		return nil
	}
	c := catalogJSON{Version: catalogVersion, Artifacts: []artifactJSON{}, Personas: []personaJSON{}, Owners: []ownerJSON{}}
	if s.home.role.Medium() != "memory" {
		for _, a := range s.artifacts {
			c.Artifacts = append(c.Artifacts, artifactJSON{
				ID: a.id.String(), Name: a.name, SHA256: hex.EncodeToString(a.sum[:]),
				SizeBytes: a.size, ExpertOffsets: a.experts, Created: a.created.UTC(),
			})
		}
	}
	for _, p := range s.personas {
		c.Personas = append(c.Personas, personaJSON{ID: p.id.String(), CapacityBytes: p.capacity})
	}
	for _, spans := range s.owners {
		for _, o := range spans {
			c.Owners = append(c.Owners, ownerJSON{Page: pageToJSON(o.ref), Owner: o.owner.String()})
		}
	}
	slices.SortFunc(c.Artifacts, func(a, b artifactJSON) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(c.Personas, func(a, b personaJSON) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(c.Owners, func(a, b ownerJSON) int {
		return strings.Compare(a.Page.Artifact+a.Page.Kind+fmt.Sprint(a.Page.Expert, a.Page.Offset, a.Page.Length),
			b.Page.Artifact+b.Page.Kind+fmt.Sprint(b.Page.Expert, b.Page.Offset, b.Page.Length))
	})
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		s.log.Error("genome: render catalog", "error", err)
		return nil
	}
	s.catalogSeq++
	return &catalogSnap{seq: s.catalogSeq, data: append(b, '\n')}
}

// catalogSnap is a rendered catalog and its place in the order of changes.
type catalogSnap struct {
	seq  uint64
	data []byte
}

// writeCatalog writes a snapshot taken by catalogSnapshot, unless a newer
// one was written meanwhile.
func (s *Service) writeCatalog(snap *catalogSnap) error {
	if s.catalog == nil || snap == nil {
		return nil
	}
	return s.catalog.write(snap)
}

// saveCatalog writes the current catalog (Close, and retries after a
// failed write).
func (s *Service) saveCatalog() error {
	s.mu.Lock()
	snap := s.catalogSnapshot()
	s.mu.Unlock()
	return s.writeCatalog(snap)
}

// catalogFile is the catalog on disk.
type catalogFile struct {
	path string

	mu      sync.Mutex
	written uint64 // seq of the snapshot on disk
	dirty   bool
}

func (c *catalogFile) load() ([]byte, error) {
	b, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// write replaces the catalog file atomically and durably, unless a newer
// snapshot is already on disk.
func (c *catalogFile) write(snap *catalogSnap) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if snap.seq <= c.written {
		return nil
	}
	err := writeFileAtomic(c.path, snap.data)
	c.dirty = err != nil
	if err == nil {
		c.written = snap.seq
	}
	return err
}

func (c *catalogFile) isDirty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirty
}

// writeFileAtomic writes path through a temporary file, fsyncing the file
// and its directory.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}
