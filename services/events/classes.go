package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/topic"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// classesFile is the class registry on disk, in the JSON form of
// ListClassesResponse, replaced atomically on every new class.
const classesFile = "classes.json"

// registry knows the classes and their streams, and the streams of topics
// that no class covers. A topic's stream is the most specific class that
// covers it, else its own.
type registry struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	fanout func(*stream, *event) uint32

	// declareMu serialises declarations, so the registry file is written
	// by one declaration at a time.
	declareMu sync.Mutex

	mu      sync.RWMutex
	classes map[string]*stream
	topics  map[string]*stream
}

func newRegistry(cfg Config, log *slog.Logger, now func() time.Time, fanout func(*stream, *event) uint32) *registry {
	return &registry{
		cfg: cfg, log: log, now: now, fanout: fanout,
		classes: map[string]*stream{}, topics: map[string]*stream{},
	}
}

// load opens the classes recorded in the data directory, recovering their
// durable streams.
func (r *registry) load() error {
	if r.cfg.dir() == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(r.cfg.dir(), classesFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load classes: %w", err)
	}
	var list eventsv1.ListClassesResponse
	if err := protojson.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("load classes %s: %w", filepath.Join(r.cfg.dir(), classesFile), err)
	}
	for _, c := range list.GetClasses() {
		norm, err := normalizeClass(c, true)
		if err != nil {
			return fmt.Errorf("load class %q: %w", c.GetName(), err)
		}
		st, err := r.openStream(norm)
		if err != nil {
			return err
		}
		r.classes[norm.GetName()] = st
	}
	return nil
}

// normalizeClass validates a declaration and fills its defaults.
func normalizeClass(c *eventsv1.EventClass, withDisk bool) (*eventsv1.EventClass, error) {
	name := c.GetName()
	if name == "" {
		return nil, errClassEmptyName
	}
	if err := topic.Validate(name); err != nil {
		var te *topic.Error
		detail := err.Error()
		if errors.As(err, &te) {
			detail = te.Detail
		}
		return nil, failure(errClassInvalidName, detail, "name", name)
	}
	switch v := c.GetSchemaVersion(); {
	case v == "":
		return nil, failure(errClassEmptySchema, "", "name", name)
	case len(v) > 128 || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return nil, failure(errClassSchemaInvalid, "schema version must be 1 to 128 printable bytes without spaces", "name", name)
	}
	strategy := c.GetChannelStrategy()
	if _, known := eventsv1.ChannelStrategy_name[int32(strategy)]; !known {
		return nil, failure(errClassChannelInvalid, fmt.Sprintf("unknown channel strategy %d", strategy), "name", name)
	}
	switch {
	case c.GetBroadcast() && strategy == eventsv1.ChannelStrategy_CHANNEL_STRATEGY_UNSPECIFIED:
		return nil, failure(errBroadcastWithoutChannel, "", "name", name)
	case !c.GetBroadcast() && strategy != eventsv1.ChannelStrategy_CHANNEL_STRATEGY_UNSPECIFIED:
		return nil, failure(errChannelWithoutBroadcast, "", "name", name, "channel_strategy", strategy.String())
	case topic.IsArtifactKey(name) && c.GetBroadcast() && strategy != eventsv1.ChannelStrategy_CHANNEL_STRATEGY_GLOBAL:
		return nil, failure(errClassChannelInvalid, "a class named by an artifact key has only the global channel", "name", name)
	}
	policy := c.GetOnUnknownSchema()
	if _, known := eventsv1.UnknownSchemaPolicy_name[int32(policy)]; !known {
		return nil, failure(errClassSchemaPolicy, fmt.Sprintf("unknown policy %d", policy), "name", name)
	}
	if policy == eventsv1.UnknownSchemaPolicy_UNKNOWN_SCHEMA_POLICY_UNSPECIFIED {
		policy = eventsv1.UnknownSchemaPolicy_UNKNOWN_SCHEMA_POLICY_FAIL
	}
	out := proto.Clone(c).(*eventsv1.EventClass)
	out.OnUnknownSchema = policy
	if r := c.GetRetention(); r != nil {
		if err := r.CheckValid(); err != nil || r.AsDuration() < 0 {
			return nil, failure(errClassRetentionInvalid, "retention must be a valid, non-negative duration", "name", name)
		}
		if r.AsDuration() == 0 {
			out.Retention = nil
		}
	}
	if c.GetDurable() && !withDisk {
		return nil, failure(errDurableUnavailable, "this node runs without a data directory", "name", name)
	}
	return out, nil
}

// declare registers a class. It reports false when an identical class
// already existed.
func (r *registry) declare(c *eventsv1.EventClass) (*eventsv1.EventClass, bool, error) {
	norm, err := normalizeClass(c, r.cfg.dir() != "")
	if err != nil {
		return nil, false, err
	}
	name := norm.GetName()
	r.declareMu.Lock()
	defer r.declareMu.Unlock()
	r.mu.RLock()
	existing, ok := r.classes[name]
	count := len(r.classes)
	r.mu.RUnlock()
	if ok {
		if proto.Equal(existing.class, norm) {
			return existing.class, false, nil
		}
		return nil, false, failure(errClassConflict, "a class of this name was declared differently", "name", name)
	}
	if count >= r.cfg.MaxClasses {
		return nil, false, failure(errClassLimit, "", "max_classes", fmt.Sprint(r.cfg.MaxClasses))
	}
	st, err := r.openStream(norm)
	if err != nil {
		return nil, false, err
	}
	if r.cfg.dir() != "" {
		list := r.list()
		list = append(list, norm)
		slices.SortFunc(list, func(a, b *eventsv1.EventClass) int { return strings.Compare(a.GetName(), b.GetName()) })
		b, err := protojson.MarshalOptions{Multiline: true}.Marshal(&eventsv1.ListClassesResponse{Classes: list})
		if err == nil {
			err = replaceFileSync(filepath.Join(r.cfg.dir(), classesFile), b)
		}
		if err != nil {
			_ = st.close()
			return nil, false, fmt.Errorf("%w: record class %s: %w", errStoreFailed, name, err)
		}
	}
	r.mu.Lock()
	r.classes[name] = st
	// Topics the class now covers publish into the class's stream from here
	// on; their own streams are retired.
	for t := range r.topics {
		if topic.Covers(name, t) {
			delete(r.topics, t)
		}
	}
	r.mu.Unlock()
	return norm, true, nil
}

// openStream creates the stream of a class, opening its log when durable.
func (r *registry) openStream(c *eventsv1.EventClass) (*stream, error) {
	maxEvents := c.GetMaxEvents()
	if maxEvents == 0 {
		maxEvents = r.cfg.MemoryRetained
		if c.GetDurable() {
			maxEvents = r.cfg.DurableRetained
		}
	}
	o := streamOptions{
		name: c.GetName(), class: c, maxEvents: maxEvents, retention: c.GetRetention().AsDuration(),
		dedup: newDedupWindow(r.cfg.DedupWindow, r.cfg.DedupMaxEntries), fanout: r.fanout, log: r.log,
	}
	if !c.GetDurable() {
		o.ringSize = int(min(maxEvents, math.MaxInt32))
		return newMemoryStream(o), nil
	}
	o.ringSize = int(min(uint64(r.cfg.DurableCache), maxEvents))
	sum := sha256.Sum256([]byte(c.GetName()))
	dir := filepath.Join(r.cfg.dir(), "streams", hex.EncodeToString(sum[:16]))
	store, err := openLog(dir, c.GetName(), logOptions{
		segmentBytes: r.cfg.SegmentBytes,
		rollEvents:   int(max(min(maxEvents/4, math.MaxInt32), 64)),
		maxBody:      r.cfg.MaxEventBytes + 64<<10,
		noSync:       r.cfg.NoSync,
		now:          r.now,
		log:          r.log,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: open stream %s: %w", errStoreFailed, c.GetName(), err)
	}
	st, err := newDurableStream(o, store, r.now())
	if err != nil {
		_ = store.close()
		return nil, fmt.Errorf("open stream %s: %w", c.GetName(), err)
	}
	return st, nil
}

// get returns a class by name.
func (r *registry) get(name string) (*eventsv1.EventClass, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	st, ok := r.classes[name]
	if !ok {
		return nil, false
	}
	return st.class, true
}

// list returns the classes sorted by name.
func (r *registry) list() []*eventsv1.EventClass {
	r.mu.RLock()
	out := make([]*eventsv1.EventClass, 0, len(r.classes))
	for _, st := range r.classes {
		out = append(out, st.class)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b *eventsv1.EventClass) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// classFor returns the stream of the most specific class covering t. The
// caller holds mu.
func (r *registry) classFor(t string) *stream {
	if topic.IsArtifactKey(t) {
		return r.classes[t]
	}
	for i := len(t); i > 0; i = strings.LastIndexByte(t[:i], ':') {
		if st, ok := r.classes[t[:i]]; ok {
			return st
		}
	}
	return nil
}

// streamFor returns the stream a concrete topic publishes into, creating a
// topic stream when no class covers it (evicting the least recently
// published topic stream beyond MaxTopics).
func (r *registry) streamFor(t string) *stream {
	r.mu.RLock()
	st := r.classFor(t)
	if st == nil {
		st = r.topics[t]
	}
	r.mu.RUnlock()
	if st != nil {
		return st
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.classFor(t); st != nil {
		return st
	}
	if st, ok := r.topics[t]; ok {
		return st
	}
	if len(r.topics) >= r.cfg.MaxTopics {
		var oldest string
		var at int64 = math.MaxInt64
		for name, s := range r.topics {
			if u := s.lastUsed.Load(); u < at {
				oldest, at = name, u
			}
		}
		delete(r.topics, oldest)
	}
	st = newMemoryStream(streamOptions{
		name: t, maxEvents: uint64(r.cfg.TopicRetained), ringSize: r.cfg.TopicRetained,
		dedup: newDedupWindow(r.cfg.DedupWindow, r.cfg.DedupMaxEntries), fanout: r.fanout, log: r.log,
	})
	st.lastUsed.Store(r.now().UnixNano())
	r.topics[t] = st
	return st
}

// resolveOne returns the one stream every event a selector can match
// publishes into, if there is exactly one: the stream of an exact topic or
// key, or of the class a pattern lies within when no more specific class
// takes part of it.
func (r *registry) resolveOne(sel topic.Selector) (*stream, bool) {
	if exact, ok := sel.Exact(); ok {
		return r.streamFor(exact), true
	}
	if sel.Kind() != topic.SelectPattern {
		return nil, false
	}
	p := sel.Pattern()
	r.mu.RLock()
	defer r.mu.RUnlock()
	best := ""
	for name := range r.classes {
		if p.Within(name) && len(name) > len(best) {
			best = name
		}
	}
	if best == "" {
		return nil, false
	}
	for name := range r.classes {
		if name != best && topic.Covers(best, name) && p.OverlapsClass(name) {
			return nil, false
		}
	}
	return r.classes[best], true
}

// streams returns every stream.
func (r *registry) streams() []*stream {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*stream, 0, len(r.classes)+len(r.topics))
	for _, st := range r.classes {
		out = append(out, st)
	}
	for _, st := range r.topics {
		out = append(out, st)
	}
	return out
}

// close closes every stream, committing what durable streams hold.
func (r *registry) close() error {
	var errs []error
	for _, st := range r.streams() {
		if err := st.close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DeclareClass declares a class; redeclaring an identical one is a no-op.
func (s *Service) DeclareClass(ctx context.Context, req *eventsv1.DeclareClassRequest) (*eventsv1.DeclareClassResponse, error) {
	if s.closed.Load() {
		return nil, toStatus(ctx, s.log, errShuttingDown)
	}
	c, created, err := s.reg.declare(req.GetClass())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if created {
		s.log.InfoContext(ctx, "events: class declared", "class", c.GetName(), "durable", c.GetDurable(),
			"schema_version", c.GetSchemaVersion(), "caller", auth.Caller(ctx).Name)
	}
	return &eventsv1.DeclareClassResponse{Class: c, Created: created}, nil
}

// GetClass returns one class.
func (s *Service) GetClass(ctx context.Context, req *eventsv1.GetClassRequest) (*eventsv1.GetClassResponse, error) {
	c, ok := s.reg.get(req.GetName())
	if !ok {
		return nil, toStatus(ctx, s.log, failure(errClassUnknown, "", "name", req.GetName()))
	}
	return &eventsv1.GetClassResponse{Class: c}, nil
}

// ListClasses returns every class, sorted by name.
func (s *Service) ListClasses(context.Context, *eventsv1.ListClassesRequest) (*eventsv1.ListClassesResponse, error) {
	return &eventsv1.ListClassesResponse{Classes: s.reg.list()}, nil
}
