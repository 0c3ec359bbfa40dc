package render

import (
	"context"
	"errors"
	"fmt"
	gosync "sync"
	"time"
)

// Request is one render a sync asks for.
type Request struct {
	// Sync names the sync that asks. Renders are shared fairly between
	// syncs, and a sync has at most one render waiting.
	Sync string
	// Revision is what Options.Root holds (main@sha1:...). A render that
	// failed by a limit is remembered under it; "" (a plain folder, whose
	// content has no name) remembers nothing.
	Revision string
	// Options are what to render and within which limits.
	Options Options
}

// ErrFailedBefore: the revision failed by a limit earlier (see Scheduler)
// and is not rendered again until it changes. Errors that carry it also
// carry the category of the original failure (ErrTooLarge or
// ErrYAMLNodes).
var ErrFailedBefore = errors.New("this revision failed by a limit before and is not rendered again until the revision changes")

// ErrSuperseded: a newer render of the same sync took the place of this one
// while it waited.
var ErrSuperseded = errors.New("a newer render of the same sync took its place")

// Defaults of a Scheduler.
const (
	// DefaultRememberedFailures bounds the failures a Scheduler remembers:
	// one per sync and path, so this is room for that many syncs; the
	// oldest is forgotten first.
	DefaultRememberedFailures = 1024
	// maxRememberedReason bounds the text kept of each remembered failure.
	maxRememberedReason = 4096
)

// BuildFunc renders opts: Build in this process, or Isolated.Build in a
// confined child.
type BuildFunc func(ctx context.Context, opts Options) ([]Resource, error)

// Scheduler runs the renders of many syncs with a bounded number at once,
// fairly, and never runs again a revision that failed by a limit.
//
//   - At most Parallelism renders run at once (the memory budget divided by
//     the memory limit of one render, see Parallelism).
//   - Fair: each sync has at most one render running and one waiting; a
//     newer request of a sync replaces its waiting one (which fails with
//     ErrSuperseded) in its place, and free places go to the waiting syncs
//     in the order they started waiting. A sync asks for its next render
//     when the last one ended (as the agent's syncs do), so it waits behind
//     the syncs already waiting: round-robin, and a sync never waits for
//     more than one render of each other sync.
//   - Waiting ends with the context; a running render is killed when its
//     context is cancelled (Isolated.Build does that). When its context's
//     deadline passes instead (a reconcile's timeout: the wait for a
//     place and the fetch count against it, and a loaded machine gives a
//     render less than a core), Build returns at once but the render goes
//     on, in its place, for up to Overrun more, so that a failure by a
//     limit is still remembered instead of the revision being rendered,
//     and cancelled, at every retry. A newer request of the same sync for
//     another revision kills it.
//   - A render that failed by a limit (CPU, memory, size, the YAML screens:
//     ErrTooLarge or ErrYAMLNodes) is remembered by sync, path, revision and
//     limits, and a request for the same fails at once with the same error
//     and ErrFailedBefore, without a render, until the revision changes.
//     One failure is kept per sync and path, and at most
//     DefaultRememberedFailures in all.
//
// A Scheduler is safe for concurrent use.
type Scheduler struct {
	// Overrun is how long a render may go on after its context's deadline
	// passed (see above); 0 kills it at the deadline. Set it before the
	// first Build.
	Overrun time.Duration

	build  BuildFunc
	limits string
	slots  int
	now    func() time.Time

	mu      gosync.Mutex
	running map[string]bool          // syncs with a render running
	queue   []*waiter                // waiting renders, at most one per sync, oldest first
	overrun map[string]*activeRender // renders going on after their deadline, by sync
	failed  failures
}

// activeRender is one render running. Its fields are guarded by Scheduler.mu.
type activeRender struct {
	key    failureKey
	cancel context.CancelFunc
	ended  bool
}

// waiter is one render waiting for a place.
type waiter struct {
	sync string
	// ready is closed when the render may run (granted) or when a newer
	// request of the same sync replaced it (superseded).
	ready      chan struct{}
	granted    bool
	superseded bool
}

// NewScheduler returns a Scheduler that renders with build, at most
// parallelism renders at once (at least one). limits describes the limits
// build applies (the memory and CPU limits of Isolated): a failure is
// remembered for the limits it happened under.
func NewScheduler(build BuildFunc, parallelism int, limits string) *Scheduler {
	return &Scheduler{
		build:   build,
		limits:  limits,
		slots:   max(parallelism, 1),
		now:     time.Now,
		running: map[string]bool{},
		overrun: map[string]*activeRender{},
		failed:  failures{max: DefaultRememberedFailures, byKey: map[failureKey]*failure{}},
	}
}

// Parallelism is how many renders of memoryLimit bytes each fit in budget
// bytes: at least one, else an error (no render could run).
func Parallelism(budget, memoryLimit int64) (int, error) {
	if memoryLimit <= 0 {
		return 0, fmt.Errorf("the render memory limit must be positive, not %d", memoryLimit)
	}
	if budget < memoryLimit {
		return 0, fmt.Errorf("the render memory budget (%s) is smaller than the memory limit of one render (%s), so no render could run", mib(budget), mib(memoryLimit))
	}
	return int(budget / memoryLimit), nil
}

// Build renders req: at once if a place is free and no other sync waits
// for one, else when its turn comes. See Scheduler for what it guarantees.
func (s *Scheduler) Build(ctx context.Context, req Request) ([]Resource, error) {
	key := s.failureKey(req)
	if err := s.remembered(key); err != nil {
		return nil, err
	}
	s.stopOverrun(req.Sync, key)
	if err := s.acquire(ctx, req); err != nil {
		return nil, err
	}
	// A render of the same revision may have failed while this one waited.
	if err := s.remembered(key); err != nil {
		s.release(req.Sync)
		return nil, err
	}
	type result struct {
		rs  []Resource
		err error
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &activeRender{key: key, cancel: cancel}
	done := make(chan result, 1)
	go func() {
		defer cancel()
		rs, err := s.build(rctx, req.Options)
		if err != nil && rctx.Err() == nil && key.revision != "" {
			if cat := limitCategory(err); cat != nil {
				s.remember(key, err, cat)
			}
		}
		s.mu.Lock()
		r.ended = true
		if s.overrun[req.Sync] == r {
			delete(s.overrun, req.Sync)
		}
		s.mu.Unlock()
		s.release(req.Sync)
		done <- result{rs, err}
	}()
	select {
	case res := <-done:
		return res.rs, res.err
	case <-ctx.Done():
	}
	if s.Overrun <= 0 || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		cancel()
		res := <-done
		return res.rs, res.err
	}
	s.mu.Lock()
	ended := r.ended
	if !ended {
		s.overrun[req.Sync] = r
		// Bounded: a render that neither ends nor fails by its limits
		// (it should not exist) gives its place back after Overrun.
		t := time.AfterFunc(s.Overrun, cancel)
		// A stop (shutdown, lost lease, the sync removed) still kills it.
		unstop := func() bool { return false }
		if stop, ok := ctx.Value(stopKey{}).(context.Context); ok {
			unstop = context.AfterFunc(stop, cancel)
		}
		go func() {
			<-rctx.Done()
			t.Stop()
			unstop()
		}()
	}
	s.mu.Unlock()
	if ended { // just now: its outcome is here
		res := <-done
		return res.rs, res.err
	}
	return nil, &Error{File: displayDir(req.Options.Path), Reason: fmt.Sprintf("build cancelled: %v; the render goes on for up to %v so that a failure by a limit is remembered", ctx.Err(), s.Overrun), Err: ctx.Err()}
}

// stopKey is the context key of WithStop.
type stopKey struct{}

// WithStop returns ctx carrying stop, the context whose end means the
// render's caller stopped (shutdown, lost lease, the sync removed) rather
// than timed out: a render that goes on after ctx's deadline (see
// Scheduler.Overrun) is killed when stop ends. Give it the context the
// reconcile's timeout is made from.
func WithStop(ctx, stop context.Context) context.Context {
	return context.WithValue(ctx, stopKey{}, stop)
}

// stopOverrun kills the render of sync going on after its deadline, if
// any, unless it renders key: a newer request for the same revision waits
// for it (and finds its failure remembered), one for another revision
// need not.
func (s *Scheduler) stopOverrun(sync string, key failureKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.overrun[sync]; r != nil && r.key != key {
		r.cancel()
		delete(s.overrun, sync)
	}
}

// acquire waits until req may run: a place is free, its sync has no other
// render running, and it is the first such sync in the queue.
func (s *Scheduler) acquire(ctx context.Context, req Request) error {
	w := &waiter{sync: req.Sync, ready: make(chan struct{})}
	s.mu.Lock()
	replaced := false
	for i, old := range s.queue {
		if old.sync == req.Sync {
			old.superseded = true
			close(old.ready)
			s.queue[i] = w // its place in the round, not the end
			replaced = true
			break
		}
	}
	if !replaced {
		s.queue = append(s.queue, w)
	}
	s.dispatch()
	s.mu.Unlock()

	select {
	case <-w.ready:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case w.superseded:
		return &Error{File: displayDir(req.Options.Path), Reason: "render not started: " + ErrSuperseded.Error(), Err: ErrSuperseded}
	case ctx.Err() != nil:
		if w.granted {
			delete(s.running, w.sync)
			s.dispatch()
		} else {
			s.dequeue(w)
		}
		return &Error{File: displayDir(req.Options.Path), Reason: "build cancelled while waiting for a renderer: " + ctx.Err().Error(), Err: ctx.Err()}
	}
	return nil
}

// release frees the place of a render of sync that ended.
func (s *Scheduler) release(sync string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, sync)
	s.dispatch()
}

// dispatch grants free places to the oldest waiting renders whose sync has
// none running. Called with mu held.
func (s *Scheduler) dispatch() {
	for i := 0; i < len(s.queue) && len(s.running) < s.slots; {
		w := s.queue[i]
		if s.running[w.sync] {
			i++
			continue
		}
		s.queue = append(s.queue[:i], s.queue[i+1:]...)
		s.running[w.sync] = true
		w.granted = true
		close(w.ready)
	}
}

// dequeue removes w from the queue. Called with mu held.
func (s *Scheduler) dequeue(w *waiter) {
	for i, q := range s.queue {
		if q == w {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			return
		}
	}
}

// limitCategory returns the category of err if it is a failure by a limit
// (which rendering the same input again would repeat), else nil.
func limitCategory(err error) error {
	for _, c := range []error{ErrTooLarge, ErrYAMLNodes} {
		if errors.Is(err, c) {
			return c
		}
	}
	return nil
}

// failureKey identifies what a remembered failure is about.
type failureKey struct {
	sync, path string
	revision   string // "" remembers nothing
	limits     string // the Scheduler's and the Options' limits
}

// failure is a remembered failure: a short copy of the error, so that the
// record stays small whatever the error held.
type failure struct {
	key failureKey
	err error
}

// failures holds at most max failures, one per sync and path.
type failures struct {
	max   int
	byKey map[failureKey]*failure // key with revision and limits cleared
	order []failureKey            // oldest first
}

func (s *Scheduler) failureKey(req Request) failureKey {
	o, err := req.Options.withDefaults()
	if err != nil {
		o = req.Options
	}
	return failureKey{
		sync:     req.Sync,
		path:     req.Options.Path,
		revision: req.Revision,
		limits:   fmt.Sprintf("%s; MaxFileSize %d, MaxTotalSize %d, MaxYAMLNodes %d", s.limits, o.MaxFileSize, o.MaxTotalSize, o.MaxYAMLNodes),
	}
}

// slot is the key under which the failure of key is kept: one per sync and
// path, so a new revision's failure replaces the old one's.
func (k failureKey) slot() failureKey {
	return failureKey{sync: k.sync, path: k.path}
}

// remembered returns the remembered failure for key, if any.
func (s *Scheduler) remembered(key failureKey) error {
	if key.revision == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.failed.byKey[key.slot()]
	if !ok || f.key != key {
		return nil
	}
	return f.err
}

// remember records that key failed with err, of category cat.
func (s *Scheduler) remember(key failureKey, err error, cat error) {
	at := s.now()
	file, entry, reason := displayDir(key.path), "", err.Error()
	var e *Error
	if errors.As(err, &e) {
		file, entry, reason = e.File, e.Entry, e.Reason
	}
	if len(reason) > maxRememberedReason {
		reason = reason[:maxRememberedReason] + "..."
	}
	reason = fmt.Sprintf("%s (%s failed this way at %s and is not rendered again until the revision changes)", reason, key.revision, at.UTC().Format(time.RFC3339))
	f := &failure{key: key, err: &Error{File: file, Entry: entry, Reason: reason, Err: fmt.Errorf("%w: %w", ErrFailedBefore, cat)}}

	s.mu.Lock()
	defer s.mu.Unlock()
	slot := key.slot()
	if _, ok := s.failed.byKey[slot]; ok {
		s.failed.forget(slot)
	}
	s.failed.byKey[slot] = f
	s.failed.order = append(s.failed.order, slot)
	for len(s.failed.order) > s.failed.max {
		s.failed.forget(s.failed.order[0])
	}
}

// forget drops the failure kept under slot.
func (f *failures) forget(slot failureKey) {
	delete(f.byKey, slot)
	for i, k := range f.order {
		if k == slot {
			f.order = append(f.order[:i], f.order[i+1:]...)
			return
		}
	}
}
