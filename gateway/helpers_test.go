package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/continuum-mesh/continuum/gateway"
	"github.com/continuum-mesh/continuum/pkg/node"
	"github.com/continuum-mesh/continuum/pkg/rpc/rpctest"
)

// Tokens of the test node: the same as the rpctest servers', so one
// gateway can front both.
const (
	adminToken = rpctest.AdminToken
	userToken  = rpctest.UserToken
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startNode runs a real single node ("gw") with every service it has and
// the default policy, plaintext on 127.0.0.1.
func startNode(t *testing.T) *node.Node {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	body := "tokens:\n  - principal: admin\n    token: " + adminToken + "\n    admin: true\n" +
		"  - principal: user\n    token: " + userToken + "\n"
	if err := os.WriteFile(tokens, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{
		Node: "gw", Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), TokensFile: tokens,
		MeshProfile: "local", DrainTimeout: 5 * time.Second,
	}, discard())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node run: %v", err)
		}
	})
	return n
}

// plainDial dials every service at addr as an ordinary external client.
func plainDial(addr string) func(string) (grpc.ClientConnInterface, error) {
	return func(string) (grpc.ClientConnInterface, error) {
		return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
}

// startGateway runs a gateway until the test ends and returns its base URL.
func startGateway(t *testing.T, cfg gateway.Config, dial func(string) (grpc.ClientConnInterface, error)) (*gateway.Gateway, string) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	g, err := gateway.New(cfg, gateway.Deps{Dial: dial, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway run: %v", err)
		}
	})
	return g, "http://" + g.Addr()
}

// call makes an HTTP request with an optional bearer token and JSON body.
func call(t *testing.T, method, url, token, body string, hdr ...string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// callChunked sends body without a Content-Length.
func callChunked(t *testing.T, method, url, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, io.NopCloser(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// decode reads a JSON body into v and closes it.
func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// errorOf reads a gateway error answer.
func errorOf(t *testing.T, resp *http.Response) gateway.ErrorBody {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var b gateway.ErrorBody
	decode(t, resp, &b)
	if b.HTTPStatus != resp.StatusCode {
		t.Errorf("http_status %d in the body, %d on the response", b.HTTPStatus, resp.StatusCode)
	}
	return b
}

// sseEvent is one Server-Sent Event, or a comment (name "comment").
type sseEvent struct {
	name, id, data string
}

// sseReader parses a text/event-stream body in the background.
type sseReader struct {
	events chan sseEvent
	// err is why the stream ended; set before events is closed.
	err error
}

func readSSE(body io.Reader) *sseReader {
	r := &sseReader{events: make(chan sseEvent, 1024)}
	go func() {
		br := bufio.NewReader(body)
		ev := sseEvent{name: "message"}
		var data []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				r.err = err
				close(r.events)
				return
			}
			line = strings.TrimRight(line, "\r\n")
			switch {
			case line == "":
				if data != nil {
					ev.data = strings.Join(data, "\n")
					r.events <- ev
				}
				ev, data = sseEvent{name: "message"}, nil
			case strings.HasPrefix(line, ":"):
				r.events <- sseEvent{name: "comment", data: strings.TrimSpace(line[1:])}
			default:
				field, val, _ := strings.Cut(line, ":")
				val = strings.TrimPrefix(val, " ")
				switch field {
				case "event":
					ev.name = val
				case "id":
					ev.id = val
				case "data":
					data = append(data, val)
				}
			}
		}
	}()
	return r
}

// next returns the next event (comments included) or fails at the deadline.
func (r *sseReader) next(t *testing.T, within time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-r.events:
		if !ok {
			t.Fatalf("stream ended: %v", r.err)
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %s", within)
	}
	return sseEvent{}
}

// nextEvent skips comments.
func (r *sseReader) nextEvent(t *testing.T, within time.Duration) sseEvent {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ev := r.next(t, time.Until(deadline))
		if ev.name != "comment" {
			return ev
		}
	}
}

// ended waits for the stream's end.
func (r *sseReader) ended(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case _, ok := <-r.events:
			if !ok {
				if r.err != nil && !errors.Is(r.err, io.EOF) {
					t.Logf("stream ended with %v", r.err)
				}
				return
			}
		case <-deadline:
			t.Fatalf("stream did not end within %s", within)
		}
	}
}
