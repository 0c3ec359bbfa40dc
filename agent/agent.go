// Package agent is `tether run`: it loads the configuration, runs every
// sync in its own loop (interval with jitter, backoff on failure, one
// pending-trigger slot), hot-reloads the configuration, holds a leader lease
// so two replicas never apply at once, receives webhooks and serves health,
// status and metrics.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	gosync "sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/inventory"
	"github.com/tether-gitops/tether/kube"
	"github.com/tether-gitops/tether/live"
	"github.com/tether-gitops/tether/metrics"
	tsync "github.com/tether-gitops/tether/sync"
	"github.com/tether-gitops/tether/webhook"
)

// Options configure an Agent.
type Options struct {
	// ConfigPath is the configuration file; its folder is watched.
	ConfigPath string
	// ConfigLimits are the settings every version of the file is checked
	// against (the render CPU limit its timeouts must leave room for).
	ConfigLimits config.Limits
	// DataDir holds the checkouts, one folder per sync.
	DataDir string
	// Namespace is the agent's namespace: the leader lease lives there.
	Namespace string
	// Identity names this process in leader election.
	Identity string
	// LeaderElect turns leader election on; off, this process always runs
	// the syncs.
	LeaderElect bool
	// LeaseName names the Lease; default "tether".
	LeaseName string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election;
	// defaults 15s, 10s, 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// DeleteGrace is how long a sync with deleteOnRemove must stay removed
	// from the configuration before its objects are deleted; default 30s.
	// A revert within the grace period deletes nothing.
	DeleteGrace time.Duration
	// Concurrency bounds parallel API requests per sync.
	Concurrency int
	// Version is reported in /status.
	Version string
	// Render renders revisions; nil renders in this process (see
	// sync.Syncer.WithRenderer).
	Render tsync.Renderer
	// Getenv reads credentials named in the configuration.
	Getenv func(string) string
}

// Agent runs the configured syncs.
type Agent struct {
	opts    Options
	clients *kube.Clients
	syncer  reconciler
	live    liveState
	sources *sources
	metrics *metrics.Metrics
	log     *slog.Logger
	hooks   *webhook.Receiver
	images  *imageAutomation
	events  record.EventRecorder
	stopEv  func()

	// invNamespace holds the inventories. It is set from the first
	// configuration and never changes: a new configuration that moves it
	// is rejected, since the syncs would lose track of what they own.
	invNamespace string

	leading  atomic.Bool
	stopping atomic.Bool
	// leadMu is held for a whole term of leadership, so a new term (or the
	// release of the lease) waits until every sync of the previous one has
	// stopped.
	leadMu gosync.Mutex

	mu          gosync.Mutex
	cfg         *config.Config
	cfgLoadedAt time.Time
	cfgErr      string
	runners     map[string]*runner
	leadCtx     context.Context
	leadCancel  context.CancelFunc
	deletions   map[string]*deletion
	clusterOK   time.Time

	secretMu   gosync.Mutex
	secretErrs map[string]string
}

// reconciler is what the agent needs from package sync (a *sync.Syncer):
// one reconcile; the cheap check of whether anything a reconcile observed
// has changed since (when the watch cache cannot tell), which hands back
// what it read for fresh health; and putting drifted objects back (each
// change's Err says whether it was).
type reconciler interface {
	Reconcile(ctx context.Context, opts tsync.Options, in tsync.Input) (*tsync.Result, error)
	Drifted(ctx context.Context, opts tsync.Options, observed map[object.ObjMetadata]string) (bool, map[object.ObjMetadata]*unstructured.Unstructured, error)
	Correct(ctx context.Context, opts tsync.Options, changes []*tsync.Change) (int64, error)
}

// deletion is a pending deleteOnRemove of a sync.
type deletion struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds an agent. It does not start anything.
func New(opts Options, clients *kube.Clients, m *metrics.Metrics, log *slog.Logger) *Agent {
	if opts.LeaseName == "" {
		opts.LeaseName = "tether"
	}
	if opts.LeaseDuration <= 0 {
		opts.LeaseDuration = 15 * time.Second
	}
	if opts.RenewDeadline <= 0 {
		opts.RenewDeadline = 10 * time.Second
	}
	if opts.RetryPeriod <= 0 {
		opts.RetryPeriod = 2 * time.Second
	}
	if opts.DeleteGrace <= 0 {
		opts.DeleteGrace = 30 * time.Second
	}
	if opts.Getenv == nil {
		opts.Getenv = func(string) string { return "" }
	}
	a := &Agent{
		opts:      opts,
		clients:   clients,
		metrics:   m,
		log:       log,
		runners:   map[string]*runner{},
		deletions: map[string]*deletion{},
	}
	syncer := tsync.New(clients, log)
	if opts.Render != nil {
		syncer.WithRenderer(opts.Render)
	}
	a.syncer = syncer
	a.live = live.New(clients.Dynamic, log)
	a.sources = newSources(opts.DataDir)
	clients.Requests.Observe(m.APIRequest)
	a.images = newImageAutomation(a)
	a.hooks = webhook.New(webhook.Options{Trigger: a.Trigger, TriggerImages: a.images.notify, Logger: log})
	a.events, a.stopEv = newRecorder(clients, log)
	return a
}

// Run loads the configuration and runs until ctx ends: as the leader, or as
// a standby waiting for the lease. A configuration that cannot be loaded at
// start is an error; later bad versions are rejected and the running one
// stays.
//
// On shutdown the syncs stop first (their current reconcile is aborted
// through its context) and only then is the lease released, so a standby
// never takes over while this process may still write.
func (a *Agent) Run(ctx context.Context) error {
	defer a.stopEv()
	cfg, err := config.LoadWith(a.opts.ConfigPath, a.opts.ConfigLimits)
	a.metrics.ConfigReload(err == nil)
	if err != nil {
		return err
	}
	a.invNamespace = cfg.Defaults.InventoryNamespace
	a.setConfig(cfg)
	go a.watchConfig(ctx)
	if !a.opts.LeaderElect {
		a.lead(ctx)
		a.waitDeletions()
		return nil
	}
	// The elector gets a context of its own, cancelled only after every
	// sync has stopped.
	electCtx, cancelElect := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelElect()
	go func() {
		<-ctx.Done()
		a.stopping.Store(true)
		a.mu.Lock()
		if a.leadCancel != nil {
			a.leadCancel()
		}
		a.mu.Unlock()
		a.leadMu.Lock() // the current term, if any, has ended
		a.leadMu.Unlock()
		a.waitDeletions()
		cancelElect()
	}()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: a.opts.LeaseName, Namespace: a.opts.Namespace},
		Client:     a.clients.Typed.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: a.opts.Identity},
	}
	for electCtx.Err() == nil {
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   a.opts.LeaseDuration,
			RenewDeadline:   a.opts.RenewDeadline,
			RetryPeriod:     a.opts.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            a.opts.LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					a.log.Info("leading", "identity", a.opts.Identity, "lease", a.opts.Namespace+"/"+a.opts.LeaseName)
					a.lead(lctx)
				},
				OnStoppedLeading: func() {
					a.log.Info("not leading", "identity", a.opts.Identity)
				},
				OnNewLeader: func(id string) {
					if id != a.opts.Identity {
						a.log.Info("standing by", "leader", id)
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		// Run returns once the lease is lost (its context, and so every
		// sync's, is cancelled then) or electCtx ends. lead holds leadMu
		// until its syncs have stopped, so a new term cannot overlap the
		// old one.
		elector.Run(electCtx)
		a.leadMu.Lock()
		a.leadMu.Unlock()
		if electCtx.Err() == nil {
			select {
			case <-electCtx.Done():
			case <-time.After(a.opts.RetryPeriod):
			}
		}
	}
	return nil
}

// lead runs the syncs until ctx ends or the agent stops, then stops them
// and waits.
func (a *Agent) lead(parent context.Context) {
	a.leadMu.Lock()
	defer a.leadMu.Unlock()
	if parent.Err() != nil || a.stopping.Load() {
		return
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	a.leading.Store(true)
	a.metrics.SetLeader(true)
	a.mu.Lock()
	a.leadCtx, a.leadCancel = ctx, cancel
	stop := a.reconcileRunners()
	a.mu.Unlock()
	stopAll(stop)
	stopImages := a.images.lead(ctx)
	<-ctx.Done()
	stopImages()
	a.mu.Lock()
	a.leadCtx, a.leadCancel = nil, nil
	runners := make([]*runner, 0, len(a.runners))
	for name, r := range a.runners {
		runners = append(runners, r)
		delete(a.runners, name)
	}
	a.mu.Unlock()
	stopAll(runners)
	// A former leader must not keep exporting the state of syncs it no
	// longer runs: alerts aggregate across replicas.
	for _, r := range runners {
		a.metrics.Forget(r.cfg.Name)
	}
	a.leading.Store(false)
	a.metrics.SetLeader(false)
}

func stopAll(runners []*runner) {
	var wg gosync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() { defer wg.Done(); r.stop() }()
	}
	wg.Wait()
}

// reconcileRunners makes the running syncs match the configuration: new
// syncs start, changed ones restart, removed ones stop (and, if they asked
// for it, have their objects deleted after a grace period). Called with
// a.mu held; it returns the runners to stop, which the caller stops after
// releasing a.mu (a stopping runner may need the lock to finish).
func (a *Agent) reconcileRunners() (stop []*runner) {
	if a.leadCtx == nil {
		return nil
	}
	want := map[string]config.Sync{}
	for _, s := range a.cfg.Syncs {
		want[s.Name] = s
	}
	for name, r := range a.runners {
		s, ok := want[name]
		if ok && s.Equal(r.cfg) {
			continue
		}
		r.cancel()
		stop = append(stop, r)
		delete(a.runners, name)
		a.metrics.Forget(name)
		if !ok {
			a.log.Info("sync removed", "sync", name, "deleteObjects", r.cfg.DeleteOnRemove)
			if r.cfg.DeleteOnRemove {
				a.scheduleDeletion(r)
			}
		} else {
			a.log.Info("sync changed; restarting", "sync", name)
		}
	}
	for _, s := range a.cfg.Syncs {
		if _, ok := a.runners[s.Name]; ok {
			continue
		}
		if d, ok := a.deletions[s.Name]; ok {
			// Added back within the grace period (a revert): cancel the
			// deletion; the new runner waits for it to let go.
			d.cancel()
		}
		r, err := newRunner(a, s)
		if err != nil {
			a.log.Error("cannot start sync", "sync", s.Name, "error", err)
			continue
		}
		a.runners[s.Name] = r
		var wait <-chan struct{}
		if d, ok := a.deletions[s.Name]; ok {
			wait = d.done
		}
		r.start(a.leadCtx, wait)
		a.log.Info("sync started", "sync", s.Name, "source", r.status.Source, "path", s.Path, "interval", s.Source.Interval)
	}
	return stop
}

// scheduleDeletion deletes the objects of a removed sync once it has
// stayed removed for the grace period and its runner has stopped. Called
// with a.mu held.
func (a *Agent) scheduleDeletion(r *runner) {
	ctx, cancel := context.WithCancel(a.leadCtx)
	d := &deletion{cancel: cancel, done: make(chan struct{})}
	a.deletions[r.cfg.Name] = d
	go func() {
		defer close(d.done)
		defer func() {
			a.mu.Lock()
			if a.deletions[r.cfg.Name] == d {
				delete(a.deletions, r.cfg.Name)
			}
			a.mu.Unlock()
		}()
		<-r.done
		select {
		case <-ctx.Done():
			a.log.Info("deletion of a removed sync cancelled", "sync", r.cfg.Name)
			return
		case <-time.After(a.opts.DeleteGrace):
		}
		a.deleteSync(ctx, r.cfg)
	}()
}

// waitDeletions waits for deletions in progress (they stop with the
// leadership's context).
func (a *Agent) waitDeletions() {
	a.mu.Lock()
	pending := make([]*deletion, 0, len(a.deletions))
	for _, d := range a.deletions {
		pending = append(pending, d)
	}
	a.mu.Unlock()
	for _, d := range pending {
		d.cancel()
		<-d.done
	}
}

// deleteSync deletes the objects of a sync removed from the configuration
// (deleteOnRemove), then its inventory and its checkouts: a reconcile of an
// empty revision that is allowed to prune everything (protected kinds stay
// protected unless the sync allowed them).
func (a *Agent) deleteSync(ctx context.Context, s config.Sync) {
	empty, err := os.MkdirTemp("", "tether-empty-")
	if err != nil {
		a.log.Error("deleting removed sync", "sync", s.Name, "error", err)
		return
	}
	defer os.RemoveAll(empty)
	opts := s.SyncOptions(a.invNamespace)
	opts.Prune, opts.AllowEmpty, opts.Wait = true, true, false
	opts.DeleteBudget = tsync.Budget{Unlimited: true}
	opts.Concurrency = a.opts.Concurrency
	res, err := a.syncer.Reconcile(ctx, opts, tsync.Input{Root: empty, Path: ".", Revision: "deleted"})
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		a.log.Error("deleting the objects of a removed sync failed", "sync", s.Name, "error", err)
		a.event(s, eventWarning, reasonFailed, "deleting the objects of the removed sync failed: %v", err)
		return
	}
	kept := 0
	for _, p := range res.Pruned {
		if p.Action != tsync.ActionPrune {
			kept++
		}
	}
	if kept == 0 {
		if err := inventory.NewStore(a.clients.Typed.CoreV1(), a.invNamespace).Delete(ctx, s.Name); err != nil {
			a.log.Error("deleting the inventory of a removed sync", "sync", s.Name, "error", err)
		}
	}
	_ = os.RemoveAll(filepath.Join(a.opts.DataDir, s.Name))
	a.log.Info("deleted the objects of a removed sync", "sync", s.Name, "deleted", len(res.Pruned)-kept, "leftInPlace", kept)
	a.event(s, eventNormal, reasonPruned, "the sync was removed from the configuration: deleted %d objects, left %d in place", len(res.Pruned)-kept, kept)
}

// Trigger asks a sync to reconcile now (webhooks); unknown names and
// standbys ignore it.
func (a *Agent) Trigger(sync string) {
	a.mu.Lock()
	r := a.runners[sync]
	a.mu.Unlock()
	if r != nil {
		r.poke()
	}
}

// Leading reports whether this process runs the syncs.
func (a *Agent) Leading() bool { return a.leading.Load() }

// Status is a snapshot of the agent and its syncs.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{
		Identity:       a.opts.Identity,
		Leader:         a.leading.Load(),
		Version:        a.opts.Version,
		ConfigFile:     a.opts.ConfigPath,
		ConfigError:    a.cfgErr,
		ConfigLoadedAt: a.cfgLoadedAt,
	}
	if a.cfg == nil {
		return st
	}
	st.InventoryNamespace = a.invNamespace
	st.Images = a.images.status()
	for _, s := range a.cfg.Syncs {
		if r, ok := a.runners[s.Name]; ok {
			st.Syncs = append(st.Syncs, r.snapshot())
			continue
		}
		st.Syncs = append(st.Syncs, SyncStatus{Name: s.Name, Path: s.Path, Suspended: s.Suspend})
	}
	slices.SortFunc(st.Syncs, func(x, y SyncStatus) int {
		switch {
		case x.Name < y.Name:
			return -1
		case x.Name > y.Name:
			return 1
		}
		return 0
	})
	return st
}
