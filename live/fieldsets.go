package live

import (
	"encoding/json"
	gosync "sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FieldSets shares equal managedFields field sets between the objects
// given to it. Decoded from JSON, a field set is a tree of small maps
// ({"f:data": {"f:key": {}}, ...}) that takes several times the memory of
// the rest of a ConfigMap, and the objects of one sync mostly have the
// same ones (every ConfigMap tether applied with the same keys, every
// Deployment's status written by the same controller): at 5,000 objects
// they were half of what tether held of them. Equal sets (by their JSON)
// become one map, which the objects share.
//
// A shared set must not be changed in place. Nothing in tether does:
// managedFields are read through GetManagedFields (a converted copy) and
// written through SetManagedFields or patches, and DeepCopy copies them;
// objects in an informer's cache must not be changed anyway.
//
// The zero FieldSets is ready to use and keeps every distinct set it sees
// (for one reconcile); NewFieldSets bounds them (for a long-lived cache).
// A FieldSets is safe for concurrent use.
type FieldSets struct {
	max  int // distinct sets kept; 0: no bound
	mu   gosync.Mutex
	sets map[string]map[string]any
}

// NewFieldSets returns a FieldSets that keeps at most max distinct sets;
// when a new one would pass them, it forgets those it kept and starts
// again, so a long-lived cache whose objects change keeps sharing.
func NewFieldSets(max int) *FieldSets { return &FieldSets{max: max} }

// Share replaces the field set of each managedFields entry of obj with an
// equal one seen before, if any.
func (f *FieldSets) Share(obj *unstructured.Unstructured) {
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
		if seen, ok := f.sets[string(key)]; ok {
			entry["fieldsV1"] = seen
		} else {
			if f.sets == nil {
				f.sets = map[string]map[string]any{}
			}
			if f.max > 0 && len(f.sets) >= f.max {
				// Full: start again, so that the sets of objects that
				// come later are shared among them (the objects that
				// share the old ones keep theirs).
				clear(f.sets)
			}
			f.sets[string(key)] = set
		}
		f.mu.Unlock()
	}
}
