package audit

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// userMayNotBatch is a policy: the token principal "user" may not use the
// batched appends; everything else is allowed.
var userMayNotBatch = gate.Func(func(_ context.Context, caller auth.Principal, uri string) (*routerv1.Verdict, error) {
	if caller.Name == "user" && (uri == "audit/append-batch" || uri == "audit/append-stream") {
		return &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_FORBIDDEN, Reason: "no-permission"}, nil
	}
	return &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_ALLOWED}, nil
})

func serveBatch(t *testing.T, s *Service) *rpctest.Server {
	t.Helper()
	return rpctest.Start(t, rpctest.Options{Gate: userMayNotBatch}, func(r grpc.ServiceRegistrar) { s.Register(r) })
}

// appendReqs is n refusal entries numbered from first.
func appendReqs(t testing.TB, first, n int) []*auditv1.AppendRequest {
	t.Helper()
	out := make([]*auditv1.AppendRequest, n)
	for i := range out {
		out[i] = &auditv1.AppendRequest{Kind: "refusal", Payload: mustStruct(t, map[string]any{"i": float64(first + i), "uri": "genome/page-in"})}
	}
	return out
}

// readAll returns every entry of the log through Read.
func readAll(t testing.TB, c auditv1.AuditServiceClient) []*auditv1.Entry {
	t.Helper()
	st, err := c.Read(context.Background(), &auditv1.ReadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*auditv1.Entry
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.GetEntry())
	}
}

// acksFor are the acks of entries as the log holds them.
func acksFor(entries []*auditv1.Entry) []*auditv1.AppendAck {
	out := make([]*auditv1.AppendAck, len(entries))
	for i, e := range entries {
		out[i] = &auditv1.AppendAck{Seq: e.GetSeq(), TimestampMs: e.GetTimestampMs(), ChainHash: e.GetChainHash()}
	}
	return out
}

func TestAppendBatchOverGRPC(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t), Deps{})
	srv := serveBatch(t, s)
	admin := auditv1.NewAuditServiceClient(srv.Dial(rpctest.AdminToken))
	user := auditv1.NewAuditServiceClient(srv.Dial(rpctest.UserToken))
	anon := auditv1.NewAuditServiceClient(srv.Dial(""))
	peer := auditv1.NewAuditServiceClient(srv.DialMeshPeer())
	ctx := context.Background()

	badKind := appendReqs(t, 0, 5)
	badKind[3].Kind = "refusals"
	tooBig := appendReqs(t, 0, 3)
	tooBig[1].Payload = mustStruct(t, map[string]any{"x": strings.Repeat("x", 70<<10)})
	noKind := appendReqs(t, 0, 2)
	noKind[1].Payload = &structpb.Struct{Fields: map[string]*structpb.Value{"k": {}}}
	tests := []struct {
		name      string
		client    auditv1.AuditServiceClient
		entries   []*auditv1.AppendRequest
		code      codes.Code
		reason    string
		meta      map[string]string
		publisher string
	}{
		{name: "admin", client: admin, entries: appendReqs(t, 0, 3), publisher: "admin"},
		{name: "one entry, no payload", client: admin, entries: []*auditv1.AppendRequest{{Kind: "governor-override"}}, publisher: "admin"},
		{name: "the most entries", client: admin, entries: appendReqs(t, 0, maxAppendBatch), publisher: "admin"},
		{name: "mesh peer is not gated", client: peer, entries: appendReqs(t, 0, 2), publisher: "peer:test-node"},
		{name: "empty", client: admin, code: codes.InvalidArgument, reason: ReasonBatchInvalid, meta: map[string]string{"entries": "0"}},
		{
			name: "too many", client: admin, entries: appendReqs(t, 0, maxAppendBatch+1),
			code: codes.InvalidArgument, reason: ReasonBatchInvalid, meta: map[string]string{"entries": strconv.Itoa(maxAppendBatch + 1), "max_entries": "1024"},
		},
		{
			name: "bad kind refuses the whole batch", client: admin, entries: badKind,
			code: codes.InvalidArgument, reason: ReasonKindUnknown, meta: map[string]string{"index": "3", "kind": "refusals"},
		},
		{name: "payload too big", client: admin, entries: tooBig, code: codes.InvalidArgument, reason: ReasonPayloadInvalid, meta: map[string]string{"index": "1"}},
		{name: "value with no kind", client: admin, entries: noKind, code: codes.InvalidArgument, reason: ReasonPayloadInvalid, meta: map[string]string{"index": "1"}},
		{name: "policy forbids", client: user, entries: appendReqs(t, 0, 1), code: codes.PermissionDenied, reason: "FORBIDDEN_NO_PERMISSION"},
		{name: "anonymous", client: anon, entries: appendReqs(t, 0, 1), code: codes.Unauthenticated, reason: "AUTH_REQUIRED"},
	}
	var size uint64
	for _, tt := range tests {
		resp, err := tt.client.AppendBatch(ctx, &auditv1.AppendBatchRequest{Entries: tt.entries})
		if tt.code != codes.OK {
			wantStatus(t, err, tt.code, tt.reason, tt.meta)
			if got := s.Stats().Entries; got != size {
				t.Fatalf("%s: the log has %d entries after a refused batch, want %d", tt.name, got, size)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		all := readAll(t, admin)
		recorded := all[size:]
		if len(recorded) != len(tt.entries) {
			t.Fatalf("%s: %d entries recorded, want %d", tt.name, len(recorded), len(tt.entries))
		}
		if diff := cmp.Diff(acksFor(recorded), resp.GetAcks(), protocmp.Transform()); diff != "" {
			t.Fatalf("%s: acks differ from the log (-log +acks):\n%s", tt.name, diff)
		}
		for i, e := range recorded {
			want := tt.entries[i].GetPayload()
			if want == nil {
				want = &structpb.Struct{}
			}
			if e.GetKind() != tt.entries[i].GetKind() || e.GetSource().GetPublisher() != tt.publisher ||
				!cmp.Equal(want, e.GetPayload(), protocmp.Transform()) {
				t.Fatalf("%s: entry %d is %v, want kind %s payload %v publisher %s", tt.name, i, e, tt.entries[i].GetKind(), want, tt.publisher)
			}
		}
		size += uint64(len(tt.entries))
	}
	if v, err := admin.Verify(ctx, &auditv1.VerifyRequest{}); err != nil || v.GetSize() != size {
		t.Fatalf("Verify = %v, %v; want size %d", v, err, size)
	}
}

// TestAppendBatchFailedWriteLeavesNothing: a write that fails half way is
// cut off, the whole batch is refused, and the next batch continues the
// chain.
func TestAppendBatchFailedWriteLeavesNothing(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s, ff := openFaulty(t, cfg, Deps{})
	srv := serveBatch(t, s)
	admin := auditv1.NewAuditServiceClient(srv.Dial(rpctest.AdminToken))
	ctx := context.Background()
	if _, err := admin.AppendBatch(ctx, &auditv1.AppendBatchRequest{Entries: appendReqs(t, 0, 4)}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(logPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	ff.set(func(f *faultyFile) { f.failWrite = true })
	_, err = admin.AppendBatch(ctx, &auditv1.AppendBatchRequest{Entries: appendReqs(t, 4, 10)})
	wantStatus(t, err, codes.Unavailable, ReasonWriteFailed, nil)
	after, err := os.ReadFile(logPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Fatalf("the failed batch left %d bytes behind", len(after)-len(before))
	}
	ff.set(func(f *faultyFile) { f.failWrite = false })
	resp, err := admin.AppendBatch(ctx, &auditv1.AppendBatchRequest{Entries: appendReqs(t, 4, 10)})
	if err != nil {
		t.Fatal(err)
	}
	if first := resp.GetAcks()[0].GetSeq(); first != 5 {
		t.Fatalf("the batch after the failed one starts at seq %d, want 5", first)
	}
	if res := mustVerify(t, s); res.Size != 14 {
		t.Fatalf("verified %d entries, want 14", res.Size)
	}
}

// TestAppendStreamPipelined sends every request before reading any
// response, alongside unary appenders, and checks each request is answered
// in order with the entries the log holds, consecutive per request and in
// the order sent.
func TestAppendStreamPipelined(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t), Deps{})
	srv := serveBatch(t, s)
	admin := auditv1.NewAuditServiceClient(srv.Dial(rpctest.AdminToken))
	ctx := context.Background()

	// Others append meanwhile, so the stream's requests share commits.
	var others sync.WaitGroup
	var otherErr atomic.Value
	for range 4 {
		others.Add(1)
		go func() {
			defer others.Done()
			for i := range 25 {
				if _, err := admin.Append(ctx, &auditv1.AppendRequest{Kind: "access-denied", Payload: mustStruct(t, map[string]any{"other": float64(i)})}); err != nil {
					otherErr.Store(err)
					return
				}
			}
		}()
	}

	const requests = 200 // more than the window, so the server holds the producer back
	st, err := admin.AppendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	sendErr := make(chan error, 1)
	for i := range requests {
		sizes = append(sizes, 1+i%7)
	}
	go func() {
		first := 0
		for _, n := range sizes {
			if err := st.Send(&auditv1.AppendStreamRequest{Entries: appendReqs(t, first, n)}); err != nil {
				sendErr <- err
				return
			}
			first += n
		}
		sendErr <- st.CloseSend()
	}()
	var acks [][]*auditv1.AppendAck
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, r.GetAcks())
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	others.Wait()
	if err, _ := otherErr.Load().(error); err != nil {
		t.Fatal(err)
	}
	if len(acks) != requests {
		t.Fatalf("%d responses, want %d", len(acks), requests)
	}
	bySeq := map[uint64]*auditv1.Entry{}
	for _, e := range readAll(t, admin) {
		bySeq[e.GetSeq()] = e
	}
	var last uint64
	next := 0.0
	for i, as := range acks {
		if len(as) != sizes[i] {
			t.Fatalf("response %d acknowledges %d entries, want %d", i, len(as), sizes[i])
		}
		for j, a := range as {
			if a.GetSeq() <= last || (j > 0 && a.GetSeq() != last+1) {
				t.Fatalf("response %d ack %d: seq %d after %d (out of order or not consecutive)", i, j, a.GetSeq(), last)
			}
			last = a.GetSeq()
			e := bySeq[a.GetSeq()]
			if e.GetChainHash() != a.GetChainHash() || e.GetTimestampMs() != a.GetTimestampMs() ||
				e.GetPayload().GetFields()["i"].GetNumberValue() != next || e.GetSource().GetPublisher() != "admin" {
				t.Fatalf("ack %v does not match the logged entry %v (want payload i=%v)", a, e, next)
			}
			next++
		}
	}
	if res := mustVerify(t, s); res.Size != uint64(next)+100 {
		t.Fatalf("verified %d entries, want %d", res.Size, uint64(next)+100)
	}
}

// TestAppendStreamEndsAtBadRequest: the requests before a refused one are
// answered, the stream ends with the refusal, and nothing sent after it is
// recorded.
func TestAppendStreamEndsAtBadRequest(t *testing.T) {
	t.Parallel()
	bad := appendReqs(t, 0, 3)
	bad[2].Kind = ""
	tests := []struct {
		name   string
		bad    []*auditv1.AppendRequest
		reason string
		meta   map[string]string
	}{
		{name: "bad kind", bad: bad, reason: ReasonKindUnknown, meta: map[string]string{"index": "2"}},
		{name: "empty request", bad: nil, reason: ReasonBatchInvalid, meta: map[string]string{"entries": "0"}},
		{name: "too many entries", bad: appendReqs(t, 0, maxAppendBatch+1), reason: ReasonBatchInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, testConfig(t), Deps{})
			srv := serveBatch(t, s)
			admin := auditv1.NewAuditServiceClient(srv.Dial(rpctest.AdminToken))
			st, err := admin.AppendStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, req := range [][]*auditv1.AppendRequest{appendReqs(t, 0, 2), appendReqs(t, 2, 3), tt.bad, appendReqs(t, 5, 4)} {
				if err := st.Send(&auditv1.AppendStreamRequest{Entries: req}); err != nil && !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
			}
			var answered []int
			for {
				r, err := st.Recv()
				if err != nil {
					wantStatus(t, err, codes.InvalidArgument, tt.reason, tt.meta)
					break
				}
				answered = append(answered, len(r.GetAcks()))
			}
			if diff := cmp.Diff([]int{2, 3}, answered); diff != "" {
				t.Fatalf("answered requests (-want +got):\n%s", diff)
			}
			if got := s.Stats().Entries; got != 5 {
				t.Fatalf("the log has %d entries, want the 5 acknowledged", got)
			}
		})
	}
}

// TestAppendStreamWriteFailure: a failed write ends the stream with
// LOG_WRITE_FAILED and leaves nothing behind; the log carries on.
func TestAppendStreamWriteFailure(t *testing.T) {
	t.Parallel()
	s, ff := openFaulty(t, testConfig(t), Deps{})
	srv := serveBatch(t, s)
	admin := auditv1.NewAuditServiceClient(srv.Dial(rpctest.AdminToken))
	ctx := context.Background()
	st, err := admin.AppendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&auditv1.AppendStreamRequest{Entries: appendReqs(t, 0, 3)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	ff.set(func(f *faultyFile) { f.failWrite = true })
	for i := range 5 {
		if err := st.Send(&auditv1.AppendStreamRequest{Entries: appendReqs(t, 3+i, 1)}); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
	}
	_, err = st.Recv()
	wantStatus(t, err, codes.Unavailable, ReasonWriteFailed, nil)
	ff.set(func(f *faultyFile) { f.failWrite = false })
	resp, err := admin.Append(ctx, &auditv1.AppendRequest{Kind: "refusal"})
	if err != nil {
		t.Fatal(err)
	}
	if seq := resp.GetEntry().GetSeq(); seq != 4 {
		t.Fatalf("the append after the failed stream got seq %d, want 4", seq)
	}
	if res := mustVerify(t, s); res.Size != 4 {
		t.Fatalf("verified %d entries, want 4", res.Size)
	}
}

// TestStreamChainStopsLaterRequests: once a request of a stream fails, a
// request of the same stream already queued behind it (in a later group
// commit) is refused, not written, so a stream never records past a
// failure.
func TestStreamChainStopsLaterRequests(t *testing.T) {
	t.Parallel()
	s, ff := openFaulty(t, testConfig(t), Deps{})
	chain := new(atomic.Bool)
	item := []pendingEntry{{Kind: auditlog.KindRefusal, Payload: map[string]any{}}}
	var second *commitReq
	var secondLead bool
	ff.set(func(f *faultyFile) {
		f.failWrite = true
		f.writeHook = func() {
			// Queued while the first request's commit is writing: it goes
			// into the next commit.
			if second == nil {
				var err error
				if second, secondLead, err = s.store.enqueue(item, chain); err != nil {
					t.Error(err)
				}
			}
		}
	})
	first, lead, err := s.store.enqueue(item, chain)
	if err != nil || !lead {
		t.Fatalf("enqueue = lead %v, %v; want the leader", lead, err)
	}
	if _, err := s.store.wait(first, lead); !errors.Is(err, errWriteFailed) {
		t.Fatalf("first request: %v, want the write failure", err)
	}
	if second == nil || secondLead {
		t.Fatalf("second request queued: %v, lead %v; want queued behind the first", second != nil, secondLead)
	}
	ff.set(func(f *faultyFile) { f.failWrite = false })
	if _, err := s.store.wait(second, secondLead); !errors.Is(err, errStreamAborted) {
		t.Fatalf("second request: %v, want it refused as aborted", err)
	}
	if n := s.Stats().Entries; n != 0 {
		t.Fatalf("the log has %d entries, want none", n)
	}
	// Other callers are not affected.
	if e := appendOne(t, s, auditlog.KindRefusal, map[string]any{}); e.Seq != 1 {
		t.Fatalf("next append got seq %d, want 1", e.Seq)
	}
}

// TestAppendStreamCancelled: a producer that goes away mid-stream, with
// requests still queued and a window full of unread responses, leaves the
// log working and closable.
func TestAppendStreamCancelled(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t), Deps{})
	srv := serveBatch(t, s)
	admin := auditv1.NewAuditServiceClient(srv.Dial(rpctest.AdminToken))
	user := auditv1.NewAuditServiceClient(srv.Dial(rpctest.UserToken))

	// Gated when the stream opens.
	us, err := user.AppendStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = us.Recv()
	wantStatus(t, err, codes.PermissionDenied, "FORBIDDEN_NO_PERMISSION", nil)

	ctx, cancel := context.WithCancel(context.Background())
	st, err := admin.AppendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * maxStreamInFlight {
		if err := st.Send(&auditv1.AppendStreamRequest{Entries: appendReqs(t, i, 2)}); err != nil {
			break // flow control or the cancel below
		}
		if i == maxStreamInFlight {
			// Read nothing and give up.
			cancel()
		}
	}
	cancel()
	// The log takes appends and the stream's leftovers settle.
	if _, err := admin.Append(context.Background(), &auditv1.AppendRequest{Kind: "refusal"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cancelled stream's commits to settle", 10*time.Second, func() bool {
		s.store.qmu.Lock()
		defer s.store.qmu.Unlock()
		return !s.store.leading
	})
	res := mustVerify(t, s)
	if res.Size%2 != 1 {
		t.Fatalf("the log has %d entries: a 2-entry request was split", res.Size)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAppendStreamEmpty: a stream closed without requests ends cleanly.
func TestAppendStreamEmpty(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t), Deps{})
	srv := serveBatch(t, s)
	st, err := auditv1.NewAuditServiceClient(srv.Dial(rpctest.AdminToken)).AppendStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("Recv = %v, want EOF", err)
	}
}
