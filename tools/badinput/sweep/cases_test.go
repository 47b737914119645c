package sweep

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/structpb"

	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

func methodOf(t *testing.T, sd protoreflect.ServiceDescriptor, name protoreflect.Name) method {
	t.Helper()
	md := sd.Methods().ByName(name)
	if md == nil {
		t.Fatalf("%s has no method %s", sd.FullName(), name)
	}
	return newMethod(md)
}

func routerMethod(t *testing.T, name protoreflect.Name) method {
	t.Helper()
	return methodOf(t, routerv1.File_continuum_router_v1_router_proto.Services().ByName("RouterService"), name)
}

// casesOf builds every case of m (with its seed) and their payloads.
func casesOf(t *testing.T, m method) map[string]Case {
	t.Helper()
	seed, err := seedFor(m, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	cases := buildCases(m, seed, caseOptions{rng: rand.New(rand.NewPCG(1, 2)), maxRecvBytes: 1 << 10, structs: newStructCache()})
	byName := map[string]Case{}
	for _, c := range cases {
		if _, dup := byName[c.Name]; dup {
			t.Errorf("two cases named %q", c.Name)
		}
		byName[c.Name] = c
	}
	return byName
}

func payload(t *testing.T, c Case) []byte {
	t.Helper()
	b, err := c.build()
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	return b
}

func TestCasesBuild(t *testing.T) {
	t.Parallel()
	for _, name := range []protoreflect.Name{"Route", "Dispatch", "Authorize", "GetPolicy", "PutPolicy", "Subscribe"} {
		t.Run(string(name), func(t *testing.T) {
			t.Parallel()
			for _, c := range casesOf(t, routerMethod(t, name)) {
				if c.noMessage {
					continue
				}
				payload(t, c)
			}
		})
	}
}

// TestCasesAreWhatTheySay decodes payloads the way the server does and
// checks each kind of bad input is really there.
func TestCasesAreWhatTheySay(t *testing.T) {
	t.Parallel()
	cases := casesOf(t, routerMethod(t, "Subscribe"))
	get := func(name string) []byte {
		t.Helper()
		c, ok := cases[name]
		if !ok {
			t.Fatalf("no case %q", name)
		}
		return payload(t, c)
	}
	decode := func(b []byte) (*routerv1.SubscribeRequest, error) {
		req := &routerv1.SubscribeRequest{}
		return req, proto.Unmarshal(b, req)
	}

	b := get("seed: uri: invalid UTF-8")
	if !bytes.Contains(b, []byte(invalidUTF8)) {
		t.Error("the invalid UTF-8 case does not carry the invalid bytes")
	}
	if _, err := decode(b); err == nil {
		t.Error("the server's codec would accept the invalid UTF-8 case")
	}

	req, err := decode(get("seed: uri: 1 MiB string"))
	if err != nil || len(req.GetUri()) != mebibyte || req.GetFilter().GetFields()["k"].GetStringValue() != "v" {
		t.Errorf("1 MiB case: uri of %d bytes, filter %v, err %v", len(req.GetUri()), req.GetFilter(), err)
	}

	req, err = decode(get("seed: filter: struct nested 200 deep"))
	if err != nil {
		t.Fatal(err)
	}
	depth := 0
	for s := req.GetFilter(); s != nil; s = s.GetFields()["a"].GetStructValue() {
		depth++
	}
	if depth != 200 || req.GetUri() != "events/data:badinput" {
		t.Errorf("nested struct: depth %d, uri %q", depth, req.GetUri())
	}

	if _, err := decode(get("seed: filter: struct nested beyond the decoder's recursion limit")); err == nil {
		t.Error("the server's codec would accept a struct beyond the recursion limit")
	}

	req, err = decode(get("seed: filter: struct with 100k keys"))
	if err != nil || len(req.GetFilter().GetFields()) != 100_000 {
		t.Errorf("wide struct: %d keys, err %v", len(req.GetFilter().GetFields()), err)
	}

	req, err = decode(get("seed: filter: filter value is a list"))
	if err != nil || req.GetFilter().GetFields()["k"].GetListValue() == nil {
		t.Errorf("list filter: %v, err %v", req.GetFilter(), err)
	}
	if c := cases["seed: filter: filter value is a list"]; !c.expect.refused || !cmp.Equal(c.expect.codes, []codes.Code{codes.InvalidArgument}) {
		t.Errorf("a list filter value must be refused with INVALID_ARGUMENT; expectation %+v", c.expect)
	}

	req, err = decode(get("seed: last_n: max (-1 cast to unsigned)"))
	if err != nil || req.GetLastN() != 1<<32-1 {
		t.Errorf("max uint32: %d, err %v", req.GetLastN(), err)
	}

	for name, c := range cases {
		if strings.HasPrefix(name, "truncated to 1 of") {
			if _, err := decode(payload(t, c)); err == nil {
				t.Errorf("%s decodes", name)
			}
		}
	}

	frame := cases["frame of 2048 bytes (server limit 1024)"]
	if got := len(payload(t, frame)); got != 2048 {
		t.Errorf("oversized frame is %d bytes", got)
	}
	if !frame.expect.met(codes.ResourceExhausted, "", true) {
		t.Error("RESOURCE_EXHAUSTED from gRPC does not meet the oversized frame's expectation")
	}

	for _, name := range []string{"no credentials", "forged caller (user token, x-continuum-caller: token;admin)", "unknown bearer token"} {
		if c, ok := cases[name]; !ok || !c.expect.refused || !cmp.Equal(c.expect.codes, []codes.Code{codes.Unauthenticated}) {
			t.Errorf("%s: %+v", name, c.expect)
		}
	}
}

func TestManyElements(t *testing.T) {
	t.Parallel()
	sd := debugv1.File_continuum_debug_v1_debug_proto.Services().ByName("DebugService")
	cases := casesOf(t, methodOf(t, sd, "StreamProbes"))
	req := &debugv1.StreamProbesRequest{}
	if err := proto.Unmarshal(payload(t, cases["seed: classes[]: 100k elements"]), req); err != nil {
		t.Fatal(err)
	}
	if len(req.GetClasses()) != 100_000 {
		t.Errorf("%d classes", len(req.GetClasses()))
	}
}

func TestSlots(t *testing.T) {
	t.Parallel()
	var got []string
	for _, s := range slots(routerMethod(t, "PutPolicy").desc.Input()) {
		got = append(got, s.name)
	}
	want := []string{
		"policy.default", "policy.rules[]",
		"policy.rules[0].callers[]", "policy.rules[0].uris[]", "policy.rules[0].verdict",
		"policy.rules[0].reason", "policy.rules[0].env", "policy.rules[0].dry_run",
		"yaml", "expected_version",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slots (-want +got):\n%s", diff)
	}
}

func TestSetSlotKeepsTheBase(t *testing.T) {
	t.Parallel()
	m := routerMethod(t, "Dispatch")
	seed, err := seedFor(m, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	var handleID slot
	for _, s := range slots(m.desc.Input()) {
		if s.name == "handle.id" {
			handleID = s
		}
	}
	got := setSlot(seed, handleID, protoreflect.ValueOfString("x"))
	b, err := marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	req := &routerv1.DispatchRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		t.Fatal(err)
	}
	params, _ := structpb.NewStruct(map[string]any{"service": "router"})
	want := &routerv1.DispatchRequest{Uri: "mesh/resolve", Params: params, Handle: &routerv1.Handle{Id: "x"}}
	if !proto.Equal(want, req) {
		t.Errorf("got %v, want %v", req, want)
	}
	b, _ = marshal(seed)
	if err := proto.Unmarshal(b, req); err != nil || req.GetHandle() != nil {
		t.Errorf("setSlot changed the seed: %v", req)
	}
}

func TestSample(t *testing.T) {
	t.Parallel()
	var cases []Case
	for _, cat := range []string{catString, catString, catString, catString, catNumber, catNumber, catAuth, catFrame} {
		cases = append(cases, Case{Name: cat + string(rune('a'+len(cases))), Category: cat})
	}
	names := func(cs []Case) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	if diff := cmp.Diff(names(cases), names(sample(cases, 0, rand.New(rand.NewPCG(1, 1))))); diff != "" {
		t.Errorf("n=0 must keep every case:\n%s", diff)
	}
	got := sample(cases, 4, rand.New(rand.NewPCG(1, 1)))
	cats := map[string]bool{}
	for _, c := range got {
		cats[c.Category] = true
	}
	if len(got) != 4 || len(cats) != 4 {
		t.Errorf("sample of 4 from 4 categories = %v", names(got))
	}
	contract := Case{Name: "z-contract", Category: catAuth, expect: expectation{refused: true}}
	withContract := sample(append(slices.Clone(cases), contract), 2, rand.New(rand.NewPCG(1, 1)))
	if len(withContract) != 3 || withContract[2].Name != contract.Name {
		t.Errorf("sample of 2 plus a contract check = %v", names(withContract))
	}
	again := sample(cases, 4, rand.New(rand.NewPCG(1, 1)))
	if diff := cmp.Diff(names(got), names(again)); diff != "" {
		t.Errorf("the same seed sampled differently:\n%s", diff)
	}
	for i := 1; i < len(got); i++ {
		if strings.Compare(got[i-1].Name[len(got[i-1].Category):], got[i].Name[len(got[i].Category):]) > 0 {
			t.Errorf("sample is not in the original order: %v", names(got))
		}
	}
}
