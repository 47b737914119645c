package generate

import (
	"fmt"
	"strings"
	"time"
)

// The errors a run refuses with. Each says what is wrong and what to do.

// ExistsError is a name already in use by a generated service, refused
// without Force.
type ExistsError struct {
	Name string
	// Found lists what exists: files, directories, wiring entries.
	Found []string
}

func (e *ExistsError) Error() string {
	return fmt.Sprintf("service %q already exists (%s); pass --force to overwrite its files", e.Name, strings.Join(e.Found, "; "))
}

// InvalidNameError is a service name the generator refuses.
type InvalidNameError struct {
	Name, Why string
}

func (e *InvalidNameError) Error() string {
	return fmt.Sprintf("invalid service name %q: %s", e.Name, e.Why)
}

// InvalidMethodError is a method name the generator refuses.
type InvalidMethodError struct {
	Method, Why string
}

func (e *InvalidMethodError) Error() string {
	if e.Method == "" {
		return "invalid --method: " + e.Why
	}
	return fmt.Sprintf("invalid --method %q: %s", e.Method, e.Why)
}

// UsageError is a command line the generator cannot run.
type UsageError struct {
	Msg string
}

func (e *UsageError) Error() string { return e.Msg + " (see 'continuum generate --help')" }

// BusyError is another run holding the generator's lock for longer than
// the run would wait.
type BusyError struct {
	Lock   string
	Waited time.Duration
	// MayBeStale: the lock is a plain file (no flock on this system), which
	// a crashed run leaves behind.
	MayBeStale bool
}

func (e *BusyError) Error() string {
	msg := fmt.Sprintf("another `continuum generate` run holds %s (waited %s); try again when it is done", e.Lock, e.Waited)
	if e.MayBeStale {
		msg += ", or remove the file if no run is in progress"
	}
	return msg
}
