package genome

import (
	"context"
	"fmt"
)

// restore loads the catalog and reconciles it with what the tiers hold
// after a restart (New).
func (s *Service) restore() error {
	ctx := context.Background()
	if s.catalog != nil {
		b, err := s.catalog.load()
		if err != nil {
			return fmt.Errorf("genome: read catalog: %w", err)
		}
		if b != nil {
			c, err := decodeCatalog(b)
			if err != nil {
				return fmt.Errorf("genome: %s: %w (fix or move the file; the manager will not guess)", s.catalog.path, err)
			}
			for _, a := range c.artifacts {
				a.lost = true // until the home tier shows its copy
				s.artifacts[a.id] = a
			}
			for _, p := range c.personas {
				s.personas[p.id] = p
			}
			for _, o := range c.owners {
				s.owners[o.ref.Artifact] = append(s.owners[o.ref.Artifact], o)
			}
		}
	}
	if err := s.restoreHome(ctx); err != nil {
		return err
	}
	for _, t := range s.tiers[:len(s.tiers)-1] {
		if err := s.restoreUpper(ctx, t); err != nil {
			return err
		}
	}
	for _, a := range s.artifacts {
		if a.lost {
			s.log.Error("genome: the catalog names an artifact the home tier does not hold; paging it fails with ARTIFACT_DATA_LOST until it is put again",
				"artifact_id", a.id.String(), "home", s.home.role.String())
		}
	}
	return s.outbox.unspool()
}

// restoreHome matches the home tier's files with the catalog: an artifact
// found is available; a file the catalog does not name is the leftover of
// an upload that crashed before its catalog write, and is removed.
func (s *Service) restoreHome(ctx context.Context) error {
	pages, err := s.home.store.List(ctx)
	if err != nil {
		return fmt.Errorf("genome: list %s tier: %w", s.home.role, err)
	}
	for _, sp := range pages {
		a := s.artifacts[sp.Key.Artifact]
		if sp.Key.Kind == KindWhole && a != nil && a.size == sp.Size && a.lost {
			a.lost = false
			s.home.used += a.size
			s.home.pages++
			continue
		}
		s.log.Warn("genome: removing a home-tier file the catalog does not name", "role", s.home.role.String(), "page", sp.Key.String())
		if err := s.home.store.Evict(ctx, sp.Key); err != nil {
			return fmt.Errorf("genome: clean %s tier: %w", s.home.role, err)
		}
	}
	return nil
}

// restoreUpper gives the pages an upper tier kept (file tiers survive
// restarts) back to the working sets of the personas they were charged
// to, least recently used first. A page that no longer fits the books (an
// unknown artifact or persona, a bad range, an owner that now refuses the
// persona, a full tier or working set, a copy in a faster tier) is
// removed.
func (s *Service) restoreUpper(ctx context.Context, t *tierIndex) error {
	pages, err := t.store.List(ctx)
	if err != nil {
		return fmt.Errorf("genome: list %s tier: %w", t.role, err)
	}
	kept := 0
	for _, sp := range pages {
		if why := s.restorePage(t, sp); why != "" {
			s.log.Info("genome: not keeping a page from before the restart", "role", t.role.String(), "page", sp.Key.String(), "why", why)
			if err := t.store.Evict(ctx, sp.Key); err != nil {
				return fmt.Errorf("genome: clean %s tier: %w", t.role, err)
			}
			continue
		}
		kept++
	}
	t.settle()
	if kept > 0 {
		s.log.Info("genome: pages kept across the restart", "role", t.role.String(), "pages", kept)
	}
	return nil
}

func (s *Service) restorePage(t *tierIndex, sp StoredPage) string {
	a := s.artifacts[sp.Key.Artifact]
	if a == nil || a.lost {
		return "artifact unknown"
	}
	off, n, err := a.span(sp.Key)
	if err != nil || n != sp.Size {
		return "page does not match its artifact"
	}
	per := s.personas[sp.Meta.Persona]
	if per == nil {
		return "persona unknown"
	}
	if _, denied := s.deniedBy(per.id, a, off, n); denied {
		return "owned by another persona"
	}
	h := sp.Key.hash()
	if s.table.get(sp.Key, h) != nil {
		return "a faster tier holds it"
	}
	fit := s.fitPos(n)
	if fit > t.pos || t.used+n > t.capacity || per.used+n > per.capacity {
		return "no room"
	}
	e := s.newEntry(sp.Key, h, off, n, fit, a)
	s.addHolder(per, e)
	e.charged = per.id
	t.insert(e, per.id)
	e.pos = t.pos
	s.gen++
	e.gen = s.gen
	s.table.put(e)
	e.publish(t.role)
	return ""
}
