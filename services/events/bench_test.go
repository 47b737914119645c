package events

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/topic"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
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
