//go:build !unix

package events

import "time"

// cpuTime is unknown here; CPU columns read 0.
func cpuTime() time.Duration { return 0 }
