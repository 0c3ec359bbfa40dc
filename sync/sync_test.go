package sync

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"
	"sigs.k8s.io/yaml"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/inventory"
)

func u(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(j); err != nil {
		t.Fatal(err)
	}
	return obj
}

func change(t *testing.T, y string) *Change {
	t.Helper()
	obj := u(t, y)
	return &Change{ID: object.UnstructuredToObjMetadata(obj), Desired: obj, gvk: obj.GroupVersionKind()}
}

func TestApplyAndDeleteOrder(t *testing.T) {
	changes := []*Change{
		change(t, `{apiVersion: apps/v1, kind: Deployment, metadata: {name: web, namespace: app}}`),
		change(t, `{apiVersion: v1, kind: Namespace, metadata: {name: app}}`),
		change(t, `{apiVersion: example.com/v1, kind: Widget, metadata: {name: w, namespace: app}}`),
		change(t, `{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {name: widgets.example.com}}`),
		change(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: app}}`),
	}
	first, rest := applyStages(changes)
	var firstKinds, restKinds []string
	for _, c := range first {
		firstKinds = append(firstKinds, c.ID.GroupKind.Kind)
	}
	for _, c := range rest {
		restKinds = append(restKinds, c.ID.GroupKind.Kind)
	}
	if !reflect.DeepEqual(firstKinds, []string{"Namespace", "CustomResourceDefinition"}) {
		t.Errorf("first stage %v", firstKinds)
	}
	if !reflect.DeepEqual(restKinds, []string{"Deployment", "Widget", "ConfigMap"}) {
		t.Errorf("second stage %v", restKinds)
	}
	for _, tc := range []struct {
		gk   schema.GroupKind
		want int
	}{
		{schema.GroupKind{Group: "example.com", Kind: "Widget"}, 0},
		{schema.GroupKind{Group: "apps", Kind: "Deployment"}, 0},
		{schema.GroupKind{Kind: "Namespace"}, 1},
		{schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}, 2},
	} {
		if got := deleteStage(tc.gk); got != tc.want {
			t.Errorf("deleteStage(%s) = %d, want %d", tc.gk, got, tc.want)
		}
	}
}

const hpaYAML = `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: app}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
`

const deployYAML = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app}
spec:
  replicas: 2
  template: {}
`

func liveDeployment(t *testing.T, replicas int, managers string) *unstructured.Unstructured {
	t.Helper()
	obj := u(t, deployYAML)
	_ = unstructured.SetNestedField(obj.Object, int64(replicas), "spec", "replicas")
	var mf []metav1.ManagedFieldsEntry
	if err := yaml.Unmarshal([]byte(managers), &mf); err != nil {
		t.Fatal(err)
	}
	obj.SetManagedFields(mf)
	return obj
}

func TestAdjustForAutoscalers(t *testing.T) {
	tetherOwnsReplicas := `
- manager: tether
  operation: Apply
  fieldsType: FieldsV1
  fieldsV1: {"f:spec": {"f:replicas": {}, "f:template": {}}}
`
	hpaOwnsReplicas := `
- manager: tether
  operation: Apply
  fieldsType: FieldsV1
  fieldsV1: {"f:spec": {"f:template": {}}}
- manager: kube-controller-manager
  operation: Update
  subresource: scale
  fieldsType: FieldsV1
  fieldsV1: {"f:spec": {"f:replicas": {}}}
`
	kubectlScaled := strings.Replace(hpaOwnsReplicas, "manager: kube-controller-manager", "manager: kubectl", 1)
	for _, tc := range []struct {
		name      string
		withHPA   bool
		live      *unstructured.Unstructured
		want      int64
		wantFound bool
	}{
		{name: "no autoscaler: manifest replicas", live: liveDeployment(t, 7, tetherOwnsReplicas), want: 2, wantFound: true},
		{name: "kubectl scale, no autoscaler: manifest replicas (taken back)", live: liveDeployment(t, 7, kubectlScaled), want: 2, wantFound: true},
		{name: "an autoscaler outside git took replicas: leave them out", live: liveDeployment(t, 7, hpaOwnsReplicas), wantFound: false},
		{name: "first creation: manifest replicas once", withHPA: true, want: 2, wantFound: true},
		{name: "tether still owns replicas: keep the live value", withHPA: true, live: liveDeployment(t, 3, tetherOwnsReplicas), want: 3, wantFound: true},
		{name: "autoscaler took replicas: leave them out", withHPA: true, live: liveDeployment(t, 7, hpaOwnsReplicas), wantFound: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := change(t, deployYAML)
			d.Live = tc.live
			all := []*Change{d}
			if tc.withHPA {
				all = append(all, change(t, hpaYAML))
			}
			adjustForAutoscalers([]*Change{d}, all)
			got, found, _ := unstructured.NestedInt64(d.Desired.Object, "spec", "replicas")
			if found != tc.wantFound || (found && got != tc.want) {
				t.Errorf("spec.replicas = %d (present %v), want %d (present %v)", got, found, tc.want, tc.wantFound)
			}
		})
	}
	// An autoscaler for another namespace or kind does not count.
	other := change(t, strings.Replace(hpaYAML, "namespace: app", "namespace: other", 1))
	d := change(t, deployYAML)
	d.Live = liveDeployment(t, 7, tetherOwnsReplicas)
	adjustForAutoscalers([]*Change{d}, []*Change{d, other})
	if got, _, _ := unstructured.NestedInt64(d.Desired.Object, "spec", "replicas"); got != 2 {
		t.Errorf("an autoscaler in another namespace changed replicas to %d", got)
	}
}

func TestConflictParsing(t *testing.T) {
	err := &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: 409, Reason: metav1.StatusReasonConflict,
		Message: `Apply failed with 2 conflicts: conflict with "kubectl" using v1: .data.a`,
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{
			{Type: metav1.CauseTypeFieldManagerConflict, Message: `conflict with "kubectl" using v1`, Field: ".data.a"},
			{Type: metav1.CauseTypeFieldManagerConflict, Message: `conflict with "helm"`, Field: ".spec.replicas"},
		}},
	}}
	got := conflictFields(err)
	want := []string{"data.a (kubectl)", "spec.replicas (helm)"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("conflictFields = %v, want %v", got, want)
	}
	if conflictFields(errors.New("boom")) != nil || conflictFields(nil) != nil {
		t.Error("non-conflict errors yield conflicts")
	}
	for _, tc := range []struct {
		annotation string
		mode       force
		covered    bool
	}{
		{"", forceNone, false},
		{"false", forceNone, false},
		{"true", forceAll, false},
		{"data.a", forceFields, false},
		{"data.a, .spec.replicas", forceFields, true},
	} {
		obj := u(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: c}}`)
		if tc.annotation != "" {
			obj.SetAnnotations(map[string]string{contract.ForceConflictsAnnotation: tc.annotation})
		}
		if m := forceMode(obj); m != tc.mode {
			t.Errorf("%q: mode %d, want %d", tc.annotation, m, tc.mode)
		}
		if tc.mode == forceFields {
			if c := covered(got, forceFieldList(obj)); c != tc.covered {
				t.Errorf("%q covers both conflicts: %v, want %v", tc.annotation, c, tc.covered)
			}
		}
	}
}

func TestImmutableChangeRecognised(t *testing.T) {
	gk := schema.GroupKind{Group: "batch", Kind: "Job"}
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{`spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable`, true},
		{`spec.clusterIPs[0]: Invalid value: []string{"10.96.0.9"}: may not change once set`, true},
		{`spec: Forbidden: updates to statefulset spec for fields other than 'replicas' are forbidden`, true},
		{`metadata.name: Invalid value: "A": a lowercase RFC 1123 subdomain must consist of`, false},
	} {
		err := apierrors.NewInvalid(gk, "migrate", nil)
		err.ErrStatus.Message = tc.msg
		if got := isImmutableChange(err); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.msg, got, tc.want)
		}
	}
	if isImmutableChange(apierrors.NewConflict(schema.GroupResource{Resource: "jobs"}, "x", errors.New("immutable"))) {
		t.Error("a conflict taken for an immutable field change")
	}
}

func TestSameObjectIgnoresServerBookkeeping(t *testing.T) {
	live := u(t, `
apiVersion: v1
kind: ConfigMap
metadata:
  name: c
  resourceVersion: "10"
  generation: 1
  managedFields: [{manager: tether, operation: Apply, time: "2026-01-01T00:00:00Z"}]
data: {a: "1"}
`)
	pred := live.DeepCopy()
	pred.SetResourceVersion("11")
	pred.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "tether", Operation: "Apply", Time: &metav1.Time{Time: time.Now()}}})
	if !sameObject(live, pred) {
		t.Error("bookkeeping differences count as a change")
	}
	_ = unstructured.SetNestedField(pred.Object, int64(3), "status", "observedGeneration")
	if !sameObject(live, pred) {
		t.Error("a status difference counts as a change")
	}
	_ = unstructured.SetNestedField(pred.Object, "2", "data", "a")
	if sameObject(live, pred) {
		t.Error("a data change is not a change")
	}
}

func TestBudget(t *testing.T) {
	for _, tc := range []struct {
		in    string
		total int
		limit int
		str   string
		err   bool
	}{
		{"", 1000, DefaultDeleteBudget, "50", false},
		{"10", 1000, 10, "10", false},
		{"10%", 1000, 100, "10%", false},
		{"10%", 5, 1, "10%", false}, // rounds up: one delete is always possible
		{"unlimited", 1000, 1000, "unlimited", false},
		{"0", 0, 0, "", true},
		{"-3", 0, 0, "", true},
		{"150%", 0, 0, "", true},
		{"lots", 0, 0, "", true},
	} {
		b, err := ParseBudget(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParseBudget(%q): err %v", tc.in, err)
			continue
		}
		if tc.err {
			if !strings.Contains(err.Error(), tc.in) {
				t.Errorf("error %q does not quote the input", err)
			}
			continue
		}
		if got := b.Limit(tc.total); got != tc.limit {
			t.Errorf("%q.Limit(%d) = %d, want %d", tc.in, tc.total, got, tc.limit)
		}
		if b.String() != tc.str {
			t.Errorf("%q.String() = %q", tc.in, b.String())
		}
	}
}

func TestPruneGuards(t *testing.T) {
	r := &run{opts: Options{Name: "app", InventoryNamespace: "tether-system"}}
	invID := inventory.ID("tether-system", "app")
	ours := func(y string, extra map[string]string) candidate {
		obj := u(t, y)
		obj.SetLabels(map[string]string{contract.SyncLabel: "app"})
		ann := map[string]string{contract.OwningInventoryAnnotation: invID}
		for k, v := range extra {
			ann[k] = v
		}
		obj.SetAnnotations(ann)
		return candidate{id: object.UnstructuredToObjMetadata(obj), live: obj}
	}
	cmYAML := `{apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: app}}`
	for _, tc := range []struct {
		name    string
		c       candidate
		allowed []string
		want    string // substring of the reason; "" means deletable
	}{
		{name: "plain object is deletable", c: ours(cmYAML, nil), want: ""},
		{name: "prune disabled", c: ours(cmYAML, map[string]string{contract.PruneAnnotation: contract.PruneDisabled}), want: "disabled"},
		{name: "namespace protected", c: ours(`{apiVersion: v1, kind: Namespace, metadata: {name: app}}`, nil), want: "protected kind Namespace"},
		{name: "namespace allowed", c: ours(`{apiVersion: v1, kind: Namespace, metadata: {name: app}}`, nil), allowed: []string{"Namespace"}, want: ""},
		{name: "crd protected", c: ours(`{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {name: w.example.com}}`, nil), want: "protected kind CustomResourceDefinition"},
		{name: "crd allowed by group kind", c: ours(`{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {name: w.example.com}}`, nil),
			allowed: []string{"CustomResourceDefinition.apiextensions.k8s.io"}, want: ""},
		{name: "pvc protected", c: ours(`{apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: d, namespace: app}}`, nil), want: "protected kind PersistentVolumeClaim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.opts.PruneProtected = tc.allowed
			got := r.keepReason(tc.c, invID)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("keepReason = %q, want %q", got, tc.want)
			}
		})
	}
	taken := ours(cmYAML, nil)
	taken.live.SetLabels(map[string]string{contract.SyncLabel: "other"})
	if got := r.keepReason(taken, invID); !strings.Contains(got, `taken over by sync "other"`) {
		t.Errorf("relabelled object: %q", got)
	}
	unlabelled := ours(cmYAML, nil)
	unlabelled.live.SetLabels(nil)
	if got := r.keepReason(unlabelled, invID); !strings.Contains(got, "label was removed") {
		t.Errorf("unlabelled object: %q", got)
	}
	otherInv := ours(cmYAML, map[string]string{contract.OwningInventoryAnnotation: "kpt-123"})
	if got := r.keepReason(otherInv, invID); !strings.Contains(got, `inventory "kpt-123"`) {
		t.Errorf("object of another inventory: %q", got)
	}
}

func TestGuardEmpty(t *testing.T) {
	owned := inventory.New("tether-system", "app")
	owned.Entries[object.ObjMetadata{Name: "x", Namespace: "a", GroupKind: schema.GroupKind{Kind: "ConfigMap"}}] = inventory.Entry{}
	for _, tc := range []struct {
		name    string
		objects int
		inv     *inventory.Inventory
		opts    Options
		refuse  bool
	}{
		{"empty over owned objects", 0, owned, Options{Prune: true}, true},
		{"allowed explicitly", 0, owned, Options{Prune: true, AllowEmpty: true}, false},
		{"prune off deletes nothing", 0, owned, Options{}, false},
		{"first sync of an empty folder", 0, inventory.New("tether-system", "app"), Options{Prune: true}, false},
		{"non-empty revision", 1, owned, Options{Prune: true}, false},
	} {
		r := &run{opts: tc.opts, inv: tc.inv, res: &Result{}}
		for i := 0; i < tc.objects; i++ {
			r.res.Changes = append(r.res.Changes, &Change{})
		}
		if err := r.guardEmpty(); (err != nil) != tc.refuse {
			t.Errorf("%s: err %v, refuse %v", tc.name, err, tc.refuse)
		}
	}
}

func TestPhaseErrorNamesEverything(t *testing.T) {
	err := &PhaseError{Phase: "plan", Revision: "main@sha1:abc", Err: errors.New("2 objects cannot be applied"),
		Objects: []string{"ConfigMap/a/b (b.yaml): denied", "Deployment.apps/a/w (w.yaml): conflict"}}
	msg := err.Error()
	for _, want := range []string{"plan failed", "main@sha1:abc", "ConfigMap/a/b (b.yaml): denied", "Deployment.apps/a/w"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
}

func TestSecretDiffMasksValues(t *testing.T) {
	live := u(t, `
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: app
  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{"data":{"password":"b2xk"}}'}
data: {password: b2xk, user: YWRtaW4=, gone: eA==}
`)
	desired := u(t, `{apiVersion: v1, kind: Secret, metadata: {name: db, namespace: app}, data: {password: bmV3, user: YWRtaW4=, added: eQ==}}`)
	c := &Change{ID: object.UnstructuredToObjMetadata(desired), Desired: desired, Live: live, Predicted: desired, Action: ActionUpdate}
	d, err := c.Diff()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"b2xk", "bmV3", "YWRtaW4=", "eA==", "eQ=="} {
		if strings.Contains(d, secret) {
			t.Errorf("the diff shows the value %q:\n%s", secret, d)
		}
	}
	for _, want := range []string{"-  password: '*** (before)'", "+  password: '*** (after)'", "user: '***'", "-  gone: '*** (before)'", "+  added: '*** (after)'"} {
		if !strings.Contains(d, want) {
			t.Errorf("the diff lacks %q:\n%s", want, d)
		}
	}
	// Other kinds are shown as they are.
	cmLive := u(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: c}, data: {a: old}}`)
	cmWant := u(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: c}, data: {a: new}}`)
	c = &Change{ID: object.UnstructuredToObjMetadata(cmWant), Desired: cmWant, Live: cmLive, Predicted: cmWant, Action: ActionUpdate}
	if d, _ := c.Diff(); !strings.Contains(d, "-  a: old") || !strings.Contains(d, "+  a: new") {
		t.Errorf("ConfigMap diff:\n%s", d)
	}
}

func TestOwnedElsewhere(t *testing.T) {
	r := &run{opts: Options{Name: "app"}, invID: "tether.tether-system.app"}
	obj := func(labels, annotations map[string]string) *unstructured.Unstructured {
		o := u(t, `{apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: x}}`)
		o.SetLabels(labels)
		o.SetAnnotations(annotations)
		return o
	}
	for _, tc := range []struct {
		name string
		live *unstructured.Unstructured
		want string
	}{
		{"absent", nil, ""},
		{"unowned: adopted", obj(nil, nil), ""},
		{"ours", obj(map[string]string{contract.SyncLabel: "app"}, map[string]string{contract.OwningInventoryAnnotation: "tether.tether-system.app"}), ""},
		{"another sync", obj(map[string]string{contract.SyncLabel: "other"}, nil), `owned by sync "other"`},
		{"another installation", obj(map[string]string{contract.SyncLabel: "app"}, map[string]string{contract.OwningInventoryAnnotation: "tether.elsewhere.app"}), `owned by inventory "tether.elsewhere.app"`},
		{"a cli-utils tool", obj(nil, map[string]string{contract.OwningInventoryAnnotation: "kpt-1234"}), `owned by inventory "kpt-1234"`},
	} {
		got := r.ownedElsewhere(tc.live)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestFingerprintIgnoresStatus(t *testing.T) {
	a := u(t, `{apiVersion: apps/v1, kind: Deployment, metadata: {name: w, resourceVersion: "1", generation: 1}, spec: {replicas: 1}, status: {replicas: 0}}`)
	b := a.DeepCopy()
	b.SetResourceVersion("2")
	_ = unstructured.SetNestedField(b.Object, int64(1), "status", "replicas")
	if fingerprint(a) != fingerprint(b) {
		t.Error("a status update counts as drift")
	}
	_ = unstructured.SetNestedField(b.Object, int64(3), "spec", "replicas")
	if fingerprint(a) == fingerprint(b) {
		t.Error("a spec change is not drift")
	}
	c := a.DeepCopy()
	c.SetLabels(map[string]string{"by": "hand"})
	if fingerprint(a) == fingerprint(c) {
		t.Error("a label added by hand is not drift")
	}
}
