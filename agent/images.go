package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/images"
	"github.com/tether-gitops/tether/metrics"
	"github.com/tether-gitops/tether/source"
	tsync "github.com/tether-gitops/tether/sync"
	"github.com/tether-gitops/tether/webhook"
)

// Event reasons of image automation, on the sync's inventory ConfigMap.
const (
	reasonImagesUpdated      = "ImagesUpdated"
	reasonImageUpdateFailed  = "ImageUpdateFailed"
	reasonImageHeld          = "ImageHeld"
	reasonImageRolledOut     = "ImageRolledOut"
	reasonImageRolloutFailed = "ImageRolloutFailed"
	// reasonImageRolledBack: a round wrote back the last good tag after
	// the tag tether wrote failed its rollout.
	reasonImageRolledBack = "ImageRolledBack"
	// reasonImageRolloutUnknown: the gate could not read the workload.
	reasonImageRolloutUnknown = "ImageRolloutUnknown"
)

// Timing of image automation.
const (
	// scanBackoffBase and scanBackoffMax space scans after failures.
	scanBackoffBase = 10 * time.Second
	scanBackoffMax  = 10 * time.Minute
	// writeBackBackoffBase and writeBackBackoffMax space write-back
	// rounds after failures (a refused push is not retried in a loop).
	writeBackBackoffBase = 15 * time.Second
	writeBackBackoffMax  = 10 * time.Minute
	// writeBackResync runs a round now and then without a trigger (a
	// released hold, a marker added by hand).
	writeBackResync = 5 * time.Minute
	// triggeredScanSpacing is the least time between two scans of a
	// policy, however many notifications arrive.
	triggeredScanSpacing = 2 * time.Second
	// rolloutPoll is how often the gate reads a workload it follows.
	rolloutPoll = 2 * time.Second
	// keepTags is how many of the best tags a scan keeps: enough to skip
	// every tag a sync may remember as failed.
	keepTags = images.MaxFailedTags + 1
)

// imageAutomation is the agent's image side: a scan loop per policy, a
// write-back loop per sync with imageUpdates, and the rollout gate
// following workloads after a reconcile changed their image. It runs
// while this process leads, like the syncs.
type imageAutomation struct {
	a       *Agent
	scanner *images.Scanner
	log     *slog.Logger

	mu       gosync.Mutex
	cfg      *config.Config
	ctx      context.Context // the term of leadership; nil when not leading
	wg       gosync.WaitGroup
	scans    map[string]*scanLoop
	updaters map[string]*updater
	follows  map[string]bool
	syncs    map[string]*imageSyncState
}

// scanLoop scans one policy's repository.
type scanLoop struct {
	pol     config.ImagePolicy
	reg     config.Registry
	trigger chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}

	mu      gosync.Mutex
	scanned bool
	best    []string
	status  ImagePolicyStatus
}

// updater runs the write-back rounds of one sync.
type updater struct {
	cfg     config.Sync
	wb      *images.WriteBack
	trigger chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

// imageSyncState is what the status shows of one sync.
type imageSyncState struct {
	round   *ImageWriteBackStatus
	plans   map[string]*images.PolicyPlan
	records *images.Records
}

func newImageAutomation(a *Agent) *imageAutomation {
	return &imageAutomation{
		a:        a,
		scanner:  images.NewScanner(a.log),
		log:      a.log,
		scans:    map[string]*scanLoop{},
		updaters: map[string]*updater{},
		follows:  map[string]bool{},
		syncs:    map[string]*imageSyncState{},
	}
}

// lead starts the loops for the term of leadership ctx, resumes the
// rollouts a previous leader was following, and returns a function that
// stops everything and waits for it.
func (ia *imageAutomation) lead(ctx context.Context) (stop func()) {
	if ia == nil {
		return func() {}
	}
	ia.mu.Lock()
	ia.ctx = ctx
	stopping := ia.reconcileLoops()
	cfg := ia.cfg
	ia.mu.Unlock()
	stopLoops(stopping)
	ia.resume(ctx, cfg)
	return func() {
		ia.mu.Lock()
		ia.ctx = nil
		var loops []stopper
		for name, l := range ia.scans {
			loops = append(loops, l)
			delete(ia.scans, name)
			ia.a.metrics.ForgetImagePolicy(name)
		}
		for name, u := range ia.updaters {
			loops = append(loops, u)
			delete(ia.updaters, name)
			ia.a.metrics.ForgetImageSync(name)
		}
		ia.mu.Unlock()
		stopLoops(loops)
		ia.wg.Wait() // followers
	}
}

// setConfig installs a configuration; when leading, loops whose settings
// changed restart.
func (ia *imageAutomation) setConfig(cfg *config.Config) {
	if ia == nil {
		return
	}
	ia.mu.Lock()
	ia.cfg = cfg
	stopping := ia.reconcileLoops()
	ia.mu.Unlock()
	stopLoops(stopping)
}

type stopper interface{ stopAndWait() }

func stopLoops(loops []stopper) {
	for _, l := range loops {
		l.stopAndWait()
	}
}

func (l *scanLoop) stopAndWait() { l.cancel(); <-l.done }
func (u *updater) stopAndWait()  { u.cancel(); <-u.done }

// reconcileLoops makes the running loops match the configuration. Called
// with ia.mu held; returns the loops to stop once it is released.
func (ia *imageAutomation) reconcileLoops() (stopping []stopper) {
	if ia.ctx == nil || ia.cfg == nil {
		return nil
	}
	wantPolicies := map[string]config.ImagePolicy{}
	for _, p := range ia.cfg.ImagePolicies {
		wantPolicies[p.Policy.Name] = p
	}
	for name, l := range ia.scans {
		p, ok := wantPolicies[name]
		if ok && p.Equal(l.pol) && ia.cfg.Registry(config.RegistryHost(p.Policy.Image)) == l.reg {
			continue
		}
		l.cancel()
		stopping = append(stopping, l)
		delete(ia.scans, name)
		ia.a.metrics.ForgetImagePolicy(name)
	}
	for _, p := range ia.cfg.ImagePolicies {
		if _, ok := ia.scans[p.Policy.Name]; ok {
			continue
		}
		l := &scanLoop{pol: p, reg: ia.cfg.Registry(config.RegistryHost(p.Policy.Image)), trigger: make(chan struct{}, 1), done: make(chan struct{})}
		l.status = ImagePolicyStatus{Name: p.Policy.Name, Image: p.Policy.Image, Policy: describePolicy(p), Interval: p.Interval.String()}
		var ctx context.Context
		ctx, l.cancel = context.WithCancel(ia.ctx)
		ia.scans[p.Policy.Name] = l
		go func() { defer close(l.done); ia.scanLoop(ctx, l) }()
	}
	wantSyncs := map[string]config.Sync{}
	for _, s := range ia.cfg.Syncs {
		if s.ImageUpdates.Enabled && !s.Suspend && s.Source.IsGit() {
			wantSyncs[s.Name] = s
		}
	}
	for name, u := range ia.updaters {
		if s, ok := wantSyncs[name]; ok && s.Equal(u.cfg) {
			continue
		}
		u.cancel()
		stopping = append(stopping, u)
		delete(ia.updaters, name)
		ia.a.metrics.ForgetImageSync(name)
	}
	for _, s := range ia.cfg.Syncs {
		if _, ok := wantSyncs[s.Name]; !ok {
			continue
		}
		if _, ok := ia.updaters[s.Name]; ok {
			continue
		}
		u, err := ia.newUpdater(s)
		if err != nil {
			ia.log.Error("image updates of this sync cannot start", "sync", s.Name, "error", err)
			ia.state(s.Name).round = &ImageWriteBackStatus{At: time.Now(), Error: err.Error()}
			continue
		}
		var ctx context.Context
		ctx, u.cancel = context.WithCancel(ia.ctx)
		ia.updaters[s.Name] = u
		go func() { defer close(u.done); ia.updateLoop(ctx, u) }()
	}
	return stopping
}

// newUpdater prepares a sync's write-back: its own git source (work
// folder DataDir/<sync>/images) with the sync's credentials.
func (ia *imageAutomation) newUpdater(s config.Sync) (*updater, error) {
	dir := filepath.Join(ia.a.opts.DataDir, s.Name, "images")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	opts := s.Source.GitOptions(dir)
	opts.Getenv, opts.Logger = ia.a.opts.Getenv, ia.log.With("sync", s.Name, "component", "image-updates")
	git, err := source.NewGit(opts)
	if err != nil {
		return nil, err
	}
	tmpl, err := images.ParseMessageTemplate(s.ImageUpdates.MessageTemplate)
	if err != nil {
		return nil, err
	}
	wb := &images.WriteBack{
		Sync: s.Name, Remote: git, Branch: s.Source.Ref.Branch, PushBranch: s.ImageUpdates.Branch,
		Path: s.ImageUpdates.Path, AuthorName: s.ImageUpdates.AuthorName, AuthorEmail: s.ImageUpdates.AuthorEmail, Message: tmpl,
	}
	if wb.Branch == "" {
		wb.Branch = s.ImageUpdates.Branch
	}
	return &updater{cfg: s, wb: wb, trigger: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// state returns the status state of a sync. Called with ia.mu held.
func (ia *imageAutomation) state(sync string) *imageSyncState {
	st := ia.syncs[sync]
	if st == nil {
		st = &imageSyncState{plans: map[string]*images.PolicyPlan{}}
		ia.syncs[sync] = st
	}
	return st
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// pokeUpdaters asks every write-back loop for a round.
func (ia *imageAutomation) pokeUpdaters() {
	ia.mu.Lock()
	defer ia.mu.Unlock()
	for _, u := range ia.updaters {
		poke(u.trigger)
	}
}

// notify triggers a scan of the policies that follow host/repository
// (a registry notification) and returns their names.
func (ia *imageAutomation) notify(host, repository string) []string {
	ia.mu.Lock()
	defer ia.mu.Unlock()
	var names []string
	// Both sides in go-containerregistry's canonical form: Docker Hub's
	// official images are library/NAME whichever way they are written.
	if r, err := name.NewRepository(host + "/" + repository); err == nil {
		repository = r.RepositoryStr()
	}
	for policy, l := range ia.scans {
		r, err := name.NewRepository(l.pol.Policy.Image)
		if err != nil || r.RegistryStr() != host || r.RepositoryStr() != repository {
			continue
		}
		poke(l.trigger)
		names = append(names, policy)
	}
	return names
}

// registryTargets reads the registries' notification secrets.
func (ia *imageAutomation) registryTargets(cfg *config.Config) []webhook.RegistryTarget {
	if ia == nil || cfg == nil {
		return nil
	}
	var out []webhook.RegistryTarget
	for _, r := range cfg.Registries {
		if r.NotificationSecretFile == "" {
			continue
		}
		b, err := source.ReadRegularFile(r.NotificationSecretFile, source.MaxCredentialFile)
		secret := strings.TrimRight(string(b), "\r\n")
		if err == nil && secret == "" {
			err = errors.New("the file is empty")
		}
		if err != nil {
			if ia.a.secretProblem("registry "+r.Host, err.Error()) {
				ia.log.Error("registry notification secret unreadable; notifications from this registry are refused", "registry", r.Host, "error", err)
			}
			continue
		}
		ia.a.secretProblem("registry "+r.Host, "")
		out = append(out, webhook.RegistryTarget{Host: r.Host, Secret: []byte(secret)})
	}
	return out
}

// scanLoop scans a policy's repository on its interval (with jitter), at
// once on a notification, and after failures with backoff; a registry that
// answered 429 is not asked again before the time it named.
func (ia *imageAutomation) scanLoop(ctx context.Context, l *scanLoop) {
	name, interval := l.pol.Policy.Name, l.pol.Interval
	log := ia.log.With("policy", name, "image", l.pol.Policy.Image)
	failures := 0
	for {
		started := time.Now()
		sctx, cancel := context.WithTimeout(ctx, images.DefaultScanTimeout)
		res, err := ia.scanner.Scan(sctx, l.pol.Policy, l.reg.Registry, keepTags, func() { ia.a.metrics.ImageRegistryRequest(name) })
		cancel()
		if ctx.Err() != nil {
			return
		}
		tags := 0
		if res != nil {
			tags = res.Tags
		}
		ia.a.metrics.ImageScan(name, err, tags)
		wait := Jitter(interval, jitter, rand.Float64())
		if err != nil {
			failures++
			wait = Backoff(failures, min(scanBackoffBase, interval), max(scanBackoffMax, interval))
			var rl *images.RateLimitedError
			if errors.As(err, &rl) {
				wait = max(wait, time.Until(rl.Until))
			}
			log.Warn("image scan failed", "error", err.Error(), "retryIn", wait.Round(time.Second))
		} else {
			failures = 0
		}
		if changed := l.record(res, err, started, wait); changed {
			log.Info("image scan found a new best tag", "tag", res.Best[0], "tags", res.Tags)
			ia.pokeUpdaters()
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-l.trigger:
			timer.Stop()
			if d := triggeredScanSpacing - time.Since(started); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
	}
}

// record keeps a scan's outcome and reports whether the best tag changed.
func (l *scanLoop) record(res *images.ScanResult, err error, at time.Time, next time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.status.LastScan = at
	l.status.NextScan = time.Now().Add(next)
	if res != nil {
		l.status.LastScanRequests = res.Requests
	}
	if err != nil {
		l.status.LastScanError = err.Error()
		return false
	}
	l.status.LastScanError = ""
	l.status.TagsSeen, l.status.TagsMatched = res.Tags, res.Matched
	changed := !l.scanned || first(res.Best) != first(l.best)
	l.scanned, l.best = true, res.Best
	l.status.Latest = first(res.Best)
	return changed && len(res.Best) > 0
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// updateLoop runs a write-back round when poked (a scan found a new tag,
// the sync applied a new revision) and every writeBackResync, never
// sooner than the backoff after a failure allows.
func (ia *imageAutomation) updateLoop(ctx context.Context, u *updater) {
	failures := 0
	var notBefore time.Time
	poke(u.trigger)
	resync := time.NewTicker(writeBackResync)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.trigger:
		case <-resync.C:
		}
		if d := time.Until(notBefore); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		if err := ia.round(ctx, u); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			notBefore = time.Now().Add(Backoff(failures, writeBackBackoffBase, writeBackBackoffMax))
			continue
		}
		failures = 0
	}
}

// round is one write-back round of a sync.
func (ia *imageAutomation) round(ctx context.Context, u *updater) error {
	s := u.cfg
	log := ia.log.With("sync", s.Name)
	ia.mu.Lock()
	cfg := ia.cfg
	policies := map[string]*images.Policy{}
	best := map[string][]string{}
	for name, l := range ia.scans {
		policies[name] = l.pol.Policy
		l.mu.Lock()
		if l.scanned {
			best[name] = l.best
		}
		l.mu.Unlock()
	}
	ia.mu.Unlock()
	store := images.NewStore(ia.a.clients.Typed.CoreV1(), ia.a.invNamespace)
	started := time.Now()
	rec, err := store.Load(ctx, s.Name)
	if err != nil {
		return ia.roundFailed(s, started, nil, err)
	}
	digest := func(policy, tag string) (string, error) {
		p := policies[policy]
		return ia.scanner.Digest(ctx, p.Image, cfg.Registry(config.RegistryHost(p.Image)).Registry, tag, func() { ia.a.metrics.ImageRegistryRequest(policy) })
	}
	var final *images.Records
	round, err := u.wb.Run(ctx, func(sites []images.Site, base images.Base) *images.Plan {
		final = cloneRecords(rec)
		return images.Decide(sites, base, policies, best, final, digest, time.Now())
	})
	if err != nil {
		return ia.roundFailed(s, started, round, err)
	}
	plan := round.Plan
	saved, err := store.Update(ctx, s.Name, func(r *images.Records) error {
		changed := false
		for name, pp := range plan.Policies {
			pr := r.Policy(name)
			switch {
			case pp.NewHold && pr.Hold == nil:
				pr.Hold, changed = final.Policy(name).Hold, true
			case pp.Released && pr.Hold != nil:
				pr.Hold, changed = nil, true
			}
		}
		if round.Commit != "" {
			for _, c := range plan.Changes {
				if c.NewTag != "" {
					r.Policy(c.Policy).LastWritten = &images.Written{Tag: c.NewTag, Commit: round.Commit, Branch: round.Branch, At: time.Now()}
					changed = true
				}
			}
		}
		if !changed {
			return images.ErrUnchanged
		}
		return nil
	})
	if err != nil {
		if round.Commit != "" {
			// The commit is pushed: apply it now, and say that what it
			// wrote is not remembered (a manual rollback of it is not
			// recognised until a later round records it).
			if round.Branch == s.Source.Ref.Branch {
				ia.a.Trigger(s.Name)
			}
			err = fmt.Errorf("pushed %s to %s (%s), but saving the image records failed, so a manual rollback of this change is not recognised: %w",
				shortCommit(round.Commit), round.Branch, describeChanges(plan.Changes), err)
		}
		return ia.roundFailed(s, started, round, err)
	}
	for name, pp := range plan.Policies {
		if pp.NewHold {
			log.Warn("manual rollback: holding image updates", "policy", name, "reason", pp.Reason)
			ia.a.event(s, eventWarning, reasonImageHeld, "policy %s: %s", name, pp.Reason)
		}
		if pp.Released {
			log.Info("a newer tag lifted the hold", "policy", name, "tag", pp.Target)
		}
		if pp.Rollback != "" && round.Commit != "" {
			log.Warn("rolled back: the tag tether wrote failed its rollout", "policy", name, "failed", pp.Rollback, "tag", pp.Target, "commit", round.Commit)
			ia.a.event(s, eventWarning, reasonImageRolledBack, "policy %s: %s failed its rollout; pushed %s to %s going back to %s",
				name, pp.Rollback, shortCommit(round.Commit), round.Branch, pp.Target)
		}
		pr := saved.Policy(name)
		ia.a.metrics.ImageState(s.Name, name, pr.Hold != nil, len(pr.Failed), pr.LastFailure())
	}
	problems := append(round.Problems, plan.Problems...)
	for _, p := range problems {
		log.Warn("image marker problem", "problem", p.String())
	}
	status := &ImageWriteBackStatus{At: started, Branch: round.Branch, Base: round.Base, Commit: round.Commit, Changes: plan.Changes, Tries: round.Tries,
		Start: string(round.Start), BranchNote: round.Note}
	if round.Note != "" {
		log.Warn("image updates keep building on the push branch", "branch", round.Branch, "reason", round.Note)
	}
	for _, p := range problems {
		status.Problems = append(status.Problems, p.String())
	}
	if round.Commit != "" {
		ia.a.metrics.ImageWriteBack(s.Name, metrics.OutcomeCommitted)
		log.Info("pushed image updates", "branch", round.Branch, "commit", round.Commit, "changes", len(plan.Changes), "tries", round.Tries)
		ia.a.event(s, eventNormal, reasonImagesUpdated, "pushed %s to %s: %s", shortCommit(round.Commit), round.Branch, describeChanges(plan.Changes))
		if round.Branch == s.Source.Ref.Branch {
			ia.a.Trigger(s.Name) // apply it now rather than at the next poll
		}
	} else {
		ia.a.metrics.ImageWriteBack(s.Name, metrics.OutcomeUnchanged)
	}
	ia.mu.Lock()
	st := ia.state(s.Name)
	st.round, st.plans, st.records = status, plan.Policies, saved
	ia.mu.Unlock()
	return nil
}

func (ia *imageAutomation) roundFailed(s config.Sync, started time.Time, round *images.Round, err error) error {
	ia.a.metrics.ImageWriteBack(s.Name, metrics.OutcomeFailure)
	ia.log.Error("image write-back failed", "sync", s.Name, "error", err.Error())
	ia.a.event(s, eventWarning, reasonImageUpdateFailed, "image write-back failed: %v", err)
	status := &ImageWriteBackStatus{At: started, Error: err.Error(), Refused: errors.Is(err, source.ErrPushRefused)}
	if round != nil {
		status.Branch, status.Base, status.Commit, status.Tries = round.Branch, round.Base, round.Commit, round.Tries
		status.Start, status.BranchNote = string(round.Start), round.Note
		for _, p := range round.Problems {
			status.Problems = append(status.Problems, p.String())
		}
	}
	ia.mu.Lock()
	ia.state(s.Name).round = status
	ia.mu.Unlock()
	return err
}

func cloneRecords(r *images.Records) *images.Records {
	data, _ := json.Marshal(r)
	out := &images.Records{}
	_ = json.Unmarshal(data, out)
	return out
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func describeChanges(changes []images.Change) string {
	parts := make([]string, 0, len(changes))
	for _, c := range changes {
		parts = append(parts, fmt.Sprintf("%s → %s (%s)", c.Old, c.New, c.Policy))
	}
	return strings.Join(parts, ", ")
}

// applied is the runner's hook after each reconcile: when the apply phase
// completed, the workloads whose image moved to a new tag of a policy are
// recorded and followed (the rollout gate), and the sync's write-back
// loop is asked for a round (a new revision may be a manual rollback).
func (ia *imageAutomation) applied(s config.Sync, revision string, res *tsync.Result) {
	if ia == nil { // an Agent built without New (tests)
		return
	}
	ia.mu.Lock()
	ctx, cfg := ia.ctx, ia.cfg
	u := ia.updaters[s.Name]
	ia.mu.Unlock()
	if ctx == nil || cfg == nil || len(cfg.ImagePolicies) == 0 || res == nil {
		return
	}
	if _, ok := res.Phases["health"]; !ok {
		return // the apply did not complete
	}
	workloads := map[object.ObjMetadata]map[string]string{}
	for _, c := range res.Changes {
		if imgs, ok := images.WorkloadImages(c.Desired); ok {
			workloads[c.ID] = imgs
		}
	}
	if len(workloads) == 0 {
		return
	}
	policies := map[string]*images.Policy{}
	for _, p := range cfg.ImagePolicies {
		policies[p.Policy.Name] = p.Policy
	}
	var changes []images.ImageChange
	now := time.Now()
	store := images.NewStore(ia.a.clients.Typed.CoreV1(), ia.a.invNamespace)
	saved, err := store.Update(ctx, s.Name, func(r *images.Records) error {
		before, _ := json.Marshal(r.Workloads)
		changes = images.Changes(workloads, policies, r)
		for _, c := range changes {
			r.Policy(c.Policy).Record(images.Rollout{Workload: c.Workload(), Container: c.Container, Image: c.Image, From: c.From, Tag: c.Tag,
				Revision: revision, Started: now, Outcome: images.RolloutProgressing})
		}
		if after, _ := json.Marshal(r.Workloads); len(changes) == 0 && string(before) == string(after) {
			return images.ErrUnchanged
		}
		return nil
	})
	if err != nil {
		ia.log.Error("recording the applied images failed; their rollouts are not gated", "sync", s.Name, "error", err)
		return
	}
	ia.mu.Lock()
	ia.state(s.Name).records = saved
	ia.mu.Unlock()
	for _, c := range changes {
		ia.log.Info("following the rollout of a new image", "sync", s.Name, "workload", c.Workload(), "image", c.Image, "policy", c.Policy)
		ia.follow(ctx, s, c.Policy, images.Rollout{Workload: c.Workload(), Container: c.Container, Image: c.Image, From: c.From, Tag: c.Tag, Revision: revision, Started: now})
	}
	if u != nil && len(changes) > 0 {
		poke(u.trigger)
	}
}

// resume follows again the rollouts a previous leader (or this process
// before a restart) left without an outcome.
func (ia *imageAutomation) resume(ctx context.Context, cfg *config.Config) {
	if cfg == nil || len(cfg.ImagePolicies) == 0 {
		return
	}
	all, err := images.NewStore(ia.a.clients.Typed.CoreV1(), ia.a.invNamespace).List(ctx)
	if err != nil {
		// Records that could be read are resumed all the same.
		ia.log.Error("reading image records failed; their rollouts in progress are not resumed", "error", err)
	}
	for sync, rec := range all {
		s, ok := cfg.Sync(sync)
		if !ok {
			continue
		}
		ia.mu.Lock()
		ia.state(sync).records = rec
		ia.mu.Unlock()
		for policy, pr := range rec.Policies {
			// The state gauges are back before any round: the alert on
			// failed rollouts reads the newest failure's time.
			if _, ok := cfg.ImagePolicy(policy); ok {
				ia.a.metrics.ImageState(sync, policy, pr.Hold != nil, len(pr.Failed), pr.LastFailure())
			}
			for _, r := range pr.Rollouts {
				if r.Outcome == images.RolloutProgressing {
					ia.follow(ctx, s, policy, r)
				}
			}
		}
	}
}

// follow runs the rollout gate for one workload in the background and
// records the outcome. ctx is the term of leadership it runs for: once
// that term ended (lead's stop waits for the followers), nothing starts.
// Each policy of the image follows it: its record has its own rollout.
func (ia *imageAutomation) follow(ctx context.Context, s config.Sync, policy string, r images.Rollout) {
	id, ok := images.ParseWorkload(r.Workload)
	if !ok {
		return
	}
	key := s.Name + "|" + policy + "|" + r.Workload + "|" + r.Container + "|" + r.Image
	ia.mu.Lock()
	if ia.ctx != ctx || ia.follows[key] {
		ia.mu.Unlock()
		return
	}
	ia.follows[key] = true
	ia.wg.Add(1)
	ia.mu.Unlock()
	timeout := s.ImageUpdates.RolloutTimeout
	if timeout <= 0 {
		timeout = config.DefaultRolloutTimeout
	}
	go func() {
		defer ia.wg.Done()
		defer func() {
			ia.mu.Lock()
			delete(ia.follows, key)
			ia.mu.Unlock()
		}()
		outcome, msg := images.Follow(ctx, workloadGetter{ia.a.clients.Dynamic}, id, r.Container, r.Image, r.Started, rolloutPoll, timeout)
		if ctx.Err() != nil {
			return // the next leader resumes it
		}
		if outcome == "" {
			outcome, msg = images.RolloutSuperseded, "a newer apply changed the image before this rollout completed"
		}
		r.Outcome, r.Message, r.Finished = outcome, msg, time.Now()
		ia.mu.Lock()
		var pol *images.Policy // orders the failures to forget; nil when no longer configured
		if ia.cfg != nil {
			for _, p := range ia.cfg.ImagePolicies {
				if p.Policy.Name == policy {
					pol = p.Policy
				}
			}
		}
		ia.mu.Unlock()
		store := images.NewStore(ia.a.clients.Typed.CoreV1(), ia.a.invNamespace)
		saved, err := store.Update(ctx, s.Name, func(rec *images.Records) error {
			pr := rec.Policy(policy)
			pr.Record(r)
			switch outcome {
			case images.RolloutFailed:
				pr.Fail(images.Failure{Tag: r.Tag, Workload: r.Workload, From: r.From, Reason: msg, At: r.Finished}, pol)
			case images.RolloutSucceeded:
				pr.Succeeded(r.Tag)
			}
			return nil
		})
		if err != nil {
			ia.log.Error("recording a rollout outcome failed", "sync", s.Name, "workload", r.Workload, "error", err)
			return
		}
		pr := saved.Policy(policy)
		ia.a.metrics.ImageState(s.Name, policy, pr.Hold != nil, len(pr.Failed), pr.LastFailure())
		switch outcome {
		case images.RolloutSuperseded:
			ia.a.metrics.ImageRollout(s.Name, policy, metrics.OutcomeSuperseded)
			ia.log.Info("image rollout superseded", "sync", s.Name, "workload", r.Workload, "image", r.Image, "reason", msg)
		case images.RolloutUnknown:
			ia.a.metrics.ImageRollout(s.Name, policy, metrics.OutcomeUnknown)
			ia.log.Warn("image rollout not observed; the tag stays eligible", "sync", s.Name, "workload", r.Workload, "tag", r.Tag, "reason", msg)
			ia.a.event(s, eventWarning, reasonImageRolloutUnknown, "the rollout of %s in %s (policy %s) was not observed: %s; the tag is not remembered as failed", r.Image, r.Workload, policy, msg)
		case images.RolloutFailed:
			ia.a.metrics.ImageRollout(s.Name, policy, metrics.OutcomeFailed)
			ia.log.Error("image rollout failed; the tag will not be proposed again", "sync", s.Name, "workload", r.Workload, "tag", r.Tag, "reason", msg)
			ia.a.event(s, eventWarning, reasonImageRolloutFailed, "%s failed to roll out %s (policy %s): %s; the tag will not be proposed again", r.Workload, r.Image, policy, msg)
			// A round now: when the tag was tether's own, it goes back
			// to the last good tag.
			ia.mu.Lock()
			if u := ia.updaters[s.Name]; u != nil {
				poke(u.trigger)
			}
			ia.mu.Unlock()
		default:
			ia.a.metrics.ImageRollout(s.Name, policy, metrics.OutcomeSucceeded)
			ia.log.Info("image rolled out", "sync", s.Name, "workload", r.Workload, "image", r.Image)
			ia.a.event(s, eventNormal, reasonImageRolledOut, "%s rolled out %s (policy %s)", r.Workload, r.Image, policy)
		}
		ia.mu.Lock()
		ia.state(s.Name).records = saved
		ia.mu.Unlock()
	}()
}

// workloadGetter reads Deployments, StatefulSets and DaemonSets.
type workloadGetter struct{ dyn dynamic.Interface }

func (g workloadGetter) Get(ctx context.Context, id object.ObjMetadata) (*unstructured.Unstructured, error) {
	gvr, ok := images.WorkloadResource(id)
	if !ok {
		return nil, fmt.Errorf("%s is not a workload the rollout gate follows", id.GroupKind)
	}
	obj, err := g.dyn.Resource(gvr).Namespace(id.Namespace).Get(ctx, id.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return obj, err
}
