package ui

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/inventory"
)

// Object pages name any object they are given: the inventories they are
// looked up in are read once per cache period, not once per name.
func TestObjectReadsTheInventoriesOnce(t *testing.T) {
	ctx := context.Background()
	typed := fake.NewClientset()
	inv := inventory.New("tether-system", "shop")
	settings := object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "ConfigMap"}, Namespace: "shop", Name: "settings"}
	inv.Entries[settings] = inventory.Entry{ID: settings, Revision: "main@sha1:3333333333333333333333333333333333333333"}
	if _, err := inventory.NewStore(typed.CoreV1(), "tether-system").Save(ctx, inv); err != nil {
		t.Fatal(err)
	}
	typed.ClearActions()
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{{Version: "v1"}})
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, meta.RESTScopeNamespace)
	dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	s := NewClusterSource(typed, dyn, mapper, time.Hour)

	for _, name := range []string{"a", "b", "c", "d"} {
		id := object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "ConfigMap"}, Namespace: "shop", Name: name}
		owners, err := s.Owners(ctx, "tether-system", id)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(owners) != 0 {
			t.Errorf("%s: owners %v, want none", name, owners)
		}
	}
	owners, err := s.Owners(ctx, "tether-system", settings)
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != 1 || owners[0].Inventory.Sync != "shop" || owners[0].Entry.Revision != inv.Entries[settings].Revision {
		t.Errorf("owners of %s: %+v, want the inventory of shop", settings, owners)
	}
	lists := 0
	for _, a := range typed.Actions() {
		if a.GetVerb() == "list" && a.GetResource().Resource == "configmaps" {
			lists++
		}
	}
	if lists != 1 {
		t.Errorf("%d lists of the inventories for 5 object pages, want 1", lists)
	}
}
