// Package cputime reads the CPU time this process has used. The benchmarks
// divide its growth by the work a case did: unlike a wall-clock rate, that
// cost per operation holds up on a machine shared with other work.
package cputime

import "time"

// Process is the CPU time (user and system) this process has used so far;
// zero where the platform does not say.
func Process() time.Duration { return process() }
