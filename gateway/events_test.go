package gateway

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

func TestSubscribeRequest(t *testing.T) {
	t.Parallel()
	pattern := func(p string) *eventsv1.SubscribeRequest {
		return &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: p}}
	}
	artifact := func(k string, m eventsv1.ArtifactMatch) *eventsv1.SubscribeRequest {
		return &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Artifact{Artifact: &eventsv1.ArtifactSelector{Key: k, Match: m}}}
	}
	with := func(r *eventsv1.SubscribeRequest, f func(*eventsv1.SubscribeRequest)) *eventsv1.SubscribeRequest {
		f(r)
		return r
	}
	filter := func(kv ...any) *structpb.Struct {
		s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for i := 0; i+1 < len(kv); i += 2 {
			v, err := structpb.NewValue(kv[i+1])
			if err != nil {
				t.Fatal(err)
			}
			s.Fields[kv[i].(string)] = v
		}
		return s
	}
	tests := []struct {
		query string
		want  *eventsv1.SubscribeRequest
		param string // of the QUERY_INVALID error, when one is expected
	}{
		{query: "topic=data:>", want: pattern("data:>")},
		{query: "topic=audit:refusal&last_n=25", want: with(pattern("audit:refusal"), func(r *eventsv1.SubscribeRequest) { r.LastN = 25 })},
		{
			query: "topic=audit:refusal&start_after_sequence=18446744073709551615",
			want:  with(pattern("audit:refusal"), func(r *eventsv1.SubscribeRequest) { r.StartAfterSequence = 1<<64 - 1 }),
		},
		{query: "artifact=genome/working_set.page_fault", want: artifact("genome/working_set.page_fault", eventsv1.ArtifactMatch_ARTIFACT_MATCH_EXACT)},
		{query: "prefix=genome/", want: artifact("genome/", eventsv1.ArtifactMatch_ARTIFACT_MATCH_PREFIX)},
		{
			query: "topic=data:>&filter.kind=created&filter.n=3&filter.ok=true&filter.none=null&filter.s=%223%22&filter.neg=-2.5",
			want: with(pattern("data:>"), func(r *eventsv1.SubscribeRequest) {
				r.Filter = filter("kind", "created", "n", 3.0, "ok", true, "none", nil, "s", "3", "neg", -2.5)
			}),
		},
		{query: "topic=x&filter.a.b=1", want: with(pattern("x"), func(r *eventsv1.SubscribeRequest) { r.Filter = filter("a.b", 1.0) })},
		{query: "topic=x&filter.t=%7Bnot-json", want: with(pattern("x"), func(r *eventsv1.SubscribeRequest) { r.Filter = filter("t", "{not-json") })},
		{query: "", param: "topic"},
		{query: "last_n=3", param: "topic"},
		{query: "topic=", param: "topic"},
		{query: "topic=a&topic=b", param: "topic"},
		{query: "topic=a&artifact=b", param: "topic"},
		{query: "artifact=a&prefix=b", param: "prefix"},
		{query: "topic=a&last_n=4294967296", param: "last_n"},
		{query: "topic=a&last_n=x", param: "last_n"},
		{query: "topic=a&start_after_sequence=-1", param: "start_after_sequence"},
		{query: "topic=a&filter.=1", param: "filter."},
		{query: "topic=a&filter.x=1&filter.x=2", param: "filter.x"},
		{query: "topic=a&filter.x=%5B1%5D", param: "filter.x"},
		{query: "topic=a&filter.x=1e400", param: "filter.x"},
		{query: "topic=a&topics=b", param: "topics"},
		{query: "topic=a&access_token=t", param: "access_token"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := subscribeRequest(q)
			if tc.param != "" {
				if status.Code(err) != codes.InvalidArgument || rpcerr.Reason(err) != ReasonQueryInvalid ||
					rpcerr.Info(err).GetMetadata()["param"] != tc.param {
					t.Fatalf("got %v (%v), want QUERY_INVALID on %s", got, err, tc.param)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzSubscribeRequest: no query panics the parser; what it accepts has
// exactly one non-empty selector, and what it refuses is QUERY_INVALID.
func FuzzSubscribeRequest(f *testing.F) {
	for _, s := range []string{
		"topic=data:>", "artifact=a/b.c&last_n=3", "prefix=genome/&start_after_sequence=9",
		"topic=x&filter.k=v&filter.n=1.5", "topic=x&filter.k=%22q%22", "topic=&artifact=", "filter.=&filter..=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, err := subscribeRequest(q)
		if err != nil {
			if rpcerr.Reason(err) != ReasonQueryInvalid || status.Code(err) != codes.InvalidArgument {
				t.Fatalf("error %v", err)
			}
			return
		}
		switch s := req.GetSelector().(type) {
		case *eventsv1.SubscribeRequest_Pattern:
			if s.Pattern == "" {
				t.Fatal("empty pattern accepted")
			}
		case *eventsv1.SubscribeRequest_Artifact:
			if s.Artifact.GetKey() == "" {
				t.Fatal("empty artifact accepted")
			}
		default:
			t.Fatal("no selector")
		}
		for k, v := range req.GetFilter().GetFields() {
			if _, ok := v.GetKind().(*structpb.Value_StructValue); ok || v.GetListValue() != nil || k == "" {
				t.Fatalf("filter %q = %v", k, v)
			}
		}
	})
}

func TestScalarValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    *structpb.Value
		wantErr bool
	}{
		{in: "created", want: structpb.NewStringValue("created")},
		{in: "", want: structpb.NewStringValue("")},
		{in: "3", want: structpb.NewNumberValue(3)},
		{in: " 3 ", want: structpb.NewNumberValue(3)},
		{in: "3abc", want: structpb.NewStringValue("3abc")},
		{in: `"3"`, want: structpb.NewStringValue("3")},
		{in: "true", want: structpb.NewBoolValue(true)},
		{in: "null", want: structpb.NewNullValue()},
		{in: "{}", wantErr: true},
		{in: "[1]", wantErr: true},
		{in: "-1e999", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := scalarValue(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzScalarValue: every input is a scalar or an error, never a panic.
func FuzzScalarValue(f *testing.F) {
	for _, s := range []string{"x", "1", `"s"`, "true", "null", "[]", "{}", "1e999", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := scalarValue(s)
		if err != nil {
			if !strings.ContainsAny(s, "[{0123456789") {
				t.Fatalf("%q refused: %v", s, err)
			}
			return
		}
		if v.GetStructValue() != nil || v.GetListValue() != nil {
			t.Fatalf("%q gave %v", s, v)
		}
	})
}
