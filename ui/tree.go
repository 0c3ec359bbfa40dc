package ui

import (
	"cmp"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/inventory"
)

// maxTreeDepth bounds how far ownerReferences are followed below an
// inventory object (Deployment → ReplicaSet → Pod is 2).
const maxTreeDepth = 4

// buildTree arranges a sync's inventory entries as the page shows them:
// each Namespace with the sync's objects in it (a Namespace the sync does
// not own groups them all the same), then the cluster-scoped objects; under
// each object, what it owns according to the ownerReferences of owned (the
// ReplicaSets, Pods and Jobs listed in its namespaces). live holds the live
// objects by ID; a missing one is reported not found.
func buildTree(entries []inventory.Entry, live map[object.ObjMetadata]*unstructured.Unstructured, owned []*unstructured.Unstructured, now time.Time) []Node {
	byOwner := map[types.UID][]*unstructured.Unstructured{}
	for _, o := range owned {
		for _, ref := range o.GetOwnerReferences() {
			byOwner[ref.UID] = append(byOwner[ref.UID], o)
		}
	}
	namespaces := map[string]*Node{}
	var roots []*Node
	nsGroup := func(name string) *Node {
		if n, ok := namespaces[name]; ok {
			return n
		}
		n := &Node{ID: object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "Namespace"}, Name: name}}
		namespaces[name] = n
		roots = append(roots, n)
		return n
	}
	var clusterScoped []Node
	for _, e := range entries {
		n := objectNode(e.ID, live[e.ID], now, byOwner, map[types.UID]bool{}, 0)
		n.Entry = &e
		switch {
		case e.ID.GroupKind == (schema.GroupKind{Kind: "Namespace"}):
			g := nsGroup(e.ID.Name)
			n.Children = append(n.Children, g.Children...)
			*g = n
		case e.ID.Namespace != "":
			g := nsGroup(e.ID.Namespace)
			g.Children = append(g.Children, n)
		default:
			clusterScoped = append(clusterScoped, n)
		}
	}
	out := make([]Node, 0, len(roots)+len(clusterScoped))
	for _, r := range roots {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Node) int { return cmp.Compare(a.ID.Name, b.ID.Name) })
	return append(out, clusterScoped...)
}

// objectNode is the node of one object and, through ownerReferences, of
// what it owns.
func objectNode(id object.ObjMetadata, obj *unstructured.Unstructured, now time.Time, byOwner map[types.UID][]*unstructured.Unstructured, seen map[types.UID]bool, depth int) Node {
	n := Node{ID: id, Found: obj != nil, Health: health.Object(obj, time.Time{}, now)}
	if obj == nil {
		return n
	}
	n.ChangedIn = obj.GetAnnotations()[contract.RevisionAnnotation]
	n.Managers = managers(obj)
	uid := obj.GetUID()
	if uid == "" || seen[uid] || depth >= maxTreeDepth {
		return n
	}
	seen[uid] = true
	children := slices.Clone(byOwner[uid])
	slices.SortFunc(children, func(a, b *unstructured.Unstructured) int {
		return cmp.Or(cmp.Compare(a.GetKind(), b.GetKind()), cmp.Compare(a.GetName(), b.GetName()))
	})
	for _, c := range children {
		if seen[c.GetUID()] {
			continue
		}
		cid := object.ObjMetadata{GroupKind: c.GroupVersionKind().GroupKind(), Namespace: c.GetNamespace(), Name: c.GetName()}
		n.Children = append(n.Children, objectNode(cid, c, now, byOwner, seen, depth+1))
	}
	return n
}

// managers lists the field managers of obj once each, tether first.
func managers(obj *unstructured.Unstructured) []string {
	var out []string
	for _, mf := range obj.GetManagedFields() {
		if !slices.Contains(out, mf.Manager) {
			out = append(out, mf.Manager)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == contract.FieldManager:
			return -1
		case b == contract.FieldManager:
			return 1
		}
		return cmp.Compare(a, b)
	})
	return out
}
