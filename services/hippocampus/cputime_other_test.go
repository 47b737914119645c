//go:build !linux

package hippocampus_test

// threadCPU is not available here; benchmarks report wall time only.
func threadCPU() int64 { return 0 }
