package region

import "time"

// Telemetry is the record of one tick.
type Telemetry struct {
	Region string
	Target
	// Start is the tick's time on the runner's clock.
	Start time.Time
	// Duration is the real time the tick took (also in replays).
	Duration     time.Duration
	Published    int
	Consumed     int
	Requests     int
	BufferMisses int
	LateMisses   int
	Pressure     Pressure
	Cadence      Cadence
	// Interval is the interval the governor chose for the next tick (the
	// current one for a target put to sleep).
	Interval   time.Duration
	Generation uint64
	// Deferred is set when the governor did not admit the tick (critical
	// pressure); nothing ran.
	Deferred bool
}

// ConsumptionFraction is consumed / published; ok is false when nothing
// was published.
func (t Telemetry) ConsumptionFraction() (f float64, ok bool) {
	if t.Published == 0 {
		return 0, false
	}
	return float64(t.Consumed) / float64(t.Published), true
}

// HadBufferMisses reports whether a request missed the buffer since the
// previous tick.
func (t Telemetry) HadBufferMisses() bool { return t.BufferMisses > 0 }
