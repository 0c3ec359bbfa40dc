package sync

import (
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
