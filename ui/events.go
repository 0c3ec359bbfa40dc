package ui

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tether-gitops/tether/agent"
)

// heartbeat is how often an idle event stream sends a comment, so proxies
// keep it open.
const heartbeat = 25 * time.Second

// events is a Server-Sent Events stream for one open page: it sends a
// "change" event as soon as what the page shows (the fingerprint of the
// visible syncs, or of one sync with ?sync=) differs from ?since=, and
// again at every later change. The stream ends after StreamLifetime, when
// the user's token stops working or their access to the sync ends, and on
// Close; the browser reconnects by itself and is authorised again. It sends
// fingerprints only, never data: the page fetches itself again.
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
