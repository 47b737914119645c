//go:build unix

package events

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used. The
// benchmarks divide its growth by the messages a case moved: unlike wall
// clock rates, that cost per message holds up on a machine shared with
// other work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
