// Package router serves continuum.router.v1.RouterService: it parses command
// URIs, decides their route, gates them with the node's policy and runs them
// locally (by method descriptor, with no glue per command), on the node that
// hosts a peer, or fanned out to a room or every env of a peer. Refusals and
// policy changes are published for the audit recorder.
package router

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/uri"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// PeerHost is a live node hosting a peer, with the peer's envs there.
type PeerHost struct {
	Node string
	Envs []string
}

// Directory is the router's view of the mesh. Its errors are typed gRPC
// statuses (PEER_UNKNOWN, PEER_UNREACHABLE, ROOM_UNKNOWN,
// SERVICE_UNAVAILABLE, OWNER_DOWN) that the router returns as they are.
type Directory interface {
	// Self is this node's name.
	Self() string
	// PeerHosts returns the live nodes hosting peer (a name or UUID).
	PeerHosts(peer string) ([]PeerHost, error)
	// RoomMembers returns the live nodes that are members of room.
	RoomMembers(room string) ([]string, error)
	// ServiceMember returns a live member serving service, preferring self.
	ServiceMember(service string) (string, error)
	// Owner returns the member owning key of a sharded service.
	Owner(service, key string) (string, error)
	// Conn returns a connection to a member (in-process for self).
	Conn(ctx context.Context, member string) (grpc.ClientConnInterface, error)
}

// Gatekeeper evaluates the node's policy. effective is the verdict that
// applies; dryRun, when not nil, is a would-be refusal of a dry-run rule
// that matched first.
type Gatekeeper interface {
	Evaluate(caller auth.Principal, u uri.URI) (effective, dryRun *routerv1.Verdict)
}

// PolicyAdmin reads and replaces the node's policy. Put's errors are typed
// statuses (POLICY_INVALID, POLICY_VERSION_MISMATCH).
type PolicyAdmin interface {
	Get() (p *routerv1.Policy, version uint64, yaml string, err error)
	Put(p *routerv1.Policy, yaml string, expectedVersion uint64) (version uint64, err error)
}

// Admins says which principals administer the node.
type Admins interface {
	IsAdmin(p auth.Principal) bool
}

// Publisher publishes events; the generated events client satisfies it.
type Publisher interface {
	DeclareClass(ctx context.Context, in *eventsv1.DeclareClassRequest, opts ...grpc.CallOption) (*eventsv1.DeclareClassResponse, error)
	Publish(ctx context.Context, in *eventsv1.PublishRequest, opts ...grpc.CallOption) (*eventsv1.PublishResponse, error)
}

// Deps are the router's collaborators.
type Deps struct {
	Directory Directory
	Gate      Gatekeeper
	Policy    PolicyAdmin
	Admins    Admins
	// Events receives refusals and policy drift; nil disables publishing
	// (they are still logged).
	Events Publisher
	Logger *slog.Logger
	Now    func() time.Time
}

// Service implements RouterService.
type Service struct {
	routerv1.UnimplementedRouterServiceServer
	cfg     Config
	deps    Deps
	log     *slog.Logger
	outbox  chan *eventsv1.PublishRequest
	metrics Metrics
}

// Metrics are the router's counters.
type Metrics struct {
	Dispatched       atomic.Uint64
	Refused          atomic.Uint64
	DryRunRefusals   atomic.Uint64
	EventsPublished  atomic.Uint64
	EventsRetried    atomic.Uint64
	EventsDropped    atomic.Uint64
	ForeignDropped   atomic.Uint64
	ForwardedToPeers atomic.Uint64
}

// New returns the router. It does no network I/O.
func New(cfg Config, deps Deps) (*Service, error) {
	if cfg.Node == "" {
		return nil, errors.New("router: node name is required")
	}
	if deps.Directory == nil || deps.Gate == nil || deps.Policy == nil || deps.Admins == nil {
		return nil, errors.New("router: directory, gate, policy and admins are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	cfg.defaults()
	return &Service{cfg: cfg, deps: deps, log: deps.Logger, outbox: make(chan *eventsv1.PublishRequest, cfg.RefusalOutbox)}, nil
}

// Register mounts the service.
func (s *Service) Register(r grpc.ServiceRegistrar) { routerv1.RegisterRouterServiceServer(r, s) }

// Metrics returns the router's counters.
func (s *Service) Metrics() *Metrics { return &s.metrics }
