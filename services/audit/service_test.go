package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auditlog"
	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// userMayNotAppend is a policy: the token principal "user" may not use
// audit/append; everything else is allowed.
var userMayNotAppend = gate.Func(func(_ context.Context, caller auth.Principal, uri string) (*routerv1.Verdict, error) {
	if caller.Name == "user" && uri == "audit/append" {
		return &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_FORBIDDEN, Reason: "no-permission"}, nil
	}
	return &routerv1.Verdict{Kind: routerv1.VerdictKind_VERDICT_KIND_ALLOWED}, nil
})

// serve starts s behind the real interceptor chain.
func serve(t *testing.T, s *Service) *rpctest.Server {
	t.Helper()
	return rpctest.Start(t, rpctest.Options{Gate: userMayNotAppend}, func(r grpc.ServiceRegistrar) { s.Register(r) })
}

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantStatus checks an error's code and ErrorInfo reason (and metadata
// keys, when given).
func wantStatus(t testing.TB, err error, code codes.Code, reason string, meta map[string]string) {
	t.Helper()
	if status.Code(err) != code || rpcerr.Reason(err) != reason {
		t.Fatalf("error %v: code %v reason %q, want %v %q", err, status.Code(err), rpcerr.Reason(err), code, reason)
	}
	info := rpcerr.Info(err)
	for k, v := range meta {
		if got := info.GetMetadata()[k]; got != v {
			t.Errorf("metadata %s = %q, want %q (all: %v)", k, got, v, info.GetMetadata())
		}
	}
}

func TestAppendOverGRPC(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t), Deps{})
	srv := serve(t, s)
	admin := auditv1.NewAuditServiceClient(srv.Dial(rpctest.AdminToken))
	user := auditv1.NewAuditServiceClient(srv.Dial(rpctest.UserToken))
	anon := auditv1.NewAuditServiceClient(srv.Dial(""))
	peer := auditv1.NewAuditServiceClient(srv.DialMeshPeer())
	ctx := context.Background()

	deep := map[string]any{}
	cur := deep
	for range auditlog.MaxPayloadDepth + 1 {
		next := map[string]any{}
		cur["d"] = next
		cur = next
	}
	ok := mustStruct(t, map[string]any{"uri": "genome/page-in", "caller": "user", "dry_run": true, "rule": 3.0, "list": []any{"a", 1.0}})
	tests := []struct {
		name      string
		client    auditv1.AuditServiceClient
		req       *auditv1.AppendRequest
		code      codes.Code
		reason    string
		publisher string
		want      *structpb.Struct // the recorded payload, when not the sent one
	}{
		{name: "admin", client: admin, req: &auditv1.AppendRequest{Kind: "refusal", Payload: ok}, publisher: "admin"},
		{name: "mesh peer is not gated", client: peer, req: &auditv1.AppendRequest{Kind: "federation-policy-drift", Payload: ok}, publisher: "peer:test-node"},
		{name: "no payload", client: admin, req: &auditv1.AppendRequest{Kind: "governor-override"}, publisher: "admin"},
		{name: "unknown kind", client: admin, req: &auditv1.AppendRequest{Kind: "Refusal", Payload: ok}, code: codes.InvalidArgument, reason: ReasonKindUnknown},
		{name: "empty kind", client: admin, req: &auditv1.AppendRequest{}, code: codes.InvalidArgument, reason: ReasonKindUnknown},
		{name: "non-finite numbers have no JSON form and are refused", client: admin, req: &auditv1.AppendRequest{Kind: "refusal", Payload: &structpb.Struct{Fields: map[string]*structpb.Value{
			"nan": structpb.NewNumberValue(math.NaN()), "inf": structpb.NewNumberValue(math.Inf(-1)),
		}}}, code: codes.InvalidArgument, reason: ReasonPayloadInvalid},
		{name: "too deep", client: admin, req: &auditv1.AppendRequest{Kind: "refusal", Payload: mustStruct(t, deep)}, code: codes.InvalidArgument, reason: ReasonPayloadInvalid},
		{
			name: "too big", client: admin, req: &auditv1.AppendRequest{Kind: "refusal", Payload: mustStruct(t, map[string]any{"x": strings.Repeat("x", 70<<10)})},
			code: codes.InvalidArgument, reason: ReasonPayloadInvalid,
		},
		{name: "policy forbids", client: user, req: &auditv1.AppendRequest{Kind: "refusal", Payload: ok}, code: codes.PermissionDenied, reason: "FORBIDDEN_NO_PERMISSION"},
		{name: "anonymous", client: anon, req: &auditv1.AppendRequest{Kind: "refusal", Payload: ok}, code: codes.Unauthenticated, reason: "AUTH_REQUIRED"},
	}
	for _, tt := range tests {
		resp, err := tt.client.Append(ctx, tt.req)
		if tt.code != codes.OK {
			wantStatus(t, err, tt.code, tt.reason, nil)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		e := resp.GetEntry()
		wantPayload := tt.req.GetPayload()
		if tt.want != nil {
			wantPayload = tt.want
		}
		if wantPayload == nil {
			wantPayload = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		}
		if diff := cmp.Diff(wantPayload, e.GetPayload(), protocmp.Transform()); diff != "" {
			t.Errorf("%s: payload (-want +got):\n%s", tt.name, diff)
		}
		if e.GetKind() != tt.req.GetKind() || e.GetSource().GetPublisher() != tt.publisher || e.GetSource().GetTopic() != "" {
			t.Errorf("%s: entry %v", tt.name, e)
		}
	}

	// What Read streams is what Append returned.
	stream, err := admin.Read(ctx, &auditv1.ReadRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []*auditv1.Entry
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.GetEntry())
	}
	if len(got) != 3 {
		t.Fatalf("read %d entries, want 3", len(got))
	}
	for i, e := range got {
		if e.GetSeq() != uint64(i+1) {
			t.Errorf("entry %d has seq %d", i, e.GetSeq())
		}
	}
	v, err := admin.Verify(ctx, &auditv1.VerifyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !v.GetOk() || v.GetSize() != 3 || v.GetHeadHash() != got[2].GetChainHash() {
		t.Errorf("Verify = %v, want ok size 3 head %s", v, got[2].GetChainHash())
	}
}

func TestReadOverGRPCMatchesAppend(t *testing.T) {
	t.Parallel()
	s := open(t, testConfig(t), Deps{})
	c := auditv1.NewAuditServiceClient(serve(t, s).Dial(rpctest.AdminToken))
	ctx := context.Background()
	var appended []*auditv1.Entry
	for i := range 70 {
		r, err := c.Append(ctx, &auditv1.AppendRequest{Kind: auditlog.Kinds[i%4], Payload: mustStruct(t, map[string]any{"i": float64(i)})})
		if err != nil {
			t.Fatal(err)
		}
		appended = append(appended, r.GetEntry())
	}
	stream, err := c.Read(ctx, &auditv1.ReadRequest{FromSeq: 60, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	var got []*auditv1.Entry
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.GetEntry())
	}
	if diff := cmp.Diff(appended[59:64], got, protocmp.Transform()); diff != "" {
		t.Errorf("Read(60, 5) (-appended +read):\n%s", diff)
	}
}

// TestVerifyDetectsTampering edits the log under a running service in
// each way the issue names and checks Verify's typed failure.
func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tamper func(t *testing.T, lines [][]byte) [][]byte
		reason string
		meta   map[string]string
	}{
		{
			name: "tampered payload",
			tamper: func(_ *testing.T, ls [][]byte) [][]byte {
				ls[6] = bytes.Replace(ls[6], []byte(`"caller":"user-6"`), []byte(`"caller":"root"`), 1)
				return ls
			},
			reason: auditlog.ReasonChainBroken, meta: map[string]string{"seq": "7"},
		},
		{
			name:   "deleted middle entry",
			tamper: func(_ *testing.T, ls [][]byte) [][]byte { return append(ls[:9], ls[10:]...) },
			reason: auditlog.ReasonSequenceGap, meta: map[string]string{"seq": "10", "expected": "10", "got": "11"},
		},
		{
			name: "reordered entries",
			tamper: func(_ *testing.T, ls [][]byte) [][]byte {
				ls[3], ls[4] = ls[4], ls[3]
				return ls
			},
			reason: auditlog.ReasonSequenceGap, meta: map[string]string{"seq": "4", "expected": "4", "got": "5"},
		},
		{
			name: "sequence gap with every hash recomputed",
			tamper: func(t *testing.T, ls [][]byte) [][]byte {
				es := parseAll(t, ls)
				for _, e := range es[12:] {
					e.Seq++
				}
				return reseal(es)
			},
			reason: auditlog.ReasonSequenceGap, meta: map[string]string{"seq": "13", "expected": "13", "got": "14"},
		},
		{
			name: "backward timestamp with every hash recomputed",
			tamper: func(t *testing.T, ls [][]byte) [][]byte {
				es := parseAll(t, ls)
				es[15].TimestampMs = es[14].TimestampMs - 1000
				return reseal(es)
			},
			reason: auditlog.ReasonTimestampWentBackward, meta: map[string]string{"seq": "16"},
		},
		{
			name: "payload rewritten with every hash recomputed",
			tamper: func(t *testing.T, ls [][]byte) [][]byte {
				es := parseAll(t, ls)
				es[17].Payload["caller"] = "nobody"
				return reseal(es)
			},
			reason: auditlog.ReasonChainBroken, meta: map[string]string{"seq": "18"},
		},
		{
			name:   "truncated",
			tamper: func(_ *testing.T, ls [][]byte) [][]byte { return ls[:15] },
			reason: auditlog.ReasonChainBroken, meta: map[string]string{"seq": "16"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			clk := newClock()
			s := open(t, cfg, Deps{Now: clk.Now})
			c := auditv1.NewAuditServiceClient(serve(t, s).Dial(rpctest.AdminToken))
			ctx := context.Background()
			for i := range 20 {
				clk.Advance(1000)
				_, err := c.Append(ctx, &auditv1.AppendRequest{Kind: "refusal", Payload: mustStruct(t, map[string]any{"caller": "user-" + string(rune('0'+i%10))})})
				if err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.Verify(ctx, &auditv1.VerifyRequest{}); err != nil {
				t.Fatalf("Verify before tampering: %v", err)
			}
			writeLines(t, logPath(cfg), tt.tamper(t, readLines(t, logPath(cfg))))
			_, err := c.Verify(ctx, &auditv1.VerifyRequest{})
			wantStatus(t, err, codes.DataLoss, tt.reason, tt.meta)
		})
	}
}

func TestCheckpointAndProofsOverGRPC(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s := open(t, cfg, Deps{})
	c := auditv1.NewAuditServiceClient(serve(t, s).Dial(rpctest.AdminToken))
	ctx := context.Background()

	pk, err := c.PublicKey(ctx, &auditv1.PublicKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if pk.GetOrigin() != "continuum.mesh/audit/n1" || !strings.HasPrefix(pk.GetVerifierKey(), "continuum.mesh/audit/n1+") {
		t.Fatalf("PublicKey = %v", pk)
	}
	checkpoint := func() auditlog.Checkpoint {
		t.Helper()
		r, err := c.Checkpoint(ctx, &auditv1.CheckpointRequest{})
		if err != nil {
			t.Fatal(err)
		}
		cp, err := auditlog.OpenCheckpoint([]byte(r.GetNote()), pk.GetVerifierKey())
		if err != nil {
			t.Fatalf("checkpoint does not verify: %v\n%s", err, r.GetNote())
		}
		if cp.Size != r.GetSize() || cp.Origin != r.GetOrigin() || b64(cp.Root) != r.GetRootHash() {
			t.Fatalf("checkpoint fields %v disagree with its note %+v", r, cp)
		}
		return cp
	}
	empty := checkpoint()
	if empty.Size != 0 {
		t.Fatalf("empty log checkpoint size %d", empty.Size)
	}
	var entries []*auditv1.Entry
	var cps []auditlog.Checkpoint
	for i := range 12 {
		r, err := c.Append(ctx, &auditv1.AppendRequest{Kind: "access-denied", Payload: mustStruct(t, map[string]any{"i": float64(i)})})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, r.GetEntry())
		cps = append(cps, checkpoint())
	}
	latest := cps[len(cps)-1]
	for _, e := range entries {
		p, err := c.InclusionProof(ctx, &auditv1.InclusionProofRequest{Seq: e.GetSeq()})
		if err != nil {
			t.Fatal(err)
		}
		if p.GetTreeSize() != latest.Size || p.GetRootHash() != b64(latest.Root) {
			t.Fatalf("inclusion proof against %d %s, want the latest checkpoint", p.GetTreeSize(), p.GetRootHash())
		}
		// The client computes the leaf from the entry itself.
		ae := entryFromProto(t, e)
		leaf := auditlog.LeafHashOf(auditlog.AppendCanonical(nil, ae))
		if b64(leaf) != p.GetLeafHash() {
			t.Fatalf("seq %d: leaf %s, served %s", e.GetSeq(), b64(leaf), p.GetLeafHash())
		}
		if err := auditlog.CheckInclusion(unb64s(t, p.GetHashes()), latest.Size, latest.Root, e.GetSeq(), leaf); err != nil {
			t.Fatal(err)
		}
	}
	for _, old := range append([]auditlog.Checkpoint{empty}, cps...) {
		p, err := c.ConsistencyProof(ctx, &auditv1.ConsistencyProofRequest{OldSize: old.Size})
		if err != nil {
			t.Fatal(err)
		}
		if err := auditlog.CheckConsistency(unb64s(t, p.GetHashes()), old, latest); err != nil {
			t.Fatalf("consistency %d -> %d: %v", old.Size, latest.Size, err)
		}
	}

	errTests := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
	}{
		{"seq 0", func() error { _, err := c.InclusionProof(ctx, &auditv1.InclusionProofRequest{Seq: 0}); return err }, codes.InvalidArgument, ReasonSeqOutOfRange},
		{"seq beyond tree", func() error {
			_, err := c.InclusionProof(ctx, &auditv1.InclusionProofRequest{Seq: 6, TreeSize: 5})
			return err
		}, codes.InvalidArgument, ReasonSeqOutOfRange},
		{"tree beyond log", func() error {
			_, err := c.InclusionProof(ctx, &auditv1.InclusionProofRequest{Seq: 1, TreeSize: 13})
			return err
		}, codes.OutOfRange, ReasonSizeOutOfRange},
		{"huge sizes", func() error {
			_, err := c.InclusionProof(ctx, &auditv1.InclusionProofRequest{Seq: math.MaxUint64, TreeSize: math.MaxUint64})
			return err
		}, codes.OutOfRange, ReasonSizeOutOfRange},
		{"old after new", func() error {
			_, err := c.ConsistencyProof(ctx, &auditv1.ConsistencyProofRequest{OldSize: 5, NewSize: 4})
			return err
		}, codes.InvalidArgument, ReasonSizeOutOfRange},
		{"new beyond log", func() error {
			_, err := c.ConsistencyProof(ctx, &auditv1.ConsistencyProofRequest{OldSize: 5, NewSize: math.MaxUint64})
			return err
		}, codes.OutOfRange, ReasonSizeOutOfRange},
	}
	for _, tt := range errTests {
		wantStatus(t, tt.call(), tt.code, tt.reason, nil)
	}
}

// TestTruncatedTailCaughtByConsistencyProof: the log is cut back (and, in
// one case, regrown with other entries) while the node is down. The chain
// of what remains verifies, so only a checkpoint held from before can
// tell: a consistency proof from it fails, or the log is now smaller.
func TestTruncatedTailCaughtByConsistencyProof(t *testing.T) {
	t.Parallel()
	for _, regrow := range []bool{false, true} {
		t.Run(map[bool]string{false: "truncated", true: "truncated and regrown"}[regrow], func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			s := open(t, cfg, Deps{})
			for i := range 20 {
				appendOne(t, s, auditlog.KindRefusal, map[string]any{"i": float64(i)})
			}
			c := auditv1.NewAuditServiceClient(serve(t, s).Dial(rpctest.AdminToken))
			ctx := context.Background()
			r, err := c.Checkpoint(ctx, &auditv1.CheckpointRequest{})
			if err != nil {
				t.Fatal(err)
			}
			held, err := auditlog.OpenCheckpoint([]byte(r.GetNote()), s.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(t.TempDir(), "held.note"), []byte(r.GetNote()), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			writeLines(t, logPath(cfg), readLines(t, logPath(cfg))[:15])
			s2 := open(t, cfg, Deps{})
			if st := s2.Stats(); st.Corrupt != nil || st.Entries != 15 {
				t.Fatalf("the truncated log should open clean (a chain cannot see truncation): %+v", st)
			}
			if regrow {
				for i := range 10 {
					appendOne(t, s2, auditlog.KindRefusal, map[string]any{"other": float64(i)})
				}
			}
			c2 := auditv1.NewAuditServiceClient(serve(t, s2).Dial(rpctest.AdminToken))
			if _, err := c2.Verify(ctx, &auditv1.VerifyRequest{}); err != nil {
				t.Fatalf("the chain of what remains verifies, yet Verify = %v", err)
			}
			r2, err := c2.Checkpoint(ctx, &auditv1.CheckpointRequest{})
			if err != nil {
				t.Fatal(err)
			}
			now, err := auditlog.OpenCheckpoint([]byte(r2.GetNote()), s2.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			if !regrow {
				if now.Size >= held.Size {
					t.Fatalf("size %d after truncation, held %d", now.Size, held.Size)
				}
				// The log cannot prove it extends the held checkpoint.
				_, err := c2.ConsistencyProof(ctx, &auditv1.ConsistencyProofRequest{OldSize: held.Size})
				wantStatus(t, err, codes.InvalidArgument, ReasonSizeOutOfRange, nil)
				if err := auditlog.CheckConsistency(nil, held, now); err == nil {
					t.Fatal("a smaller checkpoint passed as consistent")
				}
				return
			}
			p, err := c2.ConsistencyProof(ctx, &auditv1.ConsistencyProofRequest{OldSize: held.Size})
			if err != nil {
				t.Fatal(err)
			}
			if err := auditlog.CheckConsistency(unb64s(t, p.GetHashes()), held, now); err == nil {
				t.Fatal("a rewritten tail passed the consistency proof against the held checkpoint")
			}
		})
	}
}

func TestSigningKey(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	s := open(t, cfg, Deps{})
	vkey := s.VerifierKey()
	fi, err := os.Stat(filepath.Join(cfg.DataDir, dirName, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key mode %v, want 0600", fi.Mode().Perm())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, cfg, Deps{})
	if s2.VerifierKey() != vkey {
		t.Errorf("verifier key changed across a restart: %s -> %s", vkey, s2.VerifierKey())
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	other := cfg
	other.Origin = "continuum.mesh/audit/elsewhere"
	if s3, err := New(other, Deps{Logger: discard()}); err == nil {
		_ = s3.Close()
		t.Error("opened a log whose key names another origin")
	}
	for _, bad := range []string{"has space", "has+plus", "tab\t"} {
		c := cfg
		c.Origin = bad
		if _, err := New(c, Deps{Logger: discard()}); err == nil {
			t.Errorf("origin %q accepted", bad)
		}
	}
}

func entryFromProto(t testing.TB, e *auditv1.Entry) *auditlog.Entry {
	t.Helper()
	prev, err := auditlog.ParseHash(e.GetPrevChainHash())
	if err != nil {
		t.Fatal(err)
	}
	chain, err := auditlog.ParseHash(e.GetChainHash())
	if err != nil {
		t.Fatal(err)
	}
	return &auditlog.Entry{
		Seq: e.GetSeq(), TimestampMs: e.GetTimestampMs(), RawTimestampMs: e.GetRawTimestampMs(), Kind: e.GetKind(),
		Payload: e.GetPayload().AsMap(),
		Source: auditlog.Source{
			Topic: e.GetSource().GetTopic(), StreamSequence: e.GetSource().GetStreamSequence(), Publisher: e.GetSource().GetPublisher(),
		},
		PrevChainHash: prev, ChainHash: chain,
	}
}

func unb64s(t testing.TB, ss []string) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(ss))
	for i, s := range ss {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != len(out[i]) {
			t.Fatalf("proof hash %q: %v", s, err)
		}
		copy(out[i][:], b)
	}
	return out
}
