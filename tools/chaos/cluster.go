package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"
)

// Cluster is a mesh the harness can hurt: real processes on loopback
// (procCluster) or the compose deployment (composeCluster).
type Cluster interface {
	// Nodes names the members the harness loads, watches and faults.
	Nodes() []string
	// ClientAddr is where load clients dial a node: through the path a
	// cut severs.
	ClientAddr(node string) string
	// WatchAddr is where the harness observes a node (Members, runtime
	// stats); in process mode it bypasses the fabric.
	WatchAddr(node string) string
	// TLS is the client TLS config (nil: plaintext); AdminToken and
	// UserToken are bearer tokens.
	TLS() *tls.Config
	AdminToken() string
	UserToken() string
	// The fault primitives.
	Kill(node string) error
	Start(node string) error
	Pause(node string) error
	Resume(node string) error
	Stop(ctx context.Context, node string) error
	Cut(node string) error
	Heal(node string) error
	// Close stops every node and releases what the cluster holds.
	Close(ctx context.Context) error
}

// inject runs one fault to its end: the fault, the hold, the recovery.
func inject(ctx context.Context, c Cluster, f Fault) FaultRecord {
	rec := FaultRecord{Fault: f, Start: time.Now()}
	fail := func(err error) FaultRecord {
		rec.End = time.Now()
		rec.Err = err.Error()
		return rec
	}
	hold := func() {
		t := time.NewTimer(f.Hold)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	switch f.Kind {
	case FaultKill:
		if err := c.Kill(f.Node); err != nil {
			return fail(err)
		}
		hold()
		if err := c.Start(f.Node); err != nil {
			return fail(fmt.Errorf("start after kill: %w", err))
		}
	case FaultPause:
		if err := c.Pause(f.Node); err != nil {
			return fail(err)
		}
		hold()
		if err := c.Resume(f.Node); err != nil {
			return fail(fmt.Errorf("resume: %w", err))
		}
	case FaultCut:
		if err := c.Cut(f.Node); err != nil {
			return fail(err)
		}
		hold()
		if err := c.Heal(f.Node); err != nil {
			return fail(fmt.Errorf("heal: %w", err))
		}
	case FaultRestart:
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 40*time.Second)
		err := c.Stop(sctx, f.Node)
		cancel()
		if err != nil {
			return fail(err)
		}
		if err := c.Start(f.Node); err != nil {
			return fail(fmt.Errorf("start after stop: %w", err))
		}
	default:
		return fail(fmt.Errorf("unknown fault %q", f.Kind))
	}
	rec.End = time.Now()
	return rec
}
