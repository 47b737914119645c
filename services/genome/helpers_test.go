package genome

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// fakeEvents is an in-memory events service: it records what is
// published and can be told to fail.
type fakeEvents struct {
	mu        sync.Mutex
	published []*eventsv1.PublishRequest
	classes   []*eventsv1.EventClass
	failures  int // publishes to refuse with UNAVAILABLE before accepting
	calls     int
}

func (f *fakeEvents) Publish(_ context.Context, in *eventsv1.PublishRequest, _ ...grpc.CallOption) (*eventsv1.PublishResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failures > 0 {
		f.failures--
		return nil, status.Error(codes.Unavailable, "events down")
	}
	f.published = append(f.published, in)
	return &eventsv1.PublishResponse{StreamSequence: uint64(len(f.published))}, nil
}

func (f *fakeEvents) DeclareClass(_ context.Context, in *eventsv1.DeclareClassRequest, _ ...grpc.CallOption) (*eventsv1.DeclareClassResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.classes = append(f.classes, in.GetClass())
	return &eventsv1.DeclareClassResponse{Class: in.GetClass(), Created: true}, nil
}

// onTopic returns the events published on topic so far.
func (f *fakeEvents) onTopic(topic string) []*eventsv1.PublishRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*eventsv1.PublishRequest
	for _, p := range f.published {
		if p.GetTopic() == topic {
			out = append(out, p)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling with a deadline, not waiting on time
	}
}

// testService builds a manager; it is closed when the test ends.
func testService(t *testing.T, cfg Config, deps Deps) *Service {
	t.Helper()
	if cfg.Node == "" {
		cfg.Node = "test-node"
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// runService runs s.Run until the test ends.
func runService(t *testing.T, s *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// memTiers is a memory-only chain: Fast and Warm of the given sizes above
// a large Warm... home.
func memTiers(fast, warm uint64) []TierConfig {
	return []TierConfig{
		{Role: RoleFast, CapacityBytes: fast},
		{Role: RoleWarm, CapacityBytes: warm},
	}
}

// blob returns n deterministic pseudo-random bytes.
func blob(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0xabcdef))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// put stores b as an artifact and returns it.
func put(t *testing.T, s *Service, b []byte, hdr ArtifactHeader) Artifact {
	t.Helper()
	hdr.SHA256 = hexSum(b)
	hdr.Size = uint64(len(b))
	a, err := s.PutArtifact(context.Background(), hdr, bytes.NewReader(b))
	if err != nil {
		t.Fatalf("PutArtifact: %v", err)
	}
	return a
}

func newPersona(t *testing.T, s *Service, capacity uint64) PersonaID {
	t.Helper()
	p := PersonaID(uuid.New())
	if _, err := s.RegisterPersona(context.Background(), p, capacity); err != nil {
		t.Fatalf("RegisterPersona: %v", err)
	}
	return p
}

func pageIn(t *testing.T, s *Service, p PersonaID, ref PageRef) PageInResult {
	t.Helper()
	res, err := s.PageIn(context.Background(), p, ref)
	if err != nil {
		t.Fatalf("PageIn %s: %v", ref, err)
	}
	return res
}

func readAll(t *testing.T, s *Service, p PersonaID, ref PageRef) []byte {
	t.Helper()
	rc, n, err := s.ReadPage(context.Background(), p, ref)
	if err != nil {
		t.Fatalf("ReadPage %s: %v", ref, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("ReadPage %s: read: %v", ref, err)
	}
	if uint64(len(b)) != n {
		t.Fatalf("ReadPage %s: %d bytes, announced %d", ref, len(b), n)
	}
	return b
}

// wantStatus checks a domain error's gRPC mapping: code and reason.
func wantStatus(t *testing.T, err error, code codes.Code, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s %s, got no error", code, reason)
	}
	st := toStatus(testLogger(), err)
	if got := status.Code(st); got != code {
		t.Fatalf("code = %s, want %s (%v)", got, code, err)
	}
	if got := rpcerr.Reason(st); got != reason {
		t.Fatalf("reason = %q, want %q (%v)", got, reason, err)
	}
}

// countingStore wraps a store and counts writes.
type countingStore struct {
	TierStore
	mu     sync.Mutex
	writes map[PageRef]int
	gate   chan struct{} // when set, writes wait for it
}

func (c *countingStore) Write(ctx context.Context, key PageRef, meta PageMeta, size uint64, r io.Reader) error {
	if c.gate != nil {
		<-c.gate
	}
	c.mu.Lock()
	if c.writes == nil {
		c.writes = map[PageRef]int{}
	}
	c.writes[key]++
	c.mu.Unlock()
	return c.TierStore.Write(ctx, key, meta, size, r)
}

func (c *countingStore) count(key PageRef) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes[key]
}
