package router

import "time"

// Config tunes the router.
type Config struct {
	// Node is this node's name; it appears as served_by and in probes.
	Node string
	// CallTimeout bounds one local or forwarded call that has no deadline of
	// its own; zero is 30 s.
	CallTimeout time.Duration
	// FanoutTimeout bounds each member's call in a room or broadcast
	// fan-out; zero is 10 s.
	FanoutTimeout time.Duration
	// MaxHops bounds how often a command may be forwarded between routers
	// (membership views can disagree for a moment); zero is 3.
	MaxHops int
	// MaxParamsBytes bounds a command's params in protobuf wire size; zero
	// is 1 MiB.
	MaxParamsBytes int
	// MaxParamsValues bounds the values in a command's params (members and
	// list elements, recursively); zero is 10,000.
	MaxParamsValues int
	// RefusalOutbox bounds refusal and drift events waiting to be
	// published after a failed first attempt; zero is 4096.
	RefusalOutbox int
}

func (c *Config) defaults() {
	if c.CallTimeout == 0 {
		c.CallTimeout = 30 * time.Second
	}
	if c.FanoutTimeout == 0 {
		c.FanoutTimeout = 10 * time.Second
	}
	if c.MaxHops == 0 {
		c.MaxHops = 3
	}
	if c.MaxParamsBytes == 0 {
		c.MaxParamsBytes = 1 << 20
	}
	if c.MaxParamsValues == 0 {
		c.MaxParamsValues = 10_000
	}
	if c.RefusalOutbox == 0 {
		c.RefusalOutbox = 4096
	}
}
