//go:build linux

package auditlog

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system) this process has used, so a
// benchmark can report its cost per operation independently of how busy
// the shared machine is.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
