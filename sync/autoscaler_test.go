package sync

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/object"
)

// scaleEntry is a managedFields entry that owns spec.replicas through the
// scale subresource, written by manager with operation.
func scaleEntry(manager string, operation metav1.ManagedFieldsOperationType, subresource string) metav1.ManagedFieldsEntry {
	return metav1.ManagedFieldsEntry{Manager: manager, Operation: operation, Subresource: subresource, APIVersion: "apps/v1",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{}}}`)}}
}

// The HorizontalPodAutoscaler controller writes spec.replicas as
// kube-controller-manager (Update, subresource scale); KEDA and other
// autoscalers the same way under their names. kubectl scale writes as
// kubectl (Update, scale): a person, not an autoscaler.
func TestScaledByAutoscaler(t *testing.T) {
	status := metav1.ManagedFieldsEntry{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status",
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:replicas":{}}}`)}}
	otherField := scaleEntry("kube-controller-manager", metav1.ManagedFieldsOperationUpdate, "scale")
	otherField.FieldsV1 = &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{}}}`)}
	for _, tc := range []struct {
		name  string
		entry metav1.ManagedFieldsEntry
		want  bool
	}{
		{"the HPA controller", scaleEntry("kube-controller-manager", metav1.ManagedFieldsOperationUpdate, "scale"), true},
		{"KEDA's operator", scaleEntry("keda-operator", metav1.ManagedFieldsOperationUpdate, "scale"), true},
		{"kubectl scale", scaleEntry("kubectl", metav1.ManagedFieldsOperationUpdate, "scale"), false},
		{"kubectl under another binary name", scaleEntry("kubectl1.35", metav1.ManagedFieldsOperationUpdate, "scale"), false},
		{"a kubectl plugin", scaleEntry("kubectl-scale", metav1.ManagedFieldsOperationUpdate, "scale"), false},
		{"an update of the object itself", scaleEntry("kube-controller-manager", metav1.ManagedFieldsOperationUpdate, ""), false},
		{"an apply through the scale subresource", scaleEntry("someone", metav1.ManagedFieldsOperationApply, "scale"), false},
		{"status replicas", status, false},
		{"another field through the scale subresource", otherField, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}}
			obj.SetManagedFields([]metav1.ManagedFieldsEntry{tc.entry})
			if got := scaledByAutoscaler(obj); got != tc.want {
				t.Errorf("scaledByAutoscaler = %v, want %v", got, tc.want)
			}
		})
	}
}

// Replicas an autoscaler outside git took are not drift; kubectl scale's
// are.
func TestDetectDriftLeavesReplicasOfAnAutoscalerOutsideGit(t *testing.T) {
	c := appliedChange(t, desiredObjects(t)["Deployment"], "deployment.json")
	onlyReplicas := []IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"spec.template"}}}
	for _, tc := range []struct {
		manager string
		want    string // "" for no drift
	}{
		{"kube-controller-manager", ""},
		{"keda-operator", ""},
		{"kubectl", "spec.replicas: 1 → 3 by kubectl (Update, scale)"},
	} {
		t.Run(tc.manager, func(t *testing.T) {
			live := loadJSON(t, "deployment-scaled.json")
			mf := live.GetManagedFields()
			found := false
			for i := range mf {
				if mf[i].Subresource == "scale" {
					mf[i].Manager, found = tc.manager, true
				}
			}
			if !found {
				t.Fatal("deployment-scaled.json has no scale entry")
			}
			live.SetManagedFields(mf)
			d, err := DetectDrift(c, live, onlyReplicas)
			wantDrift(t, d, err, tc.want)
		})
	}
}

// webDeployment is a Deployment in namespace app with replicas 1.
func webDeployment() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "app"},
		"spec": map[string]any{"replicas": int64(1), "template": map[string]any{
			"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "web:1"}}}}},
	}}
}

// scaledLive is the Deployment as tether applied it and then scaled to
// replicas by manager through the scale subresource.
func scaledLive(manager string, replicas int64) *unstructured.Unstructured {
	live := owned(webDeployment(), "web", "uid-web")
	_ = unstructured.SetNestedField(live.Object, replicas, "spec", "replicas")
	live.SetManagedFields([]metav1.ManagedFieldsEntry{
		{Manager: "tether", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "apps/v1", FieldsType: "FieldsV1",
			FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:template":{}}}`)}},
		scaleEntry(manager, metav1.ManagedFieldsOperationUpdate, "scale"),
	})
	return live
}

// A reconcile and a correction leave spec.replicas out of the apply when
// an autoscaler that git does not have owns it (the fake cluster stores
// what tether sent, so a missing spec.replicas is one tether did not
// send); after kubectl scale they take the manifest's replicas back.
func TestAutoscalerOutsideGitKeepsReplicas(t *testing.T) {
	id := object.UnstructuredToObjMetadata(webDeployment())
	// wantReplicas checks the spec.replicas tether's write (the apply or
	// the correction) sent: none when the autoscaler keeps them, else
	// git's 1.
	wantReplicas := func(t *testing.T, f *fakeCluster, write string, keeps bool) {
		t.Helper()
		n, found, _ := unstructured.NestedInt64(f.get("Deployment", "app", "web").Object, "spec", "replicas")
		if keeps && found {
			t.Errorf("the %s sent spec.replicas %d: it takes the autoscaler's replicas back", write, n)
		}
		if !keeps && (!found || n != 1) {
			t.Errorf("spec.replicas %d (sent %v) after kubectl scale, want git's 1 taken back", n, found)
		}
	}
	for _, tc := range []struct {
		manager string
		keeps   bool
	}{
		{"kube-controller-manager", true},
		{"kubectl", false},
	} {
		t.Run(tc.manager+" in a reconcile", func(t *testing.T) {
			f := newFakeCluster(t, scaledLive(tc.manager, 3))
			if _, err := reconcileOnce(t, f, testOpts, "main@sha1:1", webDeployment()); err != nil {
				t.Fatal(err)
			}
			wantReplicas(t, f, "apply", tc.keeps)
		})
		t.Run(tc.manager+" in a correction", func(t *testing.T) {
			f := newFakeCluster(t)
			res, err := reconcileOnce(t, f, testOpts, "main@sha1:1", webDeployment())
			if err != nil {
				t.Fatal(err)
			}
			var c *Change
			for _, ch := range res.Changes {
				if ch.ID == id {
					c = ch
				}
			}
			live := scaledLive(tc.manager, 3)
			live.SetResourceVersion(f.get("Deployment", "app", "web").GetResourceVersion())
			gvr, _ := f.gvr("Deployment")
			if err := f.dyn.Tracker().Update(gvr, live, "app"); err != nil {
				t.Fatal(err)
			}
			c.Live = live
			if _, err := f.syncer().Correct(context.Background(), testOpts, []*Change{c}); err != nil {
				t.Fatal(err)
			}
			wantReplicas(t, f, "correction", tc.keeps)
		})
	}
}
