package debug

import (
	"context"
	"os"
	"runtime"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/continuum-mesh/continuum/pkg/auth"
	"github.com/continuum-mesh/continuum/pkg/rpcerr"
	debugv1 "github.com/continuum-mesh/continuum/proto/continuum/debug/v1"
)

// ReasonNotAdmin refuses GetRuntimeStats to a caller that is not an admin.
const ReasonNotAdmin = "NOT_ADMIN"

// Admins tells admin principals from the rest (pkg/auth.Tokens).
type Admins interface {
	IsAdmin(p auth.Principal) bool
}

// GetRuntimeStats forces a garbage collection and reports goroutines, heap
// and open descriptors. Only admins may ask: the collection pauses the node.
func (s *Service) GetRuntimeStats(ctx context.Context, _ *debugv1.GetRuntimeStatsRequest) (*debugv1.GetRuntimeStatsResponse, error) {
	caller := auth.Caller(ctx)
	if s.deps.Admins == nil || !s.deps.Admins.IsAdmin(caller) {
		return nil, rpcerr.New(codes.PermissionDenied, ReasonNotAdmin, "runtime stats need an admin principal", "caller", caller.Name)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &debugv1.GetRuntimeStatsResponse{
		Goroutines:      uint64(runtime.NumGoroutine()),
		HeapAllocBytes:  ms.HeapAlloc,
		HeapInuseBytes:  ms.HeapInuse,
		HeapObjects:     ms.HeapObjects,
		StackInuseBytes: ms.StackInuse,
		SysBytes:        ms.Sys,
		NumGc:           uint64(ms.NumGC),
		OpenFds:         openFDs(),
		At:              timestamppb.New(s.deps.Now()),
	}, nil
}

// openFDs counts /proc/self/fd; 0 where there is no such directory.
func openFDs() uint64 {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	// ReadDir's own descriptor is among them.
	return uint64(max(len(entries)-1, 0))
}
