package hippocampus_test

import "golang.org/x/sys/unix"

// threadCPU is the CPU time the calling OS thread has used, in
// nanoseconds (the goroutine must be locked to its thread).
func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}
