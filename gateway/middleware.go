package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
)

// AccessTokenParam is the query parameter that may carry a bearer token on
// GET requests, for clients that cannot set headers (a browser's
// EventSource). The gateway moves it into the Authorization header and out
// of the URL before anything else sees the request.
const AccessTokenParam = "access_token"

// requestInfo is what the access log learns about a request while it runs.
type requestInfo struct {
	mu       sync.Mutex
	reason   string
	messages uint64
}

type requestInfoKey struct{}

// noteReason records the error reason of the answer for the access log.
func noteReason(ctx context.Context, reason string) {
	if ri, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		ri.mu.Lock()
		ri.reason = reason
		ri.mu.Unlock()
	}
}

// noteMessages records how many stream messages were sent.
func noteMessages(ctx context.Context, n uint64) {
	if ri, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		ri.mu.Lock()
		ri.messages = n
		ri.mu.Unlock()
	}
}

// statusRecorder remembers the status and size of an answer. Unwrap lets
// http.ResponseController reach the connection's Flush and deadlines.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs every finished request once: successes at debug,
// client errors at info, server errors at warn. The query is never logged
// (it may hold an access token).
func (g *Gateway) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri)))
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		level := slog.LevelDebug
		switch {
		case status >= 500:
			level = slog.LevelWarn
		case status >= 400:
			level = slog.LevelInfo
		}
		ri.mu.Lock()
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
			slog.Int64("bytes", rec.bytes), slog.Duration("duration", time.Since(start)), slog.String("remote", r.RemoteAddr),
		}
		if ri.reason != "" {
			attrs = append(attrs, slog.String("reason", ri.reason))
		}
		if ri.messages > 0 {
			attrs = append(attrs, slog.Uint64("messages", ri.messages))
		}
		ri.mu.Unlock()
		g.log.LogAttrs(r.Context(), level, "http request", attrs...)
	})
}

// apiRequest prepares a request to the /v1/ API: it moves ?access_token=
// into the Authorization header (GET and HEAD only: a token in a URL of a
// request that changes something would be too easily replayed and leaked),
// bounds the body (Config.MaxBodyBytes, read within bodyReadTimeout), and
// marks the answer as not cacheable.
func (g *Gateway) apiRequest(next http.Handler) http.Handler {
	return g.apiRequestBody(next, g.cfg.MaxBodyBytes, 0)
}

// apiRequestBody is apiRequest with a body of at most limit bytes. With
// idle zero the whole body must arrive within bodyReadTimeout; otherwise
// each read must make progress within idle, however long the body takes
// (an artifact upload).
func (g *Gateway) apiRequestBody(next http.Handler, limit int64, idle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		r, err := g.tokenFromQuery(r)
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		if r.ContentLength > limit {
			g.writeError(w, r, errBodyTooLargeLimit(limit))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			lb := &limitedBody{rc: r.Body, left: limit, limit: limit, done: func() { _ = rc.SetReadDeadline(time.Time{}) }}
			if idle > 0 {
				lb.beforeRead = func() { _ = rc.SetReadDeadline(time.Now().Add(idle)) }
			} else {
				_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
			}
			r = r.WithContext(context.WithValue(r.Context(), limitedBodyKey{}, lb))
			r.Body = lb
		}
		next.ServeHTTP(w, r)
	})
}

// tokenFromQuery returns r with its access_token moved into the header.
func (g *Gateway) tokenFromQuery(r *http.Request) (*http.Request, error) {
	q := r.URL.Query()
	tokens, ok := q[AccessTokenParam]
	if !ok {
		return r, nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return r, newError(codes.InvalidArgument, ReasonQueryInvalid,
			"access_token is accepted on GET requests only; send Authorization: Bearer <token>", "param", AccessTokenParam)
	}
	if len(tokens) != 1 || tokens[0] == "" {
		return r, newError(codes.InvalidArgument, ReasonQueryInvalid, "give access_token once, not empty", "param", AccessTokenParam)
	}
	r2 := r.Clone(r.Context())
	q.Del(AccessTokenParam)
	r2.URL.RawQuery = q.Encode()
	r2.RequestURI = r2.URL.RequestURI()
	// A header wins over the query: it is what a client chose to send.
	if r2.Header.Get("Authorization") == "" {
		r2.Header.Set("Authorization", "Bearer "+tokens[0])
	}
	return r2, nil
}

// bodyReadTimeout bounds reading a request body.
const bodyReadTimeout = time.Minute

// limitedBody is an http.MaxBytesReader that remembers it hit the limit,
// so the error the transcoder reports (a decode error) can be answered as
// 413 BODY_TOO_LARGE. Once the body is read, done lifts its read deadline.
type limitedBody struct {
	rc    io.ReadCloser
	left  int64
	limit int64
	// beforeRead, when set, runs before every read (it moves an idle read
	// deadline).
	beforeRead func()
	exceeded   atomic.Bool
	done       func()
	doneOnce   sync.Once
}

type limitedBodyKey struct{}

func (l *limitedBody) Read(p []byte) (n int, err error) {
	defer func() {
		if err != nil {
			l.doneOnce.Do(l.done)
		}
	}()
	if l.beforeRead != nil {
		l.beforeRead()
	}
	if l.left <= 0 {
		// Probe for one more byte: exactly the limit is fine.
		var one [1]byte
		n, err := l.rc.Read(one[:])
		if n > 0 {
			l.exceeded.Store(true)
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err = l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error {
	l.doneOnce.Do(l.done)
	return l.rc.Close()
}

var errBodyTooLarge = errors.New("request body too large")

// bodyTooLarge reports whether the request behind ctx sent more than its
// limit, and the limit.
func bodyTooLarge(ctx context.Context) (limit int64, exceeded bool) {
	lb, ok := ctx.Value(limitedBodyKey{}).(*limitedBody)
	if !ok || !lb.exceeded.Load() {
		return 0, false
	}
	return lb.limit, true
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
