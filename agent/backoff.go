package agent

import (
	"time"
)

// Backoff after failures: the first retry comes after base, each further
// one waits twice as long, never more than max.
func Backoff(failures int, base, max time.Duration) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := base
	for i := 1; i < failures; i++ {
		d *= 2
		if d >= max {
			return max
		}
	}
	if d > max {
		return max
	}
	return d
}

// Jitter spreads d by up to ±fraction, using r (a number in [0, 1)), so
// that many syncs with the same interval do not poll in lockstep.
func Jitter(d time.Duration, fraction, r float64) time.Duration {
	return time.Duration(float64(d) * (1 + fraction*(2*r-1)))
}
