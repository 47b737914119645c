// Package gateway is the JSON/HTTP face of the mesh's gRPC APIs, for curl
// and browsers, and the mesh's live status page.
//
// Unary RPCs are transcoded by grpc-gateway from their google.api.http
// annotations. Server-streaming RPCs are served by the gateway's own
// handler on the same routes: Server-Sent Events when the client accepts
// text/event-stream, newline-delimited JSON otherwise; GET
// /v1/events/subscribe is a hand-written SSE endpoint made for
// EventSource. Every error is JSON carrying the gRPC code and the
// google.rpc.ErrorInfo reason (see ErrorBody).
//
// The gateway is an ordinary external client of the mesh, never a trusted
// one: it forwards each caller's Authorization header (or ?access_token= on
// GETs) as gRPC metadata and adds no identity of its own, so a request
// without a token reaches the mesh anonymously and is refused there.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
	hippocampusv1 "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
	meshv1 "github.com/continuum-mesh/continuum/proto/continuum/mesh/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// service is one gRPC service the gateway serves over HTTP.
type service struct {
	// name is the short name Deps.Dial takes ("router").
	name string
	// desc is the gRPC service descriptor (its ServiceName finds the proto
	// descriptor, whose streaming methods the gateway serves itself).
	desc *grpc.ServiceDesc
	// register mounts the generated grpc-gateway handlers.
	register func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error
}

// services are the services whose protos carry google.api.http
// annotations; only those have generated Register*HandlerClient functions.
// To serve another one, annotate its proto (docs/gateway.md has the
// annotations), regenerate, and add its line here.
func services() []service {
	return []service{
		{name: "router", desc: &routerv1.RouterService_ServiceDesc, register: handlers(routerv1.RegisterRouterServiceHandlerClient, routerv1.NewRouterServiceClient)},
		{name: "mesh", desc: &meshv1.MeshService_ServiceDesc, register: handlers(meshv1.RegisterMeshServiceHandlerClient, meshv1.NewMeshServiceClient)},
		{name: "debug", desc: &debugv1.DebugService_ServiceDesc, register: handlers(debugv1.RegisterDebugServiceHandlerClient, debugv1.NewDebugServiceClient)},
		{name: "events", desc: &eventsv1.EventsService_ServiceDesc, register: handlers(eventsv1.RegisterEventsServiceHandlerClient, eventsv1.NewEventsServiceClient)},
		{name: "audit", desc: &auditv1.AuditService_ServiceDesc, register: handlers(auditv1.RegisterAuditServiceHandlerClient, auditv1.NewAuditServiceClient)},
		{name: "genome", desc: &genomev1.GenomeService_ServiceDesc, register: handlers(genomev1.RegisterGenomeServiceHandlerClient, genomev1.NewGenomeServiceClient)},
		{
			name: "hippocampus", desc: &hippocampusv1.HippocampusService_ServiceDesc,
			register: handlers(hippocampusv1.RegisterHippocampusServiceHandlerClient, hippocampusv1.NewHippocampusServiceClient),
		},
		// continuum:gateway:services (annotated services are added above)
	}
}

// handlers adapts a generated Register<Service>HandlerClient and
// New<Service>Client pair to service.register.
func handlers[C any](
	register func(context.Context, *runtime.ServeMux, C) error, newClient func(grpc.ClientConnInterface) C,
) func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error {
	return func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
		return register(ctx, mux, newClient(cc))
	}
}

// Gateway is the HTTP server.
type Gateway struct {
	cfg       Config
	log       *slog.Logger
	lis       net.Listener
	srv       *http.Server
	api       *runtime.ServeMux
	events    grpc.ClientConnInterface
	genome    grpc.ClientConnInterface
	conns     []grpc.ClientConnInterface
	page      page
	marshal   func(proto.Message) ([]byte, error)
	unmarshal protojson.UnmarshalOptions

	streamSlots chan struct{}
	draining    chan struct{}
	drainOnce   sync.Once
	closeOnce   sync.Once
}

// New builds the gateway: it dials every service it serves (Deps.Dial) and
// binds its listener (so ":0" has a port), but serves nothing until Run.
func New(cfg Config, deps Deps) (_ *Gateway, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deps.Dial == nil {
		return nil, errors.New("gateway: Deps.Dial is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	mo := protojson.MarshalOptions{EmitUnpopulated: true}
	g := &Gateway{
		cfg:         cfg,
		log:         deps.Logger,
		marshal:     mo.Marshal,
		unmarshal:   protojson.UnmarshalOptions{},
		streamSlots: make(chan struct{}, cfg.MaxStreams),
		draining:    make(chan struct{}),
	}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if g.page, err = statusPage(); err != nil {
		return nil, err
	}
	g.api = runtime.NewServeMux(
		runtime.WithErrorHandler(g.handleMuxError),
		runtime.WithRoutingErrorHandler(g.handleRoutingError),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{MarshalOptions: mo, UnmarshalOptions: g.unmarshal}),
		runtime.WithDisablePathLengthFallback(),
		runtime.WithDisableHTTPMethodOverride(),
	)
	dial := func(name string) (grpc.ClientConnInterface, error) {
		cc, err := deps.Dial(name)
		if err != nil {
			return nil, fmt.Errorf("gateway: dial %s: %w", name, err)
		}
		if cc == nil {
			return nil, fmt.Errorf("gateway: dial %s returned no connection", name)
		}
		g.conns = append(g.conns, cc)
		return upstream{cc: cc, callTimeout: cfg.CallTimeout}, nil
	}
	svcs := services()
	conns := make([]grpc.ClientConnInterface, len(svcs))
	for i, s := range svcs {
		if conns[i], err = dial(s.name); err != nil {
			return nil, err
		}
		// The context is unused by Register*HandlerClient; handlers take
		// theirs from the request.
		if err := s.register(context.Background(), g.api, conns[i]); err != nil {
			return nil, fmt.Errorf("gateway: register %s: %w", s.name, err)
		}
	}
	// After every generated route, so the stream handlers take precedence.
	for i, s := range svcs {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(s.desc.ServiceName))
		if err != nil {
			return nil, fmt.Errorf("gateway: %s: %w", s.desc.ServiceName, err)
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			return nil, fmt.Errorf("gateway: %s is not a service", s.desc.ServiceName)
		}
		if err := g.registerStreams(sd, conns[i]); err != nil {
			return nil, err
		}
	}
	// GET /v1/events/subscribe and POST /v1/genome/artifacts share their
	// service's connection.
	for i, s := range svcs {
		switch s.name {
		case "events":
			g.events = conns[i]
		case "genome":
			g.genome = conns[i]
		}
	}
	if g.events == nil || g.genome == nil {
		return nil, errors.New("gateway: services() lacks events or genome")
	}

	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen %s: %w", cfg.Listen, err)
	}
	if cfg.TLS != nil {
		lis = tls.NewListener(lis, cfg.TLS)
	}
	g.lis = lis
	g.srv = &http.Server{
		Handler: g.Handler(),
		// No ReadTimeout: it would end event streams (the server cancels a
		// request whose connection read deadline passes). Bodies get a
		// deadline of their own (see apiRequest).
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(deps.Logger.Handler(), slog.LevelDebug),
	}
	return g, nil
}

// Addr is the address the gateway listens on.
func (g *Gateway) Addr() string { return g.lis.Addr().String() }

// Handler is the gateway's whole HTTP face: the status page at /, its
// assets under /ui/, /healthz, the event stream at /v1/events/subscribe,
// artifact uploads at /v1/genome/artifacts and the transcoded API under
// /v1/.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", g.page.index())
	mux.Handle("GET /ui/", g.page.assets())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte(`{"status":"SERVING"}` + "\n"))
	})
	mux.Handle("GET "+EventsSubscribePath, g.apiRequest(http.HandlerFunc(g.serveEventsSubscribe)))
	mux.Handle("POST "+ArtifactUploadPath, g.apiRequestBody(http.HandlerFunc(g.serveArtifactUpload),
		g.cfg.MaxUploadBytes, g.cfg.UploadIdleTimeout))
	mux.Handle("/v1/", g.apiRequest(g.api))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		g.writeError(w, r, routingError(r, http.StatusNotFound))
	})
	return g.logRequests(mux)
}

// Run serves HTTP until ctx ends, then drains: event streams end (their
// clients reconnect elsewhere), the server stops accepting and waits for
// unary calls up to Config.DrainTimeout, then closes what is left and the
// connections to the mesh.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.Close()
	errc := make(chan error, 1)
	go func() { errc <- g.srv.Serve(g.lis) }()
	g.log.Info("gateway serving", "http", g.Addr())
	select {
	case <-ctx.Done():
	case err := <-errc:
		g.startDrain()
		return fmt.Errorf("gateway: serve %s: %w", g.Addr(), err)
	}
	g.startDrain()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.DrainTimeout)
	defer cancel()
	if err := g.srv.Shutdown(sctx); err != nil {
		g.log.Warn("gateway drain deadline passed; closing connections", "timeout", g.cfg.DrainTimeout, "error", err)
		_ = g.srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway: serve %s: %w", g.Addr(), err)
	}
	g.log.Info("gateway stopped")
	return nil
}

// Close releases the listener and the connections to the mesh. Run calls
// it when it returns; call it yourself only for a gateway that never runs.
func (g *Gateway) Close() {
	g.closeOnce.Do(func() {
		g.startDrain()
		if g.lis != nil {
			_ = g.lis.Close()
		}
		closeConns(g.conns)
	})
}

func (g *Gateway) startDrain() {
	g.drainOnce.Do(func() { close(g.draining) })
}

func (g *Gateway) isDraining() bool {
	select {
	case <-g.draining:
		return true
	default:
		return false
	}
}

// incomingHeader picks the HTTP headers forwarded as gRPC metadata: only
// W3C trace context, so a caller's trace continues into the mesh. The
// Authorization header is always forwarded by the transcoder itself, as
// "authorization". Nothing else passes, so no HTTP client can set metadata
// the mesh reads (x-continuum-caller would be refused as a forgery anyway).
func incomingHeader(key string) (string, bool) {
	switch http.CanonicalHeaderKey(key) {
	case "Traceparent":
		return "traceparent", true
	case "Tracestate":
		return "tracestate", true
	}
	return "", false
}
