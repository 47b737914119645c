package node

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/continuum-mesh/continuum/gateway"
	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/policy"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	hippocampusv1 "github.com/continuum-mesh/continuum/proto/continuum/hippocampus/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
	"github.com/continuum-mesh/continuum/services/audit"
	"github.com/continuum-mesh/continuum/services/debug"
	"github.com/continuum-mesh/continuum/services/events"
	"github.com/continuum-mesh/continuum/services/genome"
	"github.com/continuum-mesh/continuum/services/hippocampus"
	meshsvc "github.com/continuum-mesh/continuum/services/mesh"
	"github.com/continuum-mesh/continuum/services/router"
)

// Services are the services a node wired, nil where it does not run them.
type Services struct {
	Router      *router.Service
	Debug       *debug.Service
	Policy      *policy.Store
	Events      *events.Service
	Audit       *audit.Service
	Genome      *genome.Service
	Hippocampus *hippocampus.Service
	Gateway     *gateway.Gateway
}

// knownServices are the service names a node can run.
func knownServices() []string { return append(slices.Clone(AllServices), Gateway) }

// wire builds the services this node runs. Each reaches the others only
// through generated clients on mesh connections: in-process when the other
// service runs here, mTLS to another member otherwise.
func (n *Node) wire() error {
	cfg := n.cfg
	var g gate.Gate
	if cfg.Has("router") {
		store, err := openPolicy(cfg)
		if err != nil {
			return err
		}
		n.Services.Policy = store
		g = policyGate{store: store}
	} else {
		g = remoteGate{client: routerv1.NewRouterServiceClient(n.mesh.ServiceConn("router"))}
	}
	n.server.SetGate(g)
	eventsClient := eventsv1.NewEventsServiceClient(n.mesh.ServiceConn("events"))

	for _, name := range cfg.services() {
		switch name {
		case "mesh":
			svc, err := meshsvc.New(meshsvc.Config{}, meshsvc.Deps{Mesh: n.mesh, Logger: n.log.With("service", "mesh")})
			if err != nil {
				return err
			}
			svc.Register(n.server)
		case "debug":
			svc, err := debug.New(debug.Config{}, debug.Deps{Probes: n.tel.Probes, Level: cfg.Level, Logger: n.log, Now: time.Now, Admins: n.tokens})
			if err != nil {
				return err
			}
			svc.Register(n.server)
			n.Services.Debug = svc
		case "router":
			svc, err := router.New(router.Config{Node: cfg.Node}, router.Deps{
				Directory: directory{m: n.mesh},
				Gate:      policyGate{store: n.Services.Policy},
				Policy:    policyAdmin{store: n.Services.Policy},
				Admins:    n.tokens,
				Events:    eventsClient,
				Logger:    n.log.With("service", "router"),
				Now:       time.Now,
			})
			if err != nil {
				return err
			}
			svc.Register(n.server)
			n.Services.Router = svc
			if n.Services.Policy.Drifted() {
				_, v := n.Services.Policy.Get()
				svc.ReportDrift(context.Background(), v, "policy file edited while the node was down")
			}
			n.components = append(n.components, component{name: name, run: svc.Run})
		case "events":
			svc, err := events.New(events.Config{Node: cfg.Node, DataDir: cfg.DataDir},
				events.Deps{Gate: g, Logger: n.log.With("service", name), Now: time.Now})
			if err != nil {
				return err
			}
			svc.Register(n.server)
			n.Services.Events = svc
			n.components = append(n.components, component{name: name, run: svc.Run, close: svc.Close})
		case "audit":
			svc, err := audit.New(audit.Config{Node: cfg.Node, DataDir: cfg.DataDir},
				audit.Deps{Events: eventsClient, Logger: n.log, Now: time.Now})
			if err != nil {
				return err
			}
			svc.Register(n.server)
			n.Services.Audit = svc
			n.components = append(n.components, component{name: name, run: svc.Run, close: svc.Close})
		case "genome":
			tiers, err := genome.ParseTiers(cfg.GenomeTiers)
			if err != nil {
				return err
			}
			svc, err := genome.New(genome.Config{Node: cfg.Node, DataDir: cfg.DataDir, Tiers: tiers},
				genome.Deps{Events: eventsClient, Logger: n.log.With("service", name), Now: time.Now})
			if err != nil {
				return err
			}
			svc.Register(n.server)
			n.Services.Genome = svc
			n.components = append(n.components, component{name: name, run: svc.Run, close: svc.Close})
		case "hippocampus":
			svc, err := hippocampus.New(hippocampus.Config{Node: cfg.Node, DataDir: cfg.DataDir},
				hippocampus.Deps{Ring: hippocampusRing{m: n.mesh}, Logger: n.log.With("service", name)})
			if err != nil {
				return err
			}
			svc.Register(n.server)
			n.Services.Hippocampus = svc
			n.components = append(n.components, component{name: name, run: svc.Run, beforeLeave: svc.Leave, close: svc.Close})
		case Gateway:
			if err := n.wireGateway(); err != nil {
				return err
			}
		// continuum:generate:wire (continuum generate service inserts cases above)
		default:
			return fmt.Errorf("node: service %q is not wired", name)
		}
	}
	return nil
}

// openPolicy opens the router's policy store: the policy file, written
// with the default policy when missing; in memory when no file is named.
func openPolicy(cfg Config) (*policy.Store, error) {
	if cfg.PolicyFile == "" {
		return policy.NewStore(policy.Default()), nil
	}
	store, err := policy.OpenStore(cfg.PolicyFile, policy.Default())
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return store, nil
}

// wireGateway serves the HTTP gateway. It is an ordinary external client of
// this node's own gRPC port — callers' bearer tokens pass through to the
// gate, and it never speaks as the node — and the node proxies whatever it
// does not serve itself.
func (n *Node) wireGateway() error {
	listen := n.cfg.HTTPListen
	if listen == "" {
		listen = "127.0.0.1:8080"
	}
	_, port, err := net.SplitHostPort(n.server.Addr())
	if err != nil {
		return err
	}
	clientTLS := n.clientTLS
	if clientTLS != nil {
		clientTLS = gateway.ExternalClientTLS(clientTLS)
	}
	dial, err := gateway.NodeDialer(net.JoinHostPort("127.0.0.1", port), clientTLS)
	if err != nil {
		return err
	}
	gw, err := gateway.New(gateway.Config{Listen: listen}, gateway.Deps{Dial: dial, Logger: n.log.With("service", Gateway)})
	if err != nil {
		return err
	}
	n.Services.Gateway = gw
	n.components = append(n.components, component{name: Gateway, run: gw.Run})
	return nil
}

// longLivedStreams are the server streams that run until their caller ends
// them. A draining node ends them with UNAVAILABLE DRAINING (rpc.EndOnDrain),
// served here or proxied, so a graceful stop does not wait them out; the
// finite ones (audit Read, genome ReadPage) are left to finish.
var longLivedStreams = []string{
	eventsv1.EventsService_Subscribe_FullMethodName,
	routerv1.RouterService_Subscribe_FullMethodName,
	hippocampusv1.HippocampusService_Telemetry_FullMethodName,
	debugv1.DebugService_StreamProbes_FullMethodName,
}
