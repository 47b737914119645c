package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// EventsSubscribePath is the hand-written SSE endpoint of
// EventsService.Subscribe, made for EventSource: a GET whose query is the
// subscription.
const EventsSubscribePath = "/v1/events/subscribe"

// Query parameters of EventsSubscribePath.
const (
	paramTopic      = "topic"
	paramArtifact   = "artifact"
	paramPrefix     = "prefix"
	paramStartAfter = "start_after_sequence"
	paramLastN      = "last_n"
	paramFilter     = "filter."
)

// serveEventsSubscribe relays EventsService.Subscribe as Server-Sent
// Events: "ack", "delivery" (id: the subscription's sequence) and "lag"
// events whose data is the SubscribeResponse in protobuf JSON.
func (g *Gateway) serveEventsSubscribe(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// HEAD would open a subscription whose events nobody reads.
		g.writeError(w, r, routingError(r, http.StatusMethodNotAllowed))
		return
	}
	req, err := subscribeRequest(r.URL.Query())
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	g.serveStream(w, r, streamCall{
		conn:    g.events,
		method:  eventsv1.EventsService_Subscribe_FullMethodName,
		req:     req,
		newResp: func() proto.Message { return &eventsv1.SubscribeResponse{} },
	}, framingSSE)
}

// subscribeRequest turns the query of EventsSubscribePath into a
// subscription: exactly one of topic (a colon pattern), artifact (an exact
// artifact key) and prefix (an artifact key prefix); optionally
// start_after_sequence, last_n and filter.<field>=<value> (a JSON scalar,
// or else the text as a string). Anything else, or anything given twice,
// is QUERY_INVALID, so a typo never silently widens a subscription.
func subscribeRequest(q url.Values) (*eventsv1.SubscribeRequest, error) {
	req := &eventsv1.SubscribeRequest{}
	var selectors []string
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		vs := q[key]
		if len(vs) != 1 {
			return nil, queryInvalid(key, key+" is given more than once")
		}
		v := vs[0]
		if field, ok := strings.CutPrefix(key, paramFilter); ok {
			if field == "" {
				return nil, queryInvalid(key, "a filter parameter is filter.<field>=<value>")
			}
			sv, err := scalarValue(v)
			if err != nil {
				return nil, queryInvalid(key, key+": "+err.Error())
			}
			if req.Filter == nil {
				req.Filter = &structpb.Struct{Fields: map[string]*structpb.Value{}}
			}
			req.Filter.Fields[field] = sv
			continue
		}
		switch key {
		case paramTopic, paramArtifact, paramPrefix:
			if v == "" {
				return nil, queryInvalid(key, key+" is empty")
			}
			selectors = append(selectors, key)
			switch key {
			case paramTopic:
				req.Selector = &eventsv1.SubscribeRequest_Pattern{Pattern: v}
			case paramArtifact:
				req.Selector = &eventsv1.SubscribeRequest_Artifact{Artifact: &eventsv1.ArtifactSelector{
					Key: v, Match: eventsv1.ArtifactMatch_ARTIFACT_MATCH_EXACT,
				}}
			default:
				req.Selector = &eventsv1.SubscribeRequest_Artifact{Artifact: &eventsv1.ArtifactSelector{
					Key: v, Match: eventsv1.ArtifactMatch_ARTIFACT_MATCH_PREFIX,
				}}
			}
		case paramStartAfter:
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return nil, queryInvalid(key, key+" must be an unsigned 64-bit integer")
			}
			req.StartAfterSequence = n
		case paramLastN:
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return nil, queryInvalid(key, key+" must be an unsigned 32-bit integer")
			}
			req.LastN = uint32(n)
		default:
			return nil, queryInvalid(key, "unknown parameter "+strconv.Quote(key)+
				" (known: topic, artifact, prefix, start_after_sequence, last_n, filter.<field>, access_token)")
		}
	}
	switch len(selectors) {
	case 1:
		return req, nil
	case 0:
		return nil, queryInvalid(paramTopic, "give one of topic=<pattern>, artifact=<key>, prefix=<key prefix>")
	}
	return nil, queryInvalid(selectors[1], "give only one of topic, artifact and prefix, not "+strings.Join(selectors, " and "))
}

func queryInvalid(param, msg string) error {
	return newError(codes.InvalidArgument, ReasonQueryInvalid, msg, "param", param)
}

// scalarValue reads a filter value from a URL: a JSON scalar (3, -2.5,
// true, false, null, "quoted text") when the text is one, else the text
// itself as a string, so filter.kind=created means the string "created"
// and filter.kind="3" the string "3". JSON objects and arrays are refused:
// filters compare scalars.
func scalarValue(s string) (*structpb.Value, error) {
	if !json.Valid([]byte(s)) {
		return structpb.NewStringValue(s), nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return structpb.NewStringValue(s), nil
	}
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue(), nil
	case bool:
		return structpb.NewBoolValue(x), nil
	case string:
		return structpb.NewStringValue(x), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, errors.New("the number is out of range")
		}
		return structpb.NewNumberValue(f), nil
	}
	return nil, errors.New(`a filter value is a JSON scalar or text, not an object or array (quote it, "[...]", to mean the text)`)
}
