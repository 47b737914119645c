package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc"

	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
)

// Config tunes the recorder.
type Config struct {
	// Node is this node's name. Required.
	Node string
	// DataDir is the node's data directory; the service keeps its files in
	// <DataDir>/audit. Required.
	DataDir string
	// Origin names the log in its checkpoints and is the signing key's
	// name; empty is "continuum.mesh/audit/<Node>". It must stay the same
	// for the life of the log.
	Origin string
	// MaxPayloadBytes bounds an appended payload (its protobuf size); zero
	// is 64 KiB.
	MaxPayloadBytes int
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// (re)subscribe to the events service; zero is 100 ms and 10 s.
	ReconnectMin, ReconnectMax time.Duration
	// VerifyWorkers is how many goroutines hash the log in Verify and at
	// open; zero is GOMAXPROCS.
	VerifyWorkers int
}

// Events is what the recorder needs of the events service;
// eventsv1.EventsServiceClient implements it.
type Events interface {
	DeclareClass(ctx context.Context, in *eventsv1.DeclareClassRequest, opts ...grpc.CallOption) (*eventsv1.DeclareClassResponse, error)
	Subscribe(ctx context.Context, in *eventsv1.SubscribeRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[eventsv1.SubscribeResponse], error)
}

// Deps are the service's collaborators.
type Deps struct {
	// Events feeds the recorder; nil records direct appends only (Run then
	// just waits).
	Events Events
	// Logger; nil is slog.Default().
	Logger *slog.Logger
	// Now is the wall clock; nil is time.Now.
	Now func() time.Time
}

const (
	defaultMaxPayloadBytes = 64 << 10
	defaultReconnectMin    = 100 * time.Millisecond
	defaultReconnectMax    = 10 * time.Second
	// dirName is the service's folder under DataDir.
	dirName = "audit"
)

func (c *Config) withDefaults() error {
	if c.Node == "" {
		return errors.New("audit: config: node name is required")
	}
	if c.DataDir == "" {
		return errors.New("audit: config: data directory is required")
	}
	if c.Origin == "" {
		c.Origin = "continuum.mesh/audit/" + c.Node
	}
	if !validNoteName(c.Origin) {
		return fmt.Errorf("audit: config: origin %q must be non-empty and contain no spaces or '+'", c.Origin)
	}
	if c.MaxPayloadBytes <= 0 {
		c.MaxPayloadBytes = defaultMaxPayloadBytes
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = defaultReconnectMin
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = defaultReconnectMax
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	return nil
}

// dir is the service's folder.
func (c *Config) dir() string { return filepath.Join(c.DataDir, dirName) }

// validNoteName reports whether name can name a note signer, by the rule
// of golang.org/x/mod/sumdb/note: non-empty UTF-8 without spaces or '+'.
// Control characters are refused too: the name is a line of the checkpoint.
func validNoteName(name string) bool {
	if name == "" || !utf8.ValidString(name) || strings.Contains(name, "+") {
		return false
	}
	return strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
}
