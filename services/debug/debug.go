// Package debug serves continuum.debug.v1.DebugService: the node's probe
// streams and its run-time log level. Every process serves it.
package debug

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/telemetry"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
)

// Config tunes the service.
type Config struct {
	// Buffer is each probe subscription's queue length; zero is 1024.
	Buffer int
}

// Deps are the node's probe hub and log level.
type Deps struct {
	Probes *telemetry.Hub
	Level  *slog.LevelVar
	Logger *slog.Logger
	Now    func() time.Time
	// Admins may read runtime stats; nil refuses everyone.
	Admins Admins
}

// Service implements DebugService.
type Service struct {
	debugv1.UnimplementedDebugServiceServer
	cfg  Config
	deps Deps
}

// New returns the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Probes == nil || deps.Level == nil {
		return nil, errors.New("debug: probes and level are required")
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1024
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Service{cfg: cfg, deps: deps}, nil
}

// Register mounts the service.
func (s *Service) Register(r grpc.ServiceRegistrar) { debugv1.RegisterDebugServiceServer(r, s) }

// StreamProbes streams probes of the requested classes until the caller
// goes away. Lost probes are reported as a probe of class "dropped".
func (s *Service) StreamProbes(req *debugv1.StreamProbesRequest, stream grpc.ServerStreamingServer[debugv1.StreamProbesResponse]) error {
	if len(req.GetClasses()) > 64 {
		return rpcerr.New(codes.InvalidArgument, "PROBE_CLASSES_TOO_MANY", "at most 64 probe classes")
	}
	for _, c := range req.GetClasses() {
		if !validClass(c) {
			return rpcerr.New(codes.InvalidArgument, ReasonProbeClassInvalid,
				"probe classes are 1 to 64 characters of a-z, 0-9, '.', '_' and '-' (e.g. latency, decision)", "class", rpcerr.Clip(c))
		}
	}
	sub, cancel := s.deps.Probes.Subscribe(req.GetClasses(), s.cfg.Buffer)
	defer cancel()
	ctx := stream.Context()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-sub.C:
			if err := stream.Send(&debugv1.StreamProbesResponse{Probe: toProto(p)}); err != nil {
				return err
			}
		case <-tick.C:
			if n := sub.TakeDropped(); n > 0 {
				err := stream.Send(&debugv1.StreamProbesResponse{Probe: &debugv1.Probe{
					Class: "dropped", Name: "probes dropped", Start: timestamppb.New(s.deps.Now()),
					Attributes: map[string]string{"count": strconv.FormatUint(n, 10)},
				}})
				if err != nil {
					return err
				}
			}
		}
	}
}

func toProto(p telemetry.Probe) *debugv1.Probe {
	return &debugv1.Probe{
		Class: p.Class, Name: p.Name, Uri: p.URI, Ancestry: p.Ancestry, Node: p.Node,
		Start: timestamppb.New(p.Start), Duration: durationpb.New(p.Duration),
		Attributes: p.Attributes, TraceId: p.TraceID, SpanId: p.SpanID,
	}
}

// ParseLevel parses debug, info, warn or error.
func ParseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

// LevelName is the lower-case name of a level.
func LevelName(l slog.Level) string { return strings.ToLower(l.String()) }

// SetLogLevel changes the node's log level.
func (s *Service) SetLogLevel(ctx context.Context, req *debugv1.SetLogLevelRequest) (*debugv1.SetLogLevelResponse, error) {
	l, ok := ParseLevel(req.GetLevel())
	if !ok {
		return nil, rpcerr.New(codes.InvalidArgument, "LOG_LEVEL_INVALID", "level must be debug, info, warn or error", "level", req.GetLevel())
	}
	prev := s.deps.Level.Level()
	s.deps.Level.Set(l)
	s.deps.Logger.InfoContext(ctx, "log level changed", "previous", LevelName(prev), "level", LevelName(l))
	return &debugv1.SetLogLevelResponse{Previous: LevelName(prev), Level: LevelName(l)}, nil
}

// GetLogLevel returns the node's log level.
func (s *Service) GetLogLevel(context.Context, *debugv1.GetLogLevelRequest) (*debugv1.GetLogLevelResponse, error) {
	return &debugv1.GetLogLevelResponse{Level: LevelName(s.deps.Level.Level())}, nil
}

// ReasonProbeClassInvalid refuses a StreamProbes class that no probe could
// carry.
const ReasonProbeClassInvalid = "PROBE_CLASS_INVALID"

// validClass: probe classes are short lower-case words ("latency",
// "decision", "admission"); anything else would subscribe to nothing.
func validClass(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for i := 0; i < len(c); i++ {
		switch b := c[i]; {
		case 'a' <= b && b <= 'z', '0' <= b && b <= '9', b == '.', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}
