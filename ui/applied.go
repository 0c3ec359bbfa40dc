package ui

import (
	"bytes"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"

	"github.com/tether-gitops/tether/contract"
)

// appliedView reconstructs what tether applied to obj: the live object
// restricted to the fields tether's field manager owns through server-side
// apply (its Apply entry in metadata.managedFields), plus apiVersion, kind,
// name and namespace, which every apply carries. Server-side apply keeps no
// last-applied annotation, and the field set is exactly what tether last
// applied and still owns. It returns nil when tether owns no fields of obj.
//
// structured-merge-diff parses the field set; the extraction itself is done
// here because the library's (managedfields.ExtractInto) needs the kind's
// OpenAPI schema to find list keys, which a custom resource may not have:
// matching the keys written in the field set against the live list items
// needs no schema.
func appliedView(obj *unstructured.Unstructured) (map[string]any, error) {
	var set *fieldpath.Set
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager != contract.FieldManager || mf.Operation != metav1.ManagedFieldsOperationApply || mf.Subresource != "" || mf.FieldsV1 == nil {
			continue
		}
		s := &fieldpath.Set{}
		if err := s.FromJSON(bytes.NewReader(mf.FieldsV1.Raw)); err != nil {
			return nil, fmt.Errorf("reading the managed fields of %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
		set = s
	}
	if set == nil {
		return nil, nil
	}
	out, _ := extract(obj.Object, set).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	out["apiVersion"], out["kind"] = obj.GetAPIVersion(), obj.GetKind()
	meta, _ := out["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		out["metadata"] = meta
	}
	meta["name"] = obj.GetName()
	if ns := obj.GetNamespace(); ns != "" {
		meta["namespace"] = ns
	}
	return out, nil
}

// extract returns the parts of v (a map or a list; anything else is kept
// whole) that set names. A field that is a member of set without children is
// copied whole; a field with children is descended into.
func extract(v any, set *fieldpath.Set) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, child := range v {
			pe := fieldpath.PathElement{FieldName: &k}
			if sub, ok := set.Children.Get(pe); ok {
				out[k] = extract(child, sub)
			} else if set.Members.Has(pe) {
				out[k] = runtime.DeepCopyJSONValue(child)
			}
		}
		return out
	case []any:
		out := []any{}
		for i, item := range v {
			pe, ok := listElement(set, i, item)
			if !ok {
				continue
			}
			if sub, ok := set.Children.Get(pe); ok {
				out = append(out, extract(item, sub))
			} else {
				out = append(out, runtime.DeepCopyJSONValue(item))
			}
		}
		return out
	}
	return runtime.DeepCopyJSONValue(v)
}

// listElement finds the element of set (member or child) that names the
// list item at index i: by its key fields (k:{...}), its value (v:...) or
// its index (i:N).
func listElement(set *fieldpath.Set, i int, item any) (fieldpath.PathElement, bool) {
	var found fieldpath.PathElement
	ok := false
	match := func(pe fieldpath.PathElement) {
		if ok {
			return
		}
		switch {
		case pe.Index != nil:
			ok = *pe.Index == i
		case pe.Value != nil:
			ok = value.Equals(*pe.Value, value.NewValueInterface(item))
		case pe.Key != nil:
			m, isMap := item.(map[string]any)
			ok = isMap && len(*pe.Key) > 0
			for _, f := range *pe.Key {
				fv, has := m[f.Name]
				if !ok || !has || !value.Equals(f.Value, value.NewValueInterface(fv)) {
					ok = false
					break
				}
			}
		}
		if ok {
			found = pe
		}
	}
	set.Children.Iterate(match)
	set.Members.Iterate(match)
	return found, ok
}
