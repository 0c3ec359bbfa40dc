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

// A bounded FieldSets shares the sets it keeps, never keeps more than max,
// and when a new set would pass max it starts again, so that sets seen
// later are shared too (a watch's objects change over days).
func TestFieldSetsBound(t *testing.T) {
	f := NewFieldSets(2)
	for i := range 3 {
		f.Share(withFieldSet(fmt.Sprint(i)))
		if len(f.sets) > 2 {
			t.Fatalf("%d sets kept, want at most 2", len(f.sets))
		}
	}
	shared := func(key string) bool {
		a, b := withFieldSet(key), withFieldSet(key)
		f.Share(a)
		f.Share(b)
		return setOf(a) == setOf(b)
	}
	for _, key := range []string{"2", "0", "7", "8", "9"} {
		if !shared(key) {
			t.Errorf("set %s, seen after the table filled, is not shared", key)
		}
		if len(f.sets) > 2 {
			t.Fatalf("%d sets kept, want at most 2", len(f.sets))
		}
	}
}
