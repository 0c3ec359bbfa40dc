package render

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParallelism(t *testing.T) {
	for _, tc := range []struct {
		budget, limit int64
		want          int
		err           string
	}{
		{1536 << 20, 768 << 20, 2, ""},
		{768 << 20, 768 << 20, 1, ""},
		{2047 << 20, 768 << 20, 2, ""},
		{4 << 30, 512 << 20, 8, ""},
		{512 << 20, 768 << 20, 0, "smaller than the memory limit of one render"},
		{1 << 30, 0, 0, "must be positive"},
	} {
		got, err := Parallelism(tc.budget, tc.limit)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Parallelism(%d, %d) = %d, %v; want %d, %q", tc.budget, tc.limit, got, err, tc.want, tc.err)
		}
	}
}

// fakeRenders is a BuildFunc whose renders the test starts and ends: each
// render announces its Options.Path on started, then returns what the test
// sends on the channel for that path (or the context's error).
type fakeRenders struct {
	started chan string
	results map[string]chan error
}

func newFakeRenders(paths ...string) *fakeRenders {
	f := &fakeRenders{started: make(chan string, 16), results: map[string]chan error{}}
	for _, p := range paths {
		f.results[p] = make(chan error, 1)
	}
	return f
}

func (f *fakeRenders) build(ctx context.Context, o Options) ([]Resource, error) {
	f.started <- o.Path
	select {
	case err := <-f.results[o.Path]:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// next returns the path of the next render that starts.
func (f *fakeRenders) next(t *testing.T) string {
	t.Helper()
	select {
	case p := <-f.started:
		return p
	case <-time.After(time.Minute):
		t.Fatal("no render started")
		return ""
	}
}

// idle checks that no render has started.
func (f *fakeRenders) idle(t *testing.T) {
	t.Helper()
	select {
	case p := <-f.started:
		t.Fatalf("render %s started", p)
	default:
	}
}

// request runs one Build of the scheduler in the background; its error
// arrives on the returned channel.
func request(ctx context.Context, s *Scheduler, sync, revision, path string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := s.Build(ctx, Request{Sync: sync, Revision: revision, Options: Options{Root: "/checkout", Path: path}})
		done <- err
	}()
	return done
}

// waitQueued waits until n renders wait for a place.
func waitQueued(t *testing.T, s *Scheduler, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s.mu.Lock()
		got := len(s.queue)
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d renders wait, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// result waits for the error of a request.
func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("the request did not return")
		return nil
	}
}

// Renders run in parallel up to the scheduler's places, and no further.
func TestSchedulerParallel(t *testing.T) {
	f := newFakeRenders("a", "b", "c")
	s := NewScheduler(f.build, 2, "test")
	ctx := context.Background()
	a := request(ctx, s, "a", "r1", "a")
	b := request(ctx, s, "b", "r1", "b")
	got := map[string]bool{f.next(t): true, f.next(t): true}
	if !got["a"] || !got["b"] {
		t.Fatalf("started %v, want a and b", got)
	}
	c := request(ctx, s, "c", "r1", "c")
	waitQueued(t, s, 1)
	f.idle(t)
	f.results["a"] <- nil
	if err := result(t, a); err != nil {
		t.Fatal(err)
	}
	if p := f.next(t); p != "c" {
		t.Fatalf("started %s, want c", p)
	}
	f.results["b"] <- nil
	f.results["c"] <- nil
	if err := result(t, b); err != nil {
		t.Fatal(err)
	}
	if err := result(t, c); err != nil {
		t.Fatal(err)
	}
}

// A sync whose every revision fails slowly (a new one each time) cannot
// keep another sync waiting for more than one of its renders: its next
// render goes behind the syncs already waiting.
func TestSchedulerRoundRobin(t *testing.T) {
	f := newFakeRenders("hostile", "healthy", "other")
	s := NewScheduler(f.build, 1, "test")
	ctx := context.Background()
	tooLarge := refusal(".", "", ErrTooLarge, "rendering used more than 2m0s of CPU")

	h1 := request(ctx, s, "hostile", "r1", "hostile")
	if p := f.next(t); p != "hostile" {
		t.Fatalf("started %s", p)
	}
	ok1 := request(ctx, s, "healthy", "r1", "healthy")
	waitQueued(t, s, 1)
	o1 := request(ctx, s, "other", "r1", "other")
	waitQueued(t, s, 2)

	f.results["hostile"] <- tooLarge
	if err := result(t, h1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("hostile: %v", err)
	}
	if p := f.next(t); p != "healthy" {
		t.Fatalf("started %s, want healthy", p)
	}
	h2 := request(ctx, s, "hostile", "r2", "hostile") // a new revision: rendered again
	waitQueued(t, s, 2)
	f.results["healthy"] <- nil
	if err := result(t, ok1); err != nil {
		t.Fatal(err)
	}
	if p := f.next(t); p != "other" {
		t.Fatalf("started %s, want other (the hostile sync asked later)", p)
	}
	f.results["other"] <- nil
	if err := result(t, o1); err != nil {
		t.Fatal(err)
	}
	if p := f.next(t); p != "hostile" {
		t.Fatalf("started %s, want hostile", p)
	}
	f.results["hostile"] <- tooLarge
	if err := result(t, h2); !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrFailedBefore) {
		t.Fatalf("hostile r2: %v, want a render's own failure", err)
	}
}

// A newer request of a sync takes the place of its waiting one; a sync
// never has two renders running.
func TestSchedulerSupersede(t *testing.T) {
	f := newFakeRenders("a", "b")
	s := NewScheduler(f.build, 2, "test")
	ctx := context.Background()
	a1 := request(ctx, s, "a", "r1", "a")
	if p := f.next(t); p != "a" {
		t.Fatalf("started %s", p)
	}
	a2 := request(ctx, s, "a", "r2", "a")
	waitQueued(t, s, 1)
	f.idle(t) // a place is free, but sync a has a render running
	a3 := request(ctx, s, "a", "r3", "a")
	if err := result(t, a2); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("the replaced request: %v, want ErrSuperseded", err)
	}
	waitQueued(t, s, 1)
	f.results["a"] <- nil
	if err := result(t, a1); err != nil {
		t.Fatal(err)
	}
	if p := f.next(t); p != "a" {
		t.Fatalf("started %s", p)
	}
	f.results["a"] <- nil
	if err := result(t, a3); err != nil {
		t.Fatal(err)
	}
}

// Waiting ends with the context, and neither a cancelled waiter nor a
// cancelled render keeps its place.
func TestSchedulerCancel(t *testing.T) {
	f := newFakeRenders("a", "b", "c")
	s := NewScheduler(f.build, 1, "test")
	runCtx, stopRun := context.WithCancel(context.Background())
	a := request(runCtx, s, "a", "r1", "a")
	f.next(t)
	waitCtx, stopWait := context.WithCancel(context.Background())
	b := request(waitCtx, s, "b", "r1", "b")
	waitQueued(t, s, 1)
	stopWait()
	err := result(t, b)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "while waiting for a renderer") {
		t.Fatalf("cancelled waiter: %v", err)
	}
	waitQueued(t, s, 0)
	stopRun()
	if err := result(t, a); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled render: %v", err)
	}
	c := request(context.Background(), s, "c", "r1", "c")
	if p := f.next(t); p != "c" {
		t.Fatalf("started %s", p)
	}
	f.results["c"] <- nil
	if err := result(t, c); err != nil {
		t.Fatal(err)
	}
}

// A revision that failed by a limit is not rendered again until the
// revision (or the path, or the limits) changes; other failures are.
func TestSchedulerRemembersFailures(t *testing.T) {
	cpu := refusal("app", "", ErrTooLarge, "rendering used more than 2m0s of CPU (the render CPU limit, tether --render-cpu-limit)")
	for _, tc := range []struct {
		name     string
		err      error   // the first render's error
		again    Request // the second request
		rendered bool    // whether the second request renders
	}{
		{"same revision after a CPU limit", cpu, Request{Sync: "s", Revision: "r1", Options: Options{Path: "app"}}, false},
		{"alias bomb", refusal("app/a.yaml", "document 1", ErrYAMLNodes, ""), Request{Sync: "s", Revision: "r1", Options: Options{Path: "app"}}, false},
		{"new revision", cpu, Request{Sync: "s", Revision: "r2", Options: Options{Path: "app"}}, true},
		{"other path", cpu, Request{Sync: "s", Revision: "r1", Options: Options{Path: "other"}}, true},
		{"other sync", cpu, Request{Sync: "t", Revision: "r1", Options: Options{Path: "app"}}, true},
		{"other limits", cpu, Request{Sync: "s", Revision: "r1", Options: Options{Path: "app", MaxFileSize: 1 << 20}}, true},
		{"no revision", cpu, Request{Sync: "s", Options: Options{Path: "app"}}, true},
		{"not a limit", refusal("app/k.yaml", "", ErrRemote, ""), Request{Sync: "s", Revision: "r1", Options: Options{Path: "app"}}, true},
		{"context ended during the render", cpu, Request{Sync: "s", Revision: "r1", Options: Options{Path: "app"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			renders := 0
			s := NewScheduler(func(rctx context.Context, o Options) ([]Resource, error) {
				renders++
				if tc.name == "context ended during the render" && renders == 1 {
					// Killed by the cancel: what it says then does not count.
					cancel()
					<-rctx.Done()
				}
				return nil, tc.err
			}, 1, "test")
			first := Request{Sync: "s", Revision: "r1", Options: Options{Path: "app"}}
			if tc.name == "no revision" {
				first.Revision = ""
			}
			if _, err := s.Build(ctx, first); !errors.Is(err, tc.err) {
				t.Fatalf("first render: %v", err)
			}
			_, err := s.Build(context.Background(), tc.again)
			if rendered := renders == 2; rendered != tc.rendered {
				t.Fatalf("rendered again: %v, want %v (error %v)", rendered, tc.rendered, err)
			}
			if tc.rendered {
				return
			}
			if !errors.Is(err, ErrFailedBefore) || !errors.Is(err, limitCategory(tc.err)) {
				t.Errorf("remembered error %v is not ErrFailedBefore and %v", err, limitCategory(tc.err))
			}
			if want := "r1 failed this way at "; !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), tc.err.Error()) {
				t.Errorf("remembered error %q does not repeat %q and say %q", err, tc.err, want)
			}
		})
	}
}

// The record of failures is bounded: one per sync and path, the oldest
// forgotten first, and each message cut short.
func TestSchedulerForgets(t *testing.T) {
	renders := map[string]int{}
	s := NewScheduler(func(_ context.Context, o Options) ([]Resource, error) {
		renders[o.Path]++
		return nil, refusal(o.Path, "", ErrTooLarge, strings.Repeat("x", 10*maxRememberedReason))
	}, 1, "test")
	s.failed.max = 2
	build := func(sync, revision string) error {
		_, err := s.Build(context.Background(), Request{Sync: sync, Revision: revision, Options: Options{Path: sync}})
		return err
	}
	for _, sync := range []string{"a", "b", "c"} {
		build(sync, "r1")
	}
	build("c", "r2") // replaces c's failure at r1
	if n := len(s.failed.byKey); n != 2 {
		t.Fatalf("%d failures kept, want 2", n)
	}
	for _, sync := range []string{"b", "c", "a"} {
		build(sync, "r1")
	}
	// a was forgotten (the oldest), b remembered, c's r1 replaced by r2.
	if want := map[string]int{"a": 2, "b": 1, "c": 3}; fmt.Sprint(renders) != fmt.Sprint(want) {
		t.Errorf("renders %v, want %v", renders, want)
	}
	for _, f := range s.failed.byKey {
		if n := len(f.err.Error()); n > 2*maxRememberedReason {
			t.Errorf("a remembered error keeps %d bytes", n)
		}
	}
}

// A render whose deadline passes goes on (Overrun), holding its place, so
// that its failure by a limit is remembered: the retry of the same
// revision waits for it and fails at once, without a render of its own.
// A request for another revision kills it; a cancel (not a deadline)
// kills it as before; and Overrun bounds it.
func TestSchedulerOverrun(t *testing.T) {
	f := newFakeRenders("a", "b")
	s := NewScheduler(f.build, 1, "test")
	s.Overrun = time.Hour
	deadline, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	a := request(deadline, s, "a", "r1", "a")
	f.next(t)
	err := result(t, a)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "goes on for up to 1h0m0s") {
		t.Fatalf("render past its deadline: %v", err)
	}
	// Still running, in its place: another sync waits.
	b := request(context.Background(), s, "b", "r1", "b")
	waitQueued(t, s, 1)
	f.idle(t)
	retry := request(context.Background(), s, "a", "r1", "a")
	waitQueued(t, s, 2)
	f.results["a"] <- &Error{File: "a", Reason: "rendering used more than 1s of CPU", Err: ErrTooLarge}
	if p := f.next(t); p != "b" {
		t.Fatalf("started %s, want b", p)
	}
	f.results["b"] <- nil
	if err := result(t, b); err != nil {
		t.Fatal(err)
	}
	if err := result(t, retry); !errors.Is(err, ErrFailedBefore) {
		t.Fatalf("the retry of the revision that failed while overrunning: %v", err)
	}
	f.idle(t)

	// Another revision of the same sync kills the overrunning render.
	deadline2, stop2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop2()
	a2 := request(deadline2, s, "a", "r2", "a")
	f.next(t)
	if err := result(t, a2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	a3 := request(context.Background(), s, "a", "r3", "a")
	if p := f.next(t); p != "a" {
		t.Fatalf("started %s", p)
	}
	f.results["a"] <- nil
	if err := result(t, a3); err != nil {
		t.Fatalf("the new revision: %v", err)
	}
	s.mu.Lock()
	left := len(s.overrun)
	s.mu.Unlock()
	if left != 0 {
		t.Errorf("%d overrunning renders left", left)
	}

	// A cancel kills the render, Overrun or not.
	cctx, cancel := context.WithCancel(context.Background())
	c := request(cctx, s, "b", "r2", "b")
	f.next(t)
	cancel()
	if err := result(t, c); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled render: %v", err)
	}

	// A stop after the deadline (shutdown, lost lease, the sync removed)
	// kills the overrunning render: its place comes back.
	stopCtx, stopIt := context.WithCancel(context.Background())
	deadline4, stop4 := context.WithTimeout(WithStop(stopCtx, stopCtx), 50*time.Millisecond)
	defer stop4()
	g := request(deadline4, s, "b", "r5", "b")
	f.next(t)
	if err := result(t, g); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	stopIt()
	h := request(context.Background(), s, "a", "r5", "a")
	if p := f.next(t); p != "a" {
		t.Fatalf("started %s", p)
	}
	f.results["a"] <- nil
	if err := result(t, h); err != nil {
		t.Fatal(err)
	}

	// Overrun bounds a render that never ends: its place comes back.
	s.Overrun = 50 * time.Millisecond
	deadline3, stop3 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop3()
	d := request(deadline3, s, "b", "r3", "b")
	f.next(t)
	if err := result(t, d); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	e := request(context.Background(), s, "a", "r4", "a")
	if p := f.next(t); p != "a" {
		t.Fatalf("started %s", p)
	}
	f.results["a"] <- nil
	if err := result(t, e); err != nil {
		t.Fatal(err)
	}
}
