package genome

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/continuum-mesh/continuum/pkg/auditevents"
	"github.com/continuum-mesh/continuum/pkg/wait"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
)

// The artifact keys the manager publishes on.
const (
	TopicPageFault    = "genome/working_set.page_fault"
	TopicEviction     = "genome/working_set.eviction"
	TopicAccessDenied = auditevents.ArtifactAccessDenied
	// SchemaVersion is the schema version of all three payloads.
	SchemaVersion = auditevents.SchemaVersion
)

// outbox publishes events without ever making a page-in wait for the
// events service. Page faults and evictions go through a bounded queue:
// when it is full, or a publish fails three times, the event is dropped,
// counted and logged (rate-limited). Access denials go through their own
// queue and are retried with backoff until published; the ones still
// queued at Close are written to a spool file and queued again at start,
// so a restart does not lose them.
type outbox struct {
	pub     EventPublisher
	log     *slog.Logger
	node    string
	boot    string
	now     func() time.Time
	timeout time.Duration
	spoolTo string

	best chan outEvent

	mu       sync.Mutex
	denials  []*eventsv1.PublishRequest
	maxDeny  int
	notify   chan struct{}
	declared chan struct{}

	seq            atomic.Uint64
	published      atomic.Uint64
	dropped        atomic.Uint64
	deniedDropped  atomic.Uint64
	lastDropLogged atomic.Int64
}

// outEvent is a page fault or an eviction waiting to be rendered.
type outEvent struct {
	topic   string
	persona PersonaID
	ref     PageRef
	fault   PageFault
	evict   EvictionRecord
	size    uint64
	pre     bool
	caller  string
	at      time.Time
	msgID   string
}

// OutboxStats are the outbox's counters.
type OutboxStats struct {
	// Published counts events the events service acknowledged.
	Published uint64
	// Queued is the page-fault and eviction events waiting.
	Queued int
	// Dropped counts page-fault and eviction events lost: the queue was
	// full, publishing failed three times, or the service closed first.
	Dropped        uint64
	DenialsPending int
	// DenialsDropped counts access denials lost (queue full or no data
	// directory to keep them across a restart); each is in the log.
	DenialsDropped uint64
}

func newOutbox(s *Service, pub EventPublisher, cfg Config) *outbox {
	var b [4]byte
	_, _ = crand.Read(b[:])
	o := &outbox{
		pub: pub, node: cfg.Node, boot: hex.EncodeToString(b[:]), now: s.now, timeout: cfg.PublishTimeout,
		best: make(chan outEvent, cfg.EventQueue), maxDeny: cfg.DenialQueue,
		notify: make(chan struct{}, 1), declared: make(chan struct{}), log: s.log,
	}
	if cfg.DataDir != "" {
		o.spoolTo = filepath.Join(cfg.DataDir, "genome", "outbox", "access_denied.json")
	}
	return o
}

func (o *outbox) msgID() string {
	return o.node + "-" + o.boot + "-" + strconv.FormatUint(o.seq.Add(1), 10)
}

// pageFault queues a page-fault event.
func (o *outbox) pageFault(p PersonaID, ref PageRef, f PageFault, size uint64, prefetch bool, caller string) {
	if o.pub == nil {
		return
	}
	o.offer(outEvent{topic: TopicPageFault, persona: p, ref: ref, fault: f, size: size, pre: prefetch, caller: caller, at: o.now(), msgID: o.msgID()})
}

// evictions queues eviction events.
func (o *outbox) evictions(recs []EvictionRecord) {
	if o.pub == nil {
		return
	}
	for _, r := range recs {
		o.offer(outEvent{topic: TopicEviction, evict: r, at: o.now(), msgID: o.msgID()})
	}
}

func (o *outbox) offer(ev outEvent) {
	select {
	case o.best <- ev:
	default:
		o.drop(ev.topic, "outbox full")
	}
}

// drop counts a lost best-effort event and logs at most every 10 s.
func (o *outbox) drop(topic, why string) {
	n := o.dropped.Add(1)
	now := time.Now().UnixNano()
	last := o.lastDropLogged.Load()
	if now-last >= int64(10*time.Second) && o.lastDropLogged.CompareAndSwap(last, now) {
		o.log.Warn("genome: dropping events", "topic", topic, "why", why, "dropped_total", n)
	}
}

// deny queues an access-denied event; it is also logged, so a denial is
// on record even when the events service is down.
func (o *outbox) deny(rec AccessDenied) {
	o.log.Warn("genome: access denied", "actor", rec.Actor.String(), "caller", rec.Caller, "owner", rec.Owner.String(),
		"page", rec.Page.String(), "operation", rec.Operation, "reason", rec.Reason)
	if o.pub == nil {
		return
	}
	req, err := o.render(TopicAccessDenied, o.msgID(), rec.Actor, denialProto(rec, o.node))
	if err != nil {
		o.deniedDropped.Add(1)
		o.log.Error("genome: render access-denied event", "error", err)
		return
	}
	o.mu.Lock()
	if len(o.denials) >= o.maxDeny {
		o.mu.Unlock()
		o.deniedDropped.Add(1)
		o.log.Error("genome: access-denied outbox full; the denial is only in this log", "actor", rec.Actor.String(), "page", rec.Page.String())
		return
	}
	o.denials = append(o.denials, req)
	o.mu.Unlock()
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

// render builds a publish request whose payload is msg in protobuf JSON
// (proto field names).
func (o *outbox) render(topic, msgID string, p PersonaID, msg proto.Message) (*eventsv1.PublishRequest, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
	if err != nil {
		return nil, err
	}
	payload := &structpb.Struct{}
	if err := protojson.Unmarshal(b, payload); err != nil {
		return nil, err
	}
	return &eventsv1.PublishRequest{
		Topic: topic, Payload: payload, MsgId: msgID, SchemaVersion: SchemaVersion,
		Headers: map[string]string{"node": o.node, "persona_id": p.String()},
	}, nil
}

func (o *outbox) renderEvent(ev outEvent) (*eventsv1.PublishRequest, error) {
	if ev.topic == TopicPageFault {
		return o.render(ev.topic, ev.msgID, ev.persona, &genomev1.PageFaultEvent{
			PersonaId: ev.persona.String(), Page: refProto(ev.ref), From: roleProto(ev.fault.From), To: roleProto(ev.fault.To),
			SizeBytes: ev.size, Prefetch: ev.pre, Caller: ev.caller, Node: o.node, At: timestamppb.New(ev.at),
		})
	}
	return o.render(ev.topic, ev.msgID, ev.evict.Persona, &genomev1.EvictionEvent{
		Record: evictionProto(ev.evict), SizeBytes: ev.evict.Size, Node: o.node, At: timestamppb.New(ev.at),
	})
}

// run starts the outbox's goroutines in g.
func (o *outbox) run(ctx context.Context, g *errgroup.Group) {
	if o.pub == nil {
		return
	}
	g.Go(func() error { o.declare(ctx); return nil })
	g.Go(func() error { o.runBest(ctx); return nil })
	g.Go(func() error { o.runDenials(ctx); return nil })
}

// eventClasses are declared at start. Access denials are durable, for the
// audit recorder, which declares the very same class (pkg/auditevents), so
// whoever starts first declares it and the other's declaration is a no-op.
func eventClasses() []*eventsv1.EventClass {
	fail := eventsv1.UnknownSchemaPolicy_UNKNOWN_SCHEMA_POLICY_FAIL
	return []*eventsv1.EventClass{
		auditevents.AccessDeniedClass(),
		{Name: TopicPageFault, SchemaVersion: SchemaVersion, OnUnknownSchema: fail},
		{Name: TopicEviction, SchemaVersion: SchemaVersion, OnUnknownSchema: fail},
	}
}

// declare declares the event classes, retrying while the events service
// is unreachable. A class someone declared differently is logged and
// used as it is.
func (o *outbox) declare(ctx context.Context) {
	defer close(o.declared)
	for _, c := range eventClasses() {
		for attempt := 0; ; attempt++ {
			cctx, cancel := context.WithTimeout(ctx, o.timeout)
			_, err := o.pub.DeclareClass(cctx, &eventsv1.DeclareClassRequest{Class: c})
			cancel()
			if err == nil {
				break
			}
			switch status.Code(err) {
			case codes.AlreadyExists, codes.Unimplemented, codes.PermissionDenied, codes.InvalidArgument, codes.FailedPrecondition:
				o.log.Warn("genome: event class not declared as wanted; publishing anyway", "class", c.GetName(), "error", err)
			default:
				if ctx.Err() != nil {
					return
				}
				if attempt%10 == 0 {
					o.log.Warn("genome: declare event class; retrying", "class", c.GetName(), "error", err)
				}
				if !wait.Sleep(ctx, backoff(attempt)) {
					return
				}
				continue
			}
			break
		}
	}
}

func (o *outbox) waitDeclared(ctx context.Context) bool {
	select {
	case <-o.declared:
		return true
	case <-ctx.Done():
		return false
	}
}

func (o *outbox) runBest(ctx context.Context) {
	if !o.waitDeclared(ctx) {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-o.best:
			req, err := o.renderEvent(ev)
			if err != nil {
				o.drop(ev.topic, "render: "+err.Error())
				continue
			}
			var perr error
			for attempt := range 3 {
				if perr = o.publish(ctx, req); perr == nil || ctx.Err() != nil {
					break
				}
				if !wait.Sleep(ctx, backoff(attempt)) {
					break
				}
			}
			if perr != nil {
				o.drop(ev.topic, "publish: "+perr.Error())
			}
		}
	}
}

func (o *outbox) runDenials(ctx context.Context) {
	if !o.waitDeclared(ctx) {
		return
	}
	attempt := 0
	for {
		o.mu.Lock()
		var head *eventsv1.PublishRequest
		if len(o.denials) > 0 {
			head = o.denials[0]
		}
		o.mu.Unlock()
		if head == nil {
			select {
			case <-ctx.Done():
				return
			case <-o.notify:
				continue
			}
		}
		if err := o.publish(ctx, head); err != nil {
			if ctx.Err() != nil {
				return
			}
			if attempt%10 == 0 {
				o.log.Warn("genome: publish access denial; retrying", "error", err, "attempt", attempt+1)
			}
			if !wait.Sleep(ctx, backoff(attempt)) {
				return
			}
			attempt++
			continue
		}
		attempt = 0
		o.mu.Lock()
		if len(o.denials) > 0 && o.denials[0] == head {
			o.denials = o.denials[1:]
		}
		o.mu.Unlock()
	}
}

func (o *outbox) publish(ctx context.Context, req *eventsv1.PublishRequest) error {
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if _, err := o.pub.Publish(cctx, req); err != nil {
		return err
	}
	o.published.Add(1)
	return nil
}

// stats returns the counters.
func (o *outbox) stats() OutboxStats {
	o.mu.Lock()
	pending := len(o.denials)
	o.mu.Unlock()
	return OutboxStats{
		Published: o.published.Load(), Queued: len(o.best), Dropped: o.dropped.Load(),
		DenialsPending: pending, DenialsDropped: o.deniedDropped.Load(),
	}
}

type spooled struct {
	Requests []json.RawMessage `json:"requests"`
}

// spool writes the undelivered denials (Close).
func (o *outbox) spool() error {
	if n := len(o.best); n > 0 {
		o.dropped.Add(uint64(n))
		o.log.Warn("genome: closing with unpublished page-fault and eviction events", "dropped", n)
	}
	if o.spoolTo == "" {
		if n := len(o.denials); n > 0 {
			o.deniedDropped.Add(uint64(n))
			o.log.Error("genome: closing with unpublished access denials and no data directory to keep them", "dropped", n)
		}
		return nil
	}
	o.mu.Lock()
	reqs := o.denials
	o.mu.Unlock()
	if len(reqs) == 0 {
		if err := os.Remove(o.spoolTo); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("genome: remove denial spool: %w", err)
		}
		return nil
	}
	var sp spooled
	for _, r := range reqs {
		b, err := protojson.Marshal(r)
		if err != nil {
			return fmt.Errorf("genome: spool denials: %w", err)
		}
		sp.Requests = append(sp.Requests, b)
	}
	b, err := json.Marshal(sp)
	if err != nil {
		return fmt.Errorf("genome: spool denials: %w", err)
	}
	if err := writeFileAtomic(o.spoolTo, b); err != nil {
		return fmt.Errorf("genome: spool denials: %w", err)
	}
	o.log.Info("genome: kept unpublished access denials for the next start", "count", len(reqs), "path", o.spoolTo)
	return nil
}

// unspool queues the denials a previous run kept. The file stays until
// the next Close rewrites it, so a crash publishes them again (the
// msg_id lets the events service drop the duplicates).
func (o *outbox) unspool() error {
	if o.spoolTo == "" {
		return nil
	}
	b, err := os.ReadFile(o.spoolTo)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("genome: read denial spool: %w", err)
	}
	var sp spooled
	if err := json.Unmarshal(b, &sp); err != nil {
		return fmt.Errorf("genome: denial spool %s: %w", o.spoolTo, err)
	}
	for _, raw := range sp.Requests {
		req := &eventsv1.PublishRequest{}
		if err := protojson.Unmarshal(raw, req); err != nil || req.GetTopic() != TopicAccessDenied {
			return fmt.Errorf("genome: denial spool %s: a request is not an access denial", o.spoolTo)
		}
		o.denials = append(o.denials, req)
	}
	if len(o.denials) > 0 {
		o.log.Info("genome: requeued access denials kept by the last run", "count", len(o.denials))
	}
	return nil
}

// backoff is exponential from 100 ms to 30 s, with jitter.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 9)
	d = min(d, 30*time.Second)
	return d/2 + rand.N(d/2+1)
}

// OutboxStats reports the event outbox's counters.
func (s *Service) OutboxStats() OutboxStats { return s.outbox.stats() }
