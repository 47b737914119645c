//go:build linux

package audit

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// datasync flushes f's data and the metadata needed to read it back (its
// size), without the timestamps fsync would also write.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("fdatasync %s: %w", f.Name(), err)
		}
		return nil
	}
}

// lockFile takes an exclusive advisory lock on f, so two recorders never
// append to one log. The kernel drops it when the process dies.
func lockFile(f *os.File) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("lock %s (is another recorder using it?): %w", f.Name(), err)
	}
	return nil
}
