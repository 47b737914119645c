package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// Retention is not a leak. Each node's events service keeps the recent
// events of every stream in memory, up to a bound: the load's own
// classes (filled before the baseline, see prefill), and the mesh's own
// streams (the router's refusals in the durable audit class, the genome's
// page faults and evictions), which the harness cannot bound and which
// take far longer than a run to fill. So the leak check allows each node
// its heap baseline plus what its retention grew by since the baseline,
// measured, not guessed:
//
//   - at the baseline and again at the end, the harness counts the events
//     each of the mesh's streams holds in memory (a replay of its last
//     bound events: max_events, or the events service's defaults; a
//     durable stream keeps at most its cache in memory);
//   - after the final sample, for each stream whose count changed, it
//     measures what one of its events takes in memory on that node: it
//     publishes copies of the stream's own events (payload, headers,
//     msg_id) into a new class with the stream's durability, and takes the
//     live heap (after a GC) before and after 2,048 of them;
//   - a node's retention grew by the sum over its streams of the count's
//     change times that cost, and its heap may end at most (1+tolerance)
//     times baseline plus that growth.
//
// A leak anywhere else (a map that keeps every dispatch, a goroutine per
// subscription, events held past their bound) is not in that sum and
// still fails the check.

// The events service's in-memory retention defaults (services/events
// config.go): the nodes run with them.
const (
	eventsMemoryRetained  = 10_000    // max_events of a plain class that sets none
	eventsDurableRetained = 1_000_000 // max_events of a durable class that sets none
	eventsDurableCache    = 4096      // recent events of a durable stream kept in memory
	calibrationPrefix     = "chaos-calibration-"
	sampleMax             = 4096 // events kept per stream to republish
	calibrationWarm       = 64   // events published before the first heap sample
	calibrationEvents     = 2048 // events published between the two samples
	replayIdle            = 500 * time.Millisecond
)

// streamCount is what one stream of a node holds in memory.
type streamCount struct {
	Class     string `json:"class"`
	Durable   bool   `json:"durable"`
	MaxEvents uint64 `json:"max_events"`
	Events    int    `json:"events"`
	// sample holds the newest retained events, to republish.
	sample []*eventsv1.Delivery
}

// RetainedGrowth is what a node's retention grew by during the run.
type RetainedGrowth struct {
	// Per stream: events in memory at the baseline and at the end, and
	// what that change measured on this node.
	Streams []StreamGrowth `json:"streams"`
	// Bytes is the sum of (end - baseline) * bytes_per_event.
	Bytes int64  `json:"bytes"`
	Error string `json:"error,omitempty"`
}

// StreamGrowth is one stream's part of RetainedGrowth.
type StreamGrowth struct {
	Class         string `json:"class"`
	Baseline      int    `json:"baseline_events"`
	End           int    `json:"end_events"`
	BytesPerEvent int64  `json:"bytes_per_event"`
	// Bytes is (end - baseline) * bytes_per_event.
	Bytes int64 `json:"bytes"`
	// WireBytes is the mean encoded size of the stream's events, for
	// comparison.
	WireBytes int `json:"wire_bytes_per_event,omitempty"`
}

// memoryBound is how many events a class's stream keeps in memory.
func memoryBound(c *eventsv1.EventClass) int {
	if c.GetDurable() {
		n := c.GetMaxEvents()
		if n == 0 {
			n = eventsDurableRetained
		}
		return int(min(n, eventsDurableCache))
	}
	if n := c.GetMaxEvents(); n > 0 {
		return int(min(n, 1<<31-1))
	}
	return eventsMemoryRetained
}

// meshStreams lists the classes of node's events service that are the
// mesh's own: not the load's (full before the baseline) and not the
// harness's calibration classes.
func meshStreams(ctx context.Context, cc grpc.ClientConnInterface) ([]*eventsv1.EventClass, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := eventsv1.NewEventsServiceClient(cc).ListClasses(cctx, &eventsv1.ListClassesRequest{})
	if err != nil {
		return nil, fmt.Errorf("list classes: %w", err)
	}
	var out []*eventsv1.EventClass
	for _, c := range resp.GetClasses() {
		if c.GetName() == durableTopic || c.GetName() == plainTopic || strings.HasPrefix(c.GetName(), calibrationPrefix) {
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *eventsv1.EventClass) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

// selectors are the subscriptions that together replay a whole class's
// stream: an artifact class by its key, a colon class x by x and x:>.
func selectors(class string, lastN uint32) []*eventsv1.SubscribeRequest {
	base := func(r *eventsv1.SubscribeRequest) *eventsv1.SubscribeRequest {
		r.LastN, r.MaxBatch, r.QueueSize = lastN, 1024, uint32(min(lastN+16, 65536))
		return r
	}
	if strings.Contains(class, "/") {
		return []*eventsv1.SubscribeRequest{base(&eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Artifact{
			Artifact: &eventsv1.ArtifactSelector{Key: class, Match: eventsv1.ArtifactMatch_ARTIFACT_MATCH_EXACT},
		}})}
	}
	return []*eventsv1.SubscribeRequest{
		base(&eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: class}}),
		base(&eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: class + ":>"}}),
	}
}

// replay returns the events a class's stream retains in memory (its
// newest bound events), read until the stream has been quiet for
// replayIdle (the load has stopped, so nothing new arrives).
func replay(ctx context.Context, cc grpc.ClientConnInterface, c *eventsv1.EventClass) ([]*eventsv1.Delivery, error) {
	bound := memoryBound(c)
	bySeq := map[uint64]*eventsv1.Delivery{}
	for _, req := range selectors(c.GetName(), uint32(bound)) {
		if err := replayOne(ctx, cc, req, bySeq); err != nil {
			return nil, fmt.Errorf("replay %s: %w", c.GetName(), err)
		}
	}
	seqs := slices.Sorted(maps.Keys(bySeq))
	if len(seqs) > bound {
		seqs = seqs[len(seqs)-bound:]
	}
	out := make([]*eventsv1.Delivery, len(seqs))
	for i, s := range seqs {
		out[i] = bySeq[s]
	}
	return out, nil
}

func replayOne(ctx context.Context, cc grpc.ClientConnInterface, req *eventsv1.SubscribeRequest, into map[uint64]*eventsv1.Delivery) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := eventsv1.NewEventsServiceClient(cc).Subscribe(sctx, req)
	if err != nil {
		return err
	}
	msgs := make(chan *eventsv1.SubscribeResponse)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-sctx.Done():
				errc <- sctx.Err()
				return
			}
		}
	}()
	idle := time.NewTimer(5 * time.Second) // the ack and the first replayed events
	defer idle.Stop()
	for {
		select {
		case m := <-msgs:
			for _, d := range append(nonNil(m.GetDelivery()), m.GetBatch().GetDeliveries()...) {
				into[d.GetStreamSequence()] = d
			}
			idle.Reset(replayIdle)
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-idle.C:
			cancel()
			<-errc
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// countRetained counts what each of the mesh's streams on node holds in
// memory, keeping the newest events of each as a sample.
func countRetained(ctx context.Context, cc grpc.ClientConnInterface) (map[string]streamCount, error) {
	classes, err := meshStreams(ctx, cc)
	if err != nil {
		return nil, err
	}
	out := map[string]streamCount{}
	for _, c := range classes {
		ds, err := replay(ctx, cc, c)
		if err != nil {
			return nil, err
		}
		out[c.GetName()] = streamCount{
			Class: c.GetName(), Durable: c.GetDurable(), MaxEvents: c.GetMaxEvents(),
			Events: len(ds), sample: ds[max(0, len(ds)-sampleMax):],
		}
	}
	return out, nil
}

// costPerEvent measures the live heap one event of a stream takes in
// memory on node: copies of the stream's own events go into a new class
// like it (same durability and bound), calibrationWarm of them before the
// first GC'd heap sample (they pay for the stream itself: its ring, a
// durable stream's segment file and buffers) and calibrationEvents more
// before the second. Many events, so that the heap's drift between two
// samples (a restarted node still settles; up to about 1 MB) is small per
// event. The class stays full, so the process must not be measured for
// leaks after this.
func costPerEvent(ctx context.Context, cc grpc.ClientConnInterface, heap func(context.Context) (uint64, error), sc streamCount, id string) (int64, error) {
	name := calibrationPrefix + id
	ev := eventsv1.NewEventsServiceClient(cc)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	_, err := ev.DeclareClass(cctx, &eventsv1.DeclareClassRequest{Class: &eventsv1.EventClass{
		Name: name, SchemaVersion: "1", Durable: sc.Durable, MaxEvents: calibrationWarm + calibrationEvents,
	}})
	cancel()
	if err != nil {
		return 0, fmt.Errorf("declare %s: %w", name, err)
	}
	st, err := ev.PublishStream(ctx)
	if err != nil {
		return 0, err
	}
	publish := func(from, to int) error {
		for off := from; off < to; off += 1024 {
			req := &eventsv1.PublishStreamRequest{}
			for i := off; i < min(off+1024, to); i++ {
				d := sc.sample[i%len(sc.sample)]
				p := &eventsv1.PublishRequest{Topic: name, Payload: d.GetPayload(), Headers: d.GetHeaders()}
				if d.GetMsgId() != "" {
					p.MsgId = fmt.Sprintf("%s-%d", d.GetMsgId(), i)
				}
				req.Publishes = append(req.Publishes, p)
			}
			if err := st.Send(req); err != nil {
				return fmt.Errorf("measure %s: %w", sc.Class, err)
			}
			if _, err := st.Recv(); err != nil {
				return fmt.Errorf("measure %s: %w", sc.Class, err)
			}
		}
		return nil
	}
	if err := publish(0, calibrationWarm); err != nil {
		return 0, err
	}
	before, err := heap(ctx)
	if err != nil {
		return 0, err
	}
	if err := publish(calibrationWarm, calibrationWarm+calibrationEvents); err != nil {
		return 0, err
	}
	after, err := heap(ctx)
	if err != nil {
		return 0, err
	}
	if err := st.CloseSend(); err != nil {
		return 0, err
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("measure %s: %w", sc.Class, err)
	}
	// A drop is the heap's drift (the node let go of something else):
	// it counts as nothing.
	return max(int64(after)-int64(before), 0) / calibrationEvents, nil
}

// retainedGrowth measures, per node, what its retention grew by between
// base and end (see above). A node it cannot measure gets an error and
// no allowance.
func retainedGrowth(ctx context.Context, obs *observer, nodes []string, base, end map[string]map[string]streamCount) map[string]RetainedGrowth {
	out := map[string]RetainedGrowth{}
	run := time.Now().Unix() // class names of their own also where data outlives a run (compose)
	for _, n := range nodes {
		var g RetainedGrowth
		heap := func(ctx context.Context) (uint64, error) {
			s, err := obs.runtime(ctx, []string{n})
			return s[n].HeapAlloc, err
		}
		classes := slices.Sorted(maps.Keys(end[n]))
		for i, c := range classes {
			e, b := end[n][c], base[n][c]
			sg := StreamGrowth{Class: c, Baseline: b.Events, End: e.Events}
			sc := e
			if len(sc.sample) == 0 {
				sc.sample = b.sample // a restarted node's stream that holds nothing yet
			}
			if e.Events != b.Events && len(sc.sample) > 0 {
				cost, err := costPerEvent(ctx, obs.conns[n], heap, sc, fmt.Sprintf("%d-%d", run, i))
				if err != nil {
					g.Error = err.Error()
					break
				}
				sg.BytesPerEvent = cost
				sg.Bytes = int64(e.Events-b.Events) * cost
				g.Bytes += sg.Bytes
				for _, d := range sc.sample {
					sg.WireBytes += proto.Size(d)
				}
				sg.WireBytes /= len(sc.sample)
			}
			g.Streams = append(g.Streams, sg)
		}
		out[n] = g
	}
	return out
}
