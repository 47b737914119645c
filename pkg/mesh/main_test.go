package mesh

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when any test leaves a goroutine behind
// (gossip listeners, probes, pooled gRPC connections, servers).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// memberlist's Shutdown does not wait for a probe in flight; that
		// goroutine ends by itself when its probe times out.
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
}
