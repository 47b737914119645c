package genome

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
)

// grpcService starts the manager behind the real server chain.
func grpcService(t *testing.T, cfg Config, deps Deps) (*Service, *rpctest.Server) {
	t.Helper()
	s := testService(t, cfg, deps)
	srv := rpctest.Start(t, rpctest.Options{}, func(r grpc.ServiceRegistrar) { s.Register(r) })
	return s, srv
}

func putGRPC(t *testing.T, c genomev1.GenomeServiceClient, data []byte, hdr *genomev1.PutArtifactHeader, chunk int) (*genomev1.PutArtifactResponse, error) {
	t.Helper()
	stream, err := c.PutArtifact(context.Background())
	if err != nil {
		return nil, err
	}
	if hdr != nil {
		if err := stream.Send(&genomev1.PutArtifactRequest{Part: &genomev1.PutArtifactRequest_Header{Header: hdr}}); err != nil {
			return stream.CloseAndRecv()
		}
	}
	for len(data) > 0 {
		n := min(chunk, len(data))
		if err := stream.Send(&genomev1.PutArtifactRequest{Part: &genomev1.PutArtifactRequest_Chunk{Chunk: data[:n]}}); err != nil {
			return stream.CloseAndRecv()
		}
		data = data[n:]
	}
	return stream.CloseAndRecv()
}

func wantGRPC(t *testing.T, err error, code codes.Code, reason string) {
	t.Helper()
	if status.Code(err) != code || rpcerr.Reason(err) != reason {
		t.Fatalf("error = %v (reason %q), want %s %s", err, rpcerr.Reason(err), code, reason)
	}
}

func TestGRPCPageInReadPageAndErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, srv := grpcService(t, Config{DataDir: t.TempDir(), ReadChunkBytes: 1000, Tiers: []TierConfig{
		{Role: RoleFast, CapacityBytes: 1 << 20}, {Role: RoleFrozen, CapacityBytes: 1 << 24},
	}}, Deps{})
	c := genomev1.NewGenomeServiceClient(srv.Dial(rpctest.AdminToken))
	data := blob(100, 10_000)
	put, err := putGRPC(t, c, data, &genomev1.PutArtifactHeader{Name: "moe", Sha256: hexSum(data), SizeBytes: 10_000, Experts: 4}, 777)
	if err != nil {
		t.Fatalf("PutArtifact: %v", err)
	}
	want := &genomev1.PutArtifactResponse{ArtifactId: ArtifactIDFor(sha(data)).String(), Sha256: hexSum(data), SizeBytes: 10_000, Role: genomev1.Role_ROLE_FROZEN, Created: true, Experts: 4}
	if diff := cmp.Diff(want, put, protocmp.Transform()); diff != "" {
		t.Fatalf("PutArtifact (-want +got):\n%s", diff)
	}
	persona := uuid.NewString()
	if _, err := c.RegisterPersona(ctx, &genomev1.RegisterPersonaRequest{PersonaId: persona, CapacityBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	// JSON callers may name a whole page by its artifact alone.
	req := &genomev1.PageInRequest{}
	if err := protojson.Unmarshal([]byte(`{"persona_id":"`+persona+`","page":{"artifact_id":"`+put.GetArtifactId()+`"}}`), req); err != nil {
		t.Fatal(err)
	}
	resp, err := c.PageIn(ctx, req)
	if err != nil {
		t.Fatalf("PageIn: %v", err)
	}
	wantResp := &genomev1.PageInResponse{
		Resident: &genomev1.ResidentPage{Page: &genomev1.PageRef{Kind: genomev1.PageKind_PAGE_KIND_WHOLE, ArtifactId: put.GetArtifactId()}, Role: genomev1.Role_ROLE_FAST, SizeBytes: 10_000},
		Fault:    &genomev1.PageFault{From: genomev1.Role_ROLE_FROZEN, To: genomev1.Role_ROLE_FAST},
	}
	if diff := cmp.Diff(wantResp, resp, protocmp.Transform(), protocmp.IgnoreFields(&genomev1.ResidentPage{}, "handle")); diff != "" {
		t.Fatalf("PageIn (-want +got):\n%s", diff)
	}
	expert := &genomev1.PageRef{Kind: genomev1.PageKind_PAGE_KIND_EXPERT, ArtifactId: put.GetArtifactId(), ExpertIndex: 2}
	if _, err := c.PageIn(ctx, &genomev1.PageInRequest{PersonaId: persona, Page: expert}); err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[*genomev1.PageRef][]byte{req.GetPage(): data, expert: data[5000:7500]} {
		stream, err := c.ReadPage(ctx, &genomev1.ReadPageRequest{PersonaId: persona, Page: ref})
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		var total uint64
		for {
			msg, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("ReadPage: %v", err)
			}
			if len(msg.GetChunk()) > 1000 {
				t.Fatalf("chunk of %d bytes, configured 1000", len(msg.GetChunk()))
			}
			total = max(total, msg.GetTotalBytes())
			got = append(got, msg.GetChunk()...)
		}
		if !bytes.Equal(got, want) || total != uint64(len(want)) {
			t.Fatalf("ReadPage %v: %d bytes (total %d), want %d equal bytes", ref, len(got), total, len(want))
		}
	}
	tiers, err := c.Tiers(ctx, &genomev1.TiersRequest{})
	if err != nil || len(tiers.GetTiers()) != 2 || tiers.GetTiers()[1].GetPolicy() != PolicyHome || !tiers.GetTiers()[1].GetHome() {
		t.Fatalf("Tiers = %v, %v", tiers, err)
	}

	bad := []struct {
		name   string
		call   func() error
		code   codes.Code
		reason string
	}{
		{"persona id not a UUID", func() error {
			_, err := c.PageIn(ctx, &genomev1.PageInRequest{PersonaId: "../../etc", Page: req.GetPage()})
			return err
		}, codes.InvalidArgument, ReasonPersonaIDInvalid},
		{"artifact id not a UUID", func() error {
			_, err := c.PageIn(ctx, &genomev1.PageInRequest{PersonaId: persona, Page: &genomev1.PageRef{ArtifactId: "x"}})
			return err
		}, codes.InvalidArgument, ReasonArtifactIDInvalid},
		{"no page", func() error { _, err := c.PageIn(ctx, &genomev1.PageInRequest{PersonaId: persona}); return err }, codes.InvalidArgument, ReasonPageRefInvalid},
		{"ambiguous kind", func() error {
			_, err := c.PageIn(ctx, &genomev1.PageInRequest{PersonaId: persona, Page: &genomev1.PageRef{ArtifactId: put.GetArtifactId(), Offset: 5}})
			return err
		}, codes.InvalidArgument, ReasonPageRefInvalid},
		{"unknown persona's working set", func() error {
			_, err := c.WorkingSet(ctx, &genomev1.WorkingSetRequest{PersonaId: uuid.NewString()})
			return err
		}, codes.NotFound, ReasonPersonaUnknown},
		{"page-out to an unconfigured role", func() error {
			_, err := c.PageOut(ctx, &genomev1.PageOutRequest{PersonaId: persona, Page: req.GetPage(), Target: genomev1.Role_ROLE_COLD})
			return err
		}, codes.FailedPrecondition, ReasonRoleNotConfigured},
		{"page-out to an unknown role", func() error {
			_, err := c.PageOut(ctx, &genomev1.PageOutRequest{PersonaId: persona, Page: req.GetPage(), Target: 42})
			return err
		}, codes.InvalidArgument, ReasonRoleInvalid},
		{"put without a header", func() error { _, err := putGRPC(t, c, data, nil, 100); return err }, codes.InvalidArgument, ReasonHeaderMissing},
		{"put with a wrong checksum", func() error {
			_, err := putGRPC(t, c, data, &genomev1.PutArtifactHeader{Sha256: hexSum([]byte("no")), SizeBytes: 10_000}, 4096)
			return err
		}, codes.InvalidArgument, ReasonChecksumMismatch},
		{"put with too many bytes", func() error {
			_, err := putGRPC(t, c, append(append([]byte{}, data...), 'x'), &genomev1.PutArtifactHeader{Sha256: hexSum(data), SizeBytes: 10_000}, 4096)
			return err
		}, codes.InvalidArgument, ReasonSizeMismatch},
		{"read of a page not paged in", func() error {
			stream, err := c.ReadPage(ctx, &genomev1.ReadPageRequest{PersonaId: persona, Page: &genomev1.PageRef{Kind: genomev1.PageKind_PAGE_KIND_BYTE_RANGE, ArtifactId: put.GetArtifactId(), Length: 3}})
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}, codes.FailedPrecondition, ReasonPageNotResident},
		{"too many prefetches", func() error {
			_, err := c.Prefetch(ctx, &genomev1.PrefetchRequest{PersonaId: persona, Pages: make([]*genomev1.PageRef, maxPrefetchRefs+1)})
			return err
		}, codes.InvalidArgument, ReasonPageRefInvalid},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) { wantGRPC(t, b.call(), b.code, b.reason) })
	}
}

func sha(b []byte) [32]byte {
	s, _ := parseSHA256(hexSum(b))
	return s
}

func TestGRPCDenialRecordsActorAndCaller(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ev := &fakeEvents{}
	s, srv := grpcService(t, Config{Tiers: memTiers(1<<20, 1<<24)}, Deps{Events: ev})
	runService(t, s)
	owner, other := newPersona(t, s, 1<<20), newPersona(t, s, 1<<20)
	a := put(t, s, blob(101, 100), ArtifactHeader{})
	if _, err := s.RegisterPageOwner(ctx, WholePage(a.ID), owner); err != nil {
		t.Fatal(err)
	}
	page := &genomev1.PageRef{ArtifactId: a.ID.String()}
	user := genomev1.NewGenomeServiceClient(srv.Dial(rpctest.UserToken))
	_, err := user.PageIn(ctx, &genomev1.PageInRequest{PersonaId: other.String(), Page: page})
	wantGRPC(t, err, codes.PermissionDenied, ReasonPageAccessDenied)
	md := rpcerr.Info(err).GetMetadata()
	if md["actor"] != other.String() || md["owner"] != owner.String() || md["caller"] != "user" {
		t.Fatalf("metadata %v", md)
	}
	// Through the mesh hop, on behalf of the admin.
	peer := genomev1.NewGenomeServiceClient(srv.DialMeshPeer())
	_, err = peer.PageIn(auth.OnBehalfOf(ctx, rpctest.Admin), &genomev1.PageInRequest{PersonaId: other.String(), Page: page})
	wantGRPC(t, err, codes.PermissionDenied, ReasonPageAccessDenied)
	waitFor(t, "two denial events", func() bool { return len(ev.onTopic(TopicAccessDenied)) == 2 })
	var callers []string
	for _, e := range ev.onTopic(TopicAccessDenied) {
		callers = append(callers, e.GetPayload().GetFields()["caller"].GetStringValue())
	}
	if diff := cmp.Diff([]string{"user", "admin"}, callers); diff != "" {
		t.Fatalf("callers (-want +got):\n%s", diff)
	}
	// The owner is fine, anonymous callers are not let in at all.
	if _, err := user.PageIn(ctx, &genomev1.PageInRequest{PersonaId: owner.String(), Page: page}); err != nil {
		t.Fatal(err)
	}
	anon := genomev1.NewGenomeServiceClient(srv.Dial(""))
	if _, err := anon.Tiers(ctx, &genomev1.TiersRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("anonymous Tiers = %v", err)
	}
}

func TestCLI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	_, srv := grpcService(t, Config{DataDir: dir, Tiers: []TierConfig{{Role: RoleFast, CapacityBytes: 1 << 20}, {Role: RoleFrozen, CapacityBytes: 1 << 24}}}, Deps{})
	conn := srv.Dial(rpctest.AdminToken)
	file := filepath.Join(dir, "adapter.bin")
	data := blob(102, 5000)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := RunCLI(ctx, args, conn, &out)
		return out.String(), err
	}
	out, err := run("put", file, "--name", "adapter", "--experts", "2")
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	id := ArtifactIDFor(sha(data)).String()
	if !strings.Contains(out, id) || !strings.Contains(out, "stored in the frozen tier") || !strings.Contains(out, "2 experts") {
		t.Fatalf("put printed %q", out)
	}
	if out, _ := run("put", file); !strings.Contains(out, "already stored") {
		t.Fatalf("second put printed %q", out)
	}
	persona := uuid.NewString()
	if _, err := run("persona", "--persona", persona, "--capacity", "1MiB"); err != nil {
		t.Fatal(err)
	}
	out, err = run("page-in", "--persona", persona, "--page", id+"/expert/1")
	if err != nil || !strings.Contains(out, "resident in fast") || !strings.Contains(out, "page fault: none -> fast") {
		t.Fatalf("page-in printed %q, %v", out, err)
	}
	out, err = run("page-in", "--persona", persona, "--page", id+"/expert/1", "--json")
	var asJSON genomev1.PageInResponse
	if err != nil || protojson.Unmarshal([]byte(out), &asJSON) != nil || asJSON.GetResident().GetRole() != genomev1.Role_ROLE_FAST || asJSON.GetFault() != nil {
		t.Fatalf("page-in --json printed %q, %v", out, err)
	}
	outFile := filepath.Join(dir, "expert1.bin")
	if _, err := run("read", "--persona", persona, "--page", id+"/expert/1", "--out", outFile); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(outFile); !bytes.Equal(got, data[2500:]) {
		t.Fatal("read wrote other bytes")
	}
	out, err = run("tiers")
	if err != nil || !strings.Contains(out, "w-tinylfu") || !strings.Contains(out, "home") {
		t.Fatalf("tiers printed %q, %v", out, err)
	}
	out, err = run("working-set", "--persona", persona)
	if err != nil || !strings.Contains(out, id+"/expert/1") {
		t.Fatalf("working-set printed %q, %v", out, err)
	}
	for _, args := range [][]string{
		{"pin", "--persona", persona, "--page", id + "/expert/1"},
		{"page-out", "--persona", persona, "--page", id + "/expert/1", "--to", "frozen"},
		{"unpin", "--persona", persona, "--page", id + "/expert/1"},
		{"page-out", "--persona", persona, "--page", id + "/expert/1", "--to", "frozen"},
		{"prefetch", "--persona", persona, "--page", id, "--page", id + "/bytes/0+10"},
		{"owner", "--persona", persona, "--page", id},
	} {
		if out, err := run(args...); err != nil {
			t.Fatalf("%v: %v (%s)", args, err, out)
		}
	}
	_, err = run("page-in", "--persona", uuid.NewString(), "--page", id)
	if err == nil || !strings.Contains(err.Error(), "NotFound PERSONA_UNKNOWN") {
		t.Fatalf("unknown persona: %v", err)
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"page-in", "--persona", persona}, {"page-in", "--persona", persona, "--page", "nope"}, {"put"}, {"page-out", "--persona", persona, "--page", id, "--to", "ssd"}} {
		if _, err := run(args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
