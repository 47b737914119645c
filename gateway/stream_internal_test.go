package gateway

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

func TestEventOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		msg      proto.Message
		event    string
		wantID   string
		wantData bool
	}{
		{name: "ack", msg: &eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Ack{Ack: &eventsv1.SubscribeAck{}}}, event: "ack"},
		{
			name: "delivery", msg: &eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Delivery{Delivery: &eventsv1.Delivery{Sequence: 12}}},
			event: "delivery", wantID: "12",
		},
		{name: "lag", msg: &eventsv1.SubscribeResponse{Kind: &eventsv1.SubscribeResponse_Lag{Lag: &eventsv1.Lag{Missed: 2}}}, event: "lag"},
		{
			name: "router delivery", msg: &routerv1.SubscribeResponse{Node: "n", Kind: &routerv1.SubscribeResponse_Delivery{Delivery: &eventsv1.Delivery{Sequence: 3}}},
			event: "delivery", wantID: "3",
		},
		{name: "unset oneof", msg: &eventsv1.SubscribeResponse{}, event: "message"},
		{name: "one message field", msg: &debugv1.StreamProbesResponse{Probe: &debugv1.Probe{}}, event: "probe"},
		{name: "anything else", msg: &meshv1.MembersResponse{}, event: "message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name, id := eventOf(tc.msg)
			if name != tc.event || id != tc.wantID {
				t.Errorf("got %q id %q, want %q id %q", name, id, tc.event, tc.wantID)
			}
		})
	}
}

func TestWantsSSE(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"*/*"}, false},
		{[]string{"application/json"}, false},
		{[]string{"text/event-stream"}, true},
		{[]string{"application/json, text/event-stream;q=0.9"}, true},
		{[]string{"application/json", "text/event-stream"}, true},
		{[]string{"text/event-streams"}, false},
		{[]string{";;;,"}, false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		for _, a := range tc.accept {
			r.Header.Add("Accept", a)
		}
		if got := wantsSSE(r); got != tc.want {
			t.Errorf("Accept %q: %v, want %v", tc.accept, got, tc.want)
		}
	}
}

func TestTokenFromQuery(t *testing.T) {
	t.Parallel()
	g := &Gateway{log: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name, method, target, header string
		wantAuth, wantQuery          string
		wantErr                      bool
	}{
		{name: "moved into the header", method: "GET", target: "/v1/x?access_token=t&a=1", wantAuth: "Bearer t", wantQuery: "a=1"},
		{name: "a header wins", method: "GET", target: "/v1/x?access_token=t", header: "Bearer h", wantAuth: "Bearer h"},
		{name: "none", method: "GET", target: "/v1/x?a=1", wantQuery: "a=1"},
		{name: "not on POST", method: "POST", target: "/v1/x?access_token=t", wantErr: true},
		{name: "not twice", method: "GET", target: "/v1/x?access_token=t&access_token=u", wantErr: true},
		{name: "not empty", method: "GET", target: "/v1/x?access_token=", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			got, err := g.tokenFromQuery(r)
			if tc.wantErr {
				if rpcerr.Reason(err) != ReasonQueryInvalid {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Header.Get("Authorization") != tc.wantAuth || got.URL.RawQuery != tc.wantQuery || strings.Contains(got.RequestURI, "access_token") {
				t.Errorf("Authorization %q, query %q, RequestURI %q", got.Header.Get("Authorization"), got.URL.RawQuery, got.RequestURI)
			}
			if r.Header.Get("Authorization") != tc.header {
				t.Error("the caller's request was modified")
			}
		})
	}
}

func TestLimitedBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body     string
		limit    int64
		exceeded bool
	}{
		{"12345", 5, false},
		{"123456", 5, true},
		{"", 5, false},
	} {
		done := 0
		lb := &limitedBody{rc: io.NopCloser(strings.NewReader(tc.body)), left: tc.limit, done: func() { done++ }}
		got, err := io.ReadAll(lb)
		if tc.exceeded != errors.Is(err, errBodyTooLarge) || lb.exceeded.Load() != tc.exceeded {
			t.Errorf("%q: err %v, exceeded %v", tc.body, err, lb.exceeded.Load())
		}
		if !tc.exceeded && string(got) != tc.body {
			t.Errorf("%q: read %q", tc.body, got)
		}
		_ = lb.Close()
		if done != 1 {
			t.Errorf("%q: done ran %d times", tc.body, done)
		}
	}
}

func TestStreamWriterFraming(t *testing.T) {
	t.Parallel()
	probe := &debugv1.StreamProbesResponse{Probe: &debugv1.Probe{Class: "decision"}}
	marshal := func(m proto.Message) ([]byte, error) { return []byte(`{"probe":{"class":"decision"}}`), nil }
	for _, tc := range []struct {
		f    framing
		want string
		ct   string
	}{
		{
			framingSSE, "retry: 2000\n\nevent: probe\ndata: {\"probe\":{\"class\":\"decision\"}}\n\n: ping\n\n" +
				"event: error\ndata: {\"code\":\"UNAVAILABLE\",\"http_status\":503,\"message\":\"m\",\"reason\":\"R\",\"metadata\":{}}\n\n",
			ContentTypeSSE + "; charset=utf-8",
		},
		{
			framingNDJSON, "{\"result\":{\"probe\":{\"class\":\"decision\"}}}\n" +
				"{\"error\":{\"code\":\"UNAVAILABLE\",\"http_status\":503,\"message\":\"m\",\"reason\":\"R\",\"metadata\":{}}}\n",
			ContentTypeNDJSON,
		},
	} {
		w := httptest.NewRecorder()
		sw := &streamWriter{w: w, rc: http.NewResponseController(w), f: tc.f, marshal: marshal}
		if err := sw.commit(); err != nil {
			t.Fatal(err)
		}
		if err := sw.message(probe); err != nil {
			t.Fatal(err)
		}
		if err := sw.flush(); err != nil {
			t.Fatal(err)
		}
		if tc.f == framingSSE {
			if err := sw.ping(); err != nil {
				t.Fatal(err)
			}
		}
		if err := sw.error(ErrorBody{Code: "UNAVAILABLE", HTTPStatus: 503, Message: "m", Reason: "R", Metadata: map[string]string{}}); err != nil {
			t.Fatal(err)
		}
		if got := w.Body.String(); got != tc.want {
			t.Errorf("framing %d:\n got %q\nwant %q", tc.f, got, tc.want)
		}
		if w.Header().Get("Content-Type") != tc.ct || !w.Flushed {
			t.Errorf("framing %d: Content-Type %q, flushed %v", tc.f, w.Header().Get("Content-Type"), w.Flushed)
		}
	}
}
