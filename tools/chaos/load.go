package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/wait"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// The topics of the load: a durable class (fsynced before the ack) and a
// plain topic with no class.
const (
	durableTopic = "chaos-durable"
	plainTopic   = "chaos-plain"
	callTimeout  = 3 * time.Second
	personas     = 12
	keepEngrams  = 30
	// retained bounds what each of the load's event streams keeps in
	// memory; setup fills it, so the runtime baseline already holds it.
	retained = 1024
)

// prefill publishes retained events on each of the load's topics, so their
// in-memory retention is full before the baseline.
func prefill(ctx context.Context, ev eventsv1.EventsServiceClient) error {
	for _, topic := range []string{durableTopic, plainTopic} {
		st, err := ev.PublishStream(ctx)
		if err != nil {
			return err
		}
		req := &eventsv1.PublishStreamRequest{}
		for i := range retained {
			req.Publishes = append(req.Publishes, &eventsv1.PublishRequest{Topic: topic, Payload: payload(map[string]any{"prefill": float64(i)})})
		}
		if err := st.Send(req); err != nil {
			return err
		}
		if _, err := st.Recv(); err != nil {
			return err
		}
		if err := st.CloseSend(); err != nil {
			return err
		}
		if _, err := st.Recv(); !errors.Is(err, io.EOF) {
			return fmt.Errorf("prefill %s: %w", topic, err)
		}
	}
	return nil
}

// load drives the mixed load and records every acknowledgement the
// invariants are checked against.
type load struct {
	c     Cluster
	log   *slog.Logger
	nodes []string
	// Who serves what (from Members): in process mode every node serves
	// everything; in compose each container serves one service.
	routers, streams, genomes, audits []string
	admin                             map[string]*grpc.ClientConn // through the fabric, as admin
	user                              map[string]*grpc.ClientConn // through the fabric, as user
	rng                               *rand.Rand
	rngMu                             sync.Mutex

	seq atomic.Uint64

	mu         sync.Mutex
	dispatches []Dispatch
	acked      map[string][]uint64 // durable stream (node) -> acked sequences
	genesis    map[string]uint64   // durable stream -> the sequence subscribers start after
	refusals   map[string][]string // node -> acknowledged refusal ids
	// live holds, per persona, the engrams remembered and not forgotten,
	// oldest first; forgetting beyond keepEngrams keeps the population
	// (and the nodes' heap) steady.
	live      map[string][]engramRec
	forgotten int
	// forgetsUnacked counts engrams whose forget was not acknowledged:
	// they may or may not exist, so they are not checked.
	forgetsUnacked int
	artifacts      []artifactRec
	personas       map[string]string // node -> genome persona
	ops            map[string]int    // "op code" -> count
	subs           []*durableSub
	plainAcked     atomic.Uint64
	plainGot       atomic.Uint64
}

type engramRec struct {
	persona, id, content, servedBy string
}

type artifactRec struct {
	node, id, sha string
}

func newLoad(c Cluster, seed uint64, log *slog.Logger) (*load, error) {
	l := &load{
		c: c, log: log, nodes: c.Nodes(), admin: map[string]*grpc.ClientConn{}, user: map[string]*grpc.ClientConn{},
		rng:   rand.New(rand.NewPCG(seed, seed+1)),
		acked: map[string][]uint64{}, genesis: map[string]uint64{}, refusals: map[string][]string{},
		personas: map[string]string{}, ops: map[string]int{},
		live: map[string][]engramRec{},
	}
	for _, n := range l.nodes {
		a, err := dial(c, c.ClientAddr(n), c.AdminToken())
		if err != nil {
			return nil, err
		}
		u, err := dial(c, c.ClientAddr(n), c.UserToken())
		if err != nil {
			return nil, err
		}
		l.admin[n], l.user[n] = a, u
		l.personas[n] = uuid.NewSHA1(uuid.NameSpaceOID, []byte("chaos-persona-"+n)).String()
	}
	return l, nil
}

func (l *load) close() {
	for _, cc := range l.admin {
		_ = cc.Close()
	}
	for _, cc := range l.user {
		_ = cc.Close()
	}
}

func (l *load) intn(n int) int {
	l.rngMu.Lock()
	defer l.rngMu.Unlock()
	return l.rng.IntN(n)
}

func (l *load) count(op string, err error) {
	code := "OK"
	if err != nil {
		code = status.Code(err).String()
		if r := rpcerr.Reason(err); r != "" {
			code += "/" + r
		}
	}
	l.mu.Lock()
	l.ops[op+" "+code]++
	l.mu.Unlock()
}

// setup declares the durable class, registers each node's genome persona,
// uploads a first artifact to each node and publishes a genesis event on
// each durable stream, retrying until the mesh answers.
func (l *load) setup(ctx context.Context) error {
	if err := l.roles(ctx); err != nil {
		return err
	}
	for _, n := range l.streams {
		err := retry(ctx, 30*time.Second, func(ctx context.Context) error {
			ev := eventsv1.NewEventsServiceClient(l.admin[n])
			for _, class := range []*eventsv1.EventClass{
				{Name: durableTopic, SchemaVersion: "1", Durable: true, MaxEvents: retained},
				{Name: plainTopic, SchemaVersion: "1", MaxEvents: retained},
			} {
				if _, err := ev.DeclareClass(ctx, &eventsv1.DeclareClassRequest{Class: class}); err != nil && status.Code(err) != codes.AlreadyExists {
					return fmt.Errorf("declare class: %w", err)
				}
			}
			if err := prefill(ctx, ev); err != nil {
				return err
			}
			resp, err := ev.Publish(ctx, &eventsv1.PublishRequest{Topic: durableTopic, MsgId: "genesis-" + n, Payload: payload(map[string]any{"genesis": true})})
			if err != nil {
				return fmt.Errorf("genesis publish: %w", err)
			}
			l.mu.Lock()
			l.genesis[n] = resp.GetStreamSequence()
			l.mu.Unlock()
			return nil
		})
		if err != nil {
			return fmt.Errorf("setup on %s: %w", n, err)
		}
	}
	for _, n := range l.genomes {
		if err := retry(ctx, 30*time.Second, func(ctx context.Context) error { return l.registerPersona(ctx, n) }); err != nil {
			return fmt.Errorf("setup on %s: %w", n, err)
		}
		// Fill the persona's working set (and the fast tier), so the
		// baseline already holds the memory the load keeps resident.
		err := retry(ctx, 30*time.Second, func(ctx context.Context) error {
			for range 16 {
				id, err := l.putArtifact(ctx, n)
				if err != nil {
					return err
				}
				if _, err := genomev1.NewGenomeServiceClient(l.admin[n]).PageIn(ctx, &genomev1.PageInRequest{
					PersonaId: l.personas[n],
					Page:      &genomev1.PageRef{Kind: genomev1.PageKind_PAGE_KIND_WHOLE, ArtifactId: id},
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("setup on %s: %w", n, err)
		}
	}
	return nil
}

func (l *load) registerPersona(ctx context.Context, n string) error {
	_, err := genomev1.NewGenomeServiceClient(l.admin[n]).RegisterPersona(ctx, &genomev1.RegisterPersonaRequest{PersonaId: l.personas[n], CapacityBytes: 256 << 10})
	if err != nil {
		return fmt.Errorf("register persona: %w", err)
	}
	return nil
}

// putArtifact uploads 4 to 16 KiB of random bytes to node n.
func (l *load) putArtifact(ctx context.Context, n string) (string, error) {
	size := 4096 + l.intn(8192)
	b := make([]byte, size)
	l.rngMu.Lock()
	for i := range b {
		b[i] = byte(l.rng.Uint32())
	}
	l.rngMu.Unlock()
	sum := sha256.Sum256(b)
	sha := hex.EncodeToString(sum[:])
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	st, err := genomev1.NewGenomeServiceClient(l.admin[n]).PutArtifact(cctx)
	if err != nil {
		return "", err
	}
	if err := st.Send(&genomev1.PutArtifactRequest{Part: &genomev1.PutArtifactRequest_Header{Header: &genomev1.PutArtifactHeader{
		Name: "chaos", Sha256: sha, SizeBytes: uint64(size),
	}}}); err != nil {
		_, err = st.CloseAndRecv()
		return "", err
	}
	if err := st.Send(&genomev1.PutArtifactRequest{Part: &genomev1.PutArtifactRequest_Chunk{Chunk: b}}); err != nil {
		_, err = st.CloseAndRecv()
		return "", err
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	l.artifacts = append(l.artifacts, artifactRec{node: n, id: resp.GetArtifactId(), sha: sha})
	l.mu.Unlock()
	return resp.GetArtifactId(), nil
}

func payload(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err) // the harness's own literals
	}
	return s
}

// retry calls f until it succeeds or within passes.
func retry(ctx context.Context, within time.Duration, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(within)
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := f(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		if !wait.Sleep(ctx, 200*time.Millisecond) {
			return err
		}
	}
}

// every runs f each period until ctx ends.
func every(ctx context.Context, wg *sync.WaitGroup, period time.Duration, f func(ctx context.Context)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			f(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// roles finds which nodes serve the router, events, genome and audit.
func (l *load) roles(ctx context.Context) error {
	var members []*meshv1.Member
	err := retry(ctx, 30*time.Second, func(ctx context.Context) error {
		resp, err := meshv1.NewMeshServiceClient(l.admin[l.nodes[0]]).Members(ctx, &meshv1.MembersRequest{})
		members = resp.GetMembers()
		return err
	})
	if err != nil {
		return fmt.Errorf("members: %w", err)
	}
	l.routers, l.streams, l.genomes, l.audits = nil, nil, nil, nil
	for _, m := range members {
		if !slices.Contains(l.nodes, m.GetName()) {
			continue
		}
		for _, svc := range m.GetServices() {
			switch svc {
			case "router":
				l.routers = append(l.routers, m.GetName())
			case "events":
				l.streams = append(l.streams, m.GetName())
			case "genome":
				l.genomes = append(l.genomes, m.GetName())
			case "audit":
				l.audits = append(l.audits, m.GetName())
			}
		}
	}
	if len(l.routers) == 0 || len(l.streams) == 0 || len(l.genomes) == 0 || len(l.audits) == 0 {
		return fmt.Errorf("the mesh lacks a service: routers %v, events %v, genome %v, audit %v", l.routers, l.streams, l.genomes, l.audits)
	}
	return nil
}

func (l *load) pick(from []string) string { return from[l.intn(len(from))] }

// run drives the writers (publishes, dispatches, uploads) until ctx ends.
func (l *load) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, n := range l.streams {
		ev := eventsv1.NewEventsServiceClient(l.admin[n])
		every(ctx, &wg, 40*time.Millisecond, func(ctx context.Context) {
			k := l.seq.Add(1)
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			// No msg_id: it would be remembered for the dedup window (2 min)
			// and read as heap growth by the leak check; the harness never
			// retries a publish, so it needs no idempotency.
			resp, err := ev.Publish(cctx, &eventsv1.PublishRequest{
				Topic:   durableTopic,
				Payload: payload(map[string]any{"k": float64(k)}),
			})
			cancel()
			if ctx.Err() != nil {
				return
			}
			l.count("publish-durable", err)
			if err == nil {
				l.mu.Lock()
				l.acked[n] = append(l.acked[n], resp.GetStreamSequence())
				l.mu.Unlock()
			}
		})
		every(ctx, &wg, 40*time.Millisecond, func(ctx context.Context) {
			k := l.seq.Add(1)
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			_, err := ev.Publish(cctx, &eventsv1.PublishRequest{Topic: plainTopic, Payload: payload(map[string]any{"k": float64(k)})})
			cancel()
			if ctx.Err() != nil {
				return
			}
			l.count("publish-plain", err)
			if err == nil {
				l.plainAcked.Add(1)
			}
		})
	}
	for _, n := range l.genomes {
		every(ctx, &wg, 3*time.Second, func(ctx context.Context) {
			_, err := l.putArtifact(ctx, n)
			if ctx.Err() == nil {
				l.count("put-artifact", err)
			}
		})
	}
	for range 3 {
		every(ctx, &wg, 25*time.Millisecond, l.dispatchOne)
	}
	wg.Wait()
}

// dispatchOne sends one command through a random node's router: a
// cross-peer call, a remember (sharded by persona), a page-in, a local
// call, or a refusal.
func (l *load) dispatchOne(ctx context.Context) {
	via := l.pick(l.routers)
	k := l.seq.Add(1)
	var (
		op   string
		req  *routerv1.DispatchRequest
		conn = l.admin[via]
		eng  engramRec
	)
	// Refusals are rare (1 in 40): each one is an event the audit class
	// keeps in memory (4096 per node), which the leak check would read as
	// heap growth.
	switch pick := l.intn(40); {
	case pick < 15:
		op = "dispatch-peer"
		to := l.pick(l.routers)
		req = &routerv1.DispatchRequest{Uri: "airc://" + to + "/debug/get-log-level"}
	case pick < 21:
		op = "remember"
		eng = engramRec{persona: "chaos-" + strconv.Itoa(l.intn(personas)), id: "chaos-" + strconv.FormatUint(k, 10)}
		eng.content = fmt.Sprintf("chaos engram %d about topic %d", k, k%7)
		req = &routerv1.DispatchRequest{Uri: "hippocampus/remember", Params: payload(map[string]any{
			"persona": eng.persona, "channel": "chaos",
			"engram": map[string]any{"id": eng.id, "content": eng.content},
		})}
	case pick < 31:
		op = "page-in"
		// The router's own genome when it runs one, else the mesh's.
		g := via
		if !slices.Contains(l.genomes, g) {
			g = l.pick(l.genomes)
		}
		l.mu.Lock()
		var arts []string
		for _, a := range l.artifacts {
			if a.node == g {
				arts = append(arts, a.id)
			}
		}
		l.mu.Unlock()
		if len(arts) == 0 {
			return
		}
		req = &routerv1.DispatchRequest{Uri: "genome/page-in", Params: payload(map[string]any{
			"persona_id": l.personas[g], "page": map[string]any{"kind": "PAGE_KIND_WHOLE", "artifact_id": arts[l.intn(len(arts))]},
		})}
	case pick < 39:
		op = "dispatch-local"
		req = &routerv1.DispatchRequest{Uri: "mesh/resolve", Params: payload(map[string]any{"service": "hippocampus", "key": "chaos-" + strconv.Itoa(l.intn(personas))})}
	default:
		op = "refusal"
		conn = l.user[via]
		req = &routerv1.DispatchRequest{Uri: "debug/get-log-level?chaos=r" + strconv.FormatUint(k, 10)}
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	resp, err := routerv1.NewRouterServiceClient(conn).Dispatch(cctx, req)
	cancel()
	end := time.Now()
	if ctx.Err() != nil {
		return
	}
	if op == "refusal" {
		if status.Code(err) == codes.PermissionDenied && strings.HasPrefix(rpcerr.Reason(err), "FORBIDDEN_") {
			l.count(op, nil)
			l.mu.Lock()
			l.refusals[via] = append(l.refusals[via], "r"+strconv.FormatUint(k, 10))
			l.mu.Unlock()
			return
		}
		if err == nil {
			err = errors.New("refusal was allowed")
		}
		l.count(op, err)
		return
	}
	if op == "page-in" && rpcerr.Reason(err) == "PERSONA_UNKNOWN" {
		for _, g := range l.genomes {
			_ = l.registerPersona(ctx, g)
		}
	}
	l.count(op, err)
	if err != nil {
		return
	}
	l.mu.Lock()
	l.dispatches = append(l.dispatches, Dispatch{Via: via, ServedBy: resp.GetServedBy(), URI: req.GetUri(), Start: start, End: end})
	var old *engramRec
	if op == "remember" {
		eng.servedBy = resp.GetServedBy()
		l.live[eng.persona] = append(l.live[eng.persona], eng)
		if q := l.live[eng.persona]; len(q) > keepEngrams {
			old = &q[0]
			l.live[eng.persona] = q[1:]
		}
	}
	l.mu.Unlock()
	if old != nil {
		l.forget(ctx, via, *old)
	}
}

// remember stores one engram through via's router (setup).
func (l *load) remember(ctx context.Context, via string, e engramRec) (string, error) {
	resp, err := routerv1.NewRouterServiceClient(l.admin[via]).Dispatch(ctx, &routerv1.DispatchRequest{Uri: "hippocampus/remember", Params: payload(map[string]any{
		"persona": e.persona, "channel": "chaos", "engram": map[string]any{"id": e.id, "content": e.content},
	})})
	if err != nil {
		return "", err
	}
	return resp.GetServedBy(), nil
}

// forget forgets the oldest engram of a persona. An engram whose forget
// was not acknowledged may or may not exist: it is left out of the check.
func (l *load) forget(ctx context.Context, via string, e engramRec) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	_, err := routerv1.NewRouterServiceClient(l.admin[via]).Dispatch(cctx, &routerv1.DispatchRequest{
		Uri:    "hippocampus/forget",
		Params: payload(map[string]any{"persona": e.persona, "engram_id": e.id}),
	})
	cancel()
	l.count("forget", err)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.forgetsUnacked++
		return
	}
	l.forgotten++
}

// seedEngrams fills every persona with keepEngrams engrams, so the
// baseline already holds the population the load keeps steady.
func (l *load) seedEngrams(ctx context.Context) error {
	for p := range personas {
		for i := range keepEngrams {
			e := engramRec{persona: "chaos-" + strconv.Itoa(p), id: fmt.Sprintf("seed-%d-%d", p, i)}
			e.content = fmt.Sprintf("seed engram %d of persona %d about topic %d", i, p, i%7)
			via := l.routers[(p+i)%len(l.routers)]
			err := retry(ctx, 30*time.Second, func(ctx context.Context) error {
				var err error
				e.servedBy, err = l.remember(ctx, via, e)
				return err
			})
			if err != nil {
				return fmt.Errorf("seed engrams: %w", err)
			}
			l.mu.Lock()
			l.live[e.persona] = append(l.live[e.persona], e)
			l.mu.Unlock()
		}
	}
	return nil
}

// durableSub is a durable subscriber of one node's durable stream: direct
// to the node's events service, or through another node's router
// (RouterService.Subscribe on airc://<node>/events/...). It resumes after
// the last stream sequence it got whenever its stream breaks.
type durableSub struct {
	name, stream string
	routed       bool
	l            *load

	mu         sync.Mutex
	seqs       []uint64
	last       uint64
	lags       int
	reconnects int
}

func (l *load) newSubs() {
	for i, n := range l.streams {
		l.subs = append(l.subs,
			&durableSub{name: "direct@" + n, stream: n, l: l, last: l.genesis[n]},
			&durableSub{name: "routed@" + n + "-via-" + l.routers[(i+1)%len(l.routers)], stream: n, routed: true, l: l, last: l.genesis[n]})
	}
}

func (s *durableSub) log() SubscriberLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SubscriberLog{Name: s.name, Stream: s.stream, Seqs: append([]uint64(nil), s.seqs...), Lags: s.lags, Reconnects: s.reconnects}
}

func (s *durableSub) top() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *durableSub) deliver(d *eventsv1.Delivery) {
	if d == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqs = append(s.seqs, d.GetStreamSequence())
	s.last = max(s.last, d.GetStreamSequence())
}

// run keeps the subscription open until ctx ends. ready is closed after
// the first ack.
func (s *durableSub) run(ctx context.Context, ready chan<- struct{}) {
	first := true
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if !first {
			s.mu.Lock()
			s.reconnects++
			s.mu.Unlock()
		}
		acked, err := s.once(ctx, func() {
			if first {
				first = false
				close(ready)
			}
		})
		if ctx.Err() != nil {
			return
		}
		if acked {
			backoff = 100 * time.Millisecond
		}
		s.l.log.Debug("durable subscription ended; resuming", "subscriber", s.name, "after", s.top(), "error", err)
		if !wait.Sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (s *durableSub) once(ctx context.Context, onAck func()) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	after := s.top()
	var gotAck atomic.Bool
	// A stalled stream (its node paused) is noticed by the watchdog: no
	// ack within the call timeout ends the attempt.
	ackTimer := time.AfterFunc(callTimeout, func() {
		if !gotAck.Load() {
			cancel()
		}
	})
	defer ackTimer.Stop()
	// next reads one message of either kind of stream as an ack, the
	// deliveries it carries, or a lag notice.
	var next func() (ack bool, ds []*eventsv1.Delivery, lag *eventsv1.Lag, err error)
	if s.routed {
		// Across the grid to the stream's node when it runs a router of
		// its own; else (compose: one events service) the router's local
		// route, which reaches the mesh's events service.
		uri := "events/" + durableTopic
		if slices.Contains(s.l.routers, s.stream) {
			uri = "airc://" + s.stream + "/" + uri
		}
		st, err := routerv1.NewRouterServiceClient(s.l.admin[s.viaNode()]).Subscribe(sctx, &routerv1.SubscribeRequest{
			Uri: uri, StartAfterSequence: after,
		})
		if err != nil {
			return false, err
		}
		next = func() (bool, []*eventsv1.Delivery, *eventsv1.Lag, error) {
			m, err := st.Recv()
			return m.GetAck() != nil, nonNil(m.GetDelivery()), m.GetLag(), err
		}
	} else {
		st, err := eventsv1.NewEventsServiceClient(s.l.admin[s.stream]).Subscribe(sctx, &eventsv1.SubscribeRequest{
			Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: durableTopic}, StartAfterSequence: after,
		})
		if err != nil {
			return false, err
		}
		next = func() (bool, []*eventsv1.Delivery, *eventsv1.Lag, error) {
			m, err := st.Recv()
			return m.GetAck() != nil, append(nonNil(m.GetDelivery()), m.GetBatch().GetDeliveries()...), m.GetLag(), err
		}
	}
	for {
		ack, ds, lag, err := next()
		if err != nil {
			return gotAck.Load(), err
		}
		switch {
		case ack:
			gotAck.Store(true)
			onAck()
		case lag != nil:
			s.mu.Lock()
			s.lags++
			s.mu.Unlock()
			return true, nil // resubscribe from what we have
		}
		for _, d := range ds {
			s.deliver(d)
		}
	}
}

func nonNil(d *eventsv1.Delivery) []*eventsv1.Delivery {
	if d == nil {
		return nil
	}
	return []*eventsv1.Delivery{d}
}

// viaNode is the router a routed subscriber goes through: named in its
// name, or another live one on a retry.
func (s *durableSub) viaNode() string {
	_, via, _ := strings.Cut(s.name, "-via-")
	s.mu.Lock()
	r := s.reconnects
	s.mu.Unlock()
	var others []string
	for _, n := range s.l.routers {
		if n != s.stream || len(s.l.routers) == 1 {
			others = append(others, n)
		}
	}
	if r == 0 || len(others) == 0 {
		return via
	}
	return others[r%len(others)]
}

// plainSub counts what a plain subscriber of one node gets (no invariant:
// plain events are not promised to survive anything).
func (l *load) plainSub(ctx context.Context, n string) {
	for ctx.Err() == nil {
		st, err := eventsv1.NewEventsServiceClient(l.admin[n]).Subscribe(ctx, &eventsv1.SubscribeRequest{
			Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: plainTopic},
		})
		if err == nil {
			for {
				m, err := st.Recv()
				if err != nil {
					break
				}
				if m.GetDelivery() != nil {
					l.plainGot.Add(1)
				}
				l.plainGot.Add(uint64(len(m.GetBatch().GetDeliveries())))
			}
		}
		if !wait.Sleep(ctx, 200*time.Millisecond) {
			return
		}
	}
}

// readPage reads a resident page back and returns the SHA-256 of its bytes.
func readPage(ctx context.Context, cc *grpc.ClientConn, persona, artifact string) (string, error) {
	st, err := genomev1.NewGenomeServiceClient(cc).ReadPage(ctx, &genomev1.ReadPageRequest{
		PersonaId: persona,
		Page:      &genomev1.PageRef{Kind: genomev1.PageKind_PAGE_KIND_WHOLE, ArtifactId: artifact},
	})
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return "", err
		}
		h.Write(m.GetChunk())
	}
}
