package sweep

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/node"
)

// embedded is a real node started in this process for the sweep: every
// service node.AllServices lists, one gRPC listener on 127.0.0.1:0, data
// in a temporary directory that is removed afterwards.
type embedded struct {
	node       *node.Node
	dir        string
	adminToken string
	userToken  string
	logs       *logCapture
	cancel     context.CancelFunc
	done       chan error
}

func startEmbedded(ctx context.Context) (_ *embedded, err error) {
	dir, err := os.MkdirTemp("", "badinput-")
	if err != nil {
		return nil, fmt.Errorf("embedded node: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	admin, err := auth.NewToken()
	if err != nil {
		return nil, err
	}
	user, err := auth.NewToken()
	if err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens.yaml")
	body := fmt.Sprintf("tokens:\n  - principal: admin\n    token: %s\n    admin: true\n  - principal: user\n    token: %s\n", admin, user)
	if err := os.WriteFile(tokens, []byte(body), 0o600); err != nil {
		return nil, fmt.Errorf("embedded node: %w", err)
	}
	logs := &logCapture{byID: map[string]string{}}
	n, err := node.New(node.Config{
		Node:         "badinput",
		Listen:       "127.0.0.1:0",
		DataDir:      filepath.Join(dir, "data"),
		TokensFile:   tokens,
		MeshProfile:  "local",
		DrainTimeout: 5 * time.Second,
	}, slog.New(logs))
	if err != nil {
		return nil, fmt.Errorf("embedded node: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e := &embedded{node: n, dir: dir, adminToken: admin, userToken: user, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- n.Run(runCtx) }()
	return e, nil
}

// stop drains the node and removes its files.
func (e *embedded) stop() error {
	e.cancel()
	err := <-e.done
	if rmErr := os.RemoveAll(e.dir); err == nil {
		err = rmErr
	}
	if err != nil {
		return fmt.Errorf("embedded node: %w", err)
	}
	return nil
}

// logCapture is the embedded node's log handler: it keeps what the server
// logged with an error_id (a recovered panic, an unmapped error), so a
// violation can show where it came from, and drops the rest.
type logCapture struct {
	mu   sync.Mutex
	byID map[string]string
}

func (l *logCapture) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelError }

func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	fields := map[string]string{}
	collect := func(a slog.Attr) bool {
		fields[a.Key] = a.Value.Resolve().String()
		return true
	}
	r.Attrs(collect)
	id := fields["error_id"]
	if id == "" {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	for _, k := range []string{"method", "panic", "error"} {
		if v := fields[k]; v != "" {
			fmt.Fprintf(&b, "; %s: %s", k, v)
		}
	}
	if where := panicSite(fields["stack"]); where != "" {
		b.WriteString("\nat " + where)
	}
	l.mu.Lock()
	l.byID[id] = b.String()
	l.mu.Unlock()
	return nil
}

func (l *logCapture) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &sharedCapture{logCapture: l, attrs: attrs}
}

func (l *logCapture) WithGroup(string) slog.Handler { return l }

// lookup returns what was logged for an error id.
func (l *logCapture) lookup(id string) string {
	if l == nil || id == "" {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byID[id]
}

// sharedCapture is a logCapture with attributes added by With; it stores
// into the same map.
type sharedCapture struct {
	*logCapture
	attrs []slog.Attr
}

func (s *sharedCapture) Handle(ctx context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(s.attrs...)
	return s.logCapture.Handle(ctx, r)
}

func (s *sharedCapture) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &sharedCapture{logCapture: s.logCapture, attrs: append(append([]slog.Attr(nil), s.attrs...), attrs...)}
}

func (s *sharedCapture) WithGroup(string) slog.Handler { return s }

// panicSite picks the frames right below the panic out of a stack trace:
// the code that panicked.
func panicSite(stack string) string {
	lines := strings.Split(stack, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") {
			var frames []string
			for j := i + 2; j+1 < len(lines) && len(frames) < 3; j += 2 {
				fn := strings.TrimSpace(lines[j])
				if strings.HasPrefix(fn, "runtime.") {
					continue
				}
				file := strings.TrimSpace(lines[j+1])
				if k := strings.LastIndex(file, " +0x"); k > 0 {
					file = file[:k]
				}
				frames = append(frames, fn+" "+file)
			}
			return strings.Join(frames, "\n   ")
		}
	}
	return ""
}
