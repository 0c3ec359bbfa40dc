package sync

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/inventory"
)

// normalize prepares the rendered objects for planning.
//
// Guarantees: every namespaced object has a namespace (the sync's default
// when it had none) and no cluster-scoped object has one, decided by the
// cluster's discovery or, for kinds whose CRD is in the same revision, by
// that CRD; every object carries the sync label and cli-utils' owning
// inventory annotation; fields only a server sets are removed; no two
// objects share an id. Objects of kinds no one defines are refused by name.
func (r *run) normalize() error {
	crds := crdScopes(r.res.Changes)
	invID := inventory.ID(r.opts.InventoryNamespace, r.opts.Name)
	r.invID = invID
	r.byID = make(map[object.ObjMetadata]*Change, len(r.res.Changes))
	var problems []string
	for _, c := range r.res.Changes {
		obj := c.Desired
		gk := c.gvk.GroupKind()
		mapping, err := r.s.clients.Mapper.RESTMapping(gk, c.gvk.Version)
		switch {
		case err == nil:
			c.GVR = mapping.Resource
			c.Namespaced = mapping.Scope.Name() == meta.RESTScopeNameNamespace
		case meta.IsNoMatchError(err):
			namespaced, ok := crds[gk]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s %s (%s): unknown kind: no CustomResourceDefinition for it in the cluster or in this revision",
					c.gvk.GroupVersion(), c.gvk.Kind, describeObject(obj, c.Source)))
				continue
			}
			c.Namespaced = namespaced
			c.Deferred = true
		default:
			return fmt.Errorf("discovering %s: %w", c.gvk, err)
		}
		if c.Namespaced {
			if obj.GetNamespace() == "" {
				obj.SetNamespace(r.opts.Namespace)
			}
		} else {
			obj.SetNamespace("")
		}
		stripServerFields(obj)
		setLabel(obj, contract.SyncLabel, r.opts.Name)
		setAnnotation(obj, contract.OwningInventoryAnnotation, invID)
		if c.Source != "" {
			setAnnotation(obj, contract.SourceAnnotation, c.Source)
		}
		c.ID = object.UnstructuredToObjMetadata(obj)
		if prev, dup := r.byID[c.ID]; dup {
			problems = append(problems, fmt.Sprintf("%s: rendered twice (%s and %s)", c.Ref(), prev.Source, c.Source))
			continue
		}
		r.byID[c.ID] = c
	}
	if len(problems) > 0 {
		return &PhaseError{Phase: "plan", Objects: problems, Err: fmt.Errorf("%d objects cannot be applied", len(problems))}
	}
	return nil
}

// crdScopes maps the kinds that CRDs in the set define to whether they are
// namespaced.
func crdScopes(changes []*Change) map[schema.GroupKind]bool {
	out := map[schema.GroupKind]bool{}
	for _, c := range changes {
		if !isCRD(c.gvk.GroupKind()) {
			continue
		}
		group, _, _ := unstructured.NestedString(c.Desired.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(c.Desired.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(c.Desired.Object, "spec", "scope")
		if group != "" && kind != "" {
			out[schema.GroupKind{Group: group, Kind: kind}] = scope != "Cluster"
		}
	}
	return out
}

var (
	crdGroupKind       = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}
	namespaceGroupKind = schema.GroupKind{Kind: "Namespace"}
)

func isCRD(gk schema.GroupKind) bool       { return gk == crdGroupKind }
func isNamespace(gk schema.GroupKind) bool { return gk == namespaceGroupKind }

// serverFields are the metadata fields only the API server sets. Applying
// them would fail or pin stale values, and they change on every write
// (resourceVersion, managed fields times, generation), so they are removed
// from what tether applies and left out, with status, wherever two
// versions of an object are compared or shown: the plan's comparison, the
// diff, the drift fingerprint.
var serverFields = []string{"managedFields", "resourceVersion", "generation", "uid", "selfLink", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"}

// stripServerFields removes status and serverFields from obj, in place.
func stripServerFields(obj *unstructured.Unstructured) {
	for _, f := range serverFields {
		unstructured.RemoveNestedField(obj.Object, "metadata", f)
	}
	delete(obj.Object, "status")
}

// withoutServerFields returns a copy of obj without status and
// serverFields.
func withoutServerFields(obj *unstructured.Unstructured) *unstructured.Unstructured {
	c := obj.DeepCopy()
	stripServerFields(c)
	return c
}

// WithoutServerFields returns a copy of obj without status and the
// metadata fields only the API server sets (managedFields, resourceVersion,
// generation, uid, selfLink, creationTimestamp, deletionTimestamp,
// deletionGracePeriodSeconds), for showing or comparing two versions of an
// object the way tether's plan and diff do (the web page uses it).
func WithoutServerFields(obj *unstructured.Unstructured) *unstructured.Unstructured {
	return withoutServerFields(obj)
}

func setLabel(obj *unstructured.Unstructured, k, v string) {
	l := obj.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[k] = v
	obj.SetLabels(l)
}

func setAnnotation(obj *unstructured.Unstructured, k, v string) {
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[k] = v
	obj.SetAnnotations(a)
}

// describeObject names an object that has no id yet: Kind namespace/name
// from file.
func describeObject(obj *unstructured.Unstructured, source string) string {
	name := obj.GetName()
	if ns := obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	if source != "" {
		return name + " from " + source
	}
	return name
}
