package region

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestReadyBufferPublishPeek(t *testing.T) {
	t.Parallel()
	var b ReadyBuffer[int]
	if got := b.Peek(); got != nil {
		t.Fatalf("Peek on a new buffer = %+v, want nil", got)
	}
	s1 := b.Publish([]int{1, 2}, t0, t0.Add(time.Minute))
	s2 := b.Publish([]int{3}, t0.Add(time.Second), t0.Add(2*time.Minute))
	if s1.Generation != 1 || s2.Generation != 2 {
		t.Fatalf("generations = %d, %d; want 1, 2", s1.Generation, s2.Generation)
	}
	got := b.Peek()
	if diff := cmp.Diff(&Slice[int]{Generation: 2, PublishedAt: t0.Add(time.Second), ExpiresAt: t0.Add(2 * time.Minute), Items: []int{3}}, got); diff != "" {
		t.Errorf("Peek (-want +got):\n%s", diff)
	}
	if got.Expired(t0.Add(time.Minute)) || !got.Expired(t0.Add(2*time.Minute)) {
		t.Errorf("Expired is wrong around %v", got.ExpiresAt)
	}
	if age := got.Age(t0.Add(3 * time.Second)); age != 2*time.Second {
		t.Errorf("Age = %v, want 2s", age)
	}
}

func TestReadyBufferEvictStale(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		items  []int
		at     time.Duration
		maxAge time.Duration
		want   int
	}{
		{"fresh", []int{1, 2, 3}, 10 * time.Second, time.Minute, 0},
		{"exactly max age", []int{1, 2, 3}, time.Minute, time.Minute, 0},
		{"stale", []int{1, 2, 3}, 61 * time.Second, time.Minute, 3},
		{"empty", nil, time.Hour, time.Minute, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b ReadyBuffer[int]
			b.Publish(tt.items, t0, t0.Add(time.Hour))
			if got := b.EvictStale(t0.Add(tt.at), tt.maxAge); got != tt.want {
				t.Fatalf("EvictStale = %d, want %d", got, tt.want)
			}
			s := b.Peek()
			if tt.want > 0 && (s.Len() != 0 || !s.Evicted || s.Generation != 2) {
				t.Errorf("after eviction Peek = %+v, want empty evicted generation 2", s)
			}
			if again := b.EvictStale(t0.Add(tt.at), tt.maxAge); again != 0 {
				t.Errorf("second EvictStale = %d, want 0", again)
			}
		})
	}
	var empty ReadyBuffer[int]
	if got := empty.EvictStale(t0, 0); got != 0 {
		t.Errorf("EvictStale on a never-published buffer = %d", got)
	}
}

func TestReadyBufferRemove(t *testing.T) {
	t.Parallel()
	var b ReadyBuffer[int]
	b.Publish([]int{1, 2, 3, 2}, t0, t0.Add(time.Minute))
	if n := b.Remove(func(v int) bool { return v == 9 }); n != 0 || b.Peek().Generation != 1 {
		t.Fatalf("Remove of nothing published a new generation (n=%d)", n)
	}
	if n := b.Remove(func(v int) bool { return v == 2 }); n != 2 {
		t.Fatalf("Remove = %d, want 2", n)
	}
	if diff := cmp.Diff([]int{1, 3}, b.Peek().Items); diff != "" {
		t.Errorf("items after Remove (-want +got):\n%s", diff)
	}
	if g := b.Peek().Generation; g != 2 {
		t.Errorf("generation after Remove = %d, want 2", g)
	}
}

// TestReadyBufferConcurrent publishes from several goroutines while others
// peek: generations strictly increase for every reader, no slice is torn,
// and every publication gets its own generation.
func TestReadyBufferConcurrent(t *testing.T) {
	t.Parallel()
	const writers, perWriter, readers = 4, 500, 4
	var b ReadyBuffer[uint64]
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := b.Peek()
				if s == nil {
					continue
				}
				if s.Generation < last {
					errs <- "generation went backwards"
					return
				}
				last = s.Generation
				// Every item of a slice carries the same stamp: a torn
				// slice would mix stamps.
				for _, it := range s.Items {
					if it != s.Items[0] {
						errs <- "torn slice"
						return
					}
				}
			}
		}()
	}
	var pw sync.WaitGroup
	for w := range writers {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for i := range perWriter {
				stamp := uint64(w*perWriter + i)
				b.Publish([]uint64{stamp, stamp, stamp, stamp}, t0, t0.Add(time.Minute))
			}
		}()
	}
	pw.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if g := b.Peek().Generation; g != writers*perWriter {
		t.Errorf("final generation = %d, want %d", g, writers*perWriter)
	}
}

func TestReadyBufferPeekDoesNotAllocate(t *testing.T) {
	var b ReadyBuffer[int]
	b.Publish([]int{1, 2, 3}, t0, t0.Add(time.Minute))
	var n int
	allocs := testing.AllocsPerRun(1000, func() { n += b.Peek().Len() })
	if allocs != 0 {
		t.Fatalf("Peek allocates %v times per call", allocs)
	}
}

func BenchmarkReadyBufferPeek(b *testing.B) {
	var buf ReadyBuffer[int]
	buf.Publish([]int{1, 2, 3, 4, 5, 6, 7, 8}, t0, t0.Add(time.Minute))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			n += buf.Peek().Len()
		}
		_ = n
	})
}

func TestTelemetryConsumptionFraction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		tel       Telemetry
		wantF     float64
		wantOK    bool
		wantMisse bool
	}{
		{"nothing published", Telemetry{Consumed: 0}, 0, false, false},
		{"some consumed", Telemetry{Published: 8, Consumed: 2, BufferMisses: 1}, 0.25, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, ok := tt.tel.ConsumptionFraction()
			if f != tt.wantF || ok != tt.wantOK || tt.tel.HadBufferMisses() != tt.wantMisse {
				t.Errorf("got (%v, %v, misses %v), want (%v, %v, %v)", f, ok, tt.tel.HadBufferMisses(), tt.wantF, tt.wantOK, tt.wantMisse)
			}
		})
	}
}
