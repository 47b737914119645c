package router

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/continuum-mesh/continuum/pkg/auditevents"
	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/gate"
	"github.com/continuum-mesh/continuum/pkg/telemetry"
	"github.com/continuum-mesh/continuum/pkg/uri"
	"github.com/continuum-mesh/continuum/pkg/wait"
	eventsv1 "github.com/continuum-mesh/continuum/proto/continuum/events/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// gate evaluates the policy for a command. A dry-run refusal is logged and
// published and the call proceeds; a refusal is published and returned as
// a typed error, and nothing else runs.
func (s *Service) gate(ctx context.Context, caller auth.Principal, u uri.URI, canonical string, kind routerv1.RouteKind) error {
	eff, dry := s.deps.Gate.Evaluate(caller, u)
	telemetry.Event(ctx, "decision", "gate", "caller", caller.Name, "verdict", eff.GetKind().String(),
		"reason", eff.GetReason(), "rule", strconv.Itoa(int(eff.GetRule())))
	if dry != nil && dry.GetKind() != routerv1.VerdictKind_VERDICT_KIND_ALLOWED {
		s.metrics.DryRunRefusals.Add(1)
		s.log.WarnContext(ctx, "dry-run rule would refuse", "uri", canonical, "caller", caller.Name,
			"verdict", dry.GetKind().String(), "reason", dry.GetReason(), "rule", dry.GetRule())
		s.publishRefusal(ctx, caller, canonical, kind, dry, true)
	}
	err := gate.Refusal(eff, caller, canonical)
	if err == nil {
		return nil
	}
	s.metrics.Refused.Add(1)
	s.log.InfoContext(ctx, "command refused", "uri", canonical, "caller", caller.Name,
		"verdict", eff.GetKind().String(), "reason", eff.GetReason(), "rule", eff.GetRule())
	s.publishRefusal(ctx, caller, canonical, kind, eff, false)
	return err
}

// verdictName is the kebab-case verdict of audit payloads.
func verdictName(k routerv1.VerdictKind) string {
	switch k {
	case routerv1.VerdictKind_VERDICT_KIND_FORBIDDEN:
		return "forbidden"
	case routerv1.VerdictKind_VERDICT_KIND_DEFERRED:
		return "deferred"
	case routerv1.VerdictKind_VERDICT_KIND_ALLOWED:
		return "allowed"
	}
	return "unspecified"
}

func (s *Service) publishRefusal(ctx context.Context, caller auth.Principal, canonical string, kind routerv1.RouteKind, v *routerv1.Verdict, dryRun bool) {
	payload, err := structpb.NewStruct(map[string]any{
		"uri":               canonical,
		"caller":            caller.Name,
		"hop":               auth.Hop(ctx).Name,
		"verdict":           verdictName(v.GetKind()),
		"reason":            v.GetReason(),
		"prompt_target_env": v.GetPromptTargetEnv(),
		"rule":              float64(v.GetRule()),
		"dry_run":           dryRun,
		"node":              s.cfg.Node,
		"route_kind":        kind.String(),
	})
	if err != nil {
		s.log.ErrorContext(ctx, "encode refusal event", "error", err)
		return
	}
	s.publish(ctx, auditevents.TopicRefusal, payload)
}

// publish tries once now, so that a refusal is normally recorded before
// the caller hears of it, and hands a failed publish to the outbox, which
// retries with the same msg_id (the events service deduplicates).
func (s *Service) publish(ctx context.Context, topic string, payload *structpb.Struct) {
	if s.deps.Events == nil {
		return
	}
	req := newAuditEvent(topic, payload)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := s.deps.Events.Publish(pctx, req); err == nil {
		s.metrics.EventsPublished.Add(1)
		return
	}
	s.enqueue(ctx, req)
}

func newAuditEvent(topic string, payload *structpb.Struct) *eventsv1.PublishRequest {
	return &eventsv1.PublishRequest{Topic: topic, Payload: payload, MsgId: uuid.NewString(), SchemaVersion: auditevents.SchemaVersion}
}

// enqueue hands an event to the outbox that Run drains with retries.
func (s *Service) enqueue(ctx context.Context, req *eventsv1.PublishRequest) {
	select {
	case s.outbox <- req:
	default:
		s.metrics.EventsDropped.Add(1)
		s.log.ErrorContext(ctx, "refusal outbox full; event lost", "topic", req.GetTopic(), "msg_id", req.GetMsgId())
	}
}

// Run declares the audit class and retries queued events until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if s.deps.Events == nil {
		<-ctx.Done()
		return nil
	}
	backoff := 100 * time.Millisecond
	for {
		_, err := s.deps.Events.DeclareClass(ctx, &eventsv1.DeclareClassRequest{Class: auditevents.Class()})
		if err == nil {
			break
		}
		s.log.DebugContext(ctx, "declare audit class; will retry", "error", err)
		if !wait.Sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case req := <-s.outbox:
			backoff := 100 * time.Millisecond
			for {
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := s.deps.Events.Publish(pctx, req)
				cancel()
				if err == nil {
					s.metrics.EventsRetried.Add(1)
					break
				}
				s.log.WarnContext(ctx, "publish audit event; will retry", "topic", req.GetTopic(), "msg_id", req.GetMsgId(), "error", err)
				if !wait.Sleep(ctx, backoff) {
					return nil
				}
				backoff = min(2*backoff, 5*time.Second)
			}
		}
	}
}
