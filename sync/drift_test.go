package sync

import (
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
)

// appliedChange is the Change a reconcile leaves for desired whose live
// version after the apply is the fixture applied.
func appliedChange(t *testing.T, desired *unstructured.Unstructured, applied string) *Change {
	t.Helper()
	c := &Change{Desired: desired, ID: object.UnstructuredToObjMetadata(desired), owned: tetherFields(loadJSON(t, applied))}
	if c.owned == nil {
		t.Fatalf("%s has no tether entry", applied)
	}
	return c
}

// wantDrift checks what DetectDrift returned: no error, and a summary
// holding want, or no drift when want is "".
func wantDrift(t *testing.T, d *Drift, err error, want string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	if d != nil {
		got = d.Summary()
	}
	if (want == "") != (got == "") || !strings.Contains(got, want) {
		t.Errorf("drift %q, want %q", got, want)
	}
}

func TestDetectDrift(t *testing.T) {
	desired := desiredObjects(t)
	dep := appliedChange(t, desired["Deployment"], "deployment.json")
	for _, tc := range []struct {
		name   string
		c      *Change
		live   string
		ignore []IgnoreRule
		want   string // Summary; "" for no drift
	}{
		{"as applied", dep, "deployment.json", nil, ""},
		{"someone else's annotation", dep, "deployment-annotated.json", nil, ""},
		{"kubectl set image", dep, "deployment-set-image.json", nil,
			"spec.template.spec.containers[name=app].image: nginx:1.0 → nginx:2.0 by kubectl-set (Update) at "},
		{"kubectl set image, ignored by a rule", dep, "deployment-set-image.json",
			[]IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"spec.template.spec.containers[name=app].image"}}}, ""},
		{"a rule for another kind does not apply", dep, "deployment-set-image.json",
			[]IgnoreRule{{Kind: "ConfigMap", Paths: []string{"spec.template"}}}, "containers[name=app].image: nginx:1.0 → nginx:2.0"},
		{"kubectl scale through the scale subresource", dep, "deployment-scaled.json",
			[]IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"spec.template"}}}, "spec.replicas: 1 → 3 by kubectl (Update, scale)"},
		{"deleted", dep, "", nil, "deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var live *unstructured.Unstructured
			if tc.live != "" {
				live = loadJSON(t, tc.live)
			}
			d, err := DetectDrift(tc.c, live, tc.ignore)
			wantDrift(t, d, err, tc.want)
		})
	}
}

// The same value set back by another manager is no drift; a value the
// server normalised is never mistaken for one.
func TestDetectDriftComparesValuesOfLostFields(t *testing.T) {
	desired := desiredObjects(t)["Deployment"]
	c := appliedChange(t, desired, "deployment.json")
	live := loadJSON(t, "deployment-set-image.json")
	containers := live.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)
	containers[0].(map[string]any)["image"] = "nginx:1.0" // set back, still owned by kubectl-set
	if d, err := DetectDrift(c, live, nil); err != nil || d != nil {
		t.Errorf("drift %v (%v) after the value was set back", d, err)
	}
}

func TestDetectDriftMasksSecrets(t *testing.T) {
	secret := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "s", "namespace": "default"}, "data": map[string]any{"password": "aHVudGVyMg=="}}}
	applied := secret.DeepCopy()
	applied.Object["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{
		"manager": "tether", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
		"fieldsV1": map[string]any{"f:data": map[string]any{"f:password": map[string]any{}}}}}
	live := secret.DeepCopy()
	live.Object["data"] = map[string]any{"password": "c3dvcmRmaXNo"}
	live.Object["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{
		"manager": "kubectl-edit", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1",
		"fieldsV1": map[string]any{"f:data": map[string]any{"f:password": map[string]any{}}}}}
	c := &Change{Desired: secret, ID: object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "Secret"}, Namespace: "default", Name: "s"}, owned: tetherFields(applied)}
	d, err := DetectDrift(c, live, nil)
	if err != nil || d == nil {
		t.Fatalf("drift %v, %v", d, err)
	}
	got := d.Summary()
	if !strings.Contains(got, "data.password: *** → *** by kubectl-edit (Update)") || strings.Contains(got, "aHVudGVyMg") || strings.Contains(got, "c3dvcmRmaXNo") {
		t.Errorf("summary %q", got)
	}
}

// Every value of a Secret is masked in its drift, annotations too (they
// may hold a token); only labels and tether's own annotations are shown.
func TestDetectDriftMasksSecretAnnotations(t *testing.T) {
	meta := func(token, app string) map[string]any {
		return map[string]any{"name": "s", "namespace": "default",
			"labels":      map[string]any{"app": app},
			"annotations": map[string]any{"example.com/token": token, contract.SourceAnnotation: "app/secret.yaml"}}
	}
	fields := map[string]any{"f:metadata": map[string]any{
		"f:labels":      map[string]any{"f:app": map[string]any{}},
		"f:annotations": map[string]any{"f:example.com/token": map[string]any{}, "f:" + contract.SourceAnnotation: map[string]any{}}}}
	secret := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": meta("t0ken-in-git", "web")}}
	applied := secret.DeepCopy()
	applied.Object["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{
		"manager": "tether", "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields}}
	live := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": meta("t0ken-by-hand", "db")}}
	live.Object["metadata"].(map[string]any)["annotations"].(map[string]any)[contract.SourceAnnotation] = "elsewhere.yaml"
	live.Object["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{
		"manager": "kubectl-annotate", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": fields}}
	c := &Change{Desired: secret, ID: object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "Secret"}, Namespace: "default", Name: "s"}, owned: tetherFields(applied)}
	d, err := DetectDrift(c, live, nil)
	if err != nil || d == nil {
		t.Fatalf("drift %v, %v", d, err)
	}
	got := d.Summary()
	for _, want := range []string{"metadata.annotations.example.com/token: *** → ***", "metadata.labels.app: web → db", "app/secret.yaml → elsewhere.yaml"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "t0ken") {
		t.Errorf("summary %q shows the annotation's value", got)
	}
}

// Without a record of what tether owned, drift cannot be told.
func TestDetectDriftNeedsABaseline(t *testing.T) {
	c := &Change{Desired: desiredObjects(t)["ConfigMap"]}
	if d, err := DetectDrift(c, loadJSON(t, "configmap.json"), nil); d != nil || err != nil {
		t.Errorf("drift %v, %v", d, err)
	}
}

func TestOtherWriters(t *testing.T) {
	ws := OtherWriters(loadJSON(t, "deployment-scaled.json"))
	var got []string
	for _, w := range ws {
		got = append(got, w.Manager+": "+strings.Join(w.Fields, ", "))
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"kubectl-set (Update): spec.template.spec.containers[name=app].image",
		"kubectl (Update, scale): spec.replicas",
		"kubectl-annotate (Update): metadata.annotations.other.example.com/note",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("writers\n%s\nlack %q", all, want)
		}
	}
	if strings.Contains(all, "tether") || strings.Contains(all, "kube-controller-manager") {
		t.Errorf("writers include tether's apply or a status writer:\n%s", all)
	}
}

// An autoscaler's replicas are never drift.
func TestDetectDriftLeavesAutoscaledReplicas(t *testing.T) {
	c := appliedChange(t, desiredObjects(t)["Deployment"], "deployment.json")
	c.autoscaled = true
	live := loadJSON(t, "deployment-scaled.json")
	d, err := DetectDrift(c, live, []IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"spec.template"}}})
	if err != nil || d != nil {
		t.Errorf("drift %v (%v) for an autoscaled workload's replicas", d, err)
	}
}

func TestUpdatersOnly(t *testing.T) {
	live := loadJSON(t, "deployment-scaled.json")
	for _, tc := range []struct {
		conflicts []string
		want      bool
	}{
		{[]string{`spec.template.spec.containers[name="app"].image (kubectl-set)`}, true},
		{[]string{`spec.replicas (kubectl)`, `spec.template.spec.containers[name="app"].image (kubectl-set)`}, true},
		{[]string{`spec.replicas (tether)`}, false}, // an apply owns it on purpose
		{[]string{`spec.replicas (nobody)`}, false}, // not among the managers
		{[]string{`spec.replicas (another manager)`}, false},
	} {
		if got := updatersOnly(live, tc.conflicts); got != tc.want {
			t.Errorf("updatersOnly(%v) = %v, want %v", tc.conflicts, got, tc.want)
		}
	}
}

// The conflicts a plan keeps under warn or ignore are described as drift
// with both values and the manager, as the watch would have described
// them; a conflict the managed fields do not name keeps its path.
func TestKeptDrift(t *testing.T) {
	desired := desiredObjects(t)["Deployment"]
	c := &Change{Desired: desired, ID: object.UnstructuredToObjMetadata(desired), Live: loadJSON(t, "deployment-set-image.json")}
	d := keptDrift(c, []string{`.spec.template.spec.containers[name="app"].image`, ".spec.paused"})
	got := d.Summary()
	for _, want := range []string{
		"spec.paused: (none) → (none)",
		"spec.template.spec.containers[name=app].image: nginx:1.0 → nginx:2.0 by kubectl-set (Update) at ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("kept drift %q, want it to contain %q", got, want)
		}
	}
	if len(d.Fields) != 2 {
		t.Errorf("%d fields, want 2: %q", len(d.Fields), got)
	}
}

// Fields ignore rules cover that another manager changed are left out of
// the apply (given up), not taken back; other fields stay.
func TestCedeIgnored(t *testing.T) {
	imagePath := `.spec.template.spec.containers[name="app"].image`
	for _, tc := range []struct {
		name      string
		live      string
		rules     []IgnoreRule
		conflicts []string
		want      []string
		gone      []string // paths no longer in the desired object
	}{
		{"kubectl scale, replicas ignored", "deployment-scaled.json",
			[]IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"spec.replicas"}}}, []string{".spec.replicas"},
			[]string{"spec.replicas"}, []string{"spec.replicas"}},
		{"kubectl set image, the container ignored", "deployment-set-image.json",
			[]IgnoreRule{{Group: "apps", Kind: "Deployment", Name: "web", Paths: []string{"spec.template.spec.containers[name=app]"}}}, []string{imagePath},
			[]string{"spec.template.spec.containers[name=app].image"}, nil},
		{"a rule for other fields", "deployment-set-image.json",
			[]IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"spec.replicas"}}}, []string{imagePath}, nil, nil},
		{"a rule for another object", "deployment-scaled.json",
			[]IgnoreRule{{Group: "apps", Kind: "Deployment", Name: "other", Paths: []string{"spec.replicas"}}}, []string{".spec.replicas"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desired := desiredObjects(t)["Deployment"]
			before := desired.DeepCopy()
			c := &Change{Desired: desired, ID: object.UnstructuredToObjMetadata(desired), Live: loadJSON(t, tc.live)}
			got := cedeIgnored(c, tc.rules, tc.conflicts)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("ceded %v, want %v", got, tc.want)
			}
			if !equality.Semantic.DeepEqual(desired.Object, before.Object) {
				t.Error("the desired object was changed in place")
			}
			if len(tc.want) == 0 && c.Desired != desired {
				t.Error("the desired object was replaced with nothing ceded")
			}
			for _, g := range tc.gone {
				if _, found, _ := unstructured.NestedFieldNoCopy(c.Desired.Object, strings.Split(g, ".")...); found {
					t.Errorf("%s still in the desired object", g)
				}
			}
			if tc.name == "kubectl set image, the container ignored" {
				containers, _, _ := unstructured.NestedSlice(c.Desired.Object, "spec", "template", "spec", "containers")
				app := containers[0].(map[string]any)
				if len(containers) != 2 || app["name"] != "app" || app["image"] != nil || app["ports"] == nil {
					t.Errorf("containers %v, want app without its image, and the rest kept", containers)
				}
			}
		})
	}
}

func TestShortValueKeepsCharactersWhole(t *testing.T) {
	long := strings.Repeat("é", 60) // 120 bytes
	got := shortValue(long)
	if !utf8.ValidString(got) || !strings.HasSuffix(got, "...") || len(got) > 80 {
		t.Errorf("shortValue = %q (%d bytes)", got, len(got))
	}
}

// The per-object policy is git's annotation: the live object's does not
// count, so whoever can edit the object cannot switch its correction off.
func TestDriftPolicyOfReadsGitOnly(t *testing.T) {
	annotated := func(v string) *unstructured.Unstructured {
		obj := configMap("a", "1")
		if v != "" {
			obj.SetAnnotations(map[string]string{contract.DriftAnnotation: v})
		}
		return obj
	}
	for _, tc := range []struct {
		name, git, def, want string
	}{
		{"none: the sync's", "", DriftCorrect, DriftCorrect},
		{"git says warn", DriftWarn, DriftCorrect, DriftWarn},
		{"git says correct under warn", DriftCorrect, DriftWarn, DriftCorrect},
		{"git says ignore", DriftIgnore, DriftCorrect, DriftIgnore},
		{"not a policy: the sync's", "sometimes", DriftWarn, DriftWarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DriftPolicyOf(annotated(tc.git), tc.def); got != tc.want {
				t.Errorf("DriftPolicyOf = %q, want %q", got, tc.want)
			}
		})
	}
	if got := DriftPolicyOf(nil, DriftWarn); got != DriftWarn {
		t.Errorf("DriftPolicyOf(nil) = %q", got)
	}
}

// A tether.dev/drift annotation that is not a policy fails the plan,
// naming the object, its file, the annotation and the value; nothing is
// written.
func TestPlanRefusesABadDriftAnnotation(t *testing.T) {
	for _, tc := range []struct {
		value string
		ok    bool
	}{{"warn", true}, {"ignore", true}, {"Warn", false}, {"", false}, {"off", false}} {
		obj := configMap("a", "1")
		obj.SetAnnotations(map[string]string{contract.DriftAnnotation: tc.value})
		if err := CheckDriftAnnotation(obj); (err == nil) != tc.ok {
			t.Errorf("CheckDriftAnnotation(%q) = %v", tc.value, err)
		}
	}
	if err := CheckDriftAnnotation(configMap("a", "1")); err != nil {
		t.Errorf("an object without the annotation: %v", err)
	}
	f := newFakeCluster(t)
	bad := configMap("a", "1")
	bad.SetAnnotations(map[string]string{contract.DriftAnnotation: "off"})
	_, err := reconcileOnce(t, f, testOpts, "main@sha1:1", bad, configMap("b", "1"))
	if err == nil {
		t.Fatal("the plan accepted tether.dev/drift: off")
	}
	for _, want := range []string{"ConfigMap/app/a", "app.yaml", contract.DriftAnnotation, `"off"`, "correct, warn, ignore"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	for _, w := range f.writes() {
		if strings.HasPrefix(w, "apply ConfigMap/") {
			t.Errorf("written although the plan failed: %s", w)
		}
	}
}

// The fields a plan took back from plain updaters are described as drift
// with both values and the manager, as the watch would have described
// them; nothing taken back is no drift.
func TestTakenBackDrift(t *testing.T) {
	desired := desiredObjects(t)["Deployment"]
	c := &Change{Desired: desired, ID: object.UnstructuredToObjMetadata(desired), Live: loadJSON(t, "deployment-set-image.json"),
		TakesBack: []string{`spec.template.spec.containers[name="app"].image (kubectl-set)`}}
	d := TakenBackDrift(c)
	if d == nil || !strings.HasPrefix(d.Summary(), "spec.template.spec.containers[name=app].image: nginx:1.0 → nginx:2.0 by kubectl-set (Update) at ") {
		t.Errorf("taken back %v", d)
	}
	c.TakesBack = nil
	if d := TakenBackDrift(c); d != nil {
		t.Errorf("drift %q with nothing taken back", d.Summary())
	}
}
