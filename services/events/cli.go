package events

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/topic"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// TailUsage and PubUsage are the command lines RunTail and RunPub accept.
const (
	TailUsage = `usage: continuum tail [flags] <selector | airc://peer/events/<selector>>

Streams events like "nats sub". The selector is a colon topic pattern
(data:>, data:*:created, audit:refusal), an artifact key
(genome/working_set.page_fault) or an artifact prefix (genome/ or genome/*).
An airc:// URI subscribes on another peer through RouterService.Subscribe.

flags:
  --last N      replay the last N matching retained events first
  --after SEQ   replay from after this stream sequence (resume)
  --filter JSON only events whose payload has these top-level fields ({"kind":"x"})
  --queue N     queue length of the subscription (server default when 0)
  --count N     exit after N deliveries (0: until interrupted)
  --json        print each message as one line of protobuf JSON`

	PubUsage = `usage: continuum pub [flags] <topic> [json-object]

Publishes one event like "nats pub"; the payload defaults to {}.

flags:
  --msg-id ID      idempotency key (with --count, ID-1, ID-2, ...)
  --header k=v     a header (repeatable)
  --schema V       the payload's schema version
  --count N        publish N times (default 1)
  --json           print each response as protobuf JSON`
)

// RunTail is "continuum tail": it subscribes and prints what arrives to out
// until ctx ends (then it returns nil), the server ends the stream, or
// --count deliveries arrived. conn reaches an EventsService, or a
// RouterService for airc:// URIs.
func RunTail(ctx context.Context, conn grpc.ClientConnInterface, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	last := fs.Uint("last", 0, "")
	after := fs.Uint64("after", 0, "")
	filterJSON := fs.String("filter", "", "")
	queue := fs.Uint("queue", 0, "")
	count := fs.Uint64("count", 0, "")
	asJSON := fs.Bool("json", false, "")
	pos, err := parseInterleaved(fs, args)
	if err != nil || len(pos) != 1 {
		if err == nil {
			err = errors.New("want exactly one selector or URI")
		}
		return fmt.Errorf("%w\n%s", err, TailUsage)
	}
	if *last > 0 && *after > 0 {
		return fmt.Errorf("--last and --after exclude each other\n%s", TailUsage)
	}
	if *last > 1<<32-1 || *queue > 1<<32-1 {
		return errors.New("--last and --queue must fit in 32 bits")
	}
	var filter *structpb.Struct
	if *filterJSON != "" {
		filter = &structpb.Struct{}
		if err := protojson.Unmarshal([]byte(*filterJSON), filter); err != nil {
			return fmt.Errorf("--filter must be a JSON object: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var recv func() (tailMsg, error)
	target := pos[0]
	if strings.HasPrefix(strings.ToLower(target), "airc://") {
		stream, err := routerv1.NewRouterServiceClient(conn).Subscribe(ctx, &routerv1.SubscribeRequest{
			Uri: target, Filter: filter, StartAfterSequence: *after, LastN: uint32(*last),
		})
		if err != nil {
			return quietCancel(ctx, err)
		}
		recv = func() (tailMsg, error) {
			r, err := stream.Recv()
			if err != nil {
				return tailMsg{}, err
			}
			return tailMsg{msg: r, ack: r.GetAck(), delivery: r.GetDelivery(), lag: r.GetLag(), node: r.GetNode()}, nil
		}
	} else {
		req, err := subscribeRequest(target)
		if err != nil {
			return err
		}
		req.Filter, req.StartAfterSequence, req.LastN, req.QueueSize = filter, *after, uint32(*last), uint32(*queue)
		stream, err := eventsv1.NewEventsServiceClient(conn).Subscribe(ctx, req)
		if err != nil {
			return quietCancel(ctx, err)
		}
		recv = func() (tailMsg, error) {
			r, err := stream.Recv()
			if err != nil {
				return tailMsg{}, err
			}
			return tailMsg{msg: r, ack: r.GetAck(), delivery: r.GetDelivery(), lag: r.GetLag()}, nil
		}
	}

	var got uint64
	for {
		k, err := recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return quietCancel(ctx, err)
		}
		if *asJSON {
			b, err := protojson.Marshal(k.msg)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s\n", b)
		} else {
			printHuman(out, target, k)
		}
		if k.delivery != nil {
			if got++; *count > 0 && got >= *count {
				return nil
			}
		}
	}
}

// tailMsg is one message of an events or router subscription stream.
type tailMsg struct {
	msg      proto.Message
	ack      *eventsv1.SubscribeAck
	delivery *eventsv1.Delivery
	lag      *eventsv1.Lag
	node     string
}

func printHuman(out io.Writer, target string, k tailMsg) {
	switch {
	case k.ack != nil:
		on := ""
		if k.node != "" {
			on = " on " + k.node
		}
		fmt.Fprintf(out, "subscribed %s to %s%s\n", k.ack.GetSubscriptionId(), target, on)
	case k.delivery != nil:
		d := k.delivery
		payload, err := protojson.Marshal(d.GetPayload())
		if err != nil {
			payload = []byte(fmt.Sprintf("<%v>", err))
		}
		fmt.Fprintf(out, "[%d] %s stream_sequence=%d publisher=%s node=%s at=%s %s\n",
			d.GetSequence(), d.GetTopic(), d.GetStreamSequence(), d.GetPublisher(), d.GetPublisherNode(),
			d.GetPublishedAt().AsTime().Format(time.RFC3339Nano), compactJSON(payload))
	case k.lag != nil:
		l := k.lag
		fmt.Fprintf(out, "lag: missed %d events of stream %s (first %s); resume with --after %d\n",
			l.GetMissed(), l.GetStream(), orDash(l.GetTopic()), l.GetResumeAfterSequence())
	}
}

// compactJSON removes the spaces protojson may add, for one-line output.
func compactJSON(b []byte) string {
	var sb strings.Builder
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case c == '\\' && inString:
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\n' || c == '\t'):
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// subscribeRequest builds the selector of a tail argument.
func subscribeRequest(s string) (*eventsv1.SubscribeRequest, error) {
	sel, err := topic.ParseSelector(s)
	if err != nil {
		return nil, err
	}
	switch sel.Kind() {
	case topic.SelectArtifactExact:
		return &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Artifact{Artifact: &eventsv1.ArtifactSelector{
			Key: sel.Key(), Match: eventsv1.ArtifactMatch_ARTIFACT_MATCH_EXACT,
		}}}, nil
	case topic.SelectArtifactPrefix:
		return &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Artifact{Artifact: &eventsv1.ArtifactSelector{
			Key: sel.Key(), Match: eventsv1.ArtifactMatch_ARTIFACT_MATCH_PREFIX,
		}}}, nil
	}
	return &eventsv1.SubscribeRequest{Selector: &eventsv1.SubscribeRequest_Pattern{Pattern: sel.String()}}, nil
}

// RunPub is "continuum pub": it publishes one event (or --count of them)
// and prints each acknowledgement to out.
func RunPub(ctx context.Context, conn grpc.ClientConnInterface, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("pub", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	msgID := fs.String("msg-id", "", "")
	schema := fs.String("schema", "", "")
	count := fs.Uint("count", 1, "")
	asJSON := fs.Bool("json", false, "")
	headers := headerFlag{}
	fs.Var(headers, "header", "")
	pos, err := parseInterleaved(fs, args)
	if err == nil && (len(pos) < 1 || len(pos) > 2) {
		err = errors.New("want a topic and an optional JSON object")
	}
	if err != nil {
		return fmt.Errorf("%w\n%s", err, PubUsage)
	}
	payload := &structpb.Struct{}
	if len(pos) == 2 {
		if err := protojson.Unmarshal([]byte(pos[1]), payload); err != nil {
			return fmt.Errorf("the payload must be a JSON object: %w", err)
		}
	}
	client := eventsv1.NewEventsServiceClient(conn)
	req := func(i uint) *eventsv1.PublishRequest {
		id := *msgID
		if id != "" && *count > 1 {
			id += "-" + strconv.FormatUint(uint64(i), 10)
		}
		return &eventsv1.PublishRequest{Topic: pos[0], Payload: payload, Headers: headers, MsgId: id, SchemaVersion: *schema}
	}
	show := func(r *eventsv1.PublishRequest, resp *eventsv1.PublishResponse) error {
		switch {
		case *asJSON:
			b, err := protojson.Marshal(resp)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%s\n", b)
		case resp.GetDuplicate():
			fmt.Fprintf(out, "duplicate %s stream_sequence=%d (msg_id %s already published)\n", r.GetTopic(), resp.GetStreamSequence(), r.GetMsgId())
		default:
			fmt.Fprintf(out, "published %s stream_sequence=%d delivered=%d\n", r.GetTopic(), resp.GetStreamSequence(), resp.GetDelivered())
		}
		return nil
	}
	if *count == 1 {
		r := req(1)
		resp, err := client.Publish(ctx, r)
		if err != nil {
			return err
		}
		return show(r, resp)
	}
	// Many publishes go in bulk: batches on one PublishStream.
	stream, err := client.PublishStream(ctx)
	if err != nil {
		return err
	}
	const batch = 256
	for i := uint(1); i <= *count; {
		var reqs []*eventsv1.PublishRequest
		for ; i <= *count && len(reqs) < batch; i++ {
			reqs = append(reqs, req(i))
		}
		if err := stream.Send(&eventsv1.PublishStreamRequest{Publishes: reqs}); err != nil {
			_, err = stream.Recv() // the server's reason
			return err
		}
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		for j, ack := range resp.GetAcks() {
			if err := show(reqs[j], ack); err != nil {
				return err
			}
		}
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// headerFlag collects repeated --header k=v flags.
type headerFlag map[string]string

func (h headerFlag) String() string { return "" }

func (h headerFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("--header wants key=value")
	}
	h[k] = val
	return nil
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// quietCancel turns the error of a stream the user interrupted into nil.
func quietCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
