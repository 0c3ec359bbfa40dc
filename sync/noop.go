package sync

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/tether-gitops/tether/contract"
)

// How the plan decided an object's action (Change.Decision).
const (
	// DecidedLocally: the live object, as the plan read it, proves that an
	// apply would change nothing, so no dry run was sent.
	DecidedLocally = "proven locally"
	// DecidedByDryRun: the server answered a dry run.
	DecidedByDryRun = "dry run"
	// DecidedKeptDrift: the object drifted under the drift policy warn or
	// ignore and git has not changed it since, so the change in the
	// cluster is kept.
	DecidedKeptDrift = "drift kept"
)

// sameRendering reports whether two renderings of an object are the same
// but for the revision annotation.
func sameRendering(a, b *unstructured.Unstructured) bool {
	x, y := a.DeepCopy(), b.DeepCopy()
	for _, u := range []*unstructured.Unstructured{x, y} {
		if ann := u.GetAnnotations(); ann != nil {
			delete(ann, contract.RevisionAnnotation)
			u.SetAnnotations(ann)
		}
	}
	return equality.Semantic.DeepEqual(x.Object, y.Object)
}

// provenUnchanged reports whether applying desired would leave live exactly
// as it is, decided from live alone (no request): the fields tether's apply
// entry in live's managedFields owns are exactly the fields of desired, no
// other manager shares any of them, and every desired value equals the
// live one. When it cannot prove it, it says why, and the plan asks the
// server. It errs only towards "cannot prove": a value the server
// normalises (a quantity written as 1000m, an int-or-string), a key the
// server defaults (a port's protocol), an empty or null value, elements
// someone else added to a list, or a list whose merge the managed fields do
// not show all make it fall back.
//
// desired must be what tether would apply (labels, annotations and the
// live revision annotation set, fields owned by autoscalers removed). The
// plan uses it; it is exported for the end-to-end test that holds it to the
// server's own answer.
func ProvenUnchanged(desired, live *unstructured.Unstructured) (bool, string) {
	switch {
	case live == nil:
		return false, "a new object"
	case live.GetDeletionTimestamp() != nil:
		return false, "being deleted"
	}
	entries, err := managedEntries(live)
	if err != nil {
		return false, err.Error()
	}
	var mine *fieldpath.Set
	for _, e := range entries {
		if !e.isTether() {
			continue
		}
		if mine != nil {
			return false, "tether has more than one apply entry"
		}
		if e.APIVersion != desired.GetAPIVersion() {
			return false, fmt.Sprintf("last applied as %s", e.APIVersion)
		}
		mine = e.fields
	}
	if mine == nil {
		return false, "not applied by tether before"
	}
	for _, e := range entries {
		if e.isTether() {
			continue
		}
		if shared := mine.Intersection(e.fields); !shared.Empty() {
			return false, fmt.Sprintf("shares fields with manager %q", e.Manager)
		}
	}
	w := walkObject(desired, live, mine)
	switch {
	case w.undecided != "":
		return false, w.undecided
	case len(w.diffs) > 0:
		return false, fmt.Sprintf("%s differs", w.diffs[0])
	case !w.owned.Equals(mine):
		return false, "the revision sets other fields than tether owns"
	}
	return true, ""
}
