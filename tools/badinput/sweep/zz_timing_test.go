package sweep

import (
	"bytes"
	"context"
	"os"
	"testing"
)

func TestZZTiming(t *testing.T) {
	var out bytes.Buffer
	_, _ = Run(context.Background(), Config{Seed: 1, PerMethod: 10, Verbose: true}, &out)
	_ = os.WriteFile("/tmp/zz_timing.txt", out.Bytes(), 0o644)
}
