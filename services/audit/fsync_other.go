//go:build !linux

package audit

import (
	"fmt"
	"os"
)

// datasync flushes f to stable storage.
func datasync(f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	return nil
}

// lockFile is a no-op off Linux: run one recorder per data directory.
func lockFile(*os.File) error { return nil }
