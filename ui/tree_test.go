package ui

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/inventory"
)

func obj(apiVersion, kind, ns, name, uid string, owners ...string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind}}
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetUID(types.UID(uid))
	var refs []metav1.OwnerReference
	for _, o := range owners {
		refs = append(refs, metav1.OwnerReference{UID: types.UID(o), Name: o})
	}
	u.SetOwnerReferences(refs)
	return u
}

func idOf(u *unstructured.Unstructured) object.ObjMetadata {
	return object.ObjMetadata{GroupKind: u.GroupVersionKind().GroupKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

// render prints a tree one node a line, indented, with markers for nodes
// not in the inventory (~) and not found (!).
func renderTree(nodes []Node, depth int, b *strings.Builder) {
	for _, n := range nodes {
		b.WriteString(strings.Repeat("  ", depth))
		switch {
		case n.Entry == nil && !n.Found:
			b.WriteString("~")
		case !n.Found:
			b.WriteString("!")
		}
		b.WriteString(n.ID.GroupKind.Kind + "/" + n.ID.Name + "\n")
		renderTree(n.Children, depth+1, b)
	}
}

func TestBuildTree(t *testing.T) {
	ns := obj("v1", "Namespace", "", "shop", "ns-1")
	deploy := obj("apps/v1", "Deployment", "shop", "web", "d-1")
	cm := obj("v1", "ConfigMap", "shop", "settings", "c-1")
	crd := obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "widgets.example.com", "crd-1")
	rsOld := obj("apps/v1", "ReplicaSet", "shop", "web-1", "rs-1", "d-1")
	rsNew := obj("apps/v1", "ReplicaSet", "shop", "web-2", "rs-2", "d-1")
	pod := obj("v1", "Pod", "shop", "web-2-abc", "p-1", "rs-2")
	stranger := obj("v1", "Pod", "shop", "other", "p-2", "someone-else")
	loopA := obj("v1", "Pod", "shop", "loop-a", "la", "lb", "d-1")
	loopB := obj("v1", "Pod", "shop", "loop-b", "lb", "la")
	other := obj("v1", "ConfigMap", "elsewhere", "x", "c-2")
	gone := object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "Service"}, Namespace: "shop", Name: "gone"}

	for _, tc := range []struct {
		name    string
		entries []object.ObjMetadata
		live    []*unstructured.Unstructured
		owned   []*unstructured.Unstructured
		want    string
	}{
		{
			name:    "namespace, workload, what it owns, a missing object, cluster-scoped last",
			entries: []object.ObjMetadata{idOf(crd), idOf(deploy), idOf(cm), gone, idOf(ns)},
			live:    []*unstructured.Unstructured{crd, deploy, cm, ns},
			owned:   []*unstructured.Unstructured{pod, rsNew, rsOld, stranger},
			want: `Namespace/shop
  Deployment/web
    ReplicaSet/web-1
    ReplicaSet/web-2
      Pod/web-2-abc
  ConfigMap/settings
  !Service/gone
CustomResourceDefinition/widgets.example.com
`,
		},
		{
			name:    "a namespace the sync does not own still groups its objects",
			entries: []object.ObjMetadata{idOf(cm), idOf(other)},
			live:    []*unstructured.Unstructured{cm, other},
			want: `~Namespace/elsewhere
  ConfigMap/x
~Namespace/shop
  ConfigMap/settings
`,
		},
		{
			name:    "ownership cycles end",
			entries: []object.ObjMetadata{idOf(deploy)},
			live:    []*unstructured.Unstructured{deploy},
			owned:   []*unstructured.Unstructured{loopA, loopB},
			want: `~Namespace/shop
  Deployment/web
    Pod/loop-a
      Pod/loop-b
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var entries []inventory.Entry
			for _, id := range tc.entries {
				entries = append(entries, inventory.Entry{ID: id, Revision: "r1"})
			}
			live := map[object.ObjMetadata]*unstructured.Unstructured{}
			for _, o := range tc.live {
				live[idOf(o)] = o
			}
			roots := buildTree(entries, live, tc.owned, time.Now())
			var b strings.Builder
			renderTree(roots, 0, &b)
			if b.String() != tc.want {
				t.Errorf("tree:\n%s\nwant:\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestBuildTreeHealthAndProvenance(t *testing.T) {
	cm := obj("v1", "ConfigMap", "shop", "settings", "c-1")
	cm.SetAnnotations(map[string]string{"tether.dev/revision": "main@sha1:abc"})
	cm.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl-edit"}, {Manager: "tether"}, {Manager: "kubectl-edit"}})
	gone := object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "ConfigMap"}, Namespace: "shop", Name: "gone"}
	roots := buildTree(
		[]inventory.Entry{{ID: idOf(cm), Source: "cm.yaml"}, {ID: gone, Stale: true}},
		map[object.ObjMetadata]*unstructured.Unstructured{idOf(cm): cm}, nil, time.Now())
	if len(roots) != 1 || len(roots[0].Children) != 2 {
		t.Fatalf("tree %+v", roots)
	}
	n, missing := roots[0].Children[0], roots[0].Children[1]
	if n.Health.Status != health.Healthy || n.ChangedIn != "main@sha1:abc" || strings.Join(n.Managers, ",") != "tether,kubectl-edit" || n.Entry.Source != "cm.yaml" {
		t.Errorf("node %+v", n)
	}
	if missing.Found || missing.Health.Status != health.Failed || !missing.Entry.Stale {
		t.Errorf("missing node %+v", missing)
	}
}
