//go:build unix

package events

import (
	"syscall"
	"time"
)

// processCPU is the user and system CPU time of this process so far: on a
// machine shared with other work it varies far less than wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
