//go:build unix

package generate

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lock takes the generator's exclusive lock: flock on path, which the
// kernel releases if the process dies, so a crashed run never leaves a
// stale lock behind. It waits up to timeout for another run to finish.
// release removes the file and unlocks.
func lock(path string, timeout time.Duration) (release func(), err error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("generate: lock: %w", err)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			// The run before may have removed the file between our open and
			// our lock: then this lock is on a file nobody else will open,
			// and we must take it again on the file at path.
			held, herr := f.Stat()
			now, nerr := os.Stat(path)
			if herr == nil && nerr == nil && os.SameFile(held, now) {
				_ = f.Truncate(0)
				_, _ = fmt.Fprintf(f, "pid %d\n", os.Getpid())
				return func() {
					_ = os.Remove(path)
					_ = f.Close() // unlocks
				}, nil
			}
			_ = f.Close()
			continue
		}
		_ = f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("generate: lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			return nil, &BusyError{Lock: path, Waited: timeout}
		}
		time.Sleep(20 * time.Millisecond)
	}
}
