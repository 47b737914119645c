package node

import (
	"fmt"
	"time"

	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/policy"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
	"github.com/continuum-mesh/continuum/services/debug"
	meshsvc "github.com/continuum-mesh/continuum/services/mesh"
	"github.com/continuum-mesh/continuum/services/router"
)

// Services are the services a node wired, nil where it does not run them.
type Services struct {
	Router *router.Service
	Debug  *debug.Service
	Policy *policy.Store
}

// knownServices are the service names a node can run.
func knownServices() []string { return AllServices }

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
	events := eventsv1.NewEventsServiceClient(n.mesh.ServiceConn("events"))

	for _, name := range cfg.services() {
		switch name {
		case "mesh":
			svc, err := meshsvc.New(meshsvc.Config{}, meshsvc.Deps{Mesh: n.mesh, Logger: n.log.With("service", "mesh")})
			if err != nil {
				return err
			}
			svc.Register(n.server)
		case "debug":
			svc, err := debug.New(debug.Config{}, debug.Deps{Probes: n.tel.Probes, Level: cfg.Level, Logger: n.log, Now: time.Now})
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
				Events:    events,
				Logger:    n.log.With("service", "router"),
				Now:       time.Now,
			})
			if err != nil {
				return err
			}
			svc.Register(n.server)
			n.Services.Router = svc
			n.components = append(n.components, component{name: name, run: svc.Run})
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
