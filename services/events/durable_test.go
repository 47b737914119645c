package events

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

func durableClass(name string) *eventsv1.EventClass {
	return &eventsv1.EventClass{Name: name, SchemaVersion: "1", Durable: true}
}

// TestDurableResumeAfterRestart is the "no silent loss" case: a
// subscriber that read part of a durable stream resumes after a restart of
// the events service and gets every acknowledged event exactly once.
func TestDurableResumeAfterRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withDataDir(t.TempDir()), func(c *Config) { c.SegmentBytes = 8 << 10 })
	declare(t, e.admin, durableClass("orders"))

	x := subscribe(t, e.admin, pattern("orders:>"))
	x.ack()
	acked := map[uint64]string{}
	for i := 1; i <= 100; i++ {
		topic := "orders:created"
		if i%3 == 0 {
			topic = "orders:paid"
		}
		resp, err := e.admin.Publish(ctxT(t), &eventsv1.PublishRequest{
			Topic: topic, MsgId: fmt.Sprintf("m-%d", i), Payload: payload(t, map[string]any{"i": i}),
		})
		if err != nil {
			t.Fatal(err)
		}
		acked[resp.GetStreamSequence()] = topic
	}
	if len(acked) != 100 {
		t.Fatalf("%d distinct sequences for 100 publishes", len(acked))
	}
	var last uint64
	for i := 1; i <= 40; i++ {
		last = x.delivery().GetStreamSequence()
	}

	e = e.restart()
	if _, err := e.admin.GetClass(ctxT(t), &eventsv1.GetClassRequest{Name: "orders"}); err != nil {
		t.Fatalf("the class did not survive the restart: %v", err)
	}
	// Dedup survives the restart too.
	dup, err := e.admin.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "orders:created", MsgId: "m-1"})
	if err != nil || !dup.GetDuplicate() || dup.GetStreamSequence() != 1 {
		t.Fatalf("repeat of m-1 after restart = %v, %v", dup, err)
	}

	resumed := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("orders:>").Selector, StartAfterSequence: last})
	resumed.ack()
	for seq := last + 1; seq <= 100; seq++ {
		d := resumed.delivery()
		if d.GetStreamSequence() != seq || d.GetTopic() != acked[seq] || d.GetPayload().GetFields()["i"].GetNumberValue() != float64(seq) {
			t.Fatalf("resumed delivery %v, want stream sequence %d on %s", d, seq, acked[seq])
		}
	}
	if got := publish(t, e.admin, "orders:created", map[string]any{"i": 101}).GetStreamSequence(); got != 101 {
		t.Fatalf("first publish after restart got sequence %d, want 101", got)
	}
	if d := resumed.delivery(); d.GetStreamSequence() != 101 || d.GetSequence() != 101-last {
		t.Fatalf("live delivery after replay %v", d)
	}
}

// TestDurableGroupCommit publishes concurrently to a durable stream: every
// publish gets its own sequence, fewer syncs than publishes happen, and
// everything acknowledged is on disk after a restart.
func TestDurableGroupCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withDataDir(t.TempDir()))
	declare(t, e.admin, durableClass("gc"))
	const workers, each = 8, 100
	var mu sync.Mutex
	seqs := map[uint64]string{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				id := fmt.Sprintf("%d-%d", w, i)
				resp, err := e.admin.Publish(context.Background(), &eventsv1.PublishRequest{
					Topic: "gc:x", Payload: payload(t, map[string]any{"id": id}),
				})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seqs[resp.GetStreamSequence()] = id
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seqs) != workers*each {
		t.Fatalf("%d distinct sequences for %d publishes", len(seqs), workers*each)
	}
	st := e.svc.reg.streamFor("gc:x")
	if appends := st.store.appends.Load(); appends >= workers*each {
		t.Errorf("%d syncs for %d concurrent publishes: no group commit", appends, workers*each)
	} else {
		t.Logf("%d publishes in %d group commits", workers*each, appends)
	}
	e = e.restart()
	x := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("gc:x").Selector, LastN: workers * each})
	x.ack()
	for seq := uint64(1); seq <= workers*each; seq++ {
		d := x.delivery()
		if d.GetStreamSequence() != seq || d.GetPayload().GetFields()["id"].GetStringValue() != seqs[seq] {
			t.Fatalf("after restart, delivery %v; want %d with id %s", d, seq, seqs[seq])
		}
	}
}

// TestDurableTornTail appends half a record to the newest segment, as a
// crash in the middle of a write would leave it: the reopened stream drops
// the torn bytes and keeps every acknowledged event.
func TestDurableTornTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newEnv(t, withDataDir(dir), func(c *Config) { c.SegmentBytes = 4 << 10 })
	declare(t, e.admin, durableClass("torn"))
	body := string(make([]byte, 200))
	for i := 1; i <= 50; i++ {
		publish(t, e.admin, "torn", map[string]any{"i": i, "body": body})
	}
	st := e.svc.reg.streamFor("torn")
	active := st.store.segs[len(st.store.segs)-1].path
	if len(st.store.segs) < 3 {
		t.Fatalf("want several segments, have %d", len(st.store.segs))
	}
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(active, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 51, 0, 0, 0, 0, 0, 0, 0, 'p', 'a', 'r'}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	e = e.restart()
	if got := publish(t, e.admin, "torn", map[string]any{"i": 51}).GetStreamSequence(); got != 51 {
		t.Fatalf("publish after recovery got %d, want 51", got)
	}
	x := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("torn").Selector, LastN: 1000})
	x.ack()
	for i := 1; i <= 51; i++ {
		if d := x.delivery(); d.GetStreamSequence() != uint64(i) || d.GetPayload().GetFields()["i"].GetNumberValue() != float64(i) {
			t.Fatalf("delivery %v, want %d", d, i)
		}
	}
}

// TestDurableCorruptionIsDataLoss flips a byte inside a sealed segment: a
// replay through it fails with DATA_LOSS instead of skipping events.
func TestDurableCorruptionIsDataLoss(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withDataDir(t.TempDir()), func(c *Config) { c.SegmentBytes = 4 << 10; c.DurableCache = 1 })
	declare(t, e.admin, durableClass("rot"))
	for i := 1; i <= 60; i++ {
		publish(t, e.admin, "rot", map[string]any{"i": i})
	}
	st := e.svc.reg.streamFor("rot")
	sealed := st.store.segs[0].path
	b, err := os.ReadFile(sealed)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(sealed, b, 0o640); err != nil {
		t.Fatal(err)
	}
	x := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("rot").Selector, StartAfterSequence: 1})
	x.ack()
	wantCode(t, x.waitEnd(), codes.DataLoss, "STORE_CORRUPT")
	for len(x.ch) > 0 {
		if d := (<-x.ch).GetDelivery(); d == nil || d.GetStreamSequence() > 60 {
			t.Fatalf("unexpected message %v before the error", d)
		}
	}
}

// TestDurableRetention drops whole segments by count and by age, reports
// what a replay lost with a lag notice, and keeps the sequence across a
// restart even when every event has expired.
func TestDurableRetention(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := Config{Node: "test-node", DataDir: t.TempDir(), DurableCache: 16, NoSync: true}
	e := startEnvClock(t, cfg, clock)
	declare(t, e.admin, &eventsv1.EventClass{
		Name: "ret", SchemaVersion: "1", Durable: true, MaxEvents: 100,
		Retention: durationpb.New(time.Hour),
	})
	const n = 500
	for i := 1; i <= n; i++ {
		publish(t, e.admin, "ret", nil)
	}
	e.svc.enforceRetention()
	st := e.svc.reg.streamFor("ret")
	first, last := st.store.bounds()
	if last != n || first > n-100+1 || first < n-100-64 {
		t.Fatalf("after retention by count the log holds %d..%d", first, last)
	}
	x := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("ret").Selector, StartAfterSequence: 1})
	x.ack()
	lag := x.next().GetLag()
	if lag.GetMissed() != first-2 || lag.GetResumeAfterSequence() != first-1 || lag.GetStream() != "ret" {
		t.Fatalf("lag %v, first retained %d", lag, first)
	}
	if diff := cmp.Diff(seqRange(first, n), streamSeqs(t, x, int(n-first+1))); diff != "" {
		t.Fatalf("replay (-want +got):\n%s", diff)
	}

	clock.advance(2 * time.Hour)
	e.svc.enforceRetention()
	first, last = st.store.bounds()
	if first != n+1 || last != n {
		t.Fatalf("after retention by age the log holds %d..%d", first, last)
	}
	e.svc.enforceRetention() // idempotent
	entries, err := os.ReadDir(filepath.Dir(st.store.segs[0].path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 { // NAME and the empty active segment
		t.Fatalf("stream directory holds %d entries", len(entries))
	}
	e = e.restart()
	if got := publish(t, e.admin, "ret", nil).GetStreamSequence(); got != n+1 {
		t.Fatalf("after everything expired and a restart, the next sequence is %d, want %d", got, n+1)
	}
}

// TestDurableHandoverUnderLoad replays a durable stream from disk while a
// publisher keeps publishing, and checks the hand-over to live delivery.
func TestDurableHandoverUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withDataDir(t.TempDir()), func(c *Config) { c.DurableCache = 64; c.SegmentBytes = 16 << 10; c.NoSync = true })
	declare(t, e.admin, durableClass("ho"))
	const n = 600
	half := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			if _, err := e.admin.Publish(context.Background(), &eventsv1.PublishRequest{Topic: "ho:x"}); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			if i == n/2 {
				close(half)
			}
		}
	}()
	<-half
	x := subscribe(t, e.admin, &eventsv1.SubscribeRequest{Selector: pattern("ho:>").Selector, StartAfterSequence: 3})
	x.ack()
	got := streamSeqs(t, x, n-3)
	wg.Wait()
	if diff := cmp.Diff(seqRange(4, n), got); diff != "" {
		t.Errorf("stream sequences (-want +got):\n%s", diff)
	}
}

func TestDataDirIsLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	newEnv(t, withDataDir(dir))
	if _, err := New(Config{Node: "n", DataDir: dir}, Deps{Gate: &policyGate{}, Logger: discardLogger()}); err == nil {
		t.Fatal("a second service opened a locked data directory")
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Microsecond) // strictly increasing, like a real clock
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestDurableStoreFailureIsLoud breaks the disk under a durable stream: the
// publish that cannot be synced fails with UNAVAILABLE STORE_FAILED, and so
// does every later one, rather than being acknowledged.
func TestDurableStoreFailureIsLoud(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withDataDir(t.TempDir()))
	declare(t, e.admin, durableClass("fragile"))
	publish(t, e.admin, "fragile", nil)
	st := e.svc.reg.streamFor("fragile")
	st.store.mu.RLock()
	active := st.store.segs[len(st.store.segs)-1].f
	st.store.mu.RUnlock()
	if err := active.Close(); err != nil { // the next write fails
		t.Fatal(err)
	}
	// A bulk publisher waiting for its acks learns of it without sending
	// anything else.
	stream, err := e.admin.PublishStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(pubs("fragile", "fragile")); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.Unavailable, "STORE_FAILED")
	for i := 0; i < 2; i++ {
		_, err := e.admin.Publish(ctxT(t), &eventsv1.PublishRequest{Topic: "fragile"})
		wantCode(t, err, codes.Unavailable, "STORE_FAILED")
	}
	// Other streams carry on.
	publish(t, e.admin, "elsewhere", nil)
}
