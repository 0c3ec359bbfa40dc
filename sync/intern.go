package sync

import (
	"bytes"
	"encoding/json"
	gosync "sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/tether-gitops/tether/contract"
)

// fieldSets shares the field sets of the managedFields of the live
// objects a reconcile reads. Decoded from JSON, a field set is a tree of
// small maps ({"f:data": {"f:key": {}}, ...}) that takes several times the
// memory of the rest of a ConfigMap, and the objects of one sync mostly
// have the same ones (every ConfigMap tether applied with the same keys,
// every Deployment's status written by the same controller): at 5,000
// objects they were half of what a reconcile kept in memory. Equal sets
// (by their JSON) become one map, which the objects share.
//
// A shared set must not be changed in place. Nothing in tether does:
// managedFields are read through GetManagedFields (a converted copy) and
// written through SetManagedFields or patches, and DeepCopy copies them.
type fieldSets struct {
	mu   gosync.Mutex
	sets map[string]map[string]any
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

// share replaces the field set of each managedFields entry of obj with
// the equal one seen before, if any.
func (f *fieldSets) share(obj *unstructured.Unstructured) {
	meta, _ := obj.Object["metadata"].(map[string]any)
	entries, _ := meta["managedFields"].([]any)
	for _, e := range entries {
		entry, ok := e.(map[string]any)
		if !ok {
			continue
		}
		set, ok := entry["fieldsV1"].(map[string]any)
		if !ok {
			continue
		}
		key, err := json.Marshal(set)
		if err != nil {
			continue
		}
		f.mu.Lock()
		if f.sets == nil {
			f.sets = map[string]map[string]any{}
		}
		if seen, ok := f.sets[string(key)]; ok {
			entry["fieldsV1"] = seen
		} else {
			f.sets[string(key)] = set
		}
		f.mu.Unlock()
	}
}
