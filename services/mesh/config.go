package mesh

import "fmt"

// Config tunes the service.
type Config struct {
	// MaxKeyBytes bounds the shard key of Resolve; zero is 1024.
	MaxKeyBytes int
}

// DefaultMaxKeyBytes is the default bound on Resolve keys.
const DefaultMaxKeyBytes = 1024

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.MaxKeyBytes < 0:
		return c, fmt.Errorf("mesh service: MaxKeyBytes %d is negative", c.MaxKeyBytes)
	case c.MaxKeyBytes == 0:
		c.MaxKeyBytes = DefaultMaxKeyBytes
	}
	return c, nil
}
