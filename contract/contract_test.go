package contract

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"
)

func TestObjectRef(t *testing.T) {
	for _, tc := range []struct {
		id   object.ObjMetadata
		want string
	}{
		{object.ObjMetadata{Namespace: "a", Name: "b", GroupKind: schema.GroupKind{Kind: "ConfigMap"}}, "ConfigMap/a/b"},
		{object.ObjMetadata{Name: "n", GroupKind: schema.GroupKind{Kind: "Namespace"}}, "Namespace/n"},
		{object.ObjMetadata{Namespace: "a", Name: "w", GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}}, "Deployment.apps/a/w"},
	} {
		if got := ObjectRef(tc.id); got != tc.want {
			t.Errorf("ObjectRef(%v) = %q, want %q", tc.id, got, tc.want)
		}
	}
}
