// Package wait holds the one way the mesh pauses between retries: a sleep
// that ends early when its context does.
package wait

import (
	"context"
	"time"
)

// Sleep waits d or until ctx ends, and reports whether d passed (false:
// ctx ended first, and the caller should give up).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
