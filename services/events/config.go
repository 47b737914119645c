package events

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// Config is what the events service needs to know before it starts. Zero
// values take the defaults documented on each field.
type Config struct {
	// Node is this node's name, stamped on every delivery as publisher_node.
	// Required.
	Node string
	// DataDir is the node's data directory; the service keeps the class
	// registry and the durable streams in <DataDir>/events. Empty runs
	// without a disk: classes live in memory and durable classes are
	// refused (DURABLE_UNAVAILABLE).
	DataDir string

	// DedupWindow is how long a msg_id is remembered per stream; default 2m.
	DedupWindow time.Duration
	// DedupMaxEntries bounds the msg_ids remembered per stream inside the
	// window (the oldest are forgotten first); default 100000.
	DedupMaxEntries int

	// DefaultQueue is a subscription's queue length when it asks for none;
	// default 1024.
	DefaultQueue int
	// MaxQueue is the longest queue a subscription may ask for; default 65536.
	MaxQueue int
	// MaxSubscriptions bounds the live subscriptions; default 100000.
	MaxSubscriptions int

	// MemoryRetained is max_events for a non-durable class that sets none;
	// default 10000. The events are kept in memory.
	MemoryRetained uint64
	// DurableRetained is max_events for a durable class that sets none;
	// default 1000000.
	DurableRetained uint64
	// TopicRetained is how many events a topic without a class keeps in
	// memory for replay; default 256.
	TopicRetained int
	// MaxTopics bounds the topics without a class that have a stream; the
	// least recently published is evicted beyond it (its sequence restarts
	// at 1, as after a restart); default 10000.
	MaxTopics int
	// MaxClasses bounds the declared classes; default 1024.
	MaxClasses int
	// DurableCache is how many recent events of each durable stream are kept
	// in memory, so replay near the head needs no disk read; default 4096.
	DurableCache int

	// MaxEventBytes bounds one event's encoded payload, headers and names;
	// default 1 MiB.
	MaxEventBytes int
	// SegmentBytes is the size at which a durable stream starts a new
	// segment file; retention deletes whole segments; default 64 MiB.
	SegmentBytes int64
	// NoSync skips fsync on durable streams. Only for benchmarks that want
	// to see the cost of fsync; never in production.
	NoSync bool

	// RetentionInterval is how often Run enforces retention; default 5s.
	RetentionInterval time.Duration
	// GateCacheTTL is how long a wildcard subscription remembers the gate's
	// verdict for one concrete topic; default 10s.
	GateCacheTTL time.Duration
}

// dirName is the service's folder under DataDir.
const dirName = "events"

// dir is where the service keeps its files, or "" without a disk.
func (c *Config) dir() string {
	if c.DataDir == "" {
		return ""
	}
	return filepath.Join(c.DataDir, dirName)
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Node == "" {
		return out, errors.New("events: config: Node is required")
	}
	setDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	setInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setDur(&out.DedupWindow, 2*time.Minute)
	setInt(&out.DedupMaxEntries, 100_000)
	setInt(&out.DefaultQueue, 1024)
	setInt(&out.MaxQueue, 65536)
	setInt(&out.MaxSubscriptions, 100_000)
	if out.MemoryRetained == 0 {
		out.MemoryRetained = 10_000
	}
	if out.DurableRetained == 0 {
		out.DurableRetained = 1_000_000
	}
	setInt(&out.TopicRetained, 256)
	setInt(&out.MaxTopics, 10_000)
	setInt(&out.MaxClasses, 1024)
	setInt(&out.DurableCache, 4096)
	setInt(&out.MaxEventBytes, 1<<20)
	if out.SegmentBytes == 0 {
		out.SegmentBytes = 64 << 20
	}
	setDur(&out.RetentionInterval, 5*time.Second)
	setDur(&out.GateCacheTTL, 10*time.Second)

	switch {
	case out.DedupWindow < 0 || out.DedupMaxEntries < 0:
		return out, errors.New("events: config: dedup window and entries must not be negative")
	case out.DefaultQueue < 1 || out.MaxQueue < out.DefaultQueue:
		return out, fmt.Errorf("events: config: need 1 <= DefaultQueue (%d) <= MaxQueue (%d)", out.DefaultQueue, out.MaxQueue)
	case out.MaxSubscriptions < 1 || out.TopicRetained < 1 || out.MaxTopics < 1 || out.MaxClasses < 1 || out.DurableCache < 1:
		return out, errors.New("events: config: limits must be positive")
	case out.MaxEventBytes < 1024:
		return out, errors.New("events: config: MaxEventBytes must be at least 1024")
	case out.SegmentBytes < 4096:
		return out, errors.New("events: config: SegmentBytes must be at least 4096")
	case out.RetentionInterval < 0 || out.GateCacheTTL < 0:
		return out, errors.New("events: config: intervals must not be negative")
	}
	return out, nil
}
