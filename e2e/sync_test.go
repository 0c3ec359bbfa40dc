//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/e2e/cluster"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/inventory"
	"github.com/tether-gitops/tether/kube"
	tsync "github.com/tether-gitops/tether/sync"
)

// fixture runs syncs of one folder, as tether's ServiceAccount.
type fixture struct {
	t       *testing.T
	c       *cluster.Cluster
	dir     string
	clients *kube.Clients
	admin   kubernetes.Interface
	syncer  *tsync.Syncer
	opts    tsync.Options
}

func newFixture(t *testing.T, name string) *fixture {
	t.Helper()
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	clients, err := kube.NewClients(sa.Config)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		t: t, c: c, dir: t.TempDir(), clients: clients, admin: c.Client,
		syncer: tsync.New(clients, nil),
		opts: tsync.Options{
			Name: name, Namespace: name, InventoryNamespace: "tether-system",
			Prune: true, Timeout: 2 * time.Minute,
		},
	}
	return f
}

// write replaces the folder's content with files.
func (f *fixture) write(files map[string]string) {
	f.t.Helper()
	entries, _ := os.ReadDir(f.dir)
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(f.dir, e.Name())); err != nil {
			f.t.Fatal(err)
		}
	}
	for name, content := range files {
		p := filepath.Join(f.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

// sync runs one reconcile and returns its result and the writes it sent,
// counted on the wire.
func (f *fixture) sync(rev string) (*tsync.Result, int64, error) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	before := f.clients.Requests.Mutating()
	res, err := f.syncer.Reconcile(ctx, f.opts, tsync.Input{Root: f.dir, Path: ".", Revision: rev})
	return res, f.clients.Requests.Mutating() - before, err
}

// mustSync is sync that fails the test on error.
func (f *fixture) mustSync(rev string) (*tsync.Result, int64) {
	f.t.Helper()
	res, writes, err := f.sync(rev)
	if err != nil {
		f.t.Fatalf("sync %s: %v", rev, err)
	}
	return res, writes
}

func (f *fixture) inventory() *inventory.Inventory {
	f.t.Helper()
	inv, err := inventory.NewStore(f.admin.CoreV1(), "tether-system").Load(context.Background(), f.opts.Name)
	if err != nil {
		f.t.Fatal(err)
	}
	return inv
}

func (f *fixture) configMapData(ns, name string) (map[string]string, error) {
	cm, err := f.admin.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return cm.Data, nil
}

func counts(t *testing.T, res *tsync.Result, want map[tsync.Action]int) {
	t.Helper()
	got := res.Counts()
	for a, n := range want {
		if got[a] != n {
			t.Errorf("%s: got %d, want %d (all counts %v)", a, got[a], n, got)
		}
	}
	for a, n := range got {
		if _, ok := want[a]; !ok && n != 0 {
			t.Errorf("unexpected %d %s (all counts %v)", n, a, got)
		}
	}
	if t.Failed() {
		for _, c := range res.Changes {
			if c.Action != tsync.ActionUnchanged {
				d, _ := c.Diff()
				t.Logf("%s %s (%v)\n%s", c.Action, c.Ref(), c.Err, d)
			}
		}
	}
}

func cm(ns, name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\ndata:\n  value: %q\n", name, ns, value)
}

func nsYAML(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", name)
}

const kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"

// The whole cycle: create, unchanged (zero writes, counted on the wire),
// update one object (exactly one write), prune, with the inventory and
// provenance following along.
func TestSyncCreateUpdateUnchangedPrune(t *testing.T) {
	f := newFixture(t, "cycle")
	ns := "cycle"
	// files is the revision: a Namespace, a Deployment, ConfigMap a with
	// value aValue and, unless dropped, ConfigMaps b and c.
	files := func(aValue string, withBC bool) map[string]string {
		fs := map[string]string{
			"ns.yaml": nsYAML(ns),
			"a.yaml":  cm(ns, "a", aValue),
			"deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: cycle}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: registry.example.com/web:1}]}
`,
		}
		list := "- ns.yaml\n- a.yaml\n- b.yaml\n- c.yaml\n- deploy.yaml\n"
		if withBC {
			fs["b.yaml"], fs["c.yaml"] = cm(ns, "b", "1"), cm(ns, "c", "1")
		} else {
			list = "- ns.yaml\n- a.yaml\n- deploy.yaml\n"
		}
		fs["kustomization.yaml"] = kustomization + list
		return fs
	}
	f.write(files("1", true))
	f.opts.Wait = true
	res, writes := f.mustSync("rev1")
	counts(t, res, map[tsync.Action]int{tsync.ActionCreate: 5})
	if res.Status != health.Healthy {
		t.Errorf("health %s, want Healthy: %v", res.Status, res.Health)
	}
	// 5 objects, the inventory, nothing else (tether-system exists).
	if writes != 6 {
		t.Errorf("first sync sent %d writes, want 6 (5 objects and the inventory)", writes)
	}
	inv := f.inventory()
	if len(inv.Entries) != 5 {
		t.Fatalf("inventory has %d entries, want 5: %v", len(inv.Entries), inv.Set())
	}
	a := object.ObjMetadata{Namespace: ns, Name: "a", GroupKind: schema.GroupKind{Kind: "ConfigMap"}}
	if e := inv.Entries[a]; e.Source != "a.yaml" || e.Revision != "rev1" {
		t.Errorf("provenance of a: %+v", e)
	}
	live, err := f.admin.CoreV1().ConfigMaps(ns).Get(context.Background(), "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if live.Labels[contract.SyncLabel] != "cycle" || live.Annotations[contract.RevisionAnnotation] != "rev1" || live.Annotations[contract.SourceAnnotation] != "a.yaml" {
		t.Errorf("ConfigMap a lacks tether's label or provenance: labels %v annotations %v", live.Labels, live.Annotations)
	}

	// Same content, same revision, then a new revision that changes
	// nothing: zero writes on the wire.
	f.opts.Wait = false
	for _, rev := range []string{"rev1", "rev2"} {
		res, writes = f.mustSync(rev)
		counts(t, res, map[tsync.Action]int{tsync.ActionUnchanged: 5})
		if writes != 0 {
			t.Errorf("re-sync at %s sent %d writes, want 0 (%s)", rev, writes, f.clients.Requests)
		}
	}

	// One object changes: exactly one write.
	f.write(files("2", true))
	res, writes = f.mustSync("rev3")
	counts(t, res, map[tsync.Action]int{tsync.ActionUpdate: 1, tsync.ActionUnchanged: 4})
	if writes != 1 {
		t.Errorf("one changed object sent %d writes, want 1", writes)
	}
	data, err := f.configMapData(ns, "a")
	if err != nil || data["value"] != "2" {
		t.Errorf("ConfigMap a: %v, %v", data, err)
	}
	live, _ = f.admin.CoreV1().ConfigMaps(ns).Get(context.Background(), "a", metav1.GetOptions{})
	if got := live.Annotations[contract.RevisionAnnotation]; got != "rev3" {
		t.Errorf("revision annotation of the changed object is %q, want rev3", got)
	}
	live, _ = f.admin.CoreV1().ConfigMaps(ns).Get(context.Background(), "b", metav1.GetOptions{})
	if got := live.Annotations[contract.RevisionAnnotation]; got != "rev1" {
		t.Errorf("revision annotation of an unchanged object is %q, want rev1 (it was not rewritten)", got)
	}

	// Two objects leave the revision: they are pruned.
	f.write(files("2", false))
	res, _ = f.mustSync("rev4")
	counts(t, res, map[tsync.Action]int{tsync.ActionUnchanged: 3, tsync.ActionPrune: 2})
	for _, name := range []string{"b", "c"} {
		if _, err := f.configMapData(ns, name); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap %s not pruned: %v", name, err)
		}
	}
	if inv := f.inventory(); len(inv.Entries) != 3 {
		t.Errorf("inventory after prune has %d entries, want 3: %v", len(inv.Entries), inv.Set())
	}
}

// A CRD and a custom resource of its kind in one revision: the CRD goes
// first, the resource after it is established.
func TestSyncCRDAndCustomResource(t *testing.T) {
	f := newFixture(t, "crd")
	f.write(map[string]string{
		"crd.yaml": `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.tether.dev}
spec:
  group: example.tether.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`,
		"ns.yaml": nsYAML("crd"),
		"widget.yaml": `apiVersion: example.tether.dev/v1
kind: Widget
metadata: {name: w1, namespace: crd}
spec: {size: 3}
`,
	})
	f.opts.Wait = true
	res, _ := f.mustSync("rev1")
	counts(t, res, map[tsync.Action]int{tsync.ActionCreate: 3})
	if res.Status != health.Healthy {
		t.Errorf("health %s: %v", res.Status, res.Health)
	}
	res, writes := f.mustSync("rev1")
	counts(t, res, map[tsync.Action]int{tsync.ActionUnchanged: 3})
	if writes != 0 {
		t.Errorf("re-sync wrote %d times", writes)
	}
}

// An autoscaler owns spec.replicas: after it scales the Deployment, a
// re-sync neither resets the replicas nor writes anything.
func TestSyncLeavesAutoscaledReplicasAlone(t *testing.T) {
	f := newFixture(t, "hpa")
	ns := "hpa"
	files := map[string]string{
		"ns.yaml": nsYAML(ns),
		"deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: hpa}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: registry.example.com/web:1, resources: {requests: {cpu: 100m}}}]}
`,
		"hpa.yaml": `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: hpa}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
`,
	}
	f.write(files)
	res, _ := f.mustSync("rev1")
	counts(t, res, map[tsync.Action]int{tsync.ActionCreate: 3})
	ctx := context.Background()
	deploy, err := f.admin.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *deploy.Spec.Replicas != 2 {
		t.Fatalf("first creation used %d replicas, want the manifest's 2", *deploy.Spec.Replicas)
	}
	// A re-sync while tether still owns the field changes nothing.
	if res, writes := f.mustSync("rev1"); writes != 0 {
		t.Fatalf("re-sync before scaling wrote %d times: %v", writes, res.Counts())
	}
	// Scale the way the HPA controller does: through the scale subresource,
	// as its own field manager.
	eventually(t, 30*time.Second, "scaling the Deployment to 5", func() error {
		scale, err := f.admin.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		scale.Spec.Replicas = 5
		_, err = f.admin.AppsV1().Deployments(ns).UpdateScale(ctx, "web", scale, metav1.UpdateOptions{FieldManager: "horizontal-pod-autoscaler"})
		return err
	})
	res, writes := f.mustSync("rev2")
	counts(t, res, map[tsync.Action]int{tsync.ActionUnchanged: 3})
	if writes != 0 {
		t.Errorf("re-sync after scaling wrote %d times", writes)
	}
	deploy, err = f.admin.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *deploy.Spec.Replicas != 5 {
		t.Errorf("replicas are %d after the re-sync, want the autoscaler's 5", *deploy.Spec.Replicas)
	}
	// A real change to the Deployment still applies, and still leaves
	// the replicas alone.
	files["deploy.yaml"] = strings.Replace(files["deploy.yaml"], "web:1", "web:2", 1)
	f.write(files)
	res, writes = f.mustSync("rev3")
	counts(t, res, map[tsync.Action]int{tsync.ActionUpdate: 1, tsync.ActionUnchanged: 2})
	if writes != 1 {
		t.Errorf("image change wrote %d times, want 1", writes)
	}
	deploy, _ = f.admin.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if *deploy.Spec.Replicas != 5 || deploy.Spec.Template.Spec.Containers[0].Image != "registry.example.com/web:2" {
		t.Errorf("after the image change: replicas %d image %s", *deploy.Spec.Replicas, deploy.Spec.Template.Spec.Containers[0].Image)
	}
}

// An admission policy that rejects one object fails the plan; nothing of
// the revision is written.
func TestSyncAdmissionDenialCaughtInPlan(t *testing.T) {
	f := newFixture(t, "admission")
	ns := "admission"
	if _, err := f.admin.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	applyYAML(t, f.c.Config, `apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-forbidden-configmaps}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["configmaps"]
  validations:
  - expression: "!has(object.data) || !('forbidden' in object.data)"
    message: "ConfigMaps may not carry a forbidden key"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: no-forbidden-configmaps}
spec:
  policyName: no-forbidden-configmaps
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: admission}
`)
	f.write(map[string]string{
		"good.yaml": cm(ns, "good", "ok"),
		"bad.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad, namespace: admission}\ndata: {forbidden: \"yes\"}\n",
	})
	// The policy takes a moment to be enforced: probe with a dry run.
	eventually(t, time.Minute, "the admission policy is enforced", func() error {
		probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns}, Data: map[string]string{"forbidden": "x"}}
		_, err := f.admin.CoreV1().ConfigMaps(ns).Create(context.Background(), probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			return errors.New("a forbidden ConfigMap is still admitted")
		}
		return nil
	})
	res, writes, err := f.sync("rev1")
	if err == nil {
		t.Fatal("the sync succeeded despite the admission policy")
	}
	if res.Phase != "plan" || !strings.Contains(err.Error(), "ConfigMap/admission/bad") || !strings.Contains(err.Error(), "forbidden key") {
		t.Errorf("want a plan failure naming ConfigMap/admission/bad and the policy message, got phase %q: %v", res.Phase, err)
	}
	if writes != 0 {
		t.Errorf("a failed plan wrote %d times", writes)
	}
	if _, err := f.configMapData(ns, "good"); !apierrors.IsNotFound(err) {
		t.Errorf("the good ConfigMap was written although the plan failed: %v", err)
	}
}

// A field another manager set is a conflict, reported per field, not
// overwritten; the opt-in annotation takes it.
func TestSyncReportsFieldManagerConflicts(t *testing.T) {
	f := newFixture(t, "conflict")
	ns := "conflict"
	f.write(map[string]string{"ns.yaml": nsYAML(ns), "cm.yaml": cm(ns, "shared", "from-git")})
	f.mustSync("rev1")
	// Someone else applies the same field with another value.
	patch := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"shared","namespace":"conflict"},"data":{"value":"by-hand"}}`)
	force := true
	if _, err := f.admin.CoreV1().ConfigMaps(ns).Patch(context.Background(), "shared", types.ApplyPatchType, patch, metav1.PatchOptions{FieldManager: "operator-by-hand", Force: &force}); err != nil {
		t.Fatal(err)
	}
	f.write(map[string]string{"ns.yaml": nsYAML(ns), "cm.yaml": cm(ns, "shared", "from-git-2")})
	res, writes, err := f.sync("rev2")
	if err == nil {
		t.Fatal("the sync overwrote another manager's field")
	}
	if res.Phase != "plan" || !strings.Contains(err.Error(), "data.value (operator-by-hand)") {
		t.Errorf("want the conflicting field and manager named, got phase %q: %v", res.Phase, err)
	}
	if writes != 0 {
		t.Errorf("a conflicting sync wrote %d times", writes)
	}
	if data, _ := f.configMapData(ns, "shared"); data["value"] != "by-hand" {
		t.Errorf("the value was overwritten: %v", data)
	}
	// Opting in to the field takes it.
	f.write(map[string]string{"ns.yaml": nsYAML(ns), "cm.yaml": strings.Replace(cm(ns, "shared", "from-git-2"), "  namespace: conflict\n",
		"  namespace: conflict\n  annotations:\n    "+contract.ForceConflictsAnnotation+": data.value\n", 1)})
	res, _ = f.mustSync("rev3")
	counts(t, res, map[tsync.Action]int{tsync.ActionUpdate: 1, tsync.ActionUnchanged: 1})
	if data, _ := f.configMapData(ns, "shared"); data["value"] != "from-git-2" {
		t.Errorf("forced apply did not take the field: %v", data)
	}
}

// A broken revision stops at build: the cluster and the inventory stay as
// they were, nothing is pruned.
func TestSyncBuildErrorTouchesNothing(t *testing.T) {
	f := newFixture(t, "broken")
	ns := "broken"
	f.write(map[string]string{"ns.yaml": nsYAML(ns), "a.yaml": cm(ns, "a", "1"), "b.yaml": cm(ns, "b", "1")})
	f.mustSync("rev1")
	before := f.inventory()
	f.write(map[string]string{"ns.yaml": nsYAML(ns), "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\n  namespace: [broken\n"})
	res, writes, err := f.sync("rev2")
	if err == nil || res.Phase != "build" {
		t.Fatalf("want a build failure, got phase %q err %v", res.Phase, err)
	}
	if !strings.Contains(err.Error(), "a.yaml") {
		t.Errorf("the build error does not name the file: %v", err)
	}
	if writes != 0 {
		t.Errorf("a failed build wrote %d times", writes)
	}
	if _, err := f.configMapData(ns, "b"); err != nil {
		t.Errorf("ConfigMap b was pruned after a failed build: %v", err)
	}
	if after := f.inventory(); len(after.Entries) != len(before.Entries) {
		t.Errorf("the inventory changed after a failed build: %d → %d entries", len(before.Entries), len(after.Entries))
	}
}

// An empty revision over a non-empty inventory is refused unless allowed.
func TestSyncRefusesEmptyRevision(t *testing.T) {
	f := newFixture(t, "empty")
	ns := "empty"
	f.write(map[string]string{"ns.yaml": nsYAML(ns), "a.yaml": cm(ns, "a", "1")})
	f.mustSync("rev1")
	f.write(map[string]string{"README.md": "nothing here\n"})
	res, writes, err := f.sync("rev2")
	if err == nil || res.Phase != "prune" || !strings.Contains(err.Error(), "renders no objects") {
		t.Fatalf("want the empty revision refused, got phase %q: %v", res.Phase, err)
	}
	if writes != 0 {
		t.Errorf("the refused sync wrote %d times", writes)
	}
	if _, err := f.configMapData(ns, "a"); err != nil {
		t.Errorf("ConfigMap a is gone: %v", err)
	}
	f.opts.AllowEmpty = true
	f.opts.PruneProtected = []string{"Namespace"}
	res, _ = f.mustSync("rev3")
	counts(t, res, map[tsync.Action]int{tsync.ActionPrune: 2})
	if inv := f.inventory(); len(inv.Entries) != 0 {
		t.Errorf("inventory still has %v", inv.Set())
	}
}

// More deletes than the budget: nothing is deleted, the refusal names the
// budget, and the objects stay owned.
func TestSyncDeleteBudget(t *testing.T) {
	f := newFixture(t, "budget")
	ns := "budget"
	files := map[string]string{"ns.yaml": nsYAML(ns)}
	for i := 0; i < 8; i++ {
		files[fmt.Sprintf("cm%d.yaml", i)] = cm(ns, fmt.Sprintf("cm%d", i), "1")
	}
	f.write(files)
	f.mustSync("rev1")
	f.opts.DeleteBudget = tsync.Budget{Count: 3}
	f.write(map[string]string{"ns.yaml": nsYAML(ns), "cm0.yaml": cm(ns, "cm0", "1")})
	res, writes, err := f.sync("rev2")
	if err == nil || res.Phase != "prune" || !strings.Contains(err.Error(), "delete budget exceeded: 7 objects would be deleted, the budget is 3") {
		t.Fatalf("want the delete budget refusal, got phase %q: %v", res.Phase, err)
	}
	if writes != 1 {
		// Only the inventory, marking the seven as left to prune.
		t.Errorf("the refused prune wrote %d times, want 1 (the inventory)", writes)
	}
	for i := 1; i < 8; i++ {
		if _, err := f.configMapData(ns, fmt.Sprintf("cm%d", i)); err != nil {
			t.Errorf("cm%d deleted despite the budget: %v", i, err)
		}
	}
	inv := f.inventory()
	if len(inv.Entries) != 9 {
		t.Errorf("the inventory forgot objects it still owns: %v", inv.Set())
	}
	// With a larger budget the next sync prunes them.
	f.opts.DeleteBudget = tsync.Budget{Percent: 100}
	res, _ = f.mustSync("rev2")
	counts(t, res, map[tsync.Action]int{tsync.ActionUnchanged: 2, tsync.ActionPrune: 7})
}

// Guards on what prune may delete: protected kinds, the prune-disabled
// annotation, and objects taken over by someone else.
func TestSyncPruneGuards(t *testing.T) {
	f := newFixture(t, "guards")
	ctx := context.Background()
	f.write(map[string]string{
		"ns.yaml":       nsYAML("guards"),
		"ns2.yaml":      nsYAML("guards-extra"),
		"keep.yaml":     strings.Replace(cm("guards", "keep", "1"), "  namespace: guards\n", "  namespace: guards\n  annotations:\n    "+contract.PruneAnnotation+": disabled\n", 1),
		"taken.yaml":    cm("guards", "taken", "1"),
		"plain.yaml":    cm("guards", "plain", "1"),
		"pvc.yaml":      "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: guards}\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n",
		"guarded.yaml":  cm("guards-extra", "inside", "1"),
		"anchor.yaml":   cm("guards", "anchor", "1"),
		"untouched.yml": cm("guards", "untouched", "1"),
	})
	f.mustSync("rev1")
	// Someone takes "taken" over by relabelling it.
	taken, err := f.admin.CoreV1().ConfigMaps("guards").Get(ctx, "taken", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	taken.Labels[contract.SyncLabel] = "someone-else"
	if _, err := f.admin.CoreV1().ConfigMaps("guards").Update(ctx, taken, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.write(map[string]string{"ns.yaml": nsYAML("guards"), "anchor.yaml": cm("guards", "anchor", "1"), "untouched.yml": cm("guards", "untouched", "1")})
	res, _ := f.mustSync("rev2")
	outcome := map[string]tsync.PruneOutcome{}
	for _, p := range res.Pruned {
		outcome[contract.ObjectRef(p.ID)] = p
	}
	for ref, want := range map[string]tsync.Action{
		"ConfigMap/guards/keep":             tsync.ActionOrphan,
		"ConfigMap/guards/taken":            tsync.ActionOrphan,
		"ConfigMap/guards/plain":            tsync.ActionPrune,
		"PersistentVolumeClaim/guards/data": tsync.ActionOrphan,
		"Namespace/guards-extra":            tsync.ActionOrphan,
		"ConfigMap/guards-extra/inside":     tsync.ActionPrune,
	} {
		if got := outcome[ref]; got.Action != want {
			t.Errorf("%s: %s (%s), want %s", ref, got.Action, got.Reason, want)
		}
	}
	for _, name := range []string{"keep", "taken"} {
		if _, err := f.configMapData("guards", name); err != nil {
			t.Errorf("ConfigMap %s was deleted: %v", name, err)
		}
	}
	if _, err := f.admin.CoreV1().PersistentVolumeClaims("guards").Get(ctx, "data", metav1.GetOptions{}); err != nil {
		t.Errorf("the PVC was deleted: %v", err)
	}
	if _, err := f.admin.CoreV1().Namespaces().Get(ctx, "guards-extra", metav1.GetOptions{}); err != nil {
		t.Errorf("the Namespace was deleted: %v", err)
	}
	if _, err := f.configMapData("guards", "plain"); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap plain was not pruned: %v", err)
	}
	if inv := f.inventory(); len(inv.Entries) != 3 {
		t.Errorf("the inventory should hold only the 3 desired objects, has %v", inv.Set())
	}
}

// The inventory ConfigMap deleted by hand: the next sync adopts the objects
// again (no writes to them) and prunes nothing it should not.
func TestSyncInventoryDeletedByHand(t *testing.T) {
	f := newFixture(t, "adopt")
	ns := "adopt"
	f.write(map[string]string{"ns.yaml": nsYAML(ns), "a.yaml": cm(ns, "a", "1"), "b.yaml": cm(ns, "b", "1")})
	f.mustSync("rev1")
	if err := f.admin.CoreV1().ConfigMaps("tether-system").Delete(context.Background(), inventory.ConfigMapName("adopt"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res, writes := f.mustSync("rev1")
	counts(t, res, map[tsync.Action]int{tsync.ActionUnchanged: 3})
	if writes != 1 {
		t.Errorf("re-adoption wrote %d times, want 1 (the inventory)", writes)
	}
	if inv := f.inventory(); len(inv.Entries) != 3 {
		t.Errorf("the inventory was not rebuilt: %v", inv.Set())
	}
	for _, name := range []string{"a", "b"} {
		if _, err := f.configMapData(ns, name); err != nil {
			t.Errorf("ConfigMap %s: %v", name, err)
		}
	}
}

// Immutable fields: a clear error without the opt-in, delete-and-recreate
// with it.
func TestSyncImmutableFieldChange(t *testing.T) {
	f := newFixture(t, "immutable")
	job := func(image, annotations string) string {
		return `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: immutable
` + annotations + `spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: m, image: ` + image + `}]
`
	}
	f.write(map[string]string{"ns.yaml": nsYAML("immutable"), "job.yaml": job("registry.example.com/migrate:1", "")})
	f.mustSync("rev1")
	f.write(map[string]string{"ns.yaml": nsYAML("immutable"), "job.yaml": job("registry.example.com/migrate:2", "")})
	res, writes, err := f.sync("rev2")
	if err == nil || res.Phase != "plan" || !strings.Contains(err.Error(), "Job.batch/immutable/migrate") || !strings.Contains(err.Error(), contract.RecreateAnnotation) {
		t.Fatalf("want a plan failure naming the Job and the opt-in, got phase %q: %v", res.Phase, err)
	}
	if writes != 0 {
		t.Errorf("wrote %d times", writes)
	}
	f.write(map[string]string{"ns.yaml": nsYAML("immutable"), "job.yaml": job("registry.example.com/migrate:2", "  annotations:\n    "+contract.RecreateAnnotation+": \"true\"\n")})
	res, _ = f.mustSync("rev3")
	counts(t, res, map[tsync.Action]int{tsync.ActionRecreate: 1, tsync.ActionUnchanged: 1})
	j, err := f.admin.BatchV1().Jobs("immutable").Get(context.Background(), "migrate", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := j.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/migrate:2" {
		t.Errorf("the recreated Job runs %s", img)
	}
}

// tether sync --once killed in the middle of apply: the next sync converges,
// and nothing it created is orphaned, even when the next revision drops
// objects the killed one had just created.
func TestSyncConvergesAfterKillMidApply(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	bin := tetherBinary(t)
	dir := t.TempDir()
	ns := "killed"
	const n = 300
	write := func(count int) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			os.Remove(filepath.Join(dir, e.Name()))
		}
		os.WriteFile(filepath.Join(dir, "ns.yaml"), []byte(nsYAML(ns)), 0o644)
		for i := 0; i < count; i++ {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("cm%03d.yaml", i)), []byte(cm(ns, fmt.Sprintf("cm%03d", i), "1")), 0o644)
		}
	}
	syncCmd := func(extra ...string) *exec.Cmd {
		args := append([]string{"sync", "--once", "--name", "killed", "--kubeconfig", sa.Kubeconfig, "--prune", "--delete-budget", "unlimited", dir}, extra...)
		return exec.Command(bin, args...)
	}
	count := func() int {
		list, err := c.Client.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{LabelSelector: contract.SyncLabel + "=killed"})
		if err != nil {
			return 0
		}
		return len(list.Items)
	}
	write(n)
	// One request at a time, so the kill lands in the middle of apply.
	cmd := syncCmd("--concurrency", "1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the sync starts writing ConfigMaps", func() error {
		if count() >= 20 {
			return nil
		}
		return fmt.Errorf("%d written", count())
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	written := count()
	if written >= n {
		t.Fatalf("the sync finished before it was killed (%d of %d written); the test proves nothing", written, n)
	}
	t.Logf("killed after %d of %d ConfigMaps", written, n)

	// The next revision keeps only the first 10 ConfigMaps: everything the
	// killed sync created beyond them must be pruned, not orphaned.
	write(10)
	out.Reset()
	next := syncCmd()
	next.Stdout, next.Stderr = &out, &out
	if err := next.Run(); err != nil {
		t.Fatalf("the sync after the kill failed: %v\n%s", err, out.String())
	}
	list, err := c.Client.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{LabelSelector: contract.SyncLabel + "=killed"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, item := range list.Items {
		names = append(names, item.Name)
	}
	sort.Strings(names)
	if len(names) != 10 || names[0] != "cm000" || names[9] != "cm009" {
		t.Errorf("after converging, the sync's ConfigMaps are %v, want cm000..cm009\n%s", names, out.String())
	}
}
