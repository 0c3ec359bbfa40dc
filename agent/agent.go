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
	"maps"
	"os"
	"slices"
	gosync "sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/inventory"
	"github.com/tether-gitops/tether/kube"
	"github.com/tether-gitops/tether/metrics"
	tsync "github.com/tether-gitops/tether/sync"
	"github.com/tether-gitops/tether/webhook"
)

// Options configure an Agent.
type Options struct {
	// ConfigPath is the configuration file; its folder is watched.
	ConfigPath string
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
	// Concurrency bounds parallel API requests per sync.
	Concurrency int
	// Version is reported in /status.
	Version string
	// Getenv reads credentials named in the configuration.
	Getenv func(string) string
}

// Agent runs the configured syncs.
type Agent struct {
	opts    Options
	clients *kube.Clients
	syncer  *tsync.Syncer
	metrics *metrics.Metrics
	log     *slog.Logger
	hooks   *webhook.Receiver
	events  record.EventRecorder
	stopEv  func()

	leading atomic.Bool
	// leadMu serialises lead: after a lost lease, the next term waits
	// until every sync of the previous one has stopped.
	leadMu gosync.Mutex

	mu          gosync.Mutex
	cfg         *config.Config
	cfgLoadedAt time.Time
	cfgErr      string
	runners     map[string]*runner
	leadCtx     context.Context
	clusterOK   time.Time
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
	if opts.Getenv == nil {
		opts.Getenv = func(string) string { return "" }
	}
	a := &Agent{
		opts:    opts,
		clients: clients,
		syncer:  tsync.New(clients, log),
		metrics: m,
		log:     log,
		runners: map[string]*runner{},
	}
	clients.Requests.Observe(m.APIRequest)
	a.hooks = webhook.New(webhook.Options{Trigger: a.Trigger, Logger: log})
	a.events, a.stopEv = newRecorder(clients, log)
	return a
}

// Run loads the configuration and runs until ctx ends: as the leader, or as
// a standby waiting for the lease. A configuration that cannot be loaded at
// start is an error; later bad versions are rejected and the running one
// stays.
func (a *Agent) Run(ctx context.Context) error {
	defer a.stopEv()
	cfg, err := config.Load(a.opts.ConfigPath)
	a.metrics.ConfigReload(err == nil)
	if err != nil {
		return err
	}
	a.setConfig(cfg)
	go a.watchConfig(ctx)
	if !a.opts.LeaderElect {
		a.lead(ctx)
		return nil
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: a.opts.LeaseName, Namespace: a.opts.Namespace},
		Client:     a.clients.Typed.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: a.opts.Identity},
	}
	for ctx.Err() == nil {
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
		// Run returns once the lease is lost (or ctx ended). Its context,
		// and so every sync's, is cancelled then; lead holds leadMu until
		// the syncs have stopped, so a new term cannot overlap the old.
		elector.Run(ctx)
		a.leadMu.Lock()
		a.leadMu.Unlock()
		if ctx.Err() == nil {
			time.Sleep(a.opts.RetryPeriod)
		}
	}
	return nil
}

// lead runs the syncs until ctx ends, then stops them and waits.
func (a *Agent) lead(ctx context.Context) {
	a.leadMu.Lock()
	defer a.leadMu.Unlock()
	if ctx.Err() != nil {
		return
	}
	a.leading.Store(true)
	a.metrics.SetLeader(true)
	a.mu.Lock()
	a.leadCtx = ctx
	a.reconcileRunners()
	a.mu.Unlock()
	<-ctx.Done()
	a.mu.Lock()
	a.leadCtx = nil
	runners := slices.Collect(maps.Values(a.runners))
	a.runners = map[string]*runner{}
	a.mu.Unlock()
	for _, r := range runners {
		r.stop()
	}
	a.leading.Store(false)
	a.metrics.SetLeader(false)
}

// reconcileRunners makes the running syncs match the configuration:
// new syncs start, changed ones restart, removed ones stop (and, if they
// asked for it, have their objects deleted). Called with a.mu held.
func (a *Agent) reconcileRunners() {
	if a.leadCtx == nil {
		return
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
		r.stop()
		delete(a.runners, name)
		a.metrics.Forget(name)
		if !ok {
			a.log.Info("sync removed", "sync", name, "deleteObjects", r.cfg.DeleteOnRemove)
			if r.cfg.DeleteOnRemove {
				go a.deleteSync(a.leadCtx, r.cfg)
			}
		} else {
			a.log.Info("sync changed; restarting", "sync", name)
		}
	}
	for _, s := range a.cfg.Syncs {
		if _, ok := a.runners[s.Name]; ok {
			continue
		}
		r, err := newRunner(a, s)
		if err != nil {
			a.log.Error("cannot start sync", "sync", s.Name, "error", err)
			continue
		}
		a.runners[s.Name] = r
		r.start(a.leadCtx)
		a.log.Info("sync started", "sync", s.Name, "source", r.status.Source, "path", s.Path, "interval", s.Source.Interval)
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
	opts := s.SyncOptions(a.inventoryNamespace())
	opts.Prune, opts.AllowEmpty, opts.Wait = true, true, false
	opts.DeleteBudget = tsync.Budget{Unlimited: true}
	res, err := a.syncer.Reconcile(ctx, opts, tsync.Input{Root: empty, Path: ".", Revision: "deleted"})
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
		if err := inventory.NewStore(a.clients.Typed.CoreV1(), a.inventoryNamespace()).Delete(ctx, s.Name); err != nil {
			a.log.Error("deleting the inventory of a removed sync", "sync", s.Name, "error", err)
		}
	}
	_ = os.RemoveAll(a.opts.DataDir + "/" + s.Name)
	a.log.Info("deleted the objects of a removed sync", "sync", s.Name, "deleted", len(res.Pruned)-kept, "leftInPlace", kept)
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

// Webhooks is the webhook receiver, to serve on its own port.
func (a *Agent) Webhooks() *webhook.Receiver { return a.hooks }

// Leading reports whether this process runs the syncs.
func (a *Agent) Leading() bool { return a.leading.Load() }

func (a *Agent) inventoryNamespace() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cfg != nil && a.cfg.Defaults.InventoryNamespace != "" {
		return a.cfg.Defaults.InventoryNamespace
	}
	return "tether-system"
}

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
