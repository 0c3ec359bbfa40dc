package images

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds of the per-host wait after a registry answers 429 Too Many
// Requests.
const (
	// rateLimitBase is the first wait when the answer names none; each
	// further 429 in a row doubles it.
	rateLimitBase = 5 * time.Second
	// RateLimitMax caps any wait, a Retry-After included: a registry
	// asking for a day is asked again after this long.
	RateLimitMax = 10 * time.Minute
	// rateLimitMin is the least wait, whatever Retry-After says ("0"
	// would invite a hot loop).
	rateLimitMin = time.Second
)

// RateLimitedError is a request not sent because its registry host asked
// to wait (429 with or without Retry-After), or the 429 itself.
type RateLimitedError struct {
	Host  string
	Until time.Time
}

// Error names the host and when it may be asked again.
func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("registry %s is rate limiting (HTTP 429): no request to it before %s", e.Host, e.Until.UTC().Format(time.RFC3339))
}

// hostGate spaces requests to one registry host after it answered 429:
// no request passes until the wait is over, so a 429 storm costs one
// request per wait, not a loop. Safe for concurrent use.
type hostGate struct {
	mu      sync.Mutex
	until   time.Time
	strikes int
}

// blocked returns the end of the wait, if one is in force.
func (g *hostGate) blocked(now time.Time) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.until, now.Before(g.until)
}

// limited records a 429 answered at now with the given Retry-After header
// and returns the end of the wait.
func (g *hostGate) limited(now time.Time, retryAfter string) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.strikes++
	wait, ok := ParseRetryAfter(retryAfter, now)
	if !ok {
		wait = rateLimitBase
		for i := 1; i < g.strikes && wait < RateLimitMax; i++ {
			wait *= 2
		}
	}
	wait = min(max(wait, rateLimitMin), RateLimitMax)
	if u := now.Add(wait); u.After(g.until) {
		g.until = u
	}
	return g.until
}

// passed records an answer that was not a 429.
func (g *hostGate) passed() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.strikes = 0
}

// ParseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func ParseRetryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, int(RateLimitMax/time.Second)+1)) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return t.Sub(now), true
	}
	return 0, false
}
