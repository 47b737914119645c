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
	"github.com/continuum-mesh/continuum/pkg/wait"
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
		wait.Sleep(ctx, 200*time.Millisecond)
	}
}

// auditLogs reads every audit log of the mesh until, together, they hold
// every acknowledged refusal or within passes (the recorders trail the
// events services).
func (l *load) auditLogs(ctx context.Context, within time.Duration) map[string]AuditLog {
	var acked []string
	l.mu.Lock()
	for _, ids := range l.refusals {
		acked = append(acked, ids...)
	}
	l.mu.Unlock()
	deadline := time.Now().Add(within)
	for {
		out := map[string]AuditLog{}
		have := map[string]bool{}
		complete := true
		for _, n := range l.audits {
			al := l.readAudit(ctx, n)
			out[n] = al
			complete = complete && al.Verified
			for _, id := range al.RefusalIDs {
				have[id] = true
			}
		}
		for _, id := range acked {
			complete = complete && have[id]
		}
		if complete || time.Now().After(deadline) || ctx.Err() != nil {
			return out
		}
		wait.Sleep(ctx, 500*time.Millisecond)
	}
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
	for i, e := range engrams {
		it := DataItem{Kind: "engram", Node: e.servedBy, ID: e.persona + "/" + e.id}
		via := l.admin[l.routers[i%len(l.routers)]]
		checkUntil(ctx, deadline, &it, func() error {
			// Remembering the same id again is idempotent: duplicate=true
			// proves the engram is stored; false means it was gone (and is
			// now stored again). Through the router, which sends it to the
			// persona's owner.
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			resp, err := routerv1.NewRouterServiceClient(via).Dispatch(cctx, &routerv1.DispatchRequest{Uri: "hippocampus/remember", Params: payload(map[string]any{
				"persona": e.persona, "channel": "chaos", "engram": map[string]any{"id": e.id, "content": e.content},
			})})
			if err != nil {
				return err
			}
			dup := resp.GetResult().GetStructValue().GetFields()["duplicate"].GetBoolValue()
			it.Present, it.Intact = dup, dup
			if !dup {
				it.Err = "remembering its id again on " + resp.GetServedBy() + " stored a new engram"
			}
			return nil
		})
		items = append(items, it)
	}
	for _, a := range artifacts {
		it := DataItem{Kind: "artifact", Node: a.node, ID: a.id}
		cc := l.admin[a.node]
		checkUntil(ctx, deadline, &it, func() error {
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
		})
		items = append(items, it)
	}
	return items
}

// checkUntil runs check until it answers, retrying what may pass once the
// mesh settles (UNAVAILABLE, a deadline) until deadline; the last error
// is kept in it.Err.
func checkUntil(ctx context.Context, deadline time.Time, it *DataItem, check func() error) {
	for {
		err := check()
		if err == nil {
			return
		}
		it.Err = status.Code(err).String() + " " + rpcerr.Reason(err) + ": " + status.Convert(err).Message()
		retry := status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded
		if !retry || time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		wait.Sleep(ctx, 200*time.Millisecond)
	}
}
