package sync

import (
	"bytes"
	gosync "sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/live"
)

// fieldSets shares the field sets of the live objects a reconcile reads
// (live.FieldSets), and tether's parsed field sets of them.
type fieldSets struct {
	live.FieldSets
	mu gosync.Mutex
	// parsed are tether's parsed field sets (see owned), by their JSON.
	parsed map[string]*fieldpath.Set
}

// owned is tetherFields(obj), with equal sets shared: the change's drift
// baseline, one per object a reconcile keeps, and read only (DetectDrift
// and the no-op proof compute new sets from it).
func (f *fieldSets) owned(obj *unstructured.Unstructured) *fieldpath.Set {
	if obj == nil {
		return nil
	}
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager != contract.FieldManager || mf.Operation != metav1.ManagedFieldsOperationApply || mf.Subresource != "" || mf.FieldsV1 == nil {
			continue
		}
		key := string(mf.FieldsV1.Raw)
		f.mu.Lock()
		set, ok := f.parsed[key]
		f.mu.Unlock()
		if ok {
			return set
		}
		set = &fieldpath.Set{}
		if err := set.FromJSON(bytes.NewReader(mf.FieldsV1.Raw)); err != nil {
			return nil
		}
		f.mu.Lock()
		if f.parsed == nil {
			f.parsed = map[string]*fieldpath.Set{}
		}
		f.parsed[key] = set
		f.mu.Unlock()
		return set
	}
	return nil
}
