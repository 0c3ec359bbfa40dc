package sync

import (
	"bytes"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"
)

func liveWithFields(t *testing.T, name, fields string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	y := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: app\n  managedFields:\n  - manager: tether\n    operation: Apply\n    apiVersion: v1\n    fieldsType: FieldsV1\n    fieldsV1: " + fields + "\ndata: {k: v}\n"
	if err := sigsyaml.Unmarshal([]byte(y), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

func fieldsV1Of(u *unstructured.Unstructured) map[string]any {
	return u.Object["metadata"].(map[string]any)["managedFields"].([]any)[0].(map[string]any)["fieldsV1"].(map[string]any)
}

// Equal field sets of different objects become one map, which changes
// nothing the objects say; different ones stay apart. tether's parsed
// sets are shared the same way and equal what tetherFields parses.
func TestFieldSetsShareEqualSets(t *testing.T) {
	const same = `{"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:a": {}}}}`
	a, b := liveWithFields(t, "a", same), liveWithFields(t, "b", same)
	c := liveWithFields(t, "c", `{"f:data": {"f:other": {}}}`)
	before := b.GetManagedFields()
	var f fieldSets
	for _, u := range []*unstructured.Unstructured{a, b, c} {
		f.Share(u)
	}
	if reflect.ValueOf(fieldsV1Of(a)).UnsafePointer() != reflect.ValueOf(fieldsV1Of(b)).UnsafePointer() {
		t.Error("equal field sets are not shared")
	}
	if reflect.ValueOf(fieldsV1Of(a)).UnsafePointer() == reflect.ValueOf(fieldsV1Of(c)).UnsafePointer() {
		t.Error("different field sets are shared")
	}
	if got := b.GetManagedFields(); !reflect.DeepEqual(got, before) {
		t.Errorf("sharing changed the managed fields: %v, want %v", got, before)
	}
	oa, ob, oc := f.owned(a), f.owned(b), f.owned(c)
	if oa != ob || oa == oc {
		t.Errorf("parsed sets: a %p b %p c %p, want a and b shared, c apart", oa, ob, oc)
	}
	if want := tetherFields(a); !oa.Equals(want) {
		t.Errorf("owned = %v, want %v", oa, want)
	}
	if f.owned(&unstructured.Unstructured{Object: map[string]any{}}) != nil {
		t.Error("an object without managed fields has an owned set")
	}
}

// Objects that share field sets (as a reconcile's LISTs and the watch
// cache make them) come out of every path that reads them unchanged: the
// no-op proof, drift detection, kept drift, the autoscaler rule, the
// take-over patch and the list of other writers. A path that changed a
// shared set in place would change the other object too.
func TestSharedFieldSetsStayUntouched(t *testing.T) {
	desired := desiredObjects(t)["Deployment"]
	var sets fieldSets
	a, b := loadJSON(t, "deployment-set-image.json"), loadJSON(t, "deployment-set-image.json")
	sets.Share(a)
	sets.Share(b)
	for i := range a.GetManagedFields() {
		sa := a.Object["metadata"].(map[string]any)["managedFields"].([]any)[i].(map[string]any)["fieldsV1"]
		sb := b.Object["metadata"].(map[string]any)["managedFields"].([]any)[i].(map[string]any)["fieldsV1"]
		if reflect.ValueOf(sa).UnsafePointer() != reflect.ValueOf(sb).UnsafePointer() {
			t.Fatalf("the two objects do not share field set %d", i)
		}
	}
	before, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if _, why := ProvenUnchanged(desired, a); why == "" {
		t.Error("the no-op proof gave no reason for a changed image")
	}
	c := appliedChange(t, desired.DeepCopy(), "deployment.json")
	if d, err := DetectDrift(c, a, []IgnoreRule{{Group: "apps", Kind: "Deployment", Paths: []string{"spec.replicas"}}}); err != nil || d == nil {
		t.Errorf("drift %v, %v", d, err)
	}
	c.Live = a
	_ = keptDrift(c, []string{`.spec.template.spec.containers[name="app"].image`})
	c.autoscaled = true
	fitReplicas(c)
	c.SetBaseline(a)
	_ = needsTakeOver(a)
	if _, err := takeOverPatch(a, "apps/v1"); err != nil {
		t.Error(err)
	}
	_ = OtherWriters(a)
	for name, obj := range map[string]*unstructured.Unstructured{"the object read": a, "the object beside it": b} {
		after, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(after, before) {
			t.Errorf("%s changed:\nbefore %s\nafter  %s", name, before, after)
		}
	}
}
