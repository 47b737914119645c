package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/topic"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	"github.com/continuum-mesh/continuum/tools/bench/cputime"
)

// These benchmarks measure the service's own publish path (validation,
// gate call, sequencing, encoding, fan-out into subscription queues, and
// for durable streams the group-committed log) without gRPC; the gRPC and
// NATS comparison is tools/eventsbench.

func benchService(b *testing.B, cfg Config) (*Service, context.Context) {
	b.Helper()
	cfg.Node = "bench"
	svc, err := New(cfg, Deps{Gate: &policyGate{}, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Close() })
	caller := auth.Principal{Name: "bench", Kind: auth.KindToken}
	return svc, auth.WithIdentity(context.Background(), caller, caller)
}

func benchRequest(topic string, size int) *eventsv1.PublishRequest {
	return &eventsv1.PublishRequest{Topic: topic, Payload: &structpb.Struct{Fields: map[string]*structpb.Value{
		"d": structpb.NewStringValue(strings.Repeat("x", size)),
	}}}
}

// drain attaches n subscriptions to the topic that discard what they are
// given, as fast senders would.
func drain(b *testing.B, svc *Service, t string, n int) {
	b.Helper()
	sel, err := topic.ParseSelector(t)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var subs []*subscription
	b.Cleanup(func() {
		for _, sub := range subs {
			sub.close(nil)
		}
		wg.Wait()
	})
	for i := 0; i < n; i++ {
		sub := newSubscription(newID(), auth.AnonymousPrincipal, sel, filter{}, 1<<16)
		subs = append(subs, sub)
		svc.index.add(sub)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []item
			for {
				if buf = sub.take(buf[:0], 256); len(buf) == 0 {
					select {
					case <-sub.wake:
						continue
					case <-sub.done:
						return
					}
				}
				for _, it := range buf {
					if it.ev != nil {
						_ = it.ev.deliveryFor(sub.id, 1)
					}
				}
				clear(buf)
			}
		}()
	}
}

func BenchmarkPublishFanOut(b *testing.B) {
	for _, fan := range []int{0, 1, 10} {
		for _, size := range []int{16, 1024} {
			b.Run(fmt.Sprintf("subscribers=%d/payload=%dB", fan, size), func(b *testing.B) {
				svc, ctx := benchService(b, Config{})
				drain(b, svc, "bench:x", fan)
				req := benchRequest("bench:x", size)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := svc.submit(ctx, req).wait(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDurablePublish publishes 1 KB events to a durable class from
// parallel publishers: every publish is acknowledged after its group
// commit's fdatasync.
func BenchmarkDurablePublish(b *testing.B) {
	for _, publishers := range []int{1, 16} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			svc, ctx := benchService(b, Config{DataDir: b.TempDir()})
			if _, _, err := svc.reg.declare(&eventsv1.EventClass{Name: "d", SchemaVersion: "1", Durable: true}); err != nil {
				b.Fatal(err)
			}
			req := benchRequest("d:x", 1024)
			b.SetParallelism(publishers)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := svc.submit(ctx, req).wait(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			st := svc.reg.streamFor("d:x")
			b.ReportMetric(float64(b.N)/float64(st.store.appends.Load()), "events/fsync")
		})
	}
}

// BenchmarkDeliverGRPC is one publish delivered to every subscriber through
// the real server over TCP loopback: a pipelined PublishStream (64
// publishes per request) and subscribers on their own connections that
// count delivery frames without decoding them. ns/op and allocs/op are per
// published event, for the whole process (publisher, server, subscribers).
func BenchmarkDeliverGRPC(b *testing.B) {
	for _, fan := range []int{1, 10} {
		for _, batch := range []int{0, 64} {
			for _, size := range []int{16, 1024} {
				b.Run(fmt.Sprintf("subscribers=%d/max_batch=%d/payload=%dB", fan, batch, size), func(b *testing.B) {
					benchDeliverGRPC(b, fan, batch, size)
				})
			}
		}
	}
}

func benchDeliverGRPC(b *testing.B, fan, batch, size int) {
	svc, err := New(Config{Node: rpctest.Node, MaxQueue: 1 << 22}, Deps{Gate: &policyGate{}, Logger: discardLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = svc.Close() })
	srv := rpctest.Start(b, rpctest.Options{Logger: quietLogger()}, svc.Register)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got sync.WaitGroup
	for range fan {
		stream, err := srv.Dial(rpctest.AdminToken).NewStream(ctx, &grpc.StreamDesc{ServerStreams: true},
			eventsv1.EventsService_Subscribe_FullMethodName, grpc.ForceCodecV2(rawCodec{}))
		if err != nil {
			b.Fatal(err)
		}
		req := &eventsv1.SubscribeRequest{Selector: pattern("bench:grpc").Selector, QueueSize: 1 << 22, MaxBatch: uint32(batch)}
		if err := stream.SendMsg(req); err != nil {
			b.Fatal(err)
		}
		if err := stream.CloseSend(); err != nil {
			b.Fatal(err)
		}
		var ack rawFrame
		if err := stream.RecvMsg(&ack); err != nil {
			b.Fatal(err)
		}
		got.Add(1)
		go func() {
			defer got.Done()
			for n := 0; n < b.N; {
				var f rawFrame
				if err := stream.RecvMsg(&f); err != nil {
					b.Error(err)
					return
				}
				n += DeliveriesInFrame(f.b)
			}
		}()
	}
	pub, err := eventsv1.NewEventsServiceClient(srv.Dial(rpctest.AdminToken)).PublishStream(ctx)
	if err != nil {
		b.Fatal(err)
	}
	acked := make(chan error, 1)
	go func() {
		for {
			if _, err := pub.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				acked <- err
				return
			}
		}
	}()
	one := benchRequest("bench:grpc", size)
	reqs := make([]*eventsv1.PublishRequest, 64)
	for i := range reqs {
		reqs[i] = one
	}
	b.ReportAllocs()
	cpu0 := cputime.Process()
	b.ResetTimer()
	for n := b.N; n > 0; n -= min(n, 64) {
		if err := pub.Send(&eventsv1.PublishStreamRequest{Publishes: reqs[:min(n, 64)]}); err != nil {
			b.Fatal(err)
		}
	}
	if err := pub.CloseSend(); err != nil {
		b.Fatal(err)
	}
	if err := <-acked; err != nil {
		b.Fatal(err)
	}
	got.Wait()
	b.StopTimer()
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "cpu-ns/op")
}

// rawFrame is one undecoded message.
type rawFrame struct{ b []byte }

// rawCodec hands a subscriber each message's bytes undecoded; requests are
// encoded as usual.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	v.(*rawFrame).b = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// BenchmarkSendDeliveries is the server's side of sending 64 ready 1 KB
// (or 16 B) events to one subscription, up to the bytes gRPC would write:
// each message goes through gRPC's own proto codec (marshal into its
// pooled buffers) as the real stream's Send does. ns/op and allocs/op are
// per 64 deliveries.
func BenchmarkSendDeliveries(b *testing.B) {
	for _, maxBatch := range []int{0, 64} {
		for _, size := range []int{16, 1024} {
			b.Run(fmt.Sprintf("max_batch=%d/payload=%dB", maxBatch, size), func(b *testing.B) {
				sel, err := topic.ParseSelector("bench:send")
				if err != nil {
					b.Fatal(err)
				}
				items := make([]item, 64)
				for i := range items {
					ev := &event{
						topic: "bench:send", publisher: "bench", node: "bench", at: time.Now(),
						payload: benchRequest("bench:send", size).GetPayload(),
					}
					if err := ev.seal(uint64(i + 1)); err != nil {
						b.Fatal(err)
					}
					items[i] = item{ev: ev}
				}
				x := &sender{
					sub:      newSubscription(newID(), auth.AnonymousPrincipal, sel, filter{}, 1<<16),
					stream:   codecStream{codec: encoding.GetCodecV2("proto")},
					maxBatch: maxBatch,
				}
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if err := x.sendItems(ctx, items); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// codecStream is a subscription stream that only marshals what is sent,
// with gRPC's codec, and frees the buffers as the transport would.
type codecStream struct {
	grpc.ServerStream
	codec encoding.CodecV2
}

func (s codecStream) Send(m *eventsv1.SubscribeResponse) error {
	data, err := s.codec.Marshal(m)
	if err != nil {
		return err
	}
	data.Free()
	return nil
}
