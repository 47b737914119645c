//go:build linux

package auditbench

import (
	"errors"
	"os"
	"syscall"
)

// datasync is fdatasync, as the audit store uses it.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
