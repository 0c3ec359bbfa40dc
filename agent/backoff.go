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

// nextWait is how long a sync waits before its next reconcile: its
// interval after a success (failures 0), else the backoff, starting at
// backoffBase (or the interval, when shorter) and doubling up to
// backoffMax (or the interval, when longer); both spread by jitter, with r
// a number in [0, 1).
func nextWait(failures int, interval time.Duration, r float64) time.Duration {
	if failures == 0 {
		return Jitter(interval, jitter, r)
	}
	return Jitter(Backoff(failures, min(backoffBase, interval), max(backoffMax, interval)), jitter, r)
}

// Jitter spreads d by up to ±fraction, using r (a number in [0, 1)), so
// that many syncs with the same interval do not poll in lockstep.
func Jitter(d time.Duration, fraction, r float64) time.Duration {
	return time.Duration(float64(d) * (1 + fraction*(2*r-1)))
}
