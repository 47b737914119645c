package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
)

// refusalPayload is shaped like the router's refusal events.
func refusalPayload(i int) map[string]any {
	return map[string]any{
		"uri":               fmt.Sprintf("airc://maya@5090-rig:vr/genome/page-in?persona=p%d", i%1000),
		"caller":            "user",
		"hop":               "peer:edge-1",
		"verdict":           "forbidden",
		"reason":            "no-permission",
		"prompt_target_env": "",
		"rule":              float64(i % 17),
		"dry_run":           i%5 == 0,
		"node":              "n1",
		"route_kind":        "ROUTE_KIND_PEER",
	}
}

// runAppenders makes b.N durable appends from the given number of
// goroutines and reports appends/s and the mean group-commit size.
func runAppenders(b *testing.B, appenders int, appendOne func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	for range appenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := appendOne(int(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/append")
	}
}

// BenchmarkAppendDurable: concurrent in-process appends, each acknowledged
// only after the fdatasync of its group commit.
func BenchmarkAppendDurable(b *testing.B) {
	for _, appenders := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			s := open(b, testConfig(b), Deps{})
			runAppenders(b, appenders, func(i int) error {
				_, err := s.store.append([]pendingEntry{{Kind: auditlog.KindRefusal, Payload: refusalPayload(i)}})
				return err
			})
			st := s.Stats()
			b.ReportMetric(float64(st.Appended)/float64(max(st.Batches, 1)), "entries/commit")
		})
	}
}

// BenchmarkAppendGRPC: the same over loopback gRPC through the real
// interceptor chain (auth by bearer token, logging, error mapping), with
// the clients spread over 4 connections.
func BenchmarkAppendGRPC(b *testing.B) {
	for _, appenders := range []int{64, 256} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) { benchAppendGRPC(b, appenders) })
	}
}

func benchAppendGRPC(b *testing.B, appenders int) {
	s := open(b, testConfig(b), Deps{})
	srv := rpctest.Start(b, rpctest.Options{}, func(r grpc.ServiceRegistrar) { s.Register(r) })
	var clients []auditv1.AuditServiceClient
	for range 4 {
		clients = append(clients, auditv1.NewAuditServiceClient(srv.Dial(rpctest.AdminToken)))
	}
	payloads := make([]*structpb.Struct, 1000)
	for i := range payloads {
		p, err := structpb.NewStruct(refusalPayload(i))
		if err != nil {
			b.Fatal(err)
		}
		payloads[i] = p
	}
	ctx := context.Background()
	runAppenders(b, appenders, func(i int) error {
		_, err := clients[i%len(clients)].Append(ctx, &auditv1.AppendRequest{Kind: "refusal", Payload: payloads[i%len(payloads)]})
		return err
	})
	st := s.Stats()
	b.ReportMetric(float64(st.Appended)/float64(max(st.Batches, 1)), "entries/commit")
}

// grpcBench is a served log with admin clients over 4 connections and
// pre-built refusal payloads.
type grpcBench struct {
	s        *Service
	clients  []auditv1.AuditServiceClient
	payloads []*structpb.Struct
}

func newGRPCBench(b *testing.B) *grpcBench {
	s := open(b, testConfig(b), Deps{})
	srv := rpctest.Start(b, rpctest.Options{}, func(r grpc.ServiceRegistrar) { s.Register(r) })
	g := &grpcBench{s: s, payloads: make([]*structpb.Struct, 1000)}
	for range 4 {
		g.clients = append(g.clients, auditv1.NewAuditServiceClient(srv.Dial(rpctest.AdminToken)))
	}
	for i := range g.payloads {
		p, err := structpb.NewStruct(refusalPayload(i))
		if err != nil {
			b.Fatal(err)
		}
		g.payloads[i] = p
	}
	return g
}

// entries returns n append requests starting at i.
func (g *grpcBench) entries(i, n int) []*auditv1.AppendRequest {
	out := make([]*auditv1.AppendRequest, n)
	for j := range out {
		out[j] = &auditv1.AppendRequest{Kind: "refusal", Payload: g.payloads[(i+j)%len(g.payloads)]}
	}
	return out
}

// report adds appends/s, CPU per append and entries per commit.
func (g *grpcBench) report(b *testing.B, cpu0 time.Duration) {
	cpu := cpuTime() - cpu0
	b.StopTimer()
	st := g.s.Stats()
	if st.Appended != uint64(b.N) {
		b.Fatalf("log has %d entries, want %d", st.Appended, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/append")
	}
	b.ReportMetric(float64(st.Appended)/float64(max(st.Batches, 1)), "entries/commit")
}

// BenchmarkAppendGRPCBatch: concurrent AppendBatch calls of batch entries
// each (one write and one fdatasync per call at least, acknowledged after
// it) over loopback gRPC through the real interceptor chain. b.N counts
// entries.
func BenchmarkAppendGRPCBatch(b *testing.B) {
	for _, c := range []struct{ callers, batch int }{{4, 16}, {16, 16}, {4, 64}, {16, 64}, {4, 256}} {
		b.Run(fmt.Sprintf("callers=%d/batch=%d", c.callers, c.batch), func(b *testing.B) {
			g := newGRPCBench(b)
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			cpu0 := cpuTime()
			for w := range c.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						end := int(next.Add(int64(c.batch)))
						first := end - c.batch
						if first >= b.N {
							return
						}
						n := min(end, b.N) - first
						resp, err := g.clients[w%len(g.clients)].AppendBatch(ctx, &auditv1.AppendBatchRequest{Entries: g.entries(first, n)})
						if err != nil {
							b.Error(err)
							return
						}
						if len(resp.GetAcks()) != n {
							b.Errorf("%d acks for %d entries", len(resp.GetAcks()), n)
							return
						}
					}
				}()
			}
			wg.Wait()
			g.report(b, cpu0)
		})
	}
}

// BenchmarkAppendGRPCStream: producers each on one AppendStream, sending
// requests of batch entries without waiting for their acks (the server
// keeps up to 64 in flight per stream), every entry acknowledged after the
// fdatasync of its group commit. b.N counts entries.
func BenchmarkAppendGRPCStream(b *testing.B) {
	for _, c := range []struct{ streams, batch int }{{1, 1}, {4, 1}, {1, 16}, {4, 16}, {1, 64}, {4, 64}} {
		b.Run(fmt.Sprintf("streams=%d/batch=%d", c.streams, c.batch), func(b *testing.B) {
			g := newGRPCBench(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			cpu0 := cpuTime()
			for w := range c.streams {
				st, err := g.clients[w%len(g.clients)].AppendStream(ctx)
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(2)
				sent := make(chan int, 1<<16)
				go func() {
					defer wg.Done()
					defer close(sent)
					for {
						end := int(next.Add(int64(c.batch)))
						first := end - c.batch
						if first >= b.N {
							_ = st.CloseSend()
							return
						}
						n := min(end, b.N) - first
						if err := st.Send(&auditv1.AppendStreamRequest{Entries: g.entries(first, n)}); err != nil {
							b.Error(err)
							return
						}
						sent <- n
					}
				}()
				go func() {
					defer wg.Done()
					for n := range sent {
						resp, err := st.Recv()
						if err != nil {
							b.Error(err)
							return
						}
						if len(resp.GetAcks()) != n {
							b.Errorf("%d acks for %d entries", len(resp.GetAcks()), n)
							return
						}
					}
					if _, err := st.Recv(); !errors.Is(err, io.EOF) {
						b.Errorf("stream end: %v", err)
					}
				}()
			}
			wg.Wait()
			g.report(b, cpu0)
		})
	}
}

// BenchmarkVerifyService: AuditService.Verify's work on a 100k-entry log
// (parse, re-hash, chain checks, compare every leaf with the tree, root).
func BenchmarkVerifyService(b *testing.B) {
	const n = 100_000
	s := open(b, testConfig(b), Deps{})
	batch := make([]pendingEntry, 0, 1000)
	for i := range n {
		batch = append(batch, pendingEntry{
			Kind: auditlog.KindRefusal, Payload: refusalPayload(i),
			Source: auditlog.Source{Topic: "audit:refusal", StreamSequence: uint64(i + 1), Publisher: "peer:n1"},
		})
		if len(batch) == cap(batch) {
			if _, err := s.store.append(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if _, _, err := s.store.verify(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	if cpu > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "entries/cpu-s")
	}
}

// BenchmarkOpen: New on a 100k-entry log (cut a torn tail, verify the chain,
// rebuild the Merkle tree, the offset index and the high-water marks).
func BenchmarkOpen(b *testing.B) {
	const n = 100_000
	cfg := testConfig(b)
	s, err := New(cfg, Deps{Logger: discard()})
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]pendingEntry, 0, 1000)
	for i := range n {
		batch = append(batch, pendingEntry{
			Kind: auditlog.KindRefusal, Payload: refusalPayload(i),
			Source: auditlog.Source{Topic: "audit:refusal", StreamSequence: uint64(i + 1), Publisher: "peer:n1"},
		})
		if len(batch) == cap(batch) {
			if _, err := s.store.append(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		s, err := New(cfg, Deps{Logger: discard()})
		if err != nil {
			b.Fatal(err)
		}
		if s.Stats().Entries != n {
			b.Fatalf("opened %d entries", s.Stats().Entries)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
