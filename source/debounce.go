package source

import "time"

// debouncer turns a burst of change events into one trigger: it fires once
// no event came for quiet, or at the latest max after the first event of
// the burst (so a folder that never stops changing still triggers). It is
// pure: times come from the caller.
type debouncer struct {
	quiet, max  time.Duration
	first, last time.Time
	pending     bool
}

// event records a change at now and returns when the trigger is due.
func (d *debouncer) event(now time.Time) time.Time {
	if !d.pending {
		d.pending = true
		d.first = now
	}
	d.last = now
	return d.dueAt()
}

func (d *debouncer) dueAt() time.Time {
	due := d.last.Add(d.quiet)
	if limit := d.first.Add(d.max); due.After(limit) {
		due = limit
	}
	return due
}

// fire reports whether a trigger is due at now; if it is, the burst is
// over. If not, next is when to ask again (zero when nothing is pending).
func (d *debouncer) fire(now time.Time) (fire bool, next time.Time) {
	if !d.pending {
		return false, time.Time{}
	}
	if due := d.dueAt(); now.Before(due) {
		return false, due
	}
	d.pending = false
	return true, time.Time{}
}
