package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/live"
	"github.com/tether-gitops/tether/metrics"
	tsync "github.com/tether-gitops/tether/sync"
)

// Field sets of managedFields entries of the Deployment app/web: tether's
// apply entry before and after someone took the image, and the entry of
// whoever took it.
const (
	tetherOwnsAll   = `{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`
	tetherLostImage = `{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:name":{}}}}}}}`
	ownsImage       = `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{"f:image":{}}}}}}}`
)

// changedAt is when the fixtures' other managers wrote.
var changedAt = time.Date(2026, 12, 7, 14, 2, 11, 0, time.UTC)

func fieldsEntry(manager string, op metav1.ManagedFieldsOperationType, fields string) metav1.ManagedFieldsEntry {
	at := metav1.NewTime(changedAt)
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: op, APIVersion: "apps/v1", Time: &at,
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
}

// appDeployment is deployment(1) with one container, app, running image,
// and the given managed fields.
func appDeployment(image string, entries ...metav1.ManagedFieldsEntry) *unstructured.Unstructured {
	d := deployment(1)
	_ = unstructured.SetNestedSlice(d.Object, []any{map[string]any{"name": "app", "image": image}}, "spec", "template", "spec", "containers")
	if len(entries) > 0 {
		d.SetManagedFields(entries)
	}
	return d
}

// applied is the Deployment as tether applied it from git (web:1.0).
func applied() *unstructured.Unstructured {
	return appDeployment("web:1.0", fieldsEntry("tether", metav1.ManagedFieldsOperationApply, tetherOwnsAll))
}

// imageChanged is the Deployment after manager changed its image with
// operation op (Update: kubectl set image; Apply: another tool's
// server-side apply).
func imageChanged(image, manager string, op metav1.ManagedFieldsOperationType) *unstructured.Unstructured {
	return appDeployment(image, fieldsEntry("tether", metav1.ManagedFieldsOperationApply, tetherLostImage), fieldsEntry(manager, op, ownsImage))
}

var webID = object.UnstructuredToObjMetadata(deployment(1))

// driftRunner is a runner of sync web with the drift policy, that has
// applied the Deployment (git: web:1.0) and follows it through a ready
// fake cache; events are recorded.
func driftRunner(t *testing.T, policy string) (*runner, *fakeReconciler, *fakeLive, *record.FakeRecorder) {
	t.Helper()
	a, f := testAgent(t, time.Minute)
	rec := record.NewFakeRecorder(100)
	a.events = rec
	fl := a.live.(*fakeLive)
	fl.ready = true
	fl.objects = map[string]*unstructured.Unstructured{"app/web": applied()}
	f.desired = appDeployment("web:1.0")
	f.change = func(c *tsync.Change) { c.SetBaseline(applied()) }
	cfg := localSync(t, "web", false)
	cfg.Drift = policy
	r := &runner{a: a, cfg: cfg, src: &fakeSource{rev: "main@sha1:1", dir: t.TempDir()}, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
	t.Cleanup(func() {
		if r.live.wake != nil {
			r.live.wake.Stop()
		}
	})
	if err := r.reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.checkLive(context.Background()) // the first look after the watches listed
	f.take()
	takeEvents(rec)
	return r, f, fl, rec
}

// pollingDriftRunner is driftRunner whose watches cannot tell (refused):
// the runner polls.
func pollingDriftRunner(t *testing.T, policy string) (*runner, *fakeReconciler, *record.FakeRecorder) {
	t.Helper()
	r, f, fl, rec := driftRunner(t, policy)
	fl.mu.Lock()
	fl.ready = false
	fl.mu.Unlock()
	return r, f, rec
}

// takeEvents returns the events recorded so far ("Type Reason message").
func takeEvents(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func withReason(events []string, reason string) []string {
	var out []string
	for _, e := range events {
		if strings.Contains(e, " "+reason+" ") {
			out = append(out, e)
		}
	}
	return out
}

func driftCount(t *testing.T, r *runner, action string) float64 {
	t.Helper()
	return counterValue(t, r.a.metrics, `tether_drift_events_total{action="`+action+`",sync="web"}`)
}

const wantImageDrift = "spec.template.spec.containers[name=app].image: web:1.0 → web:hotfix by kubectl-set (Update) at 14:02:11"

// Drift the watch finds under the policy correct is put back at once with
// one correction of that object alone, reported once (field, manager,
// found by the watch), and closes when the cache sees it put back.
func TestCheckLiveCorrectsOnceWithOneWrite(t *testing.T) {
	r, f, fl, rec := driftRunner(t, tsync.DriftCorrect)
	ctx := context.Background()
	fl.set(imageChanged("web:hotfix", "kubectl-set", metav1.ManagedFieldsOperationUpdate))
	r.checkLive(ctx)
	if got := f.take(); !slices.Equal(got, []string{"correct Deployment.apps/app/web"}) {
		t.Fatalf("calls %v, want one correction of the Deployment", got)
	}
	evs := takeEvents(rec)
	detected := withReason(evs, contract.EventDriftDetected)
	if len(detected) != 1 || !strings.Contains(detected[0], "Deployment app/web: "+wantImageDrift+" (policy correct, found by the watch)") {
		t.Errorf("DriftDetected events %q", detected)
	}
	if corrected := withReason(evs, contract.EventDriftCorrected); len(corrected) != 1 || !strings.Contains(corrected[0], "put back 1 drifted objects (1 writes): [Deployment.apps/app/web]") {
		t.Errorf("DriftCorrected events %q", corrected)
	}
	if d, c := driftCount(t, r, metrics.DriftDetected), driftCount(t, r, metrics.DriftCorrected); d != 1 || c != 1 {
		t.Errorf("counted %v detected, %v corrected; want 1 and 1", d, c)
	}
	if r.live.needsReconcile {
		t.Error("a correction that worked asks for a reconcile")
	}
	// The cache sees the object put back: the drift closes, nothing more
	// is written.
	fl.set(applied())
	r.checkLive(ctx)
	if got := f.take(); len(got) != 0 {
		t.Errorf("calls %v after the object was put back", got)
	}
	if d := r.snapshot().Drift; len(d) != 0 {
		t.Errorf("open drift %+v after the object was put back", d)
	}
}

// A correction that keeps failing is retried after a backoff, not at every
// change: the drift is reported once, the failure shows in the status, the
// next poll reconciles instead of trusting the cache.
func TestCheckLiveBacksOffAfterFailedCorrections(t *testing.T) {
	r, f, fl, rec := driftRunner(t, tsync.DriftCorrect)
	ctx := context.Background()
	f.correctErr = errors.New("admission webhook denied the request")
	hotfix := imageChanged("web:hotfix", "kubectl-set", metav1.ManagedFieldsOperationUpdate)
	fl.set(hotfix)
	r.checkLive(ctx)
	if got := f.take(); !slices.Equal(got, []string{"correct Deployment.apps/app/web"}) {
		t.Fatalf("calls %v, want one correction", got)
	}
	if !r.live.needsReconcile {
		t.Error("a failed correction does not ask for a reconcile")
	}
	if ok, _ := r.cacheCanSkip(); ok {
		t.Error("the next poll trusts the cache after a failed correction")
	}
	d := r.snapshot().Drift
	if len(d) != 1 || !strings.Contains(d[0].CorrectionError, "admission webhook denied") {
		t.Errorf("status drift %+v, want the correction's error", d)
	}
	// Changed again at once: not put back before the backoff ends.
	fl.set(hotfix.DeepCopy())
	r.checkLive(ctx)
	if got := f.take(); len(got) != 0 {
		t.Errorf("calls %v within the backoff", got)
	}
	if r.live.wake == nil || !r.live.wakeTime.After(time.Now()) {
		t.Error("no wake-up set for the end of the backoff")
	}
	// The backoff (fightBase) has passed: tried again, once; the next
	// wait doubles.
	r.live.fights[webID].last = time.Now().Add(-fightBase - time.Second)
	r.checkLive(ctx)
	if got := f.take(); !slices.Equal(got, []string{"correct Deployment.apps/app/web"}) {
		t.Errorf("calls %v after the backoff, want a second correction", got)
	}
	if fi := r.live.fights[webID]; fi.n != 2 || fi.next().Sub(fi.last) != 2*fightBase {
		t.Errorf("fight %+v, want 2 corrections and a doubled wait", fi)
	}
	fl.set(hotfix.DeepCopy())
	r.checkLive(ctx)
	if got := f.take(); len(got) != 0 {
		t.Errorf("calls %v within the doubled backoff", got)
	}
	if n := len(withReason(takeEvents(rec), contract.EventDriftDetected)); n != 1 {
		t.Errorf("%d DriftDetected events for one drift, want 1", n)
	}
	if d, c := driftCount(t, r, metrics.DriftDetected), driftCount(t, r, metrics.DriftCorrected); d != 1 || c != 0 {
		t.Errorf("counted %v detected, %v corrected; want 1 and 0", d, c)
	}
}

// Fields another tool owns through server-side apply are reported, never
// taken back by force.
func TestCheckLiveLeavesServerSideApplyOwners(t *testing.T) {
	r, f, fl, rec := driftRunner(t, tsync.DriftCorrect)
	fl.set(imageChanged("web:canary", "rollouts-controller", metav1.ManagedFieldsOperationApply))
	r.checkLive(context.Background())
	if got := f.take(); len(got) != 0 {
		t.Errorf("calls %v: fields a server-side applier owns were taken back", got)
	}
	d := r.snapshot().Drift
	if len(d) != 1 || d[0].Managers != "rollouts-controller" || !strings.Contains(d[0].CorrectionError, "server-side apply") {
		t.Errorf("status drift %+v, want it reported with why it is not put back", d)
	}
	if n := len(withReason(takeEvents(rec), contract.EventDriftDetected)); n != 1 {
		t.Errorf("%d DriftDetected events, want 1", n)
	}
}

// The per-object annotation counts as git has it: warn in git keeps a
// change under a sync that corrects; the same annotation added in the
// cluster by someone changes nothing.
func TestDriftAnnotationFromGit(t *testing.T) {
	annotate := func(obj *unstructured.Unstructured, policy string) *unstructured.Unstructured {
		obj.SetAnnotations(map[string]string{contract.DriftAnnotation: policy})
		return obj
	}
	t.Run("warn in git", func(t *testing.T) {
		a, f := testAgent(t, time.Minute)
		a.events = record.NewFakeRecorder(100)
		fl := a.live.(*fakeLive)
		fl.ready = true
		fl.objects = map[string]*unstructured.Unstructured{"app/web": annotate(applied(), tsync.DriftWarn)}
		f.desired = annotate(appDeployment("web:1.0"), tsync.DriftWarn)
		f.change = func(c *tsync.Change) { c.SetBaseline(applied()) }
		r := &runner{a: a, cfg: localSync(t, "web", false), src: &fakeSource{rev: "main@sha1:1", dir: t.TempDir()}, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
		r.cfg.Drift = tsync.DriftCorrect
		ctx := context.Background()
		if err := r.reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		f.take()
		fl.set(annotate(imageChanged("web:hotfix", "kubectl-set", metav1.ManagedFieldsOperationUpdate), tsync.DriftWarn))
		r.checkLive(ctx)
		if got := f.take(); len(got) != 0 {
			t.Errorf("calls %v: an object git marks warn was put back", got)
		}
		if d := r.snapshot().Drift; len(d) != 1 || d[0].Policy != tsync.DriftWarn {
			t.Errorf("status drift %+v, want it kept under warn", d)
		}
		if kept := r.keepDrifted(); kept[webID] == nil {
			t.Error("the next plan is not told to keep the change")
		}
		if n := counterValue(t, a.metrics, `tether_drift_events_total{action="kept",sync="web"}`); n != 1 {
			t.Errorf("%v kept counted, want 1", n)
		}
	})
	t.Run("ignore added in the cluster", func(t *testing.T) {
		r, f, fl, _ := driftRunner(t, tsync.DriftCorrect)
		fl.set(annotate(imageChanged("web:hotfix", "kubectl-set", metav1.ManagedFieldsOperationUpdate), tsync.DriftIgnore))
		r.checkLive(context.Background())
		if got := f.take(); !slices.Equal(got, []string{"correct Deployment.apps/app/web"}) {
			t.Errorf("calls %v: an annotation added in the cluster switched the correction off", got)
		}
	})
}

// A correction that failed leaves the object to the next poll's
// reconcile, which puts it back: the drift is counted detected once and
// corrected once, with one DriftDetected Event.
func TestFailedCorrectionThenReconcileCountsOnce(t *testing.T) {
	r, f, fl, rec := driftRunner(t, tsync.DriftCorrect)
	ctx := context.Background()
	hotfix := imageChanged("web:hotfix", "kubectl-set", metav1.ManagedFieldsOperationUpdate)
	f.correctErr = errors.New("etcdserver: request timed out")
	fl.set(hotfix)
	r.checkLive(ctx)
	f.mu.Lock()
	f.correctErr = nil
	f.drifted = true
	f.change = func(c *tsync.Change) {
		c.SetBaseline(applied())
		c.Action, c.Written, c.Live = tsync.ActionUpdate, true, hotfix.DeepCopy()
	}
	f.mu.Unlock()
	f.take()
	if err := r.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.take(); !slices.Equal(got, []string{"drifted", "reconcile main@sha1:1"}) {
		t.Fatalf("calls %v, want a poll and a reconcile", got)
	}
	if d, c := driftCount(t, r, metrics.DriftDetected), driftCount(t, r, metrics.DriftCorrected); d != 1 || c != 1 {
		t.Errorf("counted %v detected, %v corrected; want 1 and 1", d, c)
	}
	evs := takeEvents(rec)
	if n := len(withReason(evs, contract.EventDriftDetected)); n != 1 {
		t.Errorf("%d DriftDetected events, want 1: %q", n, evs)
	}
	if c := withReason(evs, contract.EventDriftCorrected); len(c) != 1 || !strings.Contains(c[0], "put back 1 drifted objects in a reconcile: [Deployment.apps/app/web]") {
		t.Errorf("DriftCorrected events %q", c)
	}
	if d := r.snapshot().Drift; len(d) != 0 {
		t.Errorf("open drift %+v after the reconcile put it back", d)
	}
}

// Where the watches cannot tell (refused), the poll finds the drift and a
// reconcile takes it back: reported like the watch's, naming the field and
// the manager, found by polling.
func TestPollingReportsDriftItPutsBack(t *testing.T) {
	r, f, rec := pollingDriftRunner(t, tsync.DriftCorrect)
	hotfix := imageChanged("web:hotfix", "kubectl-set", metav1.ManagedFieldsOperationUpdate)
	f.mu.Lock()
	f.drifted = true
	f.change = func(c *tsync.Change) {
		c.SetBaseline(applied())
		c.Action, c.Written, c.Live = tsync.ActionUpdate, true, hotfix.DeepCopy()
	}
	f.mu.Unlock()
	if err := r.reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := takeEvents(rec)
	detected := withReason(evs, contract.EventDriftDetected)
	if len(detected) != 1 || !strings.Contains(detected[0], "Deployment app/web: "+wantImageDrift+" (policy correct, found by polling)") {
		t.Errorf("DriftDetected events %q", detected)
	}
	if len(withReason(evs, contract.EventDriftCorrected)) != 1 {
		t.Errorf("no DriftCorrected event: %q", evs)
	}
	if d, c := driftCount(t, r, metrics.DriftDetected), driftCount(t, r, metrics.DriftCorrected); d != 1 || c != 1 {
		t.Errorf("counted %v detected, %v corrected; want 1 and 1", d, c)
	}
	// Deleted, found and recreated by polling: reported as deleted.
	f.mu.Lock()
	f.change = func(c *tsync.Change) {
		c.SetBaseline(applied())
		c.Action, c.Written, c.Live = tsync.ActionCreate, true, nil
	}
	f.mu.Unlock()
	if err := r.reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := withReason(takeEvents(rec), contract.EventDriftDetected); len(d) != 1 || !strings.Contains(d[0], "Deployment app/web: deleted (policy correct, found by polling)") {
		t.Errorf("DriftDetected events %q for a deleted object", d)
	}
	// A write on the same revision that no drift explains (the baseline
	// shows none) is not drift.
	f.mu.Lock()
	f.change = func(c *tsync.Change) {
		c.SetBaseline(applied())
		c.Action, c.Written, c.Live = tsync.ActionUpdate, true, applied()
	}
	f.mu.Unlock()
	if err := r.reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := withReason(takeEvents(rec), contract.EventDriftDetected); len(d) != 0 {
		t.Errorf("DriftDetected events %q for a write without drift", d)
	}
}

// Under the policy ignore, what a polling reconcile writes back is
// neither reported nor counted, as on the watch path.
func TestPollingUnderIgnoreReportsNothing(t *testing.T) {
	r, f, rec := pollingDriftRunner(t, tsync.DriftIgnore)
	f.mu.Lock()
	f.drifted = true
	f.change = func(c *tsync.Change) {
		c.SetBaseline(applied())
		c.Action, c.Written, c.Live = tsync.ActionCreate, true, nil
	}
	f.mu.Unlock()
	if err := r.reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := takeEvents(rec)
	if d, c := withReason(evs, contract.EventDriftDetected), withReason(evs, contract.EventDriftCorrected); len(d)+len(c) != 0 {
		t.Errorf("drift events under ignore: %q %q", d, c)
	}
	if d, c := driftCount(t, r, metrics.DriftDetected), driftCount(t, r, metrics.DriftCorrected); d != 0 || c != 0 {
		t.Errorf("counted %v detected, %v corrected under ignore; want none", d, c)
	}
}

// deploymentWith is deployment(1) with conditions and ready replicas as
// given: Available, and Progressing with its reason.
func deploymentWith(ready int64, available, progressing, reason string) *unstructured.Unstructured {
	d := deployment(ready)
	_ = unstructured.SetNestedSlice(d.Object, []any{
		map[string]any{"type": "Available", "status": available},
		map[string]any{"type": "Progressing", "status": progressing, "reason": reason},
	}, "status", "conditions")
	return d
}

// Health is recomputed with no new commit on the skip path, from the cache
// (an event) or, where the watches cannot tell, from what the poll read
// (no request more): a wait false sync that was Progressing becomes
// Healthy, a Healthy one that breaks becomes Degraded, in the status and
// the metrics.
func TestFreshHealthOnTheSkipPath(t *testing.T) {
	healthy := deploymentWith(1, "True", "True", "NewReplicaSetAvailable")
	progressing := deploymentWith(0, "False", "True", "ReplicaSetUpdated")
	degraded := deploymentWith(0, "False", "False", "ProgressDeadlineExceeded")
	for obj, want := range map[*unstructured.Unstructured]health.Status{healthy: health.Healthy, progressing: health.Progressing, degraded: health.Degraded} {
		if got := health.Object(obj, time.Time{}, time.Now()).Status; got != want {
			t.Fatalf("fixture is %s, want %s", got, want)
		}
	}
	for _, path := range []string{"cache", "polling"} {
		for _, tc := range []struct {
			name     string
			from, to health.Status
			obj      *unstructured.Unstructured
		}{
			{"Progressing to Healthy", health.Progressing, health.Healthy, healthy},
			{"Healthy to Degraded", health.Healthy, health.Degraded, degraded},
		} {
			t.Run(path+": "+tc.name, func(t *testing.T) {
				a, f := testAgent(t, time.Minute)
				fl := a.live.(*fakeLive)
				f.health = tc.from
				r := &runner{a: a, cfg: localSync(t, "web", false), src: &fakeSource{rev: "main@sha1:1", dir: t.TempDir()}, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
				ctx := context.Background()
				if err := r.reconcile(ctx); err != nil {
					t.Fatal(err)
				}
				if r.live.wake != nil {
					r.live.wake.Stop()
				}
				if got := r.snapshot().Health; got != tc.from {
					t.Fatalf("health %s after the reconcile, want %s", got, tc.from)
				}
				f.take()
				want := []string{"drifted"}
				if path == "cache" {
					fl.mu.Lock()
					fl.ready = true
					fl.mu.Unlock()
					fl.set(tc.obj.DeepCopy())
					want = nil
				} else {
					f.mu.Lock()
					f.read = map[object.ObjMetadata]*unstructured.Unstructured{webID: tc.obj.DeepCopy()}
					f.mu.Unlock()
				}
				if err := r.reconcile(ctx); err != nil {
					t.Fatal(err)
				}
				if got := f.take(); !slices.Equal(got, want) {
					t.Errorf("calls %v, want %v", got, want)
				}
				st := r.snapshot()
				if st.LastAttempt.Outcome != metrics.OutcomeSkipped || st.Health != tc.to {
					t.Errorf("outcome %s, health %s (unhealthy %+v), want skipped and %s", st.LastAttempt.Outcome, st.Health, st.Unhealthy, tc.to)
				}
				if v := counterValue(t, a.metrics, `tether_sync_health{status="`+string(tc.to)+`",sync="web"}`); v != 1 {
					t.Errorf("tether_sync_health{status=%q} = %v", tc.to, v)
				}
			})
		}
	}
}

// slogRecorder keeps the records logged through it.
type slogRecorder struct {
	mu   gosync.Mutex
	msgs []string
}

func (l *slogRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *slogRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	return nil
}
func (l *slogRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *slogRecorder) WithGroup(string) slog.Handler      { return l }

func (l *slogRecorder) matching(level, text string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasPrefix(m, level+" ") && strings.Contains(m, text) {
			n++
		}
	}
	return n
}

// The status says whether a sync's live state comes from watches or from
// polling, and why (the verb and resource the API server refuses); the
// fallback is logged once, the return to watches once.
func TestLiveStatusSaysWatchOrPolling(t *testing.T) {
	a, _ := testAgent(t, time.Minute)
	logs := &slogRecorder{}
	a.log = slog.New(logs)
	fl := a.live.(*fakeLive)
	deployments := live.Ref{GVR: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, Namespace: "app"}
	fl.watches = []live.WatchState{{Ref: deployments, Listed: true, Refused: "watch", Error: `deployments.apps is forbidden: User "system:serviceaccount:tether-system:tether" cannot watch resource "deployments"`}}
	r := &runner{a: a, cfg: localSync(t, "web", false), src: &fakeSource{rev: "main@sha1:1", dir: t.TempDir()}, trigger: make(chan struct{}, 1), done: make(chan struct{}), live: newLiveRunner()}
	ctx := context.Background()
	if r.snapshot().Live != nil {
		t.Error("a live state before anything was applied")
	}
	for range 3 {
		if err := r.reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if r.live.wake != nil {
		r.live.wake.Stop()
	}
	st := r.snapshot().Live
	if st == nil || st.Source != LivePolling || st.Refused == nil || st.Refused.Verb != "watch" || st.Refused.Resource != "deployments.apps/v1 in app" || !strings.Contains(st.Refused.Error, "forbidden") {
		t.Fatalf("live state %+v, want polling because the watch of deployments in app is refused", st)
	}
	if n := logs.matching("WARN", "refuses to watch deployments.apps/v1 in app"); n != 1 {
		t.Errorf("%d warnings over three polls, want 1: %q", n, logs.msgs)
	}
	since := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	fl.mu.Lock()
	fl.ready = true
	fl.watches = []live.WatchState{{Ref: deployments, Listed: true, Since: since}}
	fl.mu.Unlock()
	for range 2 {
		if err := r.reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st = r.snapshot().Live
	if st == nil || st.Source != LiveWatch || st.Refused != nil || st.Reason != "" || len(st.Watches) != 1 || st.Watches[0].Since == nil || !st.Watches[0].Since.Equal(since) {
		t.Errorf("live state %+v, want watching since %s", st, since)
	}
	if n := logs.matching("INFO", "from watches again"); n != 1 {
		t.Errorf("%d lines about watching again, want 1: %q", n, logs.msgs)
	}
	if n := logs.matching("WARN", "refuses"); n != 1 {
		t.Errorf("%d warnings in all, want 1", n)
	}
}
