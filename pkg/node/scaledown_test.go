package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/node/nodetest"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// syncBuffer collects log lines from several nodes for a failing test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestScaleDownKeepsEveryPersona is compose's `--scale hippocampus=1`
// from 3 in one process: two of three hippocampus members stop gracefully
// at the same moment (drain, hand-off, leave), and every persona's
// engrams are still recalled through the router afterwards.
func TestScaleDownKeepsEveryPersona(t *testing.T) {
	m := nodetest.New(t)
	logs := &syncBuffer{}
	logger := func(name string) *slog.Logger {
		return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test_node", name)
	}
	r := m.Start("r", nodetest.Options{Services: []string{"router", "events", "audit"}, Logger: logger("r")})
	for _, h := range []string{"h1", "h2", "h3"} {
		m.Start(h, nodetest.Options{Services: []string{"hippocampus"}, Logger: logger(h)})
	}
	m.WaitMembers(4, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	router := routerv1.NewRouterServiceClient(m.Dial(r, nodetest.AdminToken))
	dispatch := func(uri string, params map[string]any) (*routerv1.DispatchResponse, error) {
		p, err := structpb.NewStruct(params)
		if err != nil {
			t.Fatal(err)
		}
		return router.Dispatch(ctx, &routerv1.DispatchRequest{Uri: uri, Params: p})
	}

	personas := []string{"ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo", "kim", "lu"}
	servedBy := map[string]bool{}
	ids := map[string]string{}
	for _, p := range personas {
		var resp *routerv1.DispatchResponse
		var err error
		nodetest.Eventually(t, 20*time.Second, func() bool {
			resp, err = dispatch("hippocampus/remember", map[string]any{
				"persona": p, "channel": "chat", "engram": map[string]any{"content": "hello from " + p},
			})
			return err == nil
		}, "remember %s: %v", p, err)
		servedBy[resp.GetServedBy()] = true
		ids[p] = resp.GetResult().GetStructValue().GetFields()["id"].GetStringValue()
	}
	if len(servedBy) < 2 {
		t.Fatalf("personas did not spread: %v", servedBy)
	}

	var wg sync.WaitGroup
	for _, h := range []string{"h2", "h3"} {
		wg.Go(func() { m.Stop(h) })
	}
	wg.Wait()
	m.WaitMembers(2, 20*time.Second)

	var lost []string
	for _, p := range personas {
		var last error
		ok := false
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := dispatch("hippocampus/recall", map[string]any{"persona": p, "channel": "chat", "cue": "hello", "k": 4})
			items := resp.GetResult().GetStructValue().GetFields()["items"].GetListValue().GetValues()
			if err == nil && len(items) == 1 && items[0].GetStructValue().GetFields()["engramId"].GetStringValue() == ids[p] {
				ok = true
				break
			}
			last = fmt.Errorf("%v (result %v)", err, resp.GetResult())
			time.Sleep(100 * time.Millisecond)
		}
		if !ok {
			lost = append(lost, fmt.Sprintf("%s: %v", p, last))
		}
	}
	if len(lost) > 0 {
		t.Errorf("after the scale-down %d of %d personas are not recalled:\n%s\nlogs:\n%s", len(lost), len(personas), strings.Join(lost, "\n"), logs.String())
	}
}
