package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	gosync "sync"
	"time"

	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/metrics"
	"github.com/tether-gitops/tether/render"
	"github.com/tether-gitops/tether/source"
	tsync "github.com/tether-gitops/tether/sync"
)

// Retry timing after failures: the first retry after backoffBase (or the
// interval, when shorter), doubling up to backoffMax.
const (
	backoffBase = 5 * time.Second
	backoffMax  = 5 * time.Minute
	jitter      = 0.1
)

// fetcher is what a runner needs from its source.
type fetcher interface {
	Fetch(ctx context.Context) (*source.Artifact, error)
}

// runner runs one sync: fetch, reconcile, wait for the interval or a
// trigger, repeat.
type runner struct {
	a   *Agent
	cfg config.Sync
	src fetcher
	// release lets go of a shared source when the runner stops (nil for
	// a source of its own).
	release func()
	// trigger is the sync's one pending-trigger slot: a burst of webhooks
	// or file changes causes one reconcile, not a queue of them.
	trigger chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}

	mu     gosync.Mutex
	status SyncStatus

	// live follows the sync's objects through the agent's cache (live.go).
	live liveRunner

	// Touched only by the loop goroutine.
	lastApplied string
	observed    map[object.ObjMetadata]string
	prevStats   source.Stats
	failures    int
}

func newRunner(a *Agent, cfg config.Sync) (*runner, error) {
	r := &runner{a: a, cfg: cfg, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
	dir := filepath.Join(a.opts.DataDir, cfg.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sync %s: data folder: %w", cfg.Name, err)
	}
	log := a.log.With("sync", cfg.Name)
	if cfg.Source.IsGit() {
		shared, err := a.sources.acquire(cfg.Source, func(dir string) (*source.Git, error) {
			opts := cfg.Source.GitOptions(dir)
			opts.Getenv, opts.Logger = a.opts.Getenv, a.log.With("source", source.Redact(cfg.Source.URL), "ref", cfg.Source.Ref.String())
			// Several syncs may render one checkout while newer ones are
			// published (a render waits its turn behind others): keep a
			// few more than the current and the previous one.
			opts.KeepCheckouts = sharedCheckouts
			return source.NewGit(opts)
		})
		if err != nil {
			return nil, fmt.Errorf("sync %s: %w", cfg.Name, err)
		}
		r.src, r.release = shared, func() { shared.release(r) }
		r.status.Source = source.Redact(cfg.Source.URL)
		r.status.Ref = cfg.Source.Ref.String()
	} else {
		opts := cfg.Source.LocalOptions(dir)
		opts.Logger = log
		local, err := source.NewLocal(opts)
		if err != nil {
			return nil, fmt.Errorf("sync %s: %w", cfg.Name, err)
		}
		r.src = local
		r.status.Source = cfg.Source.LocalPath
	}
	r.status.Name = cfg.Name
	r.status.Path = cfg.Path
	r.status.Suspended = cfg.Suspend
	return r, nil
}

// start runs the loop until ctx ends or stop is called. When wait is not
// nil the loop first waits for it to close (a pending deletion of a sync by
// the same name letting go).
func (r *runner) start(ctx context.Context, wait <-chan struct{}) {
	ctx, r.cancel = context.WithCancel(ctx)
	if local, ok := r.src.(*source.Local); ok && !r.cfg.Suspend {
		go func() {
			if err := local.Watch(ctx, r.trigger); err != nil && ctx.Err() == nil {
				r.a.log.Error("watching the folder failed; polling only", "sync", r.cfg.Name, "error", err)
			}
		}()
	}
	go func() {
		defer close(r.done)
		if wait != nil {
			select {
			case <-wait:
			case <-ctx.Done():
				return
			}
		}
		r.loop(ctx)
	}()
}

// stop ends the loop and waits for it: the current reconcile is aborted
// through its context.
func (r *runner) stop() {
	r.cancel()
	<-r.done
	r.a.live.Forget(r.cfg.Name, r)
	if r.live.wake != nil {
		r.live.wake.Stop()
	}
	if r.release != nil {
		r.release()
	}
}

// poke asks for a reconcile now; it never blocks.
func (r *runner) poke() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

func (r *runner) loop(ctx context.Context) {
	if r.cfg.Suspend {
		<-ctx.Done()
		return
	}
	interval := r.cfg.Source.Interval
	for {
		err := r.reconcile(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.failures++
		} else {
			r.failures = 0
		}
		wait := nextWait(r.failures, interval, rand.Float64())
		r.update(func(s *SyncStatus) {
			s.ConsecutiveFailures = r.failures
			s.NextAttempt = time.Now().Add(wait)
		})
		timer := time.NewTimer(wait)
	waiting:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-r.trigger:
				timer.Stop()
				break waiting
			case <-timer.C:
				break waiting
			case <-r.live.ch:
				// Objects changed in the cluster: health and drift, no
				// fetch; the interval keeps running.
				r.checkLive(ctx)
			}
		}
	}
}

// reconcile fetches and, unless the revision is the one applied and
// nothing drifted, runs one reconcile. When parent ends (shutdown, lost
// lease, configuration change) the reconcile is aborted and not counted as
// a failure of the sync.
func (r *runner) reconcile(parent context.Context) error {
	started := time.Now()
	// A render that outlasts the timeout goes on to its limits unless
	// parent ends (render.Scheduler.Overrun).
	ctx, cancel := context.WithTimeout(render.WithStop(parent, parent), r.cfg.Timeout)
	defer cancel()
	log := r.a.log.With("sync", r.cfg.Name)
	art, err := r.src.Fetch(ctx)
	r.gitStats()
	if err != nil {
		if parent.Err() != nil {
			return parent.Err()
		}
		log.Error("fetch failed", "error", err)
		r.a.metrics.FetchFailed(r.cfg.Name, time.Since(started))
		r.a.event(r.cfg, eventWarning, reasonFailed, "fetch failed: %v", err)
		r.record(started, &Attempt{Outcome: metrics.OutcomeFailure, Phase: "fetch", Error: err.Error()})
		return err
	}
	r.update(func(s *SyncStatus) {
		if s.Fetched == nil || s.Fetched.Revision != art.Revision {
			s.Fetched = &RevisionStatus{Revision: art.Revision, Commit: commitOf(art), At: time.Now()}
		}
	})
	opts := r.syncOptions()
	foundBy := foundByReconcile
	if art.Revision == r.lastApplied {
		// The revision is the one applied: nothing to do unless the
		// cluster changed. The watch cache knows without asking (drift
		// was handled as it happened); without it, one LIST per resource
		// and namespace compares what the last reconcile observed, and
		// what it read gives fresh health.
		skip := false
		ok, why := r.cacheCanSkip()
		r.noteLive()
		if ok {
			skip = true
			r.checkLive(ctx)
		} else if r.observed != nil {
			r.a.log.Debug("polling for drift", "sync", r.cfg.Name, "reason", why)
			foundBy = foundByPolling
			drifted, read, err := r.a.syncer.Drifted(ctx, opts, r.observed)
			skip = err == nil && !drifted
			if skip {
				r.pollHealth(read)
			}
		}
		if skip {
			r.a.metrics.Skipped(r.cfg.Name, time.Since(started))
			r.record(started, &Attempt{Outcome: metrics.OutcomeSkipped, Revision: art.Revision})
			return nil
		}
	}
	opts.KeepDrifted = r.keepDrifted()
	res, err := r.a.syncer.Reconcile(ctx, opts, tsync.Input{Root: art.Dir, Path: r.cfg.Path, Revision: art.Revision})
	if parent.Err() != nil {
		// Stopped (shutdown, lost lease, configuration change): not a
		// failure of the sync.
		r.observed = nil
		return parent.Err()
	}
	drifted := 0
	if art.Revision == r.lastApplied {
		drifted = r.reconciledDrift(res, foundBy)
	}
	commit := ""
	if c := commitOf(art); c != nil {
		commit = c.Hash
	}
	r.a.metrics.Reconcile(r.cfg.Name, res, err, commit, res.Owned)
	attempt := &Attempt{Outcome: metrics.OutcomeSuccess, Revision: art.Revision, Counts: countsOf(res), Writes: res.Writes, Phases: phasesOf(res)}
	if err != nil {
		attempt.Outcome, attempt.Phase, attempt.Error = metrics.OutcomeFailure, res.Phase, err.Error()
		r.observed = nil
		r.rebaseFailed(res)
		log.Error("reconcile failed", "revision", art.Revision, "phase", res.Phase, "error", err)
		var guard *tsync.GuardError
		if errors.As(err, &guard) {
			r.a.event(r.cfg, eventWarning, reasonGuard, "%s at %s: %v", guard.Reason, art.Revision, guard.Err)
		} else {
			r.a.event(r.cfg, eventWarning, reasonFailed, "%s failed at %s: %v", res.Phase, art.Revision, err)
		}
	} else {
		if art.Revision != r.lastApplied || res.Changed() {
			log.Info("applied", "revision", art.Revision, "writes", res.Writes, "counts", attempt.Counts, "health", res.Status, "drifted", drifted)
			r.a.event(r.cfg, eventNormal, reasonApplied, "applied %s: %s; health %s", art.Revision, summary(res), res.Status)
		}
		if pruned := countPruned(res); pruned > 0 {
			r.a.event(r.cfg, eventNormal, reasonPruned, "pruned %d objects at %s", pruned, art.Revision)
		}
		r.lastApplied = art.Revision
		r.observed = res.Observed
		r.follow(res)
		r.update(func(s *SyncStatus) {
			s.Applied = &RevisionStatus{Revision: art.Revision, Commit: commitOf(art), At: time.Now()}
		})
	}
	r.a.images.applied(r.cfg, art.Revision, res) // images.go: the rollout gate
	r.update(func(s *SyncStatus) {
		if res.Health != nil {
			s.Health = res.Status
			s.Unhealthy = unhealthyOf(res)
		}
		s.Objects = len(res.Changes)
	})
	r.record(started, attempt)
	return err
}

// syncOptions are the sync's options for package sync.
func (r *runner) syncOptions() tsync.Options {
	opts := r.cfg.SyncOptions(r.a.invNamespace)
	opts.Concurrency = r.a.opts.Concurrency
	return opts
}

func (r *runner) record(started time.Time, a *Attempt) {
	a.At = started
	a.Duration = time.Since(started).Round(time.Millisecond).String()
	r.update(func(s *SyncStatus) {
		s.LastAttempt = a
		if a.Outcome != metrics.OutcomeSkipped {
			s.History = withAttempt(s.History, *a)
		}
	})
}

// gitStats reports the source's git counters under the sync's name. A
// source shared by several syncs is reported by one of them (the first
// to ask), so sums over syncs count each fetch once; the others keep their
// baseline current, so that one taking over later does not report the
// source's history again.
func (r *runner) gitStats() {
	g, ok := r.src.(interface{ Stats() source.Stats })
	if !ok {
		return
	}
	now := g.Stats()
	if sg, shared := r.src.(*sharedGit); !shared || sg.reports(r) {
		r.a.metrics.Git(r.cfg.Name, r.prevStats, now)
	}
	r.prevStats = now
}

func (r *runner) update(fn func(*SyncStatus)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(&r.status)
}

func (r *runner) snapshot() SyncStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	return s
}

func summary(res *tsync.Result) string {
	c := res.Counts()
	return fmt.Sprintf("%d created, %d updated, %d unchanged, %d pruned", c[tsync.ActionCreate]+c[tsync.ActionRecreate], c[tsync.ActionUpdate], c[tsync.ActionUnchanged], c[tsync.ActionPrune])
}

func countPruned(res *tsync.Result) int {
	n := 0
	for _, p := range res.Pruned {
		if p.Action == tsync.ActionPrune && p.Reason == "" {
			n++
		}
	}
	return n
}
