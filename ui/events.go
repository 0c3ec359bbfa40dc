package ui

import (
	"errors"
	"fmt"
	"net/http"
	gosync "sync"
	"time"

	"github.com/tether-gitops/tether/agent"
)

// heartbeat is how often an idle event stream sends a comment, so proxies
// keep it open.
const heartbeat = 25 * time.Second

// Bounds of the open event streams: each holds a connection and reads the
// agent's status every EventInterval, so neither one user (any token the
// API server accepts, even one that may read no sync) nor all together can
// make that cost grow without end. A page whose stream is refused still
// works; it no longer refreshes itself.
const (
	maxStreams        = 256
	maxStreamsPerUser = 16
)

// streams counts the open event streams, in all and per user.
type streams struct {
	mu     gosync.Mutex
	total  int
	byUser map[string]int
}

// open takes a place for a stream of user; false when there is none.
func (s *streams) open(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= maxStreams || s.byUser[user] >= maxStreamsPerUser {
		return false
	}
	if s.byUser == nil {
		s.byUser = map[string]int{}
	}
	s.total++
	s.byUser[user]++
	return true
}

// close gives back the place open took.
func (s *streams) close(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.byUser[user]--; s.byUser[user] <= 0 {
		delete(s.byUser, user)
	}
}

// events is a Server-Sent Events stream for one open page: it sends a
// "change" event as soon as what the page shows (the fingerprint of the
// visible syncs, or of one sync with ?sync=) differs from ?since=, and
// again at every later change. The stream ends after StreamLifetime, when
// the user's token stops working or their access to the sync ends, and on
// Close; the browser reconnects by itself and is authorised again. It sends
// fingerprints only, never data: the page fetches itself again. A user has
// at most maxStreamsPerUser streams open (more are answered 429).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	v, err := s.authorize(r)
	switch {
	case errors.Is(err, errNoToken), errors.Is(err, ErrInvalidToken):
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	case err != nil:
		http.Error(w, "the API server could not check the token", http.StatusServiceUnavailable)
		return
	}
	q := r.URL.Query()
	name := q.Get("sync")
	current := func(v *viewer) (string, bool) {
		if name == "" {
			return fingerprint(v.status, v.visible), true
		}
		sync, ok := v.find(name)
		return fingerprint(v.status, []agent.SyncStatus{sync}), ok
	}
	if _, ok := current(v); !ok {
		http.Error(w, "no such sync", http.StatusNotFound)
		return
	}
	user := v.user.Name
	if !s.streams.open(user) {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "too many open event streams; reload the page later", http.StatusTooManyRequests)
		return
	}
	defer s.streams.close(user)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	last := q.Get("since")
	tick := time.NewTicker(s.opts.EventInterval)
	defer tick.Stop()
	end := time.NewTimer(s.opts.StreamLifetime)
	defer end.Stop()
	quiet := time.Now()
	for {
		fp, ok := current(v)
		if !ok {
			return
		}
		var err error
		switch {
		case fp != last:
			last, quiet = fp, time.Now()
			_, err = fmt.Fprintf(w, "event: change\ndata: %s\n\n", fp)
		case time.Since(quiet) >= heartbeat:
			quiet = time.Now()
			_, err = fmt.Fprint(w, ": keep-alive\n\n")
		}
		if err != nil || rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		case <-end.C:
			return
		case <-tick.C:
		}
		if v, err = s.authorize(r); err != nil {
			return
		}
	}
}
