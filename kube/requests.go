package kube

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Verb classifies an API request the way the API server's audit log does.
type Verb string

// The verbs a request is counted under.
const (
	VerbGet       Verb = "get"
	VerbList      Verb = "list"
	VerbWatch     Verb = "watch"
	VerbCreate    Verb = "create"
	VerbUpdate    Verb = "update"
	VerbPatch     Verb = "patch"
	VerbDelete    Verb = "delete"
	VerbDiscovery Verb = "discovery"
	VerbOther     Verb = "other"
)

// Request is one counted request: its verb and whether it was a dry run.
type Request struct {
	Verb   Verb
	DryRun bool
}

// Mutating reports whether the request writes to the cluster.
func (r Request) Mutating() bool {
	if r.DryRun {
		return false
	}
	switch r.Verb {
	case VerbCreate, VerbUpdate, VerbPatch, VerbDelete:
		return true
	}
	return false
}

// String is "verb" or "verb (dry-run)".
func (r Request) String() string {
	if r.DryRun {
		return string(r.Verb) + " (dry-run)"
	}
	return string(r.Verb)
}

// RequestCounter counts requests by verb. It is safe for concurrent use.
type RequestCounter struct {
	mu       sync.Mutex
	counts   map[Request]int64
	mutating atomic.Int64
	observer func(Request)
}

// NewRequestCounter returns an empty counter.
func NewRequestCounter() *RequestCounter {
	return &RequestCounter{counts: map[Request]int64{}}
}

// Observe registers fn to be called for every request (for metrics). Call it
// before the clients are used.
func (c *RequestCounter) Observe(fn func(Request)) { c.observer = fn }

// Wrap is a transport wrapper for rest.Config.Wrap. Besides the counter's
// own totals, it adds each request to the Tally its context carries, if
// any (see WithTally).
func (c *RequestCounter) Wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		r := Classify(req)
		c.record(r)
		if t, ok := req.Context().Value(tallyKey{}).(*Tally); ok {
			t.add(r)
		}
		return next.RoundTrip(req)
	})
}

// Tally counts the requests of one piece of work, such as a reconcile,
// among everything the clients send: the work carries it in its context
// (WithTally) and the counting transport adds every request sent with that
// context, retries included. The zero value is ready; it is safe for
// concurrent use.
type Tally struct {
	requests, writes atomic.Int64
}

func (t *Tally) add(r Request) {
	t.requests.Add(1)
	if r.Mutating() {
		t.writes.Add(1)
	}
}

// Requests is the number of requests sent with the tally's context.
func (t *Tally) Requests() int64 { return t.requests.Load() }

// Writes is the number of those that wrote (create, update, patch or
// delete, dry runs excluded).
func (t *Tally) Writes() int64 { return t.writes.Load() }

type tallyKey struct{}

// WithTally returns a context that counts the requests sent with it (or
// with a context derived from it) in t.
func WithTally(ctx context.Context, t *Tally) context.Context {
	return context.WithValue(ctx, tallyKey{}, t)
}

func (c *RequestCounter) record(r Request) {
	c.mu.Lock()
	c.counts[r]++
	c.mu.Unlock()
	if r.Mutating() {
		c.mutating.Add(1)
	}
	if c.observer != nil {
		c.observer(r)
	}
}

// Mutating is the number of writes (create, update, patch, delete that were
// not dry runs) sent so far.
func (c *RequestCounter) Mutating() int64 { return c.mutating.Load() }

// Snapshot returns a copy of the counts.
func (c *RequestCounter) Snapshot() map[Request]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[Request]int64, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Total is the number of requests sent so far.
func (c *RequestCounter) Total() int64 {
	var n int64
	for _, v := range c.Snapshot() {
		n += v
	}
	return n
}

// String lists the counts, for logs and test failures: "get=3 patch=1".
func (c *RequestCounter) String() string {
	snap := c.Snapshot()
	parts := make([]string, 0, len(snap))
	for k, v := range snap {
		parts = append(parts, strings.ReplaceAll(k.String(), " ", "")+"="+itoa(v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func itoa(v int64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// Classify maps an HTTP request to the API server's verb for it.
func Classify(req *http.Request) Request {
	q := req.URL.Query()
	r := Request{DryRun: q.Get("dryRun") != ""}
	path := strings.Trim(req.URL.Path, "/")
	segs := strings.Split(path, "/")
	var rest []string
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		rest = segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		rest = segs[3:]
	default:
		r.Verb = VerbDiscovery
		if req.Method != http.MethodGet {
			r.Verb = VerbOther
		}
		return r
	}
	if len(rest) == 0 {
		r.Verb = VerbDiscovery
		return r
	}
	if len(rest) >= 3 && rest[0] == "namespaces" {
		rest = rest[2:]
	}
	named := len(rest) >= 2
	switch req.Method {
	case http.MethodGet:
		switch {
		case q.Get("watch") == "true" || q.Get("watch") == "1":
			r.Verb = VerbWatch
		case named:
			r.Verb = VerbGet
		default:
			r.Verb = VerbList
		}
	case http.MethodPost:
		r.Verb = VerbCreate
	case http.MethodPut:
		r.Verb = VerbUpdate
	case http.MethodPatch:
		r.Verb = VerbPatch
	case http.MethodDelete:
		r.Verb = VerbDelete
	default:
		r.Verb = VerbOther
	}
	return r
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
