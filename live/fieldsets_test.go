package live

import (
	"fmt"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func withFieldSet(key string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"managedFields": []any{
			map[string]any{"manager": "tether", "operation": "Apply", "fieldsV1": map[string]any{"f:data": map[string]any{"f:" + key: map[string]any{}}}},
		}},
	}}
}

func setOf(u *unstructured.Unstructured) uintptr {
	m := u.Object["metadata"].(map[string]any)["managedFields"].([]any)[0].(map[string]any)["fieldsV1"]
	return uintptr(reflect.ValueOf(m).UnsafePointer())
}

// A bounded FieldSets shares the sets it keeps and, once it keeps max of
// them, leaves new ones alone instead of growing.
func TestFieldSetsBound(t *testing.T) {
	f := NewFieldSets(2)
	for i := range 3 {
		f.Share(withFieldSet(fmt.Sprint(i)))
	}
	if len(f.sets) != 2 {
		t.Fatalf("%d sets kept, want 2", len(f.sets))
	}
	a, b := withFieldSet("0"), withFieldSet("0")
	f.Share(a)
	f.Share(b)
	if setOf(a) != setOf(b) {
		t.Error("a kept set is not shared")
	}
	c, d := withFieldSet("2"), withFieldSet("2")
	f.Share(c)
	f.Share(d)
	if setOf(c) == setOf(d) {
		t.Error("a set past the bound is shared")
	}
}
