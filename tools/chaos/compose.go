package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/continuum-mesh/continuum/pkg/wait"
)

// composeCluster drives the compose deployment (docker-compose.yml): one
// container per service and three hippocampus replicas on the project's
// own network. Faults are docker's: `docker kill -s KILL`, `docker pause`
// and `unpause` (the cgroup freezer: SIGSTOP for every process), `docker
// stop` and `start`, and `docker network disconnect` and `connect` for the
// cut. The harness reaches every container at its address on the
// project's network, looked up again after each start or reconnect.
type composeCluster struct {
	compose []string
	project string
	dir     string
	log     *slog.Logger
	env     []string
	network string
	tls     *tls.Config
	admin   string
	user    string

	names     []string          // mesh member names
	container map[string]string // member -> container id
	service   map[string]string // member -> compose service

	mu  sync.Mutex
	ips map[string]string
}

type composeOptions struct {
	Dir string
	Log *slog.Logger
}

func newComposeCluster(ctx context.Context, o composeOptions) (Cluster, error) {
	c := &composeCluster{
		project: "continuum-chaos", dir: o.Dir, log: o.Log, container: map[string]string{},
		service: map[string]string{}, ips: map[string]string{},
	}
	switch {
	case exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil:
		c.compose = []string{"docker", "compose"}
	case exec.CommandContext(ctx, "docker-compose", "version").Run() == nil:
		c.compose = []string{"docker-compose"}
	default:
		return nil, errors.New("--compose: neither 'docker compose' nor 'docker-compose' answers")
	}
	c.network = c.project + "_mesh"
	grpcPort, err := freePort(false)
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort(false)
	if err != nil {
		return nil, err
	}
	c.env = append(os.Environ(), "COMPOSE_PROJECT_NAME="+c.project,
		"CONTINUUM_GRPC_PORT="+strconv.Itoa(grpcPort), "CONTINUUM_HTTP_PORT="+strconv.Itoa(httpPort))
	if exec.CommandContext(ctx, "docker", "image", "inspect", "continuum:dev").Run() != nil {
		o.Log.Info("building the image (make docker)")
		cmd := exec.CommandContext(ctx, "make", "docker")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("make docker: %w", err)
		}
	}
	_, _ = c.run(ctx, append(c.compose, "down", "-v", "--remove-orphans")...)
	if out, err := c.run(ctx, append(c.compose, "up", "-d", "--scale", "hippocampus=3")...); err != nil {
		return nil, fmt.Errorf("compose up: %w: %s", err, out)
	}
	if err := c.secrets(ctx); err != nil {
		_ = c.Close(context.Background())
		return nil, err
	}
	if err := c.discover(ctx); err != nil {
		_ = c.Close(context.Background())
		return nil, err
	}
	return c, nil
}

func (c *composeCluster) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// secrets copies the CA and the tokens out of the one-shot jobs' volumes.
func (c *composeCluster) secrets(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		certs, _ := c.run(ctx, append(c.compose, "ps", "-a", "-q", "certs")...)
		tokens, _ := c.run(ctx, append(c.compose, "ps", "-a", "-q", "tokens")...)
		ok := certs != "" && tokens != ""
		for _, cp := range [][2]string{{certs + ":/certs/ca.crt", "ca.crt"}, {tokens + ":/tokens/admin.token", "admin.token"}, {tokens + ":/tokens/user.token", "user.token"}} {
			if !ok {
				break
			}
			if _, err := c.run(ctx, "docker", "cp", cp[0], filepath.Join(c.dir, cp[1])); err != nil {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("--compose: could not copy the CA and tokens out of the certs and tokens jobs")
		}
		wait.Sleep(ctx, time.Second)
	}
	var err error
	if c.tls, err = clientTLS(filepath.Join(c.dir, "ca.crt")); err != nil {
		return err
	}
	if c.admin, err = readToken(filepath.Join(c.dir, "admin.token")); err != nil {
		return err
	}
	c.user, err = readToken(filepath.Join(c.dir, "user.token"))
	return err
}

// discover lists the project's running containers and their member names
// (the container's hostname: the service name, or the container id for
// the scaled hippocampus replicas).
func (c *composeCluster) discover(ctx context.Context) error {
	out, err := c.run(ctx, "docker", "ps", "-q", "--no-trunc", "--filter", "label=com.docker.compose.project="+c.project)
	if err != nil {
		return fmt.Errorf("docker ps: %w: %s", err, out)
	}
	for _, id := range strings.Fields(out) {
		info, err := c.run(ctx, "docker", "inspect", "-f", `{{.Config.Hostname}} {{index .Config.Labels "com.docker.compose.service"}}`, id)
		if err != nil {
			return fmt.Errorf("docker inspect: %w: %s", err, info)
		}
		host, svc, _ := strings.Cut(info, " ")
		if svc == "certs" || svc == "tokens" {
			continue
		}
		c.names = append(c.names, host)
		c.container[host] = id
		c.service[host] = svc
	}
	slices.Sort(c.names)
	if len(c.names) < 3 {
		return fmt.Errorf("--compose: %d members running, want at least 3", len(c.names))
	}
	return nil
}

func (c *composeCluster) Nodes() []string { return c.names }

// ClientAddr and WatchAddr are the member's name; DialContext resolves it
// to the container's current address on the project network.
func (c *composeCluster) ClientAddr(node string) string { return node }
func (c *composeCluster) WatchAddr(node string) string  { return node }
func (c *composeCluster) TLS() *tls.Config              { return c.tls }
func (c *composeCluster) AdminToken() string            { return c.admin }
func (c *composeCluster) UserToken() string             { return c.user }

// DialContext dials a member's gRPC port on the project network.
func (c *composeCluster) DialContext(ctx context.Context, node string) (net.Conn, error) {
	c.mu.Lock()
	ip := c.ips[node]
	c.mu.Unlock()
	if ip == "" {
		id, ok := c.container[node]
		if !ok {
			return nil, fmt.Errorf("no member %q", node)
		}
		out, err := c.run(ctx, "docker", "inspect", "-f", `{{with index .NetworkSettings.Networks "`+c.network+`"}}{{.IPAddress}}{{end}}`, id)
		if err != nil || out == "" {
			return nil, fmt.Errorf("%s has no address on %s (%s): %w", node, c.network, out, errors.Join(err, errors.New("no address")))
		}
		ip = out
		c.mu.Lock()
		c.ips[node] = ip
		c.mu.Unlock()
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", net.JoinHostPort(ip, "7400"))
}

func (c *composeCluster) forget(node string) {
	c.mu.Lock()
	delete(c.ips, node)
	c.mu.Unlock()
}

func (c *composeCluster) docker(node string, args ...string) error {
	id, ok := c.container[node]
	if !ok {
		return fmt.Errorf("no member %q", node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := c.run(ctx, append(append([]string{"docker"}, args...), id)...); err != nil {
		return fmt.Errorf("docker %s %s: %w: %s", strings.Join(args, " "), node, err, out)
	}
	return nil
}

func (c *composeCluster) Kill(node string) error   { return c.docker(node, "kill", "-s", "KILL") }
func (c *composeCluster) Pause(node string) error  { return c.docker(node, "pause") }
func (c *composeCluster) Resume(node string) error { return c.docker(node, "unpause") }

func (c *composeCluster) Start(node string) error {
	c.forget(node)
	return c.docker(node, "start")
}

func (c *composeCluster) Stop(_ context.Context, node string) error {
	return c.docker(node, "stop", "-t", "30")
}

func (c *composeCluster) Cut(node string) error {
	c.forget(node)
	return c.docker(node, "network", "disconnect", c.network)
}

// Heal reconnects the container under its service's name, which the
// other members' join addresses use.
func (c *composeCluster) Heal(node string) error {
	c.forget(node)
	return c.docker(node, "network", "connect", "--alias", c.service[node], c.network)
}

func (c *composeCluster) Close(ctx context.Context) error {
	if out, err := c.run(ctx, append(c.compose, "down", "-v", "--remove-orphans")...); err != nil {
		return fmt.Errorf("compose down: %w: %s", err, out)
	}
	return nil
}
