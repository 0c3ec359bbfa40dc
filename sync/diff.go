package sync

import (
	"fmt"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/tether-gitops/tether/contract"
)

// Diff is a unified diff between the live object and the server's dry-run
// answer, with the bookkeeping only the server writes (managed fields,
// resourceVersion, generation, uid, creation time) and status left out. It
// is empty for unchanged objects; for a new object it shows all of it.
func (c *Change) Diff() (string, error) {
	var from, to string
	var err error
	if c.Live != nil {
		if from, err = diffYAML(c.Live); err != nil {
			return "", err
		}
	}
	want := c.Predicted
	if want == nil {
		want = c.Desired
	}
	if rev, ok := c.Desired.GetAnnotations()[contract.RevisionAnnotation]; ok && c.Action.writes() {
		// The dry run was made with the live revision annotation (see
		// dryRun); the write carries the new one.
		want = want.DeepCopy()
		setAnnotation(want, contract.RevisionAnnotation, rev)
	}
	if to, err = diffYAML(want); err != nil {
		return "", err
	}
	if from == to {
		return "", nil
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        difflib.SplitLines(from),
		B:        difflib.SplitLines(to),
		FromFile: "live " + c.Ref(),
		ToFile:   "desired " + c.Ref(),
		Context:  3,
	})
}

func diffYAML(obj *unstructured.Unstructured) (string, error) {
	c := obj.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	delete(c.Object, "status")
	out, err := yaml.Marshal(c.Object)
	if err != nil {
		return "", fmt.Errorf("encoding %s for diff: %w", obj.GetName(), err)
	}
	return string(out), nil
}
