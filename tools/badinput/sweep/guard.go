package sweep

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

const (
	getPolicy = "/continuum.router.v1.RouterService/GetPolicy"
	putPolicy = "/continuum.router.v1.RouterService/PutPolicy"
)

// policyGuard keeps the sweep from locking itself out. Some of the
// requests it sends PutPolicy are valid policies (a seed rule whose caller
// became "../../etc/passwd" is a rule for an odd name), and once accepted
// such a policy no longer lets the admin token through the gate, so every
// later batch would only see PERMISSION_DENIED. The guard saves the
// node's policy before the sweep and puts it back after every PutPolicy
// the node accepted.
type policyGuard struct {
	put      protoreflect.MethodDescriptor
	saved    []byte
	restored int
}

// newPolicyGuard saves the node's policy; nil when the node has no
// policy administration (no router) or the sweep may not read it.
func newPolicyGuard(ctx context.Context, s *sweeper, d *discovery) (*policyGuard, error) {
	var get, put protoreflect.MethodDescriptor
	for _, m := range d.methods() {
		switch m.full {
		case getPolicy:
			get = m.desc
		case putPolicy:
			put = m.desc
		}
	}
	if get == nil || put == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(s.admin(ctx), s.cfg.CallTimeout)
	defer cancel()
	var resp frame
	if err := s.c.cc.Invoke(ctx, getPolicy, &frame{}, &resp, grpc.ForceCodecV2(rawCodec{})); err != nil {
		return nil, fmt.Errorf("policy guard: %s failed (%w); a PutPolicy the node accepts may lock the sweep out", getPolicy, err)
	}
	got := dynamicpb.NewMessage(get.Output())
	if err := proto.Unmarshal(resp.b, got); err != nil {
		return nil, fmt.Errorf("policy guard: decode %s: %w", getPolicy, err)
	}
	policy := got.Descriptor().Fields().ByName("policy")
	putPolicyField := put.Input().Fields().ByName("policy")
	if policy == nil || putPolicyField == nil || !got.Has(policy) {
		return nil, fmt.Errorf("policy guard: %s has no policy to restore", getPolicy)
	}
	req := dynamicpb.NewMessage(put.Input())
	req.Set(putPolicyField, got.Get(policy))
	saved, err := marshal(req)
	if err != nil {
		return nil, fmt.Errorf("policy guard: %w", err)
	}
	return &policyGuard{put: put, saved: saved}, nil
}

// restore puts the saved policy back.
func (g *policyGuard) restore(ctx context.Context, s *sweeper) error {
	ctx, cancel := context.WithTimeout(s.admin(ctx), s.cfg.CallTimeout)
	defer cancel()
	if err := s.c.cc.Invoke(ctx, putPolicy, &frame{b: g.saved}, &frame{}, grpc.ForceCodecV2(rawCodec{})); err != nil {
		return fmt.Errorf("sweep: restore the node's policy after PutPolicy accepted a sweep request: %w", err)
	}
	g.restored++
	return nil
}
