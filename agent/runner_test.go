package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/kube"
	"github.com/tether-gitops/tether/live"
	"github.com/tether-gitops/tether/metrics"
	"github.com/tether-gitops/tether/source"
	tsync "github.com/tether-gitops/tether/sync"
)

// fakeReconciler stands in for *sync.Syncer: it records what the agent
// asks of it and answers as told.
type fakeReconciler struct {
	mu      gosync.Mutex
	calls   []string // "reconcile REVISION" or "drifted"
	drifted bool
	err     error // returned by Reconcile
	// written marks the change written, and a pruned object, in a
	// reconcile that fails (err set): one that failed after its apply.
	written bool
	// kept makes the plan keep drift it found (the policy warn after a
	// restart): the change is DecidedKeptDrift with KeptDrift set.
	kept *tsync.Drift
	// desired is the object the sync renders (deployment(1) when nil),
	// health its health after a reconcile (Healthy when empty), and
	// change, when set, adjusts the change a reconcile returns (a drift
	// baseline, a write).
	desired *unstructured.Unstructured
	health  health.Status
	change  func(*tsync.Change)
	// read is what Drifted read (the objects, with their status).
	read map[object.ObjMetadata]*unstructured.Unstructured
	// correctErr fails every correction: each change's Err is set.
	correctErr error
	done       chan string
}

func newFakeReconciler() *fakeReconciler {
	return &fakeReconciler{done: make(chan string, 100)}
}

func (f *fakeReconciler) Reconcile(_ context.Context, opts tsync.Options, in tsync.Input) (*tsync.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, "reconcile "+in.Revision)
	err, written, kept, dep, status, change := f.err, f.written, f.kept, f.desired, f.health, f.change
	f.mu.Unlock()
	if dep == nil {
		dep = deployment(1)
	}
	dep = dep.DeepCopy()
	if status == "" {
		status = health.Healthy
	}
	id := object.UnstructuredToObjMetadata(dep)
	res := &tsync.Result{Sync: opts.Name, Revision: in.Revision, Observed: map[object.ObjMetadata]string{id: "1"},
		Changes: []*tsync.Change{{ID: id, Desired: dep, Action: tsync.ActionUnchanged, GVR: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, Namespaced: true}},
		Health:  map[object.ObjMetadata]health.Result{id: {Status: status, Message: string(status)}}, Status: status}
	if change != nil {
		change(res.Changes[0])
	}
	if kept != nil {
		res.Changes[0].Decision, res.Changes[0].KeptDrift = tsync.DecidedKeptDrift, kept
	}
	if err != nil {
		res.Phase, res.Err = "apply", err
		if written {
			res.Phase = "health"
			res.Changes[0].Written = true
			res.Pruned = []tsync.PruneOutcome{{ID: prunedID, Action: tsync.ActionPrune}}
		}
	}
	f.done <- in.Revision
	return res, err
}

func (f *fakeReconciler) Drifted(context.Context, tsync.Options, map[object.ObjMetadata]string) (bool, map[object.ObjMetadata]*unstructured.Unstructured, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "drifted")
	return f.drifted, f.read, nil
}

func (f *fakeReconciler) Correct(_ context.Context, _ tsync.Options, changes []*tsync.Change) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range changes {
		f.calls = append(f.calls, "correct "+c.Ref())
		c.Err = f.correctErr
	}
	if f.correctErr != nil {
		return int64(len(changes)), fmt.Errorf("%d of %d drifted objects could not be put back: %w", len(changes), len(changes), f.correctErr)
	}
	return int64(len(changes)), nil
}

func (f *fakeReconciler) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = nil
	return out
}

// fakeSource returns artifacts at a revision the test sets.
type fakeSource struct {
	mu  gosync.Mutex
	rev string
	dir string
}

func (s *fakeSource) Fetch(context.Context) (*source.Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &source.Artifact{Revision: s.rev, Dir: s.dir}, nil
}

func (s *fakeSource) set(rev string) {
	s.mu.Lock()
	s.rev = rev
	s.mu.Unlock()
}

// fakeLive stands in for the watch cache.
type fakeLive struct {
	mu    gosync.Mutex
	ready bool
	// unlisted makes Get answer that the cache cannot tell.
	unlisted bool
	objects  map[string]*unstructured.Unstructured // by namespace/name
	refs     []live.Ref
	notify   func(live.Event)
	// watches is what Watches answers.
	watches []live.WatchState
}

func (f *fakeLive) Watches(string) []live.WatchState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.watches)
}

func (f *fakeLive) Follow(_ string, _ any, refs []live.Ref, notify func(live.Event)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs, f.notify = refs, notify
}

func (f *fakeLive) Forget(string, any) {}

func (f *fakeLive) Ready(string) (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready {
		return false, "not ready"
	}
	return true, ""
}

func (f *fakeLive) Get(_ string, _ live.Ref, name string) (*unstructured.Unstructured, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.unlisted {
		return nil, false
	}
	for _, o := range f.objects {
		if o.GetName() == name {
			return o, true
		}
	}
	return nil, true
}

// set stores obj and tells the runner, as the cache does on a watch event.
func (f *fakeLive) set(obj *unstructured.Unstructured) {
	f.mu.Lock()
	if f.objects == nil {
		f.objects = map[string]*unstructured.Unstructured{}
	}
	f.objects[obj.GetNamespace()+"/"+obj.GetName()] = obj
	notify := f.notify
	f.mu.Unlock()
	notify(live.Event{Sync: "web", Object: obj})
}

// testAgent is an agent on fake clients with a fake reconciler.
func testAgent(t *testing.T, grace time.Duration) (*Agent, *fakeReconciler) {
	t.Helper()
	clients := &kube.Clients{Typed: k8sfake.NewSimpleClientset(), Requests: kube.NewRequestCounter()}
	a := New(Options{DataDir: t.TempDir(), DeleteGrace: grace, Concurrency: 4}, clients, metrics.New(), slog.New(slog.DiscardHandler))
	t.Cleanup(a.stopEv)
	f := newFakeReconciler()
	a.syncer = f
	a.live = &fakeLive{}
	a.invNamespace = "tether-system"
	return a, f
}

func localSync(t *testing.T, name string, deleteOnRemove bool) config.Sync {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Sync{Name: name, Source: config.Source{LocalPath: dir, Interval: time.Hour}, Path: ".", Timeout: time.Minute, DeleteOnRemove: deleteOnRemove}
}

// The skip path: a fetch that finds the applied revision, with nothing
// drifted, reconciles nothing; drift on the same revision, or a new
// revision, reconciles.
func TestRunnerSkipsUnchangedRevision(t *testing.T) {
	a, f := testAgent(t, time.Minute)
	src := &fakeSource{rev: "main@sha1:1", dir: t.TempDir()}
	r := &runner{a: a, cfg: localSync(t, "web", false), src: src, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
	ctx := context.Background()
	steps := []struct {
		rev     string
		drifted bool
		want    []string
		outcome string
	}{
		{"main@sha1:1", false, []string{"reconcile main@sha1:1"}, metrics.OutcomeSuccess},
		{"main@sha1:1", false, []string{"drifted"}, metrics.OutcomeSkipped},
		{"main@sha1:1", true, []string{"drifted", "reconcile main@sha1:1"}, metrics.OutcomeSuccess},
		{"main@sha1:2", false, []string{"reconcile main@sha1:2"}, metrics.OutcomeSuccess},
		{"main@sha1:2", false, []string{"drifted"}, metrics.OutcomeSkipped},
	}
	for i, s := range steps {
		src.set(s.rev)
		f.mu.Lock()
		f.drifted = s.drifted
		f.mu.Unlock()
		if err := r.reconcile(ctx); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := f.take(); !slices.Equal(got, s.want) {
			t.Errorf("step %d: calls %v, want %v", i, got, s.want)
		}
		if got := r.snapshot().LastAttempt.Outcome; got != s.outcome {
			t.Errorf("step %d: outcome %q, want %q", i, got, s.outcome)
		}
	}
	if st := r.snapshot(); st.Applied == nil || st.Applied.Revision != "main@sha1:2" {
		t.Errorf("applied %+v", st.Applied)
	}
}

// A failed reconcile forgets what it observed, so the next attempt on the
// same revision reconciles again instead of skipping, and the status says
// what failed.
func TestRunnerRetriesAfterFailure(t *testing.T) {
	a, f := testAgent(t, time.Minute)
	src := &fakeSource{rev: "main@sha1:1", dir: t.TempDir()}
	r := &runner{a: a, cfg: localSync(t, "web", false), src: src, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
	f.err = errors.New("ConfigMap/app/x: denied")
	if err := r.reconcile(context.Background()); err == nil {
		t.Fatal("want the reconcile's error")
	}
	st := r.snapshot()
	if st.LastAttempt.Outcome != metrics.OutcomeFailure || st.LastAttempt.Phase != "apply" || st.Applied != nil {
		t.Errorf("status after a failure: %+v applied %+v", st.LastAttempt, st.Applied)
	}
	f.err = nil
	f.take()
	if err := r.reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); !slices.Equal(got, []string{"reconcile main@sha1:1"}) {
		t.Errorf("calls after a failure %v: the same revision must be reconciled again, not skipped", got)
	}
}

func TestNextWait(t *testing.T) {
	for _, tc := range []struct {
		failures int
		interval time.Duration
		want     time.Duration
	}{
		{0, time.Minute, time.Minute},
		{1, time.Minute, 5 * time.Second},
		{3, time.Minute, 20 * time.Second},
		{20, time.Minute, 5 * time.Minute},
		{1, 2 * time.Second, 2 * time.Second},    // never slower than the interval at first
		{20, 10 * time.Minute, 10 * time.Minute}, // nor capped below it
	} {
		// r = 0.5 is the middle of the jitter: no spread.
		if got := nextWait(tc.failures, tc.interval, 0.5); got != tc.want {
			t.Errorf("nextWait(%d, %v) = %v, want %v", tc.failures, tc.interval, got, tc.want)
		}
	}
}

// leadFor runs the agent as leader with cfg until the test ends.
func leadFor(t *testing.T, a *Agent, cfg *config.Config) {
	t.Helper()
	a.setConfig(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.lead(ctx) }()
	t.Cleanup(func() { cancel(); <-done; a.waitDeletions() })
}

// waitFor waits for the fake to reconcile revision rev.
func waitFor(t *testing.T, f *fakeReconciler, rev string) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case got := <-f.done:
			if got == rev {
				return
			}
		case <-deadline:
			t.Fatalf("no reconcile of %q", rev)
		}
	}
}

// A sync removed from the configuration with deleteOnRemove has its
// objects deleted (a reconcile of an empty revision) once the grace period
// passes; added back within it, nothing is deleted.
func TestDeleteOnRemoveGraceAndRevert(t *testing.T) {
	t.Run("removed for good", func(t *testing.T) {
		a, f := testAgent(t, 10*time.Millisecond)
		s := localSync(t, "web", true)
		leadFor(t, a, &config.Config{Syncs: []config.Sync{s}})
		waitForLeading(t, a, "web")
		a.setConfig(&config.Config{})
		waitFor(t, f, "deleted")
	})
	t.Run("added back within the grace period", func(t *testing.T) {
		a, f := testAgent(t, time.Hour)
		s := localSync(t, "web", true)
		leadFor(t, a, &config.Config{Syncs: []config.Sync{s}})
		waitForLeading(t, a, "web")
		a.setConfig(&config.Config{})
		a.mu.Lock()
		_, pending := a.deletions["web"]
		a.mu.Unlock()
		if !pending {
			t.Fatal("no deletion pending after the sync was removed")
		}
		a.setConfig(&config.Config{Syncs: []config.Sync{s}})
		// The new runner starts once the cancelled deletion lets go, and
		// reconciles the sync's folder again.
		waitForLeading(t, a, "web")
		a.mu.Lock()
		_, pending = a.deletions["web"]
		a.mu.Unlock()
		if pending {
			t.Error("the deletion is still pending after the sync came back")
		}
		for _, c := range f.take() {
			if c == "reconcile deleted" {
				t.Errorf("the objects were deleted although the sync came back within the grace period")
			}
		}
	})
	t.Run("removed without deleteOnRemove", func(t *testing.T) {
		a, f := testAgent(t, 10*time.Millisecond)
		s := localSync(t, "web", false)
		leadFor(t, a, &config.Config{Syncs: []config.Sync{s}})
		waitForLeading(t, a, "web")
		a.setConfig(&config.Config{})
		a.mu.Lock()
		n := len(a.deletions)
		a.mu.Unlock()
		if n != 0 {
			t.Errorf("%d deletions scheduled for a sync without deleteOnRemove", n)
		}
		f.take()
	})
}

// waitForLeading waits until the runner of sync has reconciled once.
func waitForLeading(t *testing.T, a *Agent, sync string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		r := a.runners[sync]
		a.mu.Unlock()
		if r != nil && r.snapshot().LastAttempt != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("sync %s never reconciled", sync)
}

// deployment is a Deployment whose rollout is complete when ready.
func deployment(ready int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "app", "generation": int64(1)},
		"spec":     map[string]any{"replicas": int64(1)},
		"status": map[string]any{"observedGeneration": int64(1), "replicas": int64(1), "updatedReplicas": int64(1),
			"readyReplicas": ready, "availableReplicas": ready,
			"conditions": []any{map[string]any{"type": "Available", "status": map[bool]string{true: "True", false: "False"}[ready > 0]}}},
	}}
}

// With the watch cache ready, a poll that finds the applied revision asks
// the API server nothing (no Drifted LIST); a change in the cluster updates
// health at once, without a new commit.
func TestRunnerReadsTheCache(t *testing.T) {
	a, f := testAgent(t, time.Minute)
	cache := a.live.(*fakeLive)
	src := &fakeSource{rev: "main@sha1:1", dir: t.TempDir()}
	r := &runner{a: a, cfg: localSync(t, "web", false), src: src, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
	ctx := context.Background()
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if len(cache.refs) != 1 || cache.refs[0].GVR.Resource != "deployments" || cache.refs[0].Namespace != "app" {
		t.Fatalf("the cache follows %v", cache.refs)
	}
	f.take()
	cache.mu.Lock()
	cache.ready = true
	cache.mu.Unlock()
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); len(got) != 0 {
		t.Errorf("calls %v on a poll the cache can answer, want none", got)
	}
	if got := r.snapshot().LastAttempt.Outcome; got != metrics.OutcomeSkipped {
		t.Errorf("outcome %q", got)
	}
	// The Deployment loses its ready replica: the status says so with no
	// reconcile.
	cache.set(deployment(0))
	select {
	case <-r.live.ch:
	default:
		t.Fatal("the cache's event did not wake the runner")
	}
	r.checkLive(ctx)
	st := r.snapshot()
	if st.Health == health.Healthy || len(st.Unhealthy) != 1 || st.Unhealthy[0].Object != "Deployment.apps/app/web" {
		t.Errorf("health %s, unhealthy %+v after the Deployment degraded", st.Health, st.Unhealthy)
	}
	if got := f.take(); len(got) != 0 {
		t.Errorf("calls %v for a health change, want none", got)
	}
	cache.set(deployment(1))
	r.checkLive(ctx)
	if st := r.snapshot(); st.Health != health.Healthy || len(st.Unhealthy) != 0 {
		t.Errorf("health %s, unhealthy %+v after it recovered", st.Health, st.Unhealthy)
	}
	// Without the cache (refused watch), the poll falls back to a LIST.
	cache.mu.Lock()
	cache.ready = false
	cache.mu.Unlock()
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); !slices.Equal(got, []string{"drifted"}) {
		t.Errorf("calls %v without the cache, want [drifted]", got)
	}
}

// prunedID is the object fakeReconciler prunes in a reconcile that fails
// after its apply.
var prunedID = object.ObjMetadata{Namespace: "app", Name: "old", GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}}

// A reconcile that fails after writing (a health timeout, a refused prune)
// moves the drift baseline of what it wrote to what it wrote, and drops
// what it pruned: compared with the last successful reconcile, the new
// revision's changes and its prunes would look like drift, and correcting
// them would put the old revision back.
func TestFailedReconcileRebasesDrift(t *testing.T) {
	a, f := testAgent(t, time.Minute)
	src := &fakeSource{rev: "main@sha1:1", dir: t.TempDir()}
	r := &runner{a: a, cfg: localSync(t, "web", false), src: src, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
	ctx := context.Background()
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	id := object.UnstructuredToObjMetadata(deployment(1))
	if r.live.applied[id] == nil {
		t.Fatalf("%s not followed after a successful reconcile", id)
	}
	// As if the first revision had applied the object pruned now, with
	// open drift on both.
	r.live.applied[prunedID] = &tsync.Change{ID: prunedID, Desired: deployment(1)}
	r.live.drift[id] = &openDrift{drift: &tsync.Drift{Deleted: true}, policy: tsync.DriftWarn}
	r.live.drift[prunedID] = &openDrift{drift: &tsync.Drift{Deleted: true}, policy: tsync.DriftWarn}
	r.publishDrift()
	if d := r.snapshot().Drift; len(d) != 2 {
		t.Fatalf("status shows drift %+v, want 2 objects", d)
	}
	f.mu.Lock()
	f.err, f.written = errors.New("health timed out"), true
	f.mu.Unlock()
	src.set("main@sha1:2")
	if err := r.reconcile(ctx); err == nil {
		t.Fatal("the reconcile did not fail")
	}
	if c := r.live.applied[id]; c == nil || !c.Written {
		t.Errorf("%s is compared with %+v, not with what the failed reconcile wrote", id, c)
	}
	if r.live.applied[prunedID] != nil {
		t.Errorf("%s, pruned, is still compared with the last successful reconcile", prunedID)
	}
	for _, gone := range []object.ObjMetadata{id, prunedID} {
		if r.live.drift[gone] != nil {
			t.Errorf("%s still has open drift", gone)
		}
	}
	if d := r.snapshot().Drift; len(d) != 0 {
		t.Errorf("status shows drift %+v", d)
	}
}

// Drift a plan finds and keeps (warn, after a restart: the watches never
// saw the change happen) is reported, stays open while the cache sees
// nothing (tether's fields at the plan no longer hold the changed ones),
// is passed to the next plan to keep, and closes when a plan no longer
// keeps it.
func TestDriftKeptByThePlan(t *testing.T) {
	a, f := testAgent(t, time.Minute)
	fl := a.live.(*fakeLive)
	src := &fakeSource{rev: "main@sha1:1", dir: t.TempDir()}
	cfg := localSync(t, "web", false)
	cfg.Drift = tsync.DriftWarn
	r := &runner{a: a, cfg: cfg, src: src, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
	ctx := context.Background()
	f.kept = &tsync.Drift{Fields: []tsync.FieldChange{{Path: "spec.template.spec.containers[name=app].image", Desired: "web:1.0", Live: "web:hotfix", Managers: []string{"kubectl-set (Update)"}}}}
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	id := object.UnstructuredToObjMetadata(deployment(1))
	if d := r.snapshot().Drift; len(d) != 1 || !strings.Contains(strings.Join(d[0].Fields, ";"), "web:1.0 → web:hotfix") {
		t.Fatalf("status shows drift %+v, want the kept image", d)
	}
	if n := counterValue(t, a.metrics, `tether_drift_events_total{action="detected",sync="web"}`); n != 1 {
		t.Errorf("%v detections counted, want 1", n)
	}
	// The cache sees the object as the plan did: no drift by its fields.
	fl.mu.Lock()
	fl.ready = true
	fl.mu.Unlock()
	fl.set(deployment(1))
	r.checkLive(ctx)
	if r.live.drift[id] == nil {
		t.Fatal("the cache closed drift the plan found")
	}
	if kept := r.keepDrifted(); kept[id] == nil {
		t.Errorf("the next plan is not told to keep %s", id)
	}
	// A plan that no longer keeps it (the change was undone): closed.
	f.mu.Lock()
	f.kept = nil
	f.mu.Unlock()
	src.set("main@sha1:2")
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if d := r.snapshot().Drift; len(d) != 0 {
		t.Errorf("status shows drift %+v after a plan that kept nothing", d)
	}
}

// counterValue reads one series from the metrics' text exposition.
func counterValue(t *testing.T, m *metrics.Metrics, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// Under the policy ignore, drift a plan keeps is neither shown nor
// reported, but counted as ignored.
func TestDriftIgnoredIsCounted(t *testing.T) {
	a, f := testAgent(t, time.Minute)
	src := &fakeSource{rev: "main@sha1:1", dir: t.TempDir()}
	cfg := localSync(t, "web", false)
	cfg.Drift = tsync.DriftIgnore
	r := &runner{a: a, cfg: cfg, src: src, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
	f.kept = &tsync.Drift{Fields: []tsync.FieldChange{{Path: "spec.replicas", Desired: int64(1), Live: int64(5), Managers: []string{"kubectl (Update)"}}}}
	if err := r.reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := r.snapshot().Drift; len(d) != 0 {
		t.Errorf("status shows drift %+v under the policy ignore", d)
	}
	if n := counterValue(t, a.metrics, `tether_drift_events_total{action="ignored",sync="web"}`); n != 1 {
		t.Errorf("%v ignored counted, want 1", n)
	}
	if n := counterValue(t, a.metrics, `tether_drift_events_total{action="detected",sync="web"}`); n != 0 {
		t.Errorf("%v detections counted under the policy ignore", n)
	}
}

// Objects the cache cannot answer for (a refused watch) are looked at
// again after a wait that doubles to maxUnlistedWait, not every second
// for ever; once the cache answers, the wait starts again from a second.
func TestUnlistedObjectsBackOff(t *testing.T) {
	a, _ := testAgent(t, time.Minute)
	fl := a.live.(*fakeLive)
	src := &fakeSource{rev: "main@sha1:1", dir: t.TempDir()}
	r := &runner{a: a, cfg: localSync(t, "web", false), src: src, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
	ctx := context.Background()
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	fl.mu.Lock()
	fl.unlisted = true
	fl.mu.Unlock()
	var waits []time.Duration
	for i := 0; i < 7; i++ {
		r.checkLive(ctx) // follow marked every object dirty; each pass marks it again
		waits = append(waits, r.live.unlisted)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	if !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	fl.mu.Lock()
	fl.unlisted = false
	fl.mu.Unlock()
	r.checkLive(ctx)
	if r.live.unlisted != 0 {
		t.Errorf("wait %v after the cache answered, want it reset", r.live.unlisted)
	}
}
