package sync

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/inventory"
	"github.com/tether-gitops/tether/render"
)

var testOpts = Options{Name: "web", Namespace: "app", InventoryNamespace: "tether-system", Prune: true, DeleteBudget: Budget{Unlimited: true}}

// reconcileOnce runs one reconcile of objs on f at revision rev.
func reconcileOnce(t *testing.T, f *fakeCluster, opts Options, rev string, objs ...*unstructured.Unstructured) (*Result, error) {
	t.Helper()
	return f.syncer(objs...).Reconcile(context.Background(), opts, Input{Root: t.TempDir(), Path: ".", Revision: rev})
}

// inventoryIDs returns the ids in the sync's stored inventory.
func inventoryIDs(t *testing.T, f *fakeCluster, name string) []string {
	t.Helper()
	inv, err := inventory.NewStore(f.typed.CoreV1(), "tether-system").Load(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for id := range inv.Entries {
		out = append(out, refString(id))
	}
	slices.Sort(out)
	return out
}

func TestReconcileRecordsWhatItApplied(t *testing.T) {
	f := newFakeCluster(t)
	res, err := reconcileOnce(t, f, testOpts, "main@sha1:1", configMap("a", "1"), configMap("b", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := inventoryIDs(t, f, "web"); !slices.Equal(got, []string{"ConfigMap/app/a", "ConfigMap/app/b"}) {
		t.Errorf("inventory %v", got)
	}
	if c := res.Counts(); c[ActionCreate] != 2 {
		t.Errorf("counts %v, want 2 creates", c)
	}
	// The same revision again writes nothing.
	before := len(f.writes())
	res, err = reconcileOnce(t, f, testOpts, "main@sha1:1", configMap("a", "1"), configMap("b", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.writes()) - before; n != 0 || res.Counts()[ActionUnchanged] != 2 {
		t.Errorf("second reconcile: %d writes, counts %v", n, res.Counts())
	}
}

// A write refused half-way fails the apply phase, names the object, and
// the inventory does not move on: it still lists what the previous revision
// applied, at that revision (plus, recorded before apply as intent, the new
// object, so that a crash could not leave it unowned), and nothing is
// pruned.
func TestFailedApplyNeverAdvancesTheInventory(t *testing.T) {
	f := newFakeCluster(t)
	if _, err := reconcileOnce(t, f, testOpts, "main@sha1:1", configMap("a", "1"), configMap("old", "1")); err != nil {
		t.Fatal(err)
	}
	f.failApply["ConfigMap/app/b"] = apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "b", errors.New("quota"))
	res, err := reconcileOnce(t, f, testOpts, "main@sha1:2", configMap("a", "2"), configMap("b", "1"))
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != "apply" || !strings.Contains(err.Error(), "ConfigMap/app/b") {
		t.Fatalf("error %v, want an apply PhaseError naming ConfigMap/app/b", err)
	}
	if res.Phase != "apply" {
		t.Errorf("result phase %q", res.Phase)
	}
	if got := inventoryIDs(t, f, "web"); !slices.Equal(got, []string{"ConfigMap/app/a", "ConfigMap/app/b", "ConfigMap/app/old"}) {
		t.Errorf("inventory after a failed apply: %v, want the previous one and the intent", got)
	}
	inv, err := inventory.NewStore(f.typed.CoreV1(), "tether-system").Load(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "old"} {
		if e := inv.Entries[cmID(name)]; e.Revision != "main@sha1:1" {
			t.Errorf("ConfigMap/app/%s recorded at %q after a failed apply, want main@sha1:1", name, e.Revision)
		}
	}
	if f.get("ConfigMap", "app", "old") == nil {
		t.Error("ConfigMap/app/old was pruned after a failed apply")
	}
}

// A delete that fails keeps the object in the inventory (so the next
// reconcile tries again) and fails the prune phase naming it; the other
// deletes go through.
func TestFailedDeleteStaysInTheInventory(t *testing.T) {
	f := newFakeCluster(t)
	if _, err := reconcileOnce(t, f, testOpts, "main@sha1:1", configMap("a", "1"), configMap("b", "1"), configMap("c", "1")); err != nil {
		t.Fatal(err)
	}
	f.failDelete["ConfigMap/app/b"] = apierrors.NewInternalError(errors.New("etcd is sad"))
	_, err := reconcileOnce(t, f, testOpts, "main@sha1:2", configMap("a", "1"))
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != "prune" || !strings.Contains(err.Error(), "ConfigMap/app/b") {
		t.Fatalf("error %v, want a prune PhaseError naming ConfigMap/app/b", err)
	}
	if got := inventoryIDs(t, f, "web"); !slices.Equal(got, []string{"ConfigMap/app/a", "ConfigMap/app/b"}) {
		t.Errorf("inventory %v, want a and the undeleted b", got)
	}
	if f.get("ConfigMap", "app", "c") != nil {
		t.Error("ConfigMap/app/c was not pruned")
	}
	// Once the delete works, the next reconcile finishes the job.
	delete(f.failDelete, "ConfigMap/app/b")
	if _, err := reconcileOnce(t, f, testOpts, "main@sha1:2", configMap("a", "1")); err != nil {
		t.Fatal(err)
	}
	if got := inventoryIDs(t, f, "web"); !slices.Equal(got, []string{"ConfigMap/app/a"}) {
		t.Errorf("inventory %v", got)
	}
}

// An object already being deleted (finalizers running) is not deleted
// again and does not count against the delete budget.
func TestPruneSkipsTerminatingObjects(t *testing.T) {
	f := newFakeCluster(t)
	if _, err := reconcileOnce(t, f, testOpts, "main@sha1:1", configMap("a", "1"), configMap("going", "1"), configMap("stale", "1")); err != nil {
		t.Fatal(err)
	}
	going := f.get("ConfigMap", "app", "going")
	now := metav1.Now()
	going.SetDeletionTimestamp(&now)
	going.SetFinalizers([]string{"example.com/hold"})
	gvr, _ := f.gvr("ConfigMap")
	if err := f.dyn.Tracker().Update(gvr, going, "app"); err != nil {
		t.Fatal(err)
	}
	opts := testOpts
	opts.DeleteBudget = Budget{Count: 1} // room for stale only
	res, err := reconcileOnce(t, f, opts, "main@sha1:2", configMap("a", "1"))
	if err != nil {
		t.Fatalf("reconcile: %v (the terminating object must not use the budget)", err)
	}
	var deletes []string
	for _, w := range f.writes() {
		if strings.HasPrefix(w, "delete ") {
			deletes = append(deletes, w)
		}
	}
	if !slices.Equal(deletes, []string{"delete ConfigMap/app/stale"}) {
		t.Errorf("deletes %v, want only ConfigMap/app/stale", deletes)
	}
	var reason string
	for _, p := range res.Pruned {
		if p.ID == cmID("going") {
			reason = p.Reason
		}
	}
	if reason != "already being deleted" {
		t.Errorf("outcome for the terminating object: %q", reason)
	}
	if got := inventoryIDs(t, f, "web"); !slices.Equal(got, []string{"ConfigMap/app/a"}) {
		t.Errorf("inventory %v", got)
	}
}

// A failed build stops the reconcile before anything is read or written:
// the inventory is untouched and nothing is pruned.
func TestFailedBuildWritesNothing(t *testing.T) {
	f := newFakeCluster(t)
	if _, err := reconcileOnce(t, f, testOpts, "main@sha1:1", configMap("a", "1")); err != nil {
		t.Fatal(err)
	}
	before := len(f.writes())
	s := New(f.clients, nil).WithRenderer(func(context.Context, render.Request) ([]render.Resource, error) {
		return nil, errors.New("kustomization.yaml: boom")
	})
	res, err := s.Reconcile(context.Background(), testOpts, Input{Root: t.TempDir(), Path: ".", Revision: "main@sha1:2"})
	if err == nil || res.Phase != "build" {
		t.Fatalf("phase %q, error %v; want build", res.Phase, err)
	}
	if n := len(f.writes()) - before; n != 0 {
		t.Errorf("%d writes after a failed build", n)
	}
	if res.Requests != 0 {
		t.Errorf("%d requests after a failed build", res.Requests)
	}
	if got := inventoryIDs(t, f, "web"); !slices.Equal(got, []string{"ConfigMap/app/a"}) {
		t.Errorf("inventory %v", got)
	}
}

// Correct applies each drifted object again, one write each, and names
// those it could not put back.
func TestCorrectPutsDriftBack(t *testing.T) {
	f := newFakeCluster(t)
	res, err := reconcileOnce(t, f, testOpts, "main@sha1:1", configMap("a", "1"), configMap("b", "1"))
	if err != nil {
		t.Fatal(err)
	}
	changed := f.get("ConfigMap", "app", "a")
	changed.Object["data"] = map[string]any{"k": "hotfix"}
	gvr, _ := f.gvr("ConfigMap")
	if err := f.dyn.Tracker().Update(gvr, changed, "app"); err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Change{}
	for _, c := range res.Changes {
		byName[c.ID.Name] = c
	}
	before := len(f.writes())
	if _, err := f.syncer().Correct(context.Background(), testOpts, []*Change{byName["a"]}); err != nil {
		t.Fatal(err)
	}
	if got := f.writes()[before:]; !slices.Equal(got, []string{"apply ConfigMap/app/a"}) {
		t.Errorf("writes %v, want one apply of ConfigMap/app/a", got)
	}
	if v := f.get("ConfigMap", "app", "a").Object["data"].(map[string]any)["k"]; v != "1" {
		t.Errorf("data.k = %v after the correction", v)
	}
	// One refused among two: the error names it, and each change says
	// whether it was put back.
	f.failApply["ConfigMap/app/b"] = apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "b", errors.New("denied"))
	byName["a"].Err = errors.New("from an earlier attempt")
	_, err = f.syncer().Correct(context.Background(), testOpts, []*Change{byName["a"], byName["b"]})
	if err == nil || !strings.Contains(err.Error(), "ConfigMap/app/b") || strings.Contains(err.Error(), "ConfigMap/app/a") {
		t.Errorf("error %v, want one naming ConfigMap/app/b only", err)
	}
	if byName["a"].Err != nil {
		t.Errorf("ConfigMap/app/a was put back, but its Err is %v", byName["a"].Err)
	}
	if e := byName["b"].Err; e == nil || !strings.Contains(e.Error(), "denied") {
		t.Errorf("ConfigMap/app/b's Err is %v, want the refusal", e)
	}
	// Stopped before it started (a shutdown, a lost lease): no change may
	// look put back.
	delete(f.failApply, "ConfigMap/app/b")
	byName["a"].Err, byName["b"].Err = nil, nil
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.syncer().Correct(stopped, testOpts, []*Change{byName["a"], byName["b"]}); !errors.Is(err, context.Canceled) {
		t.Errorf("a stopped correction: %v", err)
	}
	for _, name := range []string{"a", "b"} {
		if e := byName[name].Err; !errors.Is(e, context.Canceled) {
			t.Errorf("ConfigMap/app/%s's Err is %v after a correction that never started, want it not put back", name, e)
		}
	}
}

// Drifted compares everything but status; when nothing drifted it hands
// back every object it read, status included, for fresh health.
func TestDriftedReturnsWhatItRead(t *testing.T) {
	f := newFakeCluster(t)
	res, err := reconcileOnce(t, f, testOpts, "main@sha1:1", webDeployment())
	if err != nil {
		t.Fatal(err)
	}
	id := object.UnstructuredToObjMetadata(webDeployment())
	gvr, _ := f.gvr("Deployment")
	live := f.get("Deployment", "app", "web").DeepCopy()
	live.Object["status"] = map[string]any{"readyReplicas": int64(1)}
	if err := f.dyn.Tracker().Update(gvr, live, "app"); err != nil {
		t.Fatal(err)
	}
	drifted, read, err := f.syncer().Drifted(context.Background(), testOpts, res.Observed)
	if err != nil || drifted {
		t.Fatalf("drifted %v (%v) after a status change", drifted, err)
	}
	if n, _, _ := unstructured.NestedInt64(read[id].Object, "status", "readyReplicas"); n != 1 {
		t.Errorf("Drifted handed back %v, want the object with its new status", read[id])
	}
	live = f.get("Deployment", "app", "web").DeepCopy()
	_ = unstructured.SetNestedField(live.Object, int64(4), "spec", "replicas")
	if err := f.dyn.Tracker().Update(gvr, live, "app"); err != nil {
		t.Fatal(err)
	}
	if drifted, _, err := f.syncer().Drifted(context.Background(), testOpts, res.Observed); err != nil || !drifted {
		t.Errorf("drifted %v (%v) after spec.replicas changed", drifted, err)
	}
}

// Taking an object over from client-side kubectl apply merges kubectl's
// field ownership into tether's apply entry, drops the last-applied
// annotation, and guards the change with the resourceVersion.
func TestTakeOverPatch(t *testing.T) {
	live := configMap("a", "1")
	live.SetResourceVersion("42")
	live.SetAnnotations(map[string]string{contract.LastAppliedAnnotation: `{"data":{"k":"1","old":"x"}}`, "keep": "me"})
	live.Object["metadata"].(map[string]any)["managedFields"] = []any{
		map[string]any{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
			"fieldsV1": map[string]any{"f:data": map[string]any{"f:k": map[string]any{}, "f:old": map[string]any{}},
				"f:metadata": map[string]any{"f:annotations": map[string]any{"f:" + contract.LastAppliedAnnotation: map[string]any{}}}}},
		map[string]any{"manager": "someone", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
			"fieldsV1": map[string]any{"f:metadata": map[string]any{"f:annotations": map[string]any{"f:keep": map[string]any{}}}}},
	}
	if !needsTakeOver(live) {
		t.Fatal("needsTakeOver = false")
	}
	patch, err := takeOverPatch(live, "v1")
	if err != nil {
		t.Fatal(err)
	}
	var ops []struct {
		Op, Path string
		Value    any
	}
	if err := json.Unmarshal(patch, &ops); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 3 || ops[0].Op != "test" || ops[0].Value != "42" || ops[2].Op != "remove" || ops[2].Path != "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration" {
		t.Fatalf("ops %s", patch)
	}
	entries, _ := json.Marshal(ops[1].Value)
	got := string(entries)
	for _, want := range []string{`"manager":"tether","operation":"Apply"`, `"f:old":{}`, `"manager":"someone"`} {
		if !strings.Contains(got, want) {
			t.Errorf("managedFields %s lack %s", got, want)
		}
	}
	for _, unwanted := range []string{"kubectl-client-side-apply", "last-applied-configuration"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("managedFields %s still hold %s", got, unwanted)
		}
	}
	if needsTakeOver(configMap("b", "1")) {
		t.Error("an object kubectl never applied needs a take-over")
	}
}

// A dry run the API server refuses (an admission denial) fails the plan
// phase naming the object, before anything is written: no object is
// applied, the inventory does not move, nothing is pruned.
func TestPlanRefusalWritesNothing(t *testing.T) {
	f := newFakeCluster(t)
	if _, err := reconcileOnce(t, f, testOpts, "main@sha1:1", configMap("a", "1"), configMap("old", "1")); err != nil {
		t.Fatal(err)
	}
	before := len(f.writes())
	f.failDryRun["ConfigMap/app/b"] = apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "b", errors.New("admission webhook denied the request"))
	res, err := reconcileOnce(t, f, testOpts, "main@sha1:2", configMap("a", "2"), configMap("b", "1"))
	var pe *PhaseError
	if !errors.As(err, &pe) || pe.Phase != "plan" || !strings.Contains(err.Error(), "ConfigMap/app/b") || !strings.Contains(err.Error(), "admission webhook denied") {
		t.Fatalf("error %v, want a plan PhaseError naming ConfigMap/app/b and the server's reason", err)
	}
	if res.Phase != "plan" || res.Writes != 0 {
		t.Errorf("result phase %q with %d writes, want plan and none", res.Phase, res.Writes)
	}
	if w := f.writes()[before:]; len(w) != 0 {
		t.Errorf("writes after a refused dry run: %v", w)
	}
	if got := inventoryIDs(t, f, "web"); !slices.Equal(got, []string{"ConfigMap/app/a", "ConfigMap/app/old"}) {
		t.Errorf("inventory after a refused plan: %v", got)
	}
	if live := f.get("ConfigMap", "app", "a"); live == nil || live.Object["data"].(map[string]any)["k"] != "1" {
		t.Errorf("ConfigMap/app/a changed by a refused plan: %v", live)
	}
}

// When the inventory cannot be written, nothing that depends on it
// happens: a new object is not created unless its intent was recorded
// (a crash would leave it unowned), and an object the revision dropped
// is not pruned unless the new inventory was saved.
func TestInventoryWriteFailureStopsWhatDependsOnIt(t *testing.T) {
	refuse := func(f *fakeCluster) {
		f.typed.PrependReactor("update", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewServiceUnavailable("etcd is unavailable")
		})
	}
	t.Run("intent", func(t *testing.T) {
		f := newFakeCluster(t)
		if _, err := reconcileOnce(t, f, testOpts, "main@sha1:1", configMap("a", "1")); err != nil {
			t.Fatal(err)
		}
		before := len(f.writes())
		refuse(f)
		res, err := reconcileOnce(t, f, testOpts, "main@sha1:2", configMap("a", "1"), configMap("b", "1"))
		var pe *PhaseError
		if !errors.As(err, &pe) || pe.Phase != "inventory" || !strings.Contains(err.Error(), "etcd is unavailable") {
			t.Fatalf("error %v, want an inventory PhaseError with the server's reason", err)
		}
		if res.Phase != "inventory" {
			t.Errorf("result phase %q", res.Phase)
		}
		if w := f.writes()[before:]; len(w) != 0 || f.get("ConfigMap", "app", "b") != nil {
			t.Errorf("objects written although their intent could not be recorded: %v", w)
		}
	})
	t.Run("save before prune", func(t *testing.T) {
		f := newFakeCluster(t)
		if _, err := reconcileOnce(t, f, testOpts, "main@sha1:1", configMap("a", "1"), configMap("old", "1")); err != nil {
			t.Fatal(err)
		}
		refuse(f)
		_, err := reconcileOnce(t, f, testOpts, "main@sha1:2", configMap("a", "2"))
		var pe *PhaseError
		if !errors.As(err, &pe) || pe.Phase != "inventory" {
			t.Fatalf("error %v, want an inventory PhaseError", err)
		}
		if f.get("ConfigMap", "app", "old") == nil {
			t.Error("ConfigMap/app/old was pruned although the new inventory was not saved")
		}
		for _, w := range f.writes() {
			if strings.HasPrefix(w, "delete ") {
				t.Errorf("deleted after a failed inventory save: %s", w)
			}
		}
	})
}
