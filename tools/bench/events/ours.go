package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/rpc"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
	evsvc "github.com/continuum-mesh/continuum/services/events"
)

const benchToken = "bench-token"

// ours is the events service behind a real server, and a client for it.
type ours struct {
	// pubBatch is how many publishes a PublishStream request carries in
	// the throughput cases.
	pubBatch int
	svc      *evsvc.Service
	srv      *rpc.Server
	client   eventsv1.EventsServiceClient
	conns    []*grpc.ClientConn
	served   chan error
}

func allowAll(context.Context, auth.Principal, string) (*routerv1.Verdict, error) {
	return &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_ALLOWED}, nil
}

func startOurs(ctx context.Context, dir string) (*ours, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))
	svc, err := evsvc.New(evsvc.Config{Node: "bench", DataDir: dir, MaxQueue: 1 << 20, TopicRetained: 16},
		evsvc.Deps{Gate: gate.Func(allowAll), Logger: quiet})
	if err != nil {
		return nil, err
	}
	tokens, err := auth.NewTokens([]auth.TokenEntry{{Principal: "bench", Token: benchToken}})
	if err != nil {
		return nil, err
	}
	srv, err := rpc.New(rpc.Config{Node: "bench", Listen: "127.0.0.1:0"}, rpc.Deps{Logger: quiet, Tokens: tokens})
	if err != nil {
		return nil, err
	}
	svc.Register(srv)
	o := &ours{svc: svc, srv: srv, served: make(chan error, 1)}
	go func() { o.served <- srv.Serve(ctx) }()
	cc, err := o.dial()
	if err != nil {
		return nil, err
	}
	o.client = eventsv1.NewEventsServiceClient(cc)
	if _, err := o.client.DeclareClass(ctx, &eventsv1.DeclareClassRequest{Class: &eventsv1.EventClass{
		Name: "benchd", SchemaVersion: "1", Durable: true,
	}}); err != nil {
		return nil, err
	}
	return o, nil
}

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// dial opens a new TCP connection to the server.
func (o *ours) dial() (*grpc.ClientConn, error) {
	// Dialed as the mesh's own clients are (continuum tail and pub, member
	// to member): fixed flow-control windows (rpc.WindowSize).
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(benchToken)),
	}, rpc.ClientWindowOptions()...)
	cc, err := grpc.NewClient(o.srv.Addr(), opts...)
	if err != nil {
		return nil, err
	}
	o.conns = append(o.conns, cc)
	return cc, nil
}

func (o *ours) close() {
	_ = o.svc.Close()
	o.srv.Drain()
	<-o.served
	for _, cc := range o.conns {
		_ = cc.Close()
	}
}

// streamPublisher publishes through one PublishStream and counts acks.
type streamPublisher struct {
	stream grpc.BidiStreamingClient[eventsv1.PublishStreamRequest, eventsv1.PublishStreamResponse]
	acked  chan error // one nil per ack, or the stream's error
}

func (o *ours) publishStream(ctx context.Context, onAck func(*eventsv1.PublishResponse)) (*streamPublisher, error) {
	stream, err := o.client.PublishStream(ctx)
	if err != nil {
		return nil, err
	}
	p := &streamPublisher{stream: stream, acked: make(chan error, 1)}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					p.acked <- err
				}
				close(p.acked)
				return
			}
			if onAck != nil {
				for _, a := range r.GetAcks() {
					onAck(a)
				}
			}
		}
	}()
	return p, nil
}

func (p *streamPublisher) send(reqs ...*eventsv1.PublishRequest) error {
	return p.stream.Send(&eventsv1.PublishStreamRequest{Publishes: reqs})
}

// sendN publishes req n times in requests of up to batch publishes.
func (p *streamPublisher) sendN(req *eventsv1.PublishRequest, n, batch int) error {
	reqs := make([]*eventsv1.PublishRequest, batch)
	for i := range reqs {
		reqs[i] = req
	}
	for n > 0 {
		k := min(n, batch)
		if err := p.send(reqs[:k]...); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// finish closes the sending side and waits for every ack.
func (p *streamPublisher) finish() error {
	if err := p.stream.CloseSend(); err != nil {
		return err
	}
	return <-p.acked
}

func structPayload(size int) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{"d": structpb.NewStringValue(padding(size))}}
}

func (o *ours) ackLatency(ctx context.Context, topic string) func(size, n int) (latencies, error) {
	return func(size, n int) (latencies, error) {
		req := &eventsv1.PublishRequest{Topic: topic, Payload: structPayload(size)}
		for i := 0; i < 100; i++ {
			if _, err := o.client.Publish(ctx, req); err != nil {
				return nil, err
			}
		}
		lat := make(latencies, 0, n)
		for i := 0; i < n; i++ {
			t0 := time.Now()
			if _, err := o.client.Publish(ctx, req); err != nil {
				return nil, err
			}
			lat = append(lat, time.Since(t0))
		}
		return lat, nil
	}
}

func (o *ours) durableThroughput(ctx context.Context, topic string, size, n, workers int) (rateResult, error) {
	req := &eventsv1.PublishRequest{Topic: topic, Payload: structPayload(size)}
	var next atomic.Int64
	lats := make([]latencies, workers)
	errs := make(chan error, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				if _, err := o.client.Publish(ctx, req); err != nil {
					errs <- err
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return rateResult{}, err
	}
	var all latencies
	for _, l := range lats {
		all = append(all, l...)
	}
	return rateResult{rate: float64(n) / elapsed.Seconds(), sent: n, lat: all}, nil
}

// streamThroughput publishes n messages through one PublishStream,
// pipelined, and reports the rate at which they were acknowledged.
func (o *ours) streamThroughput(ctx context.Context, topic string, size, n int) (rateResult, error) {
	req := &eventsv1.PublishRequest{Topic: topic, Payload: structPayload(size)}
	start := time.Now()
	p, err := o.publishStream(ctx, nil)
	if err != nil {
		return rateResult{}, err
	}
	if err := p.sendN(req, n, o.pubBatch); err != nil {
		return rateResult{}, err
	}
	if err := p.finish(); err != nil {
		return rateResult{}, err
	}
	return rateResult{rate: float64(n) / time.Since(start).Seconds(), sent: n}, nil
}

// subscribe opens a subscription on its own connection and calls fn for
// each delivery until fn returns false or ctx ends. The subscriber decodes
// every message, as an application would.
func (o *ours) subscribe(ctx context.Context, topic string, batch int, fn func(*eventsv1.Delivery) bool) (string, <-chan error, error) {
	cc, err := o.dial()
	if err != nil {
		return "", nil, err
	}
	stream, err := eventsv1.NewEventsServiceClient(cc).Subscribe(ctx, &eventsv1.SubscribeRequest{
		Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: topic}, QueueSize: 1 << 20, MaxBatch: uint32(batch),
	})
	if err != nil {
		return "", nil, err
	}
	ack, err := stream.Recv()
	if err != nil {
		return "", nil, err
	}
	done := make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				done <- err
				return
			}
			if d := r.GetDelivery(); d != nil && !fn(d) {
				done <- nil
				return
			}
			for _, d := range r.GetBatch().GetDeliveries() {
				if !fn(d) {
					done <- nil
					return
				}
			}
		}
	}()
	return ack.GetAck().GetSubscriptionId(), done, nil
}

// rawFrame is one undecoded message of a stream.
type rawFrame struct{ b []byte }

// rawCodec hands the subscriber each message's bytes undecoded, as a NATS
// subscriber gets its payload; requests are encoded as usual.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }

func (rawCodec) Unmarshal(data []byte, v any) error {
	v.(*rawFrame).b = data
	return nil
}

func (rawCodec) Name() string { return "proto" }

// subscribeRaw is subscribe for a subscriber that counts deliveries
// without decoding them: it reads only the tags of each message (field 2
// is a delivery, field 4 a batch of field-1 deliveries).
func (o *ours) subscribeRaw(ctx context.Context, topic string, batch int, fn func() bool) (string, error) {
	cc, err := o.dial()
	if err != nil {
		return "", err
	}
	stream, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, eventsv1.EventsService_Subscribe_FullMethodName,
		grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return "", err
	}
	if err := stream.SendMsg(&eventsv1.SubscribeRequest{
		Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: topic}, QueueSize: 1 << 20, MaxBatch: uint32(batch),
	}); err != nil {
		return "", err
	}
	if err := stream.CloseSend(); err != nil {
		return "", err
	}
	var ack rawFrame
	if err := stream.RecvMsg(&ack); err != nil {
		return "", err
	}
	var resp eventsv1.SubscribeResponse
	if err := proto.Unmarshal(ack.b, &resp); err != nil {
		return "", err
	}
	go func() {
		for {
			var f rawFrame
			if err := stream.RecvMsg(&f); err != nil {
				return
			}
			for i := evsvc.DeliveriesInFrame(f.b); i > 0; i-- {
				if !fn() {
					return
				}
			}
		}
	}()
	return resp.GetAck().GetSubscriptionId(), nil
}

func (o *ours) deliverLatency(ctx context.Context, topic string, streamed bool) func(size, rate int, d time.Duration) (rateResult, error) {
	return func(size, rate int, d time.Duration) (rateResult, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		base := time.Now()
		var mu sync.Mutex
		var lat latencies
		var expect atomic.Int64
		expect.Store(-1)
		_, done, err := o.subscribe(ctx, topic, 0, func(dv *eventsv1.Delivery) bool {
			sent := time.Duration(dv.GetPayload().GetFields()["t"].GetNumberValue())
			mu.Lock()
			lat = append(lat, time.Since(base)-sent)
			n := len(lat)
			mu.Unlock()
			e := expect.Load()
			return e < 0 || int64(n) < e
		})
		if err != nil {
			return rateResult{}, err
		}
		pad := structpb.NewStringValue(padding(size))
		stamped := func() *eventsv1.PublishRequest {
			return &eventsv1.PublishRequest{Topic: topic, Payload: &structpb.Struct{Fields: map[string]*structpb.Value{
				"d": pad, "t": structpb.NewNumberValue(float64(time.Since(base))),
			}}}
		}
		var sent int
		if streamed {
			p, err := o.publishStream(ctx, nil)
			if err != nil {
				return rateResult{}, err
			}
			var sendErr error
			sent = pace(rate, d, func(int) {
				if sendErr == nil {
					sendErr = p.send(stamped())
				}
			})
			if sendErr != nil {
				return rateResult{}, sendErr
			}
			if err := p.finish(); err != nil {
				return rateResult{}, err
			}
		} else {
			jobs := make(chan struct{}, 1024)
			var wg sync.WaitGroup
			var failed atomic.Value
			for w := 0; w < 16; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range jobs {
						if _, err := o.client.Publish(ctx, stamped()); err != nil {
							failed.Store(err)
						}
					}
				}()
			}
			sent = pace(rate, d, func(int) { jobs <- struct{}{} })
			close(jobs)
			wg.Wait()
			if err, _ := failed.Load().(error); err != nil {
				return rateResult{}, err
			}
		}
		expect.Store(int64(sent))
		mu.Lock()
		got := len(lat)
		mu.Unlock()
		if got < sent {
			select {
			case err := <-done:
				if err != nil {
					return rateResult{}, err
				}
			case <-time.After(10 * time.Second):
				return rateResult{}, errors.New("deliveries missing after 10 s")
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return rateResult{sent: sent, lat: lat}, nil
	}
}

func (o *ours) fanout(ctx context.Context, size, n, fan, workers int, raw bool, batch int) (rateResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	topic := fmt.Sprintf("fan:%d:%d:%v:%d", fan, size, raw, batch)
	var finished sync.WaitGroup
	var lastMu sync.Mutex
	var last time.Time
	var ids []string
	for s := 0; s < fan; s++ {
		count := 0
		finished.Add(1)
		counted := func() bool {
			if count++; count == n {
				lastMu.Lock()
				last = time.Now()
				lastMu.Unlock()
				finished.Done()
				return false
			}
			return true
		}
		var id string
		var err error
		if raw {
			id, err = o.subscribeRaw(ctx, topic, batch, counted)
		} else {
			id, _, err = o.subscribe(ctx, topic, batch, func(*eventsv1.Delivery) bool { return counted() })
		}
		if err != nil {
			return rateResult{}, err
		}
		ids = append(ids, id)
	}
	req := &eventsv1.PublishRequest{Topic: topic, Payload: structPayload(size)}
	start := time.Now()
	if workers > 0 {
		var next atomic.Int64
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					if _, err := o.client.Publish(ctx, req); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return rateResult{}, err
		}
	} else {
		p, err := o.publishStream(ctx, nil)
		if err != nil {
			return rateResult{}, err
		}
		if err := p.sendN(req, n, o.pubBatch); err != nil {
			return rateResult{}, err
		}
		if err := p.finish(); err != nil {
			return rateResult{}, err
		}
	}
	var dropped uint64
	list, err := o.client.ListSubscriptions(ctx, &eventsv1.ListSubscriptionsRequest{})
	if err != nil {
		return rateResult{}, err
	}
	for _, s := range list.GetSubscriptions() {
		for _, id := range ids {
			if s.GetSubscriptionId() == id {
				dropped += s.GetDropped()
			}
		}
	}
	if dropped > 0 {
		return rateResult{dropped: dropped, rate: 0}, nil
	}
	waited := make(chan struct{})
	go func() { finished.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(60 * time.Second):
		return rateResult{}, errors.New("deliveries missing after 60 s")
	}
	return rateResult{rate: float64(n) / last.Sub(start).Seconds(), sent: n}, nil
}
