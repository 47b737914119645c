package genome

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
)

// Benchmarks behind docs/perf-genome.md. They measure; they assert nothing
// about speed.

// cpuClock measures the CPU time the process spends, so that a benchmark
// can report CPU nanoseconds per operation beside wall-clock ones: on a
// machine shared with other work, wall-clock time includes waiting for a
// core; CPU time does not.
type cpuClock struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{start: processCPU()} }

func (c cpuClock) report(b *testing.B, ops int) {
	if ops > 0 {
		b.ReportMetric(float64(processCPU()-c.start)/float64(ops), "cpu-ns/op")
	}
}

// residentSetup makes n resident 4 KiB pages for one persona.
func residentSetup(b *testing.B, n int) (*Service, PersonaID, []PageRef) {
	b.Helper()
	s, err := New(Config{Node: "bench", Tiers: memTiers(uint64(n)*4096*2, uint64(n)*4096*4)}, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	p := PersonaID(uuid.New())
	if _, err := s.RegisterPersona(ctx, p, 1<<40); err != nil {
		b.Fatal(err)
	}
	refs := make([]PageRef, n)
	for i := range refs {
		data := blob(uint64(i+1), 4096)
		a, err := s.PutArtifact(ctx, ArtifactHeader{SHA256: hexSum(data), Size: 4096}, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		refs[i] = WholePage(a.ID)
		if _, err := s.PageIn(ctx, p, refs[i]); err != nil {
			b.Fatal(err)
		}
	}
	return s, p, refs
}

// BenchmarkPageInResident is a page-in of a page already resident in the
// Fast tier, in process: the hit path.
func BenchmarkPageInResident(b *testing.B) {
	s, p, refs := residentSetup(b, 1024)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	i := 0
	for b.Loop() {
		res, err := s.PageIn(ctx, p, refs[i&1023])
		if err != nil || res.Faulted {
			b.Fatalf("%+v %v", res, err)
		}
		i++
	}
	cpu.report(b, i)
}

// BenchmarkPageInResidentParallel is the hit path from GOMAXPROCS
// goroutines at once.
func BenchmarkPageInResidentParallel(b *testing.B) {
	s, p, refs := residentSetup(b, 1024)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	defer func() { cpu.report(b, b.N) }()
	b.RunParallel(func(pb *testing.PB) {
		i := int(uuid.New()[0])
		for pb.Next() {
			if _, err := s.PageIn(ctx, p, refs[i&1023]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkPageInGRPC is a resident page-in over loopback gRPC through
// the real server chain (auth, logging, recovery, tracing, error mapping),
// as an admin token holder.
func BenchmarkPageInGRPC(b *testing.B) {
	s, p, refs := residentSetup(b, 1024)
	srv := rpctest.Start(b, rpctest.Options{}, func(r grpc.ServiceRegistrar) { s.Register(r) })
	c := genomev1.NewGenomeServiceClient(srv.Dial(rpctest.AdminToken))
	ctx := context.Background()
	reqs := make([]*genomev1.PageInRequest, len(refs))
	for i, r := range refs {
		reqs[i] = &genomev1.PageInRequest{PersonaId: p.String(), Page: refProto(r)}
	}
	b.ResetTimer()
	cpu := startCPU()
	i := 0
	for b.Loop() {
		if _, err := c.PageIn(ctx, reqs[i&1023]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	cpu.report(b, i)
}

// BenchmarkHealthCheckGRPC is the floor BenchmarkPageInGRPC stands on: a
// grpc.health.v1 Check on the same kind of server and connection, through
// the same interceptor chain, with no genome code at all.
func BenchmarkHealthCheckGRPC(b *testing.B) {
	srv := rpctest.Start(b, rpctest.Options{}, func(grpc.ServiceRegistrar) {})
	c := healthpb.NewHealthClient(srv.Dial(rpctest.AdminToken))
	ctx := context.Background()
	b.ResetTimer()
	cpu := startCPU()
	i := 0
	for b.Loop() {
		if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	cpu.report(b, i)
}

// BenchmarkPageFault is a fault of a 4 KiB page from Warm into a full
// Fast tier, which demotes a victim to Warm: the miss path in memory.
func BenchmarkPageFault(b *testing.B) {
	ctx := context.Background()
	const n = 2048
	s, err := New(Config{Node: "bench", Tiers: memTiers(n/2*4096, n*4096*2)}, Deps{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	p := PersonaID(uuid.New())
	if _, err := s.RegisterPersona(ctx, p, 1<<40); err != nil {
		b.Fatal(err)
	}
	refs := make([]PageRef, n)
	for i := range refs {
		data := blob(uint64(i+1), 4096)
		a, err := s.PutArtifact(ctx, ArtifactHeader{SHA256: hexSum(data), Size: 4096}, bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		refs[i] = WholePage(a.ID)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	defer func() { cpu.report(b, b.N) }()
	faults, i := 0, 0
	for b.Loop() {
		res, err := s.PageIn(ctx, p, refs[i%n]) // a loop twice the tier: mostly faults
		if err != nil {
			b.Fatal(err)
		}
		if res.Faulted {
			faults++
		}
		i++
	}
	b.ReportMetric(float64(faults)/float64(i), "faults/op")
}

// BenchmarkFrozenRead reads a 16 MiB artifact back from the compressed
// home tier (random-looking bytes, so frames are stored plain) and a
// compressible one.
func BenchmarkFrozenRead(b *testing.B) {
	for _, kind := range []string{"incompressible", "compressible"} {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			st, err := OpenFileStore(RoleFrozen, b.TempDir(), 1<<30, FileStoreOptions{Compressed: true})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			data := blob(9, 16<<20)
			if kind == "compressible" {
				data = bytes.Repeat([]byte("continuum genome paging manager "), (16<<20)/32)
			}
			key := testKey(kind)
			if err := st.Write(ctx, key, PageMeta{}, uint64(len(data)), bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			buf := make([]byte, 1<<20)
			for b.Loop() {
				d, err := st.Read(ctx, key)
				if err != nil {
					b.Fatal(err)
				}
				rc, _ := d.Open()
				for {
					if _, err := rc.Read(buf); err != nil {
						break
					}
				}
				rc.Close()
				d.Close()
			}
		})
	}
}
