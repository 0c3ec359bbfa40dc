package webhook

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// refusals counts refused deliveries per source address: each address has
// a token bucket that only refusals draw from, so a sender that floods the
// receiver with unsigned or badly signed requests is answered 429 (and
// logged no more than once a minute) without touching what a correctly
// signed delivery needs: those are served whatever the bucket holds.
//
// At most max addresses are tracked; when a new one arrives and the table
// is full, addresses whose bucket has refilled are forgotten first (they
// lose nothing), then the least recently seen.
type refusals struct {
	limit rate.Limit
	burst int
	max   int

	mu    sync.Mutex
	addrs map[string]*refusalBucket
}

// refusalBucket is one address's budget of refusals.
type refusalBucket struct {
	limiter    *rate.Limiter
	seen       time.Time
	suppressed int       // refusals answered 429 since the last report
	reported   time.Time // when the last report was logged
}

// reportEvery is how often suppressed refusals of one address are logged.
const reportEvery = time.Minute

func newRefusals(limit rate.Limit, burst, max int) *refusals {
	return &refusals{limit: limit, burst: burst, max: max, addrs: map[string]*refusalBucket{}}
}

// hasBudget reports whether addr has refusals left in its budget now
// (true for an address not seen yet).
func (f *refusals) hasBudget(addr string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.addrs[addr]
	return !ok || b.limiter.TokensAt(now) >= 1
}

// charge records a refusal of addr. ok says whether it was within the
// budget (answer it as decided); otherwise wait is how long until the
// address has budget again and report, when not zero, is the number of
// refusals suppressed since the last report, to be logged now.
func (f *refusals) charge(addr string, now time.Time) (ok bool, wait time.Duration, report int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, found := f.addrs[addr]
	if !found {
		f.makeRoom(now)
		b = &refusalBucket{limiter: rate.NewLimiter(f.limit, f.burst)}
		f.addrs[addr] = b
	}
	b.seen = now
	if b.limiter.AllowN(now, 1) {
		return true, 0, 0
	}
	b.suppressed++
	if now.Sub(b.reported) >= reportEvery {
		report, b.suppressed, b.reported = b.suppressed, 0, now
	}
	missing := 1 - b.limiter.TokensAt(now)
	return false, time.Duration(missing / float64(f.limit) * float64(time.Second)), report
}

// makeRoom forgets addresses until one more fits. Called with f.mu held.
func (f *refusals) makeRoom(now time.Time) {
	if len(f.addrs) < f.max {
		return
	}
	for addr, b := range f.addrs {
		if b.limiter.TokensAt(now) >= float64(f.burst) {
			delete(f.addrs, addr)
		}
	}
	for len(f.addrs) >= f.max {
		var oldest string
		var at time.Time
		for addr, b := range f.addrs {
			if oldest == "" || b.seen.Before(at) {
				oldest, at = addr, b.seen
			}
		}
		delete(f.addrs, oldest)
	}
}

// inFlight counts the deliveries being read, in all and per source
// address.
type inFlight struct {
	max, perAddress int

	mu    sync.Mutex
	total int
	by    map[string]int
}

// enter takes a slot for a delivery from addr, or says there is none.
func (f *inFlight) enter(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.total >= f.max || f.by[addr] >= f.perAddress {
		return false
	}
	f.total++
	f.by[addr]++
	return true
}

// leave gives back the slot of a delivery from addr.
func (f *inFlight) leave(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total--
	if f.by[addr]--; f.by[addr] <= 0 {
		delete(f.by, addr)
	}
}
