package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
)

// Defaults of Config.
const (
	DefaultHeartbeat    = 15 * time.Second
	DefaultCallTimeout  = 30 * time.Second
	DefaultMaxBodyBytes = 4 << 20
	// DefaultMaxUploadBytes bounds an artifact upload (POST
	// /v1/genome/artifacts).
	DefaultMaxUploadBytes = 8 << 30
	// DefaultUploadIdleTimeout bounds the wait for the next bytes of an
	// upload.
	DefaultUploadIdleTimeout = time.Minute
	DefaultMaxStreams        = 1024
	DefaultDrainTimeout      = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
)

// Config is what the gateway needs to know before it listens.
type Config struct {
	// Listen is the HTTP address, e.g. "127.0.0.1:8080"; ":0" picks a free
	// port (see Addr). Required.
	Listen string
	// TLS, when set, serves HTTPS with it.
	TLS *tls.Config
	// Heartbeat is how often an idle event stream gets a ": ping" comment,
	// so proxies and browsers keep it open; zero is 15 s.
	Heartbeat time.Duration
	// CallTimeout bounds a unary call whose client set no grpc-timeout;
	// zero is 30 s.
	CallTimeout time.Duration
	// MaxBodyBytes bounds a request body; zero is 4 MiB.
	MaxBodyBytes int64
	// MaxUploadBytes bounds the body of an artifact upload (POST
	// /v1/genome/artifacts), which is streamed to the genome service, not
	// held; zero is 8 GiB.
	MaxUploadBytes int64
	// UploadIdleTimeout bounds the wait for the next bytes of an upload
	// body; zero is one minute.
	UploadIdleTimeout time.Duration
	// MaxStreams bounds the event streams (SSE and newline-delimited JSON)
	// open at once; zero is 1024.
	MaxStreams int
	// WriteTimeout bounds one write to a client; a client that stops
	// reading for longer loses its stream. Zero is 30 s.
	WriteTimeout time.Duration
	// DrainTimeout bounds the graceful part of shutdown; zero is 10 s.
	DrainTimeout time.Duration
}

// Deps are the gateway's collaborators.
type Deps struct {
	// Dial returns a client connection to the node that serves a service
	// ("router", "mesh", "debug", "events", ...): a plain external client
	// connection (plaintext or TLS, as the target needs), never a mesh
	// connection, because the gateway must not be able to assert
	// identities. The gateway forwards each HTTP caller's bearer token on
	// it. It is called once per service in New; the gateway closes what it
	// returns (when it is an io.Closer) when Run returns. NodeDialer (every
	// service at one node) and MeshDialer (each service wherever the mesh
	// resolves it) build one. Required.
	Dial func(service string) (grpc.ClientConnInterface, error)
	// Logger; nil is slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.Listen == "" {
		return c, errors.New("gateway: Config.Listen is required")
	}
	for name, v := range map[string]int64{
		"Heartbeat": int64(c.Heartbeat), "CallTimeout": int64(c.CallTimeout), "MaxBodyBytes": c.MaxBodyBytes,
		"MaxUploadBytes": c.MaxUploadBytes, "UploadIdleTimeout": int64(c.UploadIdleTimeout),
		"MaxStreams": int64(c.MaxStreams), "WriteTimeout": int64(c.WriteTimeout), "DrainTimeout": int64(c.DrainTimeout),
	} {
		if v < 0 {
			return c, fmt.Errorf("gateway: Config.%s is negative", name)
		}
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxUploadBytes == 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.UploadIdleTimeout == 0 {
		c.UploadIdleTimeout = DefaultUploadIdleTimeout
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	return c, nil
}
