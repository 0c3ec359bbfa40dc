package source

import (
	"testing"
	"time"
)

func TestDebouncer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		event bool // an event at ms; else ask fire at ms
		ms    int
		fire  bool
		next  int // expected due time (ms) after the step; -1: none
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"one event fires after the quiet time", []step{
			{event: true, ms: 0, next: 100},
			{ms: 50, next: 100},
			{ms: 100, fire: true, next: -1},
			{ms: 200, next: -1}, // once
		}},
		{"a burst is one trigger, after the last event", []step{
			{event: true, ms: 0, next: 100},
			{event: true, ms: 30, next: 130},
			{event: true, ms: 60, next: 160},
			{ms: 100, next: 160},
			{ms: 160, fire: true, next: -1},
		}},
		{"a folder that never settles fires at max", []step{
			{event: true, ms: 0, next: 100},
			{event: true, ms: 90, next: 190},
			{event: true, ms: 180, next: 280},
			{event: true, ms: 270, next: 300}, // capped at first + max
			{ms: 300, fire: true, next: -1},
			{event: true, ms: 310, next: 410}, // a new burst
			{ms: 410, fire: true, next: -1},
		}},
		{"nothing pending never fires", []step{
			{ms: 0, next: -1},
			{ms: 1000, next: -1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &debouncer{quiet: 100 * time.Millisecond, max: 300 * time.Millisecond}
			for i, s := range tc.steps {
				var fire bool
				var next time.Time
				if s.event {
					next = d.event(at(s.ms))
				} else {
					fire, next = d.fire(at(s.ms))
				}
				wantNext := time.Time{}
				if s.next >= 0 {
					wantNext = at(s.next)
				}
				if fire != s.fire || !next.Equal(wantNext) {
					t.Fatalf("step %d (%+v): fire=%v next=%v, want fire=%v next=%v", i, s, fire, next, s.fire, wantNext)
				}
			}
		})
	}
}
