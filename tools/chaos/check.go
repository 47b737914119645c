package main

import (
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	auditv1 "github.com/continuum-mesh/continuum/proto/continuum/audit/v1"
	genomev1 "github.com/continuum-mesh/continuum/proto/continuum/genome/v1"
	routerv1 "github.com/continuum-mesh/continuum/proto/continuum/router/v1"
)

// waitDelivered waits until every durable subscriber has the highest
// acknowledged sequence of its stream, or until within passes.
func (l *load) waitDelivered(ctx context.Context, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		l.mu.Lock()
		tops := map[string]uint64{}
		for s, seqs := range l.acked {
			for _, q := range seqs {
				tops[s] = max(tops[s], q)
			}
		}
		l.mu.Unlock()
		done := true
		for _, s := range l.subs {
			if s.top() < tops[s.stream] {
				done = false
			}
		}
		if done {
			return
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// auditLogs reads every node's audit log, until each holds the refusals
// the node acknowledged or within passes (the recorder trails the events
// service).
func (l *load) auditLogs(ctx context.Context, within time.Duration) map[string]AuditLog {
	out := map[string]AuditLog{}
	deadline := time.Now().Add(within)
	for _, n := range l.nodes {
		for {
			al := l.readAudit(ctx, n)
			out[n] = al
			have := map[string]bool{}
			for _, id := range al.RefusalIDs {
				have[id] = true
			}
			l.mu.Lock()
			complete := al.Verified
			for _, id := range l.refusals[n] {
				if !have[id] {
					complete = false
				}
			}
			l.mu.Unlock()
			if complete || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			sleepCtx(ctx, 500*time.Millisecond)
		}
	}
	return out
}

func (l *load) readAudit(ctx context.Context, n string) AuditLog {
	al := AuditLog{Node: n}
	client := auditv1.NewAuditServiceClient(l.admin[n])
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := client.Verify(cctx, &auditv1.VerifyRequest{})
	switch {
	case err != nil:
		al.VerifyErr = err.Error()
	case !v.GetOk():
		al.VerifyErr = "verify answered ok=false"
	default:
		al.Verified = true
		al.Size = v.GetSize()
	}
	st, err := client.Read(cctx, &auditv1.ReadRequest{FromSeq: 1})
	if err != nil {
		al.VerifyErr += "; read: " + err.Error()
		al.Verified = false
		return al
	}
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			al.VerifyErr += "; read: " + err.Error()
			al.Verified = false
			break
		}
		e := m.GetEntry()
		if e.GetKind() != "refusal" {
			continue
		}
		u := e.GetPayload().GetFields()["uri"].GetStringValue()
		if _, q, ok := strings.Cut(u, "?chaos="); ok {
			al.RefusalIDs = append(al.RefusalIDs, q)
		}
	}
	return al
}

// checkData looks for every acknowledged engram and artifact.
func (l *load) checkData(ctx context.Context, within time.Duration) []DataItem {
	l.mu.Lock()
	var engrams []engramRec
	for _, q := range l.live {
		engrams = append(engrams, q...)
	}
	sort.Slice(engrams, func(i, j int) bool { return engrams[i].id < engrams[j].id })
	artifacts := append([]artifactRec(nil), l.artifacts...)
	l.mu.Unlock()
	var items []DataItem
	deadline := time.Now().Add(within)
	retryable := func(err error) bool {
		return status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded
	}
	for i, e := range engrams {
		it := DataItem{Kind: "engram", Node: e.servedBy, ID: e.persona + "/" + e.id}
		via := l.admin[l.nodes[i%len(l.nodes)]]
		for {
			// Remembering the same id again is idempotent: duplicate=true
			// proves the engram is stored; false means it was gone (and is
			// now stored again).
			// Through the router, which sends it to the persona's owner.
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			resp, err := routerv1.NewRouterServiceClient(via).Dispatch(cctx, &routerv1.DispatchRequest{Uri: "hippocampus/remember", Params: payload(map[string]any{
				"persona": e.persona, "channel": "chaos", "engram": map[string]any{"id": e.id, "content": e.content},
			})})
			cancel()
			if err == nil {
				dup := resp.GetResult().GetStructValue().GetFields()["duplicate"].GetBoolValue()
				it.Present, it.Intact = dup, dup
				if !dup {
					it.Err = "remembering its id again on " + resp.GetServedBy() + " stored a new engram"
				}
				break
			}
			it.Err = status.Code(err).String() + " " + rpcerr.Reason(err) + ": " + status.Convert(err).Message()
			if !retryable(err) || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
		items = append(items, it)
	}
	for _, a := range artifacts {
		it := DataItem{Kind: "artifact", Node: a.node, ID: a.id}
		cc := l.admin[a.node]
		for {
			err := func() error {
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				defer cancel()
				if err := l.registerPersona(cctx, a.node); err != nil {
					return err
				}
				if _, err := genomev1.NewGenomeServiceClient(cc).PageIn(cctx, &genomev1.PageInRequest{
					PersonaId: l.personas[a.node],
					Page:      &genomev1.PageRef{Kind: genomev1.PageKind_PAGE_KIND_WHOLE, ArtifactId: a.id},
				}); err != nil {
					return err
				}
				sha, err := readPage(cctx, cc, l.personas[a.node], a.id)
				if err != nil {
					return err
				}
				it.Present = true
				it.Intact = sha == a.sha
				if !it.Intact {
					it.Err = "read back sha256 " + sha + ", uploaded " + a.sha
				}
				return nil
			}()
			if err == nil {
				break
			}
			it.Err = status.Code(err).String() + " " + rpcerr.Reason(err) + ": " + status.Convert(err).Message()
			if !retryable(err) || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
		items = append(items, it)
	}
	return items
}
