//go:build !linux

package auditlog

import "time"

// cpuTime is not measured off Linux.
func cpuTime() time.Duration { return 0 }
