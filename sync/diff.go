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
	if c.ID.GroupKind.Group == "" && c.ID.GroupKind.Kind == "Secret" {
		// Secret values never reach a terminal or a CI log.
		before, after := maskSecret(c.Live, want)
		if from, err = diffYAMLOrEmpty(before); err != nil {
			return "", err
		}
		want = after
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
	out, err := yaml.Marshal(withoutServerFields(obj).Object)
	if err != nil {
		return "", fmt.Errorf("encoding %s %s/%s for diff: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
	}
	return string(out), nil
}

func diffYAMLOrEmpty(obj *unstructured.Unstructured) (string, error) {
	if obj == nil {
		return "", nil
	}
	return diffYAML(obj)
}

// maskSecret returns copies of two versions of a Secret whose values are
// replaced the way kubectl diff does: "***" where a key is unchanged,
// "*** (before)" and "*** (after)" where it changed. kubectl's
// last-applied-configuration annotation, which holds the values too, is
// masked as well.
func maskSecret(before, after *unstructured.Unstructured) (*unstructured.Unstructured, *unstructured.Unstructured) {
	var b, a *unstructured.Unstructured
	if before != nil {
		b = before.DeepCopy()
	}
	if after != nil {
		a = after.DeepCopy()
	}
	for _, field := range []string{"data", "stringData"} {
		var bm, am map[string]any
		if b != nil {
			bm, _, _ = unstructured.NestedMap(b.Object, field)
		}
		if a != nil {
			am, _, _ = unstructured.NestedMap(a.Object, field)
		}
		for k, bv := range bm {
			av, ok := am[k]
			switch {
			case ok && equalValues(av, bv):
				bm[k], am[k] = "***", "***"
			case ok:
				bm[k], am[k] = "*** (before)", "*** (after)"
			default:
				bm[k] = "*** (before)"
			}
		}
		for k := range am {
			if _, ok := bm[k]; !ok {
				am[k] = "*** (after)"
			}
		}
		if bm != nil {
			_ = unstructured.SetNestedMap(b.Object, bm, field)
		}
		if am != nil {
			_ = unstructured.SetNestedMap(a.Object, am, field)
		}
	}
	const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"
	for _, o := range []*unstructured.Unstructured{b, a} {
		if o == nil {
			continue
		}
		if ann := o.GetAnnotations(); ann[lastApplied] != "" {
			ann[lastApplied] = "***"
			o.SetAnnotations(ann)
		}
	}
	return b, a
}

func equalValues(a, b any) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}
