package debug

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	"github.com/continuum-mesh/continuum/pkg/telemetry"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
)

func TestGetRuntimeStats(t *testing.T) {
	t.Parallel()
	tokens, err := auth.NewTokens([]auth.TokenEntry{
		{Principal: "admin", Token: "a", Admin: true},
		{Principal: "user", Token: "u"},
	})
	if err != nil {
		t.Fatal(err)
	}
	admin := auth.Principal{Name: "admin", Kind: auth.KindToken}
	user := auth.Principal{Name: "user", Kind: auth.KindToken}
	peer := auth.MeshPeer("n2")
	tests := []struct {
		name        string
		admins      Admins
		hop, caller auth.Principal
		wantCode    codes.Code
	}{
		{name: "admin", admins: tokens, hop: admin, caller: admin, wantCode: codes.OK},
		{name: "admin carried by a mesh peer", admins: tokens, hop: peer, caller: admin, wantCode: codes.OK},
		{name: "user", admins: tokens, hop: user, caller: user, wantCode: codes.PermissionDenied},
		{name: "mesh peer for itself", admins: tokens, hop: peer, caller: peer, wantCode: codes.PermissionDenied},
		{name: "anonymous", admins: tokens, hop: auth.AnonymousPrincipal, caller: auth.AnonymousPrincipal, wantCode: codes.PermissionDenied},
		{name: "no admins configured", admins: nil, hop: admin, caller: admin, wantCode: codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
			svc, err := New(Config{}, Deps{
				Probes: telemetry.NewHub(), Level: new(slog.LevelVar), Admins: tc.admins,
				Now: func() time.Time { return now },
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := auth.WithIdentity(context.Background(), tc.hop, tc.caller)
			resp, err := svc.GetRuntimeStats(ctx, &debugv1.GetRuntimeStatsRequest{})
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("code = %v, want %v (%v)", got, tc.wantCode, err)
			}
			if tc.wantCode != codes.OK {
				if got := rpcerr.Reason(err); got != ReasonNotAdmin {
					t.Fatalf("reason = %q, want %q", got, ReasonNotAdmin)
				}
				return
			}
			if resp.GetGoroutines() == 0 || resp.GetHeapAllocBytes() == 0 || resp.GetHeapObjects() == 0 || resp.GetSysBytes() == 0 || resp.GetNumGc() == 0 {
				t.Fatalf("empty figures: %v", resp)
			}
			if !resp.GetAt().AsTime().Equal(now) {
				t.Fatalf("at = %v, want %v", resp.GetAt().AsTime(), now)
			}
		})
	}
}
