//go:build !unix

package generate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// lock takes the generator's exclusive lock by creating path with O_EXCL,
// waiting up to timeout for another run to remove it. A run that crashed
// leaves the file behind; BusyError says to remove it.
func lock(path string, timeout time.Duration) (release func(), err error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_, _ = fmt.Fprintf(f, "pid %d\n", os.Getpid())
			_ = f.Close()
			return func() { _ = os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("generate: lock: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, &BusyError{Lock: path, Waited: timeout, MayBeStale: true}
		}
		time.Sleep(20 * time.Millisecond)
	}
}
