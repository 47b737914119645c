package auditlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// benchLog writes a log of n entries shaped like the router's refusals
// (about 480 bytes a line) and returns its path.
func benchLog(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	buf := make([]byte, 0, n*520)
	prev := GenesisHash
	var scratch []byte
	for i := 1; i <= n; i++ {
		e := &Entry{
			Seq: uint64(i), TimestampMs: 1_700_000_000_000 + int64(i), RawTimestampMs: 1_700_000_000_000 + int64(i),
			Kind: KindRefusal,
			Payload: map[string]any{
				"uri":               fmt.Sprintf("airc://maya@5090-rig:vr/genome/page-in?persona=p%d", i%1000),
				"caller":            "user",
				"hop":               "peer:edge-1",
				"verdict":           "forbidden",
				"reason":            "no-permission",
				"prompt_target_env": "",
				"rule":              float64(i % 17),
				"dry_run":           i%5 == 0,
				"node":              "n1",
				"route_kind":        "ROUTE_KIND_PEER",
			},
			Source:        Source{Topic: "audit:refusal", StreamSequence: uint64(i), Publisher: "peer:n1"},
			PrevChainHash: prev,
		}
		_, scratch = Seal(e, scratch)
		prev = e.ChainHash
		buf = AppendLine(buf, e)
	}
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkVerifyFile: what `continuum audit verify FILE` does, on one
// worker and on every core.
func BenchmarkVerifyFile(b *testing.B) {
	const n = 200_000
	path := benchLog(b, n)
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				res, err := VerifyFile(context.Background(), path, ScanOptions{Workers: workers})
				if err != nil || res.Size != n {
					b.Fatalf("verify: %d entries, %v", res.Size, err)
				}
			}
			cpu := cpuTime() - cpu0
			b.StopTimer()
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			if cpu > 0 {
				b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "entries/cpu-s")
			}
		})
	}
}
