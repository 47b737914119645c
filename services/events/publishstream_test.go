package events

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

func pubs(topics ...string) *eventsv1.PublishStreamRequest {
	req := &eventsv1.PublishStreamRequest{}
	for _, t := range topics {
		req.Publishes = append(req.Publishes, &eventsv1.PublishRequest{Topic: t})
	}
	return req
}

// TestPublishStream publishes batches, pipelined, to a memory topic and a
// durable class, and checks the in-order acknowledgements, the deliveries,
// and that pipelined durable publishes share group commits.
func TestPublishStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withDataDir(t.TempDir()))
	declare(t, e.admin, durableClass("ps"))
	x := subscribe(t, e.admin, pattern("ps:>"))
	x.ack()
	stream, err := e.admin.PublishStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	const requests, per = 50, 20
	for i := 0; i < requests; i++ {
		req := &eventsv1.PublishStreamRequest{}
		for j := 0; j < per; j++ {
			req.Publishes = append(req.Publishes, &eventsv1.PublishRequest{
				Topic: "ps:x", MsgId: fmt.Sprintf("%d-%d", i, j%(per-1)), Payload: payload(t, map[string]any{"i": i, "j": j}),
			})
		}
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	next := uint64(1)
	for i := 0; i < requests; i++ {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetAcks()) != per {
			t.Fatalf("response %d acknowledges %d publishes", i, len(resp.GetAcks()))
		}
		for j, ack := range resp.GetAcks() {
			if j == per-1 {
				// The last publish of each request repeats the first msg_id.
				if !ack.GetDuplicate() || ack.GetStreamSequence() != next-uint64(per-1) {
					t.Fatalf("request %d: duplicate ack %v", i, ack)
				}
				continue
			}
			if ack.GetStreamSequence() != next || ack.GetDuplicate() || ack.GetDelivered() != 1 {
				t.Fatalf("request %d publish %d: ack %v, want sequence %d", i, j, ack, next)
			}
			next++
		}
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream ended with %v", err)
	}
	for seq := uint64(1); seq < next; seq++ {
		if d := x.delivery(); d.GetStreamSequence() != seq || d.GetSequence() != seq {
			t.Fatalf("delivery %v, want %d", d, seq)
		}
	}
	st := e.svc.reg.streamFor("ps:x")
	if commits := st.store.appends.Load(); commits >= next-1 {
		t.Errorf("%d group commits for %d pipelined durable publishes", commits, next-1)
	}
}

func TestPublishStreamEndsAtTheFirstFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.gate.forbid("admin", "events/no:x/publish")
	tests := []struct {
		name   string
		reqs   []*eventsv1.PublishStreamRequest
		acks   [][]uint64
		code   codes.Code
		reason string
	}{
		{
			"bad topic mid-batch",
			[]*eventsv1.PublishStreamRequest{pubs("f1:a"), pubs("f1:a", "f1:a", "f1:*", "f1:a"), pubs("f1:a")},
			[][]uint64{{1}, {2, 3}},
			codes.InvalidArgument, "TOPIC_INVALID",
		},
		{"refused first", []*eventsv1.PublishStreamRequest{pubs("no:x", "f2:a")}, nil, codes.PermissionDenied, "FORBIDDEN_NO_PERMISSION"},
		{"empty request", []*eventsv1.PublishStreamRequest{pubs("f3:a"), pubs()}, [][]uint64{{1}}, codes.InvalidArgument, "PUBLISH_BATCH_INVALID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stream, err := e.admin.PublishStream(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tc.reqs {
				if err := stream.Send(r); err != nil {
					break // the server may have ended the stream already
				}
			}
			var got [][]uint64
			for {
				resp, err := stream.Recv()
				if err != nil {
					wantCode(t, err, tc.code, tc.reason)
					break
				}
				var seqs []uint64
				for _, a := range resp.GetAcks() {
					seqs = append(seqs, a.GetStreamSequence())
				}
				got = append(got, seqs)
			}
			if diff := cmp.Diff(tc.acks, got); diff != "" {
				t.Errorf("acks (-want +got):\n%s", diff)
			}
		})
	}
}
