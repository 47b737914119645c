package genome

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
)

// chain is a full five-tier chain with small capacities under dir.
func chain(dir string, fast, warm, bench, cold, frozen uint64) Config {
	return Config{DataDir: dir, Tiers: []TierConfig{
		{Role: RoleFast, CapacityBytes: fast},
		{Role: RoleWarm, CapacityBytes: warm},
		{Role: RoleBench, CapacityBytes: bench},
		{Role: RoleCold, CapacityBytes: cold},
		{Role: RoleFrozen, CapacityBytes: frozen},
	}}
}

func TestTierWalkAndFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testService(t, chain(t.TempDir(), 1000, 1000, 1000, 1000, 100000), Deps{})
	p := newPersona(t, s, 1<<20)
	data := blob(1, 900)
	a := put(t, s, data, ArtifactHeader{Name: "lora", Experts: 3})
	if a.Home != RoleFrozen || !a.Created || a.Experts != 3 {
		t.Fatalf("put = %+v, want a new artifact at home in frozen", a)
	}
	whole := WholePage(a.ID)
	steps := []struct {
		name    string
		do      func() (PageInResult, error)
		faulted bool
		fault   PageFault
		role    Role
	}{
		{"first page-in faults from the home tier", func() (PageInResult, error) { return s.PageIn(ctx, p, whole) }, true, PageFault{From: RoleFrozen, To: RoleFast}, RoleFast},
		{"second page-in is a hit", func() (PageInResult, error) { return s.PageIn(ctx, p, whole) }, false, PageFault{}, RoleFast},
		{"an expert page is a true cold miss", func() (PageInResult, error) { return s.PageIn(ctx, p, ExpertPage(a.ID, 1)) }, true, PageFault{From: RoleNone, To: RoleFast}, RoleFast},
		{"after page-out to bench the walk finds bench", func() (PageInResult, error) {
			if _, err := s.PageOut(ctx, p, whole, RoleBench); err != nil {
				return PageInResult{}, err
			}
			return s.PageIn(ctx, p, whole)
		}, true, PageFault{From: RoleBench, To: RoleFast}, RoleFast},
		{"after page-out to cold the walk finds cold", func() (PageInResult, error) {
			if _, err := s.PageOut(ctx, p, whole, RoleCold); err != nil {
				return PageInResult{}, err
			}
			return s.PageIn(ctx, p, whole)
		}, true, PageFault{From: RoleCold, To: RoleFast}, RoleFast},
	}
	for _, st := range steps {
		res, err := st.do()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if res.Faulted != st.faulted || res.Fault != st.fault || res.Resident.Role != st.role {
			t.Fatalf("%s: faulted=%v fault=%+v role=%s; want %v %+v %s", st.name, res.Faulted, res.Fault, res.Resident.Role, st.faulted, st.fault, st.role)
		}
	}
	if _, err := s.PageOut(ctx, p, whole, RoleFrozen); err != nil {
		t.Fatal(err)
	}
	ws, err := s.WorkingSet(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	// The whole page left every working set when it went home; the expert
	// page (300 bytes) is still in the Fast tier, where the whole page's
	// 900 bytes pushed it down to Warm and back... or not: check the books.
	var used uint64
	for _, rp := range ws.Pages {
		used += rp.Size
		if rp.Ref == whole {
			t.Errorf("the whole page is still in the working set after page-out to the home tier")
		}
	}
	if used != ws.Capacity.Used {
		t.Errorf("working set pages add up to %d bytes, used says %d", used, ws.Capacity.Used)
	}
	tiers := s.Tiers()
	if len(tiers) != 5 || !tiers[4].Home || tiers[4].Pages != 1 || tiers[4].Capacity.Used != 900 || tiers[4].Policy != PolicyHome {
		t.Errorf("home tier status %+v", tiers[4])
	}
	if tiers[0].Faults != 4 {
		t.Errorf("fast tier faults = %d, want 4", tiers[0].Faults)
	}
}

func TestBytesReadBackEqualBytesPut(t *testing.T) {
	t.Parallel()
	for _, home := range []Role{RoleWarm, RoleBench, RoleCold, RoleFrozen} {
		t.Run("home "+home.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var tiers []TierConfig
			for _, r := range Roles() {
				if r <= home {
					tiers = append(tiers, TierConfig{Role: r, CapacityBytes: 8 << 20})
				}
			}
			s := testService(t, Config{DataDir: t.TempDir(), Tiers: tiers}, Deps{})
			p := newPersona(t, s, 64<<20)
			data := blob(7, 3*frameSize+1234) // several frames, and it does not fit Fast whole? it does (8 MiB)
			a := put(t, s, data, ArtifactHeader{ExpertOffsets: []uint64{0, 1000, frameSize + 5}})
			refs := map[PageRef][]byte{
				WholePage(a.ID):                         data,
				ExpertPage(a.ID, 0):                     data[:1000],
				ExpertPage(a.ID, 1):                     data[1000 : frameSize+5],
				ExpertPage(a.ID, 2):                     data[frameSize+5:],
				RangePage(a.ID, frameSize-3, 10):        data[frameSize-3 : frameSize+7],
				RangePage(a.ID, uint64(len(data))-1, 1): data[len(data)-1:],
			}
			for ref, want := range refs {
				pageIn(t, s, p, ref)
				if got := readAll(t, s, p, ref); !bytes.Equal(got, want) {
					t.Fatalf("%s: read %d bytes, not the %d put", ref, len(got), len(want))
				}
				// Down the chain and back: every tier's store round-trips.
				for _, r := range Roles() {
					if r > home || r == RoleFast {
						continue
					}
					if _, err := s.PageOut(ctx, p, ref, r); err != nil {
						t.Fatalf("page out %s to %s: %v", ref, r, err)
					}
					if r != home {
						if got := readAll(t, s, p, ref); !bytes.Equal(got, want) {
							t.Fatalf("%s in %s: bytes differ", ref, r)
						}
					}
					pageIn(t, s, p, ref)
				}
			}
		})
	}
}

func TestEvictionDemotesDownTheChainAndSkipsPinned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Fast holds two 100-byte pages, Warm one, Bench one; then the home.
	s := testService(t, chain(t.TempDir(), 200, 100, 100, 100, 100000), Deps{})
	p := newPersona(t, s, 1<<20)
	var refs []PageRef
	for i := range 5 {
		refs = append(refs, WholePage(put(t, s, blob(uint64(10+i), 100), ArtifactHeader{}).ID))
	}
	pageIn(t, s, p, refs[0])
	pageIn(t, s, p, refs[1])
	if _, err := s.Pin(ctx, p, refs[0]); err != nil {
		t.Fatal(err)
	}
	res := pageIn(t, s, p, refs[2])
	want := []EvictionRecord{{Page: refs[1], Persona: p, From: RoleFast, To: RoleWarm, Policy: PolicyWTinyLFU, Size: 100}}
	if diff := cmp.Diff(want, res.Evictions); diff != "" {
		t.Fatalf("evictions (-want +got):\n%s", diff)
	}
	// The next fault cascades: refs[2] leaves Fast for Warm, whose page
	// goes to Bench.
	res = pageIn(t, s, p, refs[3])
	want = []EvictionRecord{
		{Page: refs[1], Persona: p, From: RoleWarm, To: RoleBench, Policy: PolicySLRU, Size: 100},
		{Page: refs[2], Persona: p, From: RoleFast, To: RoleWarm, Policy: PolicyWTinyLFU, Size: 100},
	}
	if diff := cmp.Diff(want, res.Evictions); diff != "" {
		t.Fatalf("cascade (-want +got):\n%s", diff)
	}
	res = pageIn(t, s, p, refs[4])
	want = []EvictionRecord{
		{Page: refs[1], Persona: p, From: RoleBench, To: RoleCold, Policy: PolicyLRU, Size: 100},
		{Page: refs[2], Persona: p, From: RoleWarm, To: RoleBench, Policy: PolicySLRU, Size: 100},
		{Page: refs[3], Persona: p, From: RoleFast, To: RoleWarm, Policy: PolicyWTinyLFU, Size: 100},
	}
	if diff := cmp.Diff(want, res.Evictions); diff != "" {
		t.Fatalf("deeper cascade (-want +got):\n%s", diff)
	}
	ws, _ := s.WorkingSet(ctx, p)
	roles := map[PageRef]Role{}
	for _, rp := range ws.Pages {
		roles[rp.Ref] = rp.Role
	}
	wantRoles := map[PageRef]Role{refs[0]: RoleFast, refs[4]: RoleFast, refs[3]: RoleWarm, refs[2]: RoleBench, refs[1]: RoleCold}
	if diff := cmp.Diff(wantRoles, roles); diff != "" {
		t.Fatalf("where the pages are (-want +got):\n%s", diff)
	}
	// A pinned page is skipped by page-out.
	out, err := s.PageOut(ctx, p, refs[0], RoleCold)
	if err != nil || !out.SkippedPinned || out.Moved {
		t.Fatalf("page-out of a pinned page = %+v, %v", out, err)
	}
	// Unpinned, it can go.
	if ok, err := s.Unpin(ctx, p, refs[0]); err != nil || !ok {
		t.Fatalf("Unpin = %v, %v", ok, err)
	}
	if ok, _ := s.Unpin(ctx, p, refs[0]); ok {
		t.Fatal("a second Unpin reported a pin")
	}
}

func TestNoEvictionCandidate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testService(t, Config{Tiers: memTiers(200, 10000)}, Deps{})
	p := newPersona(t, s, 1<<20)
	var refs []PageRef
	for i := range 3 {
		refs = append(refs, WholePage(put(t, s, blob(uint64(20+i), 100), ArtifactHeader{}).ID))
	}
	for _, r := range refs[:2] {
		pageIn(t, s, p, r)
		if _, err := s.Pin(ctx, p, r); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.PageIn(ctx, p, refs[2])
	wantStatus(t, err, codes.ResourceExhausted, ReasonNoEvictionCandidate)
	// Nothing changed: both pinned pages are still resident, and the
	// failed page is in no working set.
	ws, _ := s.WorkingSet(ctx, p)
	if len(ws.Pages) != 2 || ws.Capacity.Used != 200 {
		t.Fatalf("working set after the failure = %+v", ws)
	}
	if _, err := s.Unpin(ctx, p, refs[0]); err != nil {
		t.Fatal(err)
	}
	if res := pageIn(t, s, p, refs[2]); !res.Faulted || len(res.Evictions) != 1 || res.Evictions[0].Page != refs[0] {
		t.Fatalf("after unpinning, page-in = %+v", res)
	}
}

func TestWorkingSetCapacity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testService(t, Config{Tiers: memTiers(10000, 100000)}, Deps{})
	p := newPersona(t, s, 250)
	var refs []PageRef
	for i := range 3 {
		refs = append(refs, WholePage(put(t, s, blob(uint64(30+i), 100), ArtifactHeader{}).ID))
	}
	pageIn(t, s, p, refs[0])
	pageIn(t, s, p, refs[1])
	// A third page does not fit 250 bytes: the least recently used page
	// leaves the working set (and, held by nobody else, its tier).
	res := pageIn(t, s, p, refs[2])
	if len(res.Evictions) != 1 || res.Evictions[0].Page != refs[0] || res.Evictions[0].Policy != "working-set" {
		t.Fatalf("evictions = %+v, want refs[0] trimmed", res.Evictions)
	}
	ws, _ := s.WorkingSet(ctx, p)
	if ws.Capacity.Used != 200 || len(ws.Pages) != 2 {
		t.Fatalf("working set = %+v", ws)
	}
	for _, r := range refs[1:] {
		if _, err := s.Pin(ctx, p, r); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.PageIn(ctx, p, refs[0])
	wantStatus(t, err, codes.ResourceExhausted, ReasonWorkingSetFull)
	big := WholePage(put(t, s, blob(99, 300), ArtifactHeader{}).ID)
	_, err = s.PageIn(ctx, p, big)
	wantStatus(t, err, codes.ResourceExhausted, ReasonWorkingSetFull)
	// Shrinking the capacity trims what is not pinned; growing it is fine.
	if _, err := s.RegisterPersona(ctx, p, 1000); err != nil {
		t.Fatal(err)
	}
	pageIn(t, s, p, big)
}

func TestCrossPersonaDenialIsPublished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ev := &fakeEvents{}
	s := testService(t, Config{Tiers: memTiers(10000, 100000)}, Deps{Events: ev})
	runService(t, s)
	owner, other := newPersona(t, s, 1<<20), newPersona(t, s, 1<<20)
	a := put(t, s, blob(40, 1000), ArtifactHeader{Experts: 4})
	// The other persona had the page before ownership was registered.
	pageIn(t, s, other, WholePage(a.ID))
	if created, err := s.RegisterPageOwner(ctx, ExpertPage(a.ID, 1), owner); err != nil || !created {
		t.Fatalf("RegisterPageOwner = %v, %v", created, err)
	}
	if created, err := s.RegisterPageOwner(ctx, ExpertPage(a.ID, 1), owner); err != nil || created {
		t.Fatalf("RegisterPageOwner again = %v, %v; want idempotent", created, err)
	}
	_, err := s.RegisterPageOwner(ctx, RangePage(a.ID, 300, 10), other)
	wantStatus(t, err, codes.AlreadyExists, ReasonPageOwned)

	denied := []struct {
		name string
		call func() error
	}{
		{"the owned expert", func() error { _, err := s.PageIn(ctx, other, ExpertPage(a.ID, 1)); return err }},
		{"a range overlapping it", func() error { _, err := s.PageIn(ctx, other, RangePage(a.ID, 499, 2)); return err }},
		{"the whole artifact, resident before", func() error { _, err := s.PageIn(ctx, other, WholePage(a.ID)); return err }},
		{"reading it", func() error { _, _, err := s.ReadPage(ctx, other, WholePage(a.ID)); return err }},
		{"prefetching it", func() error { _, err := s.Prefetch(ctx, other, []PageRef{ExpertPage(a.ID, 1)}); return err }},
	}
	for _, d := range denied {
		err := d.call()
		wantStatus(t, err, codes.PermissionDenied, ReasonPageAccessDenied)
		var ad *AccessDeniedError
		if !errors.As(err, &ad) || ad.Record.Actor != other || ad.Record.Owner != owner || ad.Record.Reason != DenyOwnedByAnother {
			t.Fatalf("%s: denial record %+v", d.name, ad)
		}
		md := rpcerr.Info(toStatus(testLogger(), err)).GetMetadata()
		if md["actor"] != other.String() || md["owner"] != owner.String() || md["reason"] != DenyOwnedByAnother {
			t.Fatalf("%s: ErrorInfo metadata %v", d.name, md)
		}
	}
	// Pages that do not overlap the owned expert are fine, and the owner
	// uses its page.
	pageIn(t, s, other, ExpertPage(a.ID, 0))
	pageIn(t, s, other, RangePage(a.ID, 500, 10))
	pageIn(t, s, owner, ExpertPage(a.ID, 1))

	waitFor(t, "five access-denied events", func() bool { return len(ev.onTopic(TopicAccessDenied)) == len(denied) })
	got := ev.onTopic(TopicAccessDenied)[0]
	fields := got.GetPayload().GetFields()
	for k, want := range map[string]string{"actor": other.String(), "owner": owner.String(), "reason": DenyOwnedByAnother, "operation": "page-in", "node": "test-node"} {
		if v := fields[k].GetStringValue(); v != want {
			t.Errorf("payload %s = %q, want %q", k, v, want)
		}
	}
	if page := fields["page"].GetStructValue().GetFields(); page["artifact_id"].GetStringValue() != a.ID.String() || page["kind"].GetStringValue() != "PAGE_KIND_EXPERT" {
		t.Errorf("payload page = %v", page)
	}
	if got.GetSchemaVersion() != SchemaVersion || got.GetMsgId() == "" {
		t.Errorf("publish request %v", got)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var durable bool
	for _, c := range ev.classes {
		if c.GetName() == TopicAccessDenied && c.GetDurable() && c.GetSchemaVersion() == "1" {
			durable = true
		}
	}
	if !durable {
		t.Errorf("the durable access-denied class was not declared: %v", ev.classes)
	}
}

func TestDenialsAreRetriedUntilPublished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ev := &fakeEvents{failures: 3}
	s := testService(t, Config{Tiers: memTiers(10000, 100000)}, Deps{Events: ev})
	owner, other := newPersona(t, s, 1<<20), newPersona(t, s, 1<<20)
	a := put(t, s, blob(41, 100), ArtifactHeader{})
	if _, err := s.RegisterPageOwner(ctx, WholePage(a.ID), owner); err != nil {
		t.Fatal(err)
	}
	_, err := s.PageIn(ctx, other, WholePage(a.ID))
	wantStatus(t, err, codes.PermissionDenied, ReasonPageAccessDenied)
	if st := s.OutboxStats(); st.DenialsPending != 1 {
		t.Fatalf("pending denials before Run = %d", st.DenialsPending)
	}
	runService(t, s)
	waitFor(t, "the denial to get through three failures", func() bool { return len(ev.onTopic(TopicAccessDenied)) == 1 })
	if st := s.OutboxStats(); st.DenialsPending != 0 || st.DenialsDropped != 0 {
		t.Fatalf("outbox after publishing: %+v", st)
	}
}

func TestDenialsSurviveARestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	cfg := chain(dir, 1000, 1000, 1000, 1000, 100000)
	ev := &fakeEvents{}
	s, err := New(cfg, Deps{Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	owner, other := newPersona(t, s, 1<<20), newPersona(t, s, 1<<20)
	a := put(t, s, blob(42, 100), ArtifactHeader{})
	if _, err := s.RegisterPageOwner(ctx, WholePage(a.ID), owner); err != nil {
		t.Fatal(err)
	}
	_, _ = s.PageIn(ctx, other, WholePage(a.ID)) // denied; Run never ran
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := testService(t, cfg, Deps{Events: ev})
	runService(t, s2)
	waitFor(t, "the spooled denial", func() bool { return len(ev.onTopic(TopicAccessDenied)) == 1 })
	// The ownership survived too.
	_, err = s2.PageIn(ctx, other, WholePage(a.ID))
	wantStatus(t, err, codes.PermissionDenied, ReasonPageAccessDenied)
}

func TestConcurrentPageInsLoadOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fast := &countingStore{TierStore: NewMemoryStore(RoleFast, 1<<20), gate: make(chan struct{})}
	ev := &fakeEvents{}
	s := testService(t, Config{Tiers: memTiers(1<<20, 1<<24)}, Deps{Events: ev, TierStores: map[Role]TierStore{RoleFast: fast}})
	runService(t, s)
	a := put(t, s, blob(50, 4096), ArtifactHeader{})
	ref := WholePage(a.ID)
	const n = 16
	personas := make([]PersonaID, n)
	for i := range personas {
		personas[i] = newPersona(t, s, 1<<20)
	}
	var wg sync.WaitGroup
	results := make([]PageInResult, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = s.PageIn(ctx, personas[i%4], ref) })
	}
	// Let the loads queue up behind the first, then release the store.
	waitFor(t, "a load in flight", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		e := s.table.get(ref, ref.hash())
		return e != nil && e.loading
	})
	close(fast.gate)
	wg.Wait()
	faults := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("page-in %d: %v", i, errs[i])
		}
		if results[i].Faulted {
			faults++
		}
		if results[i].Resident.Role != RoleFast {
			t.Fatalf("page-in %d resident in %s", i, results[i].Resident.Role)
		}
	}
	if faults != 1 || fast.count(ref) != 1 {
		t.Fatalf("%d faults and %d writes into Fast, want one of each", faults, fast.count(ref))
	}
	waitFor(t, "one page-fault event", func() bool { return len(ev.onTopic(TopicPageFault)) == 1 })
	for _, p := range personas[:4] {
		ws, _ := s.WorkingSet(ctx, p)
		if len(ws.Pages) != 1 {
			t.Fatalf("persona %s has %d pages", p, len(ws.Pages))
		}
	}
}

func TestPutArtifact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testService(t, Config{DataDir: t.TempDir(), Tiers: []TierConfig{{Role: RoleFast, CapacityBytes: 100}, {Role: RoleFrozen, CapacityBytes: 3000}}}, Deps{})
	data := blob(60, 1000)
	sum := hexSum(data)
	tests := []struct {
		name   string
		hdr    ArtifactHeader
		body   []byte
		code   codes.Code
		reason string
	}{
		{"checksum mismatch", ArtifactHeader{SHA256: hexSum([]byte("x")), Size: 1000}, data, codes.InvalidArgument, ReasonChecksumMismatch},
		{"short stream", ArtifactHeader{SHA256: sum, Size: 1000}, data[:999], codes.InvalidArgument, ReasonSizeMismatch},
		{"long stream", ArtifactHeader{SHA256: sum, Size: 1000}, append(append([]byte{}, data...), 1), codes.InvalidArgument, ReasonSizeMismatch},
		{"no checksum", ArtifactHeader{Size: 1000}, data, codes.InvalidArgument, ReasonHeaderInvalid},
		{"empty", ArtifactHeader{SHA256: hexSum(nil)}, nil, codes.InvalidArgument, ReasonHeaderInvalid},
		{"control character in name", ArtifactHeader{SHA256: sum, Size: 1000, Name: "a\x00b"}, data, codes.InvalidArgument, ReasonHeaderInvalid},
		{"offsets not from zero", ArtifactHeader{SHA256: sum, Size: 1000, ExpertOffsets: []uint64{5, 10}}, data, codes.InvalidArgument, ReasonExpertsInvalid},
		{"offsets not increasing", ArtifactHeader{SHA256: sum, Size: 1000, ExpertOffsets: []uint64{0, 10, 10}}, data, codes.InvalidArgument, ReasonExpertsInvalid},
		{"offset beyond the end", ArtifactHeader{SHA256: sum, Size: 1000, ExpertOffsets: []uint64{0, 1000}}, data, codes.InvalidArgument, ReasonExpertsInvalid},
		{"more experts than bytes", ArtifactHeader{SHA256: sum, Size: 1000, Experts: 1001}, data, codes.InvalidArgument, ReasonExpertsInvalid},
		{"count and offsets disagree", ArtifactHeader{SHA256: sum, Size: 1000, Experts: 3, ExpertOffsets: []uint64{0, 1}}, data, codes.InvalidArgument, ReasonExpertsInvalid},
		{"bigger than the home tier", ArtifactHeader{SHA256: hexSum(make([]byte, 5000)), Size: 5000}, make([]byte, 5000), codes.ResourceExhausted, ReasonTierFull},
	}
	for _, tc := range tests {
		_, err := s.PutArtifact(ctx, tc.hdr, bytes.NewReader(tc.body))
		if err == nil {
			t.Fatalf("%s: accepted", tc.name)
		}
		wantStatus(t, err, tc.code, tc.reason)
	}
	if tiers := s.Tiers(); tiers[1].Capacity.Used != 0 || tiers[1].Pages != 0 {
		t.Fatalf("failed uploads left %+v in the home tier", tiers[1])
	}
	a := put(t, s, data, ArtifactHeader{Name: "adapter"})
	again := put(t, s, data, ArtifactHeader{Name: "adapter"})
	if again.Created || again.ID != a.ID || !a.Created {
		t.Fatalf("second put = %+v, first %+v", again, a)
	}
	// The same bytes with a wrong stream are still refused.
	_, err := s.PutArtifact(ctx, ArtifactHeader{SHA256: sum, Size: 1000}, bytes.NewReader(data[:10]))
	wantStatus(t, err, codes.InvalidArgument, ReasonSizeMismatch)
	if tiers := s.Tiers(); tiers[1].Capacity.Used != 1000 || tiers[1].Pages != 1 {
		t.Fatalf("home tier after two puts of one artifact: %+v", tiers[1])
	}
}

func TestLookupErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := testService(t, Config{Tiers: memTiers(1000, 100000)}, Deps{})
	p := newPersona(t, s, 1<<20)
	a := put(t, s, blob(70, 100), ArtifactHeader{Experts: 2})
	unknownPersona := PersonaID(uuid.New())
	unknownArtifact := ArtifactID(uuid.New())
	tests := []struct {
		name   string
		err    func() error
		code   codes.Code
		reason string
	}{
		{"unknown persona", func() error { _, err := s.PageIn(ctx, unknownPersona, WholePage(a.ID)); return err }, codes.NotFound, ReasonPersonaUnknown},
		{"unknown artifact", func() error { _, err := s.PageIn(ctx, p, WholePage(unknownArtifact)); return err }, codes.NotFound, ReasonArtifactUnknown},
		{"expert out of range", func() error { _, err := s.PageIn(ctx, p, ExpertPage(a.ID, 2)); return err }, codes.InvalidArgument, ReasonPageRefInvalid},
		{"range out of the artifact", func() error { _, err := s.PageIn(ctx, p, RangePage(a.ID, 50, 51)); return err }, codes.InvalidArgument, ReasonPageRefInvalid},
		{"invalid ref", func() error { _, err := s.PageIn(ctx, p, PageRef{Artifact: a.ID}); return err }, codes.InvalidArgument, ReasonPageRefInvalid},
		{"working set of an unknown persona", func() error { _, err := s.WorkingSet(ctx, unknownPersona); return err }, codes.NotFound, ReasonPersonaUnknown},
		{"read of a page not resident", func() error { _, _, err := s.ReadPage(ctx, p, ExpertPage(a.ID, 0)); return err }, codes.FailedPrecondition, ReasonPageNotResident},
		{"pin of a page not resident", func() error { _, err := s.Pin(ctx, p, ExpertPage(a.ID, 0)); return err }, codes.FailedPrecondition, ReasonPageNotResident},
		{"page-out to a role not configured", func() error {
			pageIn(t, s, p, WholePage(a.ID))
			_, err := s.PageOut(ctx, p, WholePage(a.ID), RoleCold)
			return err
		}, codes.FailedPrecondition, ReasonRoleNotConfigured},
		{"page-out to no role", func() error { _, err := s.PageOut(ctx, p, WholePage(a.ID), RoleNone); return err }, codes.InvalidArgument, ReasonRoleInvalid},
		{"zero capacity", func() error { _, err := s.RegisterPersona(ctx, p, 0); return err }, codes.InvalidArgument, ReasonCapacityInvalid},
		{"owner that is not a persona", func() error { _, err := s.RegisterPageOwner(ctx, WholePage(a.ID), unknownPersona); return err }, codes.NotFound, ReasonPersonaUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantStatus(t, tc.err(), tc.code, tc.reason)
		})
	}
	if _, err := s.WorkingSet(ctx, p); err != nil {
		t.Fatalf("a known persona's working set: %v", err)
	}
}

func TestRestartKeepsBenchColdFrozen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	cfg := chain(dir, 4096, 4096, 4<<20, 4<<20, 1<<24)
	s, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	p := newPersona(t, s, 1<<22)
	q := newPersona(t, s, 1<<22)
	data := blob(80, 3*frameSize)
	a := put(t, s, data, ArtifactHeader{Experts: 3})
	small := blob(81, 2000)
	b := put(t, s, small, ArtifactHeader{})
	if _, err := s.RegisterPageOwner(ctx, WholePage(b.ID), q); err != nil {
		t.Fatal(err)
	}
	placed := map[PageRef]Role{
		ExpertPage(a.ID, 0): RoleBench, // bigger than Fast and Warm: fits Bench first
		ExpertPage(a.ID, 1): RoleCold,
		WholePage(b.ID):     RoleCold,
	}
	for ref, role := range placed {
		who := p
		if ref.Artifact == b.ID {
			who = q
		}
		pageIn(t, s, who, ref)
		if role != RoleBench {
			if _, err := s.PageOut(ctx, who, ref, role); err != nil {
				t.Fatal(err)
			}
		}
	}
	pageIn(t, s, q, RangePage(b.ID, 0, 100)) // in Fast: does not survive
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := testService(t, cfg, Deps{})
	got := map[PageRef]Role{}
	for _, who := range []PersonaID{p, q} {
		ws, err := s2.WorkingSet(ctx, who)
		if err != nil {
			t.Fatalf("working set after restart: %v", err)
		}
		for _, rp := range ws.Pages {
			got[rp.Ref] = rp.Role
		}
	}
	if diff := cmp.Diff(placed, got); diff != "" {
		t.Fatalf("pages after restart (-want +got):\n%s", diff)
	}
	for ref := range placed {
		who := p
		if ref.Artifact == b.ID {
			who = q
		}
		want := small
		if ref.Artifact == a.ID {
			want = data[uint64(ref.Expert)*frameSize : uint64(ref.Expert+1)*frameSize]
		}
		if got := readAll(t, s2, who, ref); !bytes.Equal(got, want) {
			t.Fatalf("%s after restart: bytes differ", ref)
		}
	}
	// The home copies survived: a page never paged is cut from Frozen.
	if res := pageIn(t, s2, p, ExpertPage(a.ID, 2)); !res.Faulted || !res.Fault.ColdMiss() {
		t.Fatalf("expert 2 after restart: %+v", res)
	}
	if got := readAll(t, s2, p, ExpertPage(a.ID, 2)); !bytes.Equal(got, data[2*frameSize:]) {
		t.Fatal("expert 2 after restart: bytes differ")
	}
	if res := pageIn(t, s2, q, WholePage(b.ID)); !res.Faulted || res.Fault.From != RoleCold {
		t.Fatalf("b after restart faults from %+v, want cold", res.Fault)
	}
	// Ownership survived.
	_, err = s2.PageIn(ctx, p, WholePage(b.ID))
	wantStatus(t, err, codes.PermissionDenied, ReasonPageAccessDenied)
	if again := put(t, s2, data, ArtifactHeader{}); again.Created {
		t.Fatal("the artifact was stored again after restart")
	}
}

func TestPrefetchMakesTheNextPageInAHit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ev := &fakeEvents{}
	s := testService(t, Config{Tiers: memTiers(10000, 100000)}, Deps{Events: ev})
	p := newPersona(t, s, 1<<20)
	a := put(t, s, blob(90, 1000), ArtifactHeader{Experts: 2})
	refs := []PageRef{ExpertPage(a.ID, 0), ExpertPage(a.ID, 1)}
	pageIn(t, s, p, refs[0])
	res, err := s.Prefetch(ctx, p, refs)
	if err != nil || res.Accepted != 1 || res.AlreadyResident != 1 {
		t.Fatalf("Prefetch = %+v, %v", res, err)
	}
	runService(t, s)
	waitFor(t, "the prefetch", func() bool {
		ws, _ := s.WorkingSet(ctx, p)
		return len(ws.Pages) == 2
	})
	if r := pageIn(t, s, p, refs[1]); r.Faulted {
		t.Fatalf("page-in after prefetch faulted: %+v", r)
	}
	waitFor(t, "the prefetch's fault event", func() bool {
		for _, e := range ev.onTopic(TopicPageFault) {
			if e.GetPayload().GetFields()["prefetch"].GetBoolValue() {
				return true
			}
		}
		return false
	})
}

func TestEventsForFaultsAndEvictions(t *testing.T) {
	t.Parallel()
	ev := &fakeEvents{}
	s := testService(t, Config{Tiers: memTiers(100, 100000)}, Deps{Events: ev})
	runService(t, s)
	p := newPersona(t, s, 1<<20)
	r1 := WholePage(put(t, s, blob(91, 100), ArtifactHeader{}).ID)
	r2 := WholePage(put(t, s, blob(92, 100), ArtifactHeader{}).ID)
	pageIn(t, s, p, r1)
	pageIn(t, s, p, r2)
	waitFor(t, "events", func() bool {
		return len(ev.onTopic(TopicPageFault)) == 2 && len(ev.onTopic(TopicEviction)) == 1
	})
	f := ev.onTopic(TopicPageFault)[0].GetPayload().GetFields()
	if f["from"].GetStringValue() != "ROLE_WARM" || f["to"].GetStringValue() != "ROLE_FAST" || f["persona_id"].GetStringValue() != p.String() {
		t.Errorf("fault payload %v", f)
	}
	e := ev.onTopic(TopicEviction)[0].GetPayload().GetFields()["record"].GetStructValue().GetFields()
	if e["from"].GetStringValue() != "ROLE_FAST" || e["to"].GetStringValue() != "ROLE_WARM" || e["policy"].GetStringValue() != PolicyWTinyLFU {
		t.Errorf("eviction payload %v", e)
	}
}

func TestOutboxCountsDrops(t *testing.T) {
	t.Parallel()
	ev := &fakeEvents{}
	s := testService(t, Config{Tiers: memTiers(100, 100000), EventQueue: 1}, Deps{Events: ev})
	p := newPersona(t, s, 1<<20)
	for i := range 3 {
		pageIn(t, s, p, WholePage(put(t, s, blob(uint64(93+i), 100), ArtifactHeader{}).ID))
	}
	// Three faults and two evictions into a queue of one, nobody draining.
	if st := s.OutboxStats(); st.Dropped != 4 || st.Queued != 1 {
		t.Fatalf("outbox %+v, want 4 dropped and 1 queued", st)
	}
}

func TestHitPathDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	s := testService(t, Config{Tiers: memTiers(10000, 100000)}, Deps{})
	p := newPersona(t, s, 1<<20)
	ref := WholePage(put(t, s, blob(95, 100), ArtifactHeader{}).ID)
	pageIn(t, s, p, ref)
	allocs := testing.AllocsPerRun(1000, func() {
		res, err := s.PageIn(ctx, p, ref)
		if err != nil || res.Faulted {
			t.Fatalf("hit: %+v, %v", res, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a resident page-in allocates %.1f times", allocs)
	}
}
