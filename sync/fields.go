package sync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"

	"github.com/tether-gitops/tether/contract"
)

// This file compares a desired object with a live one field by field, the
// way server-side apply sees them: by the field sets recorded in the live
// object's managedFields. It serves the plan's local proof that an apply
// would change nothing (so no dry run is needed); drift detection
// (drift.go) shares its reading of managedFields and its path names.
//
// Server-side apply computes field sets from the object's OpenAPI schema,
// which this code does not have: whether a list is keyed (and by which
// fields), a set, or atomic, and whether a map is atomic. It reads that
// from the field sets themselves, which the server computed with the
// schema: a list recorded under k:{"name":...} elements is keyed by name, a
// path recorded as a leaf is atomic. Whatever the field sets do not tell
// makes the comparison undecided, never wrong: the plan then asks the
// server (a dry run).

// managed is one managedFields entry with its field set parsed.
type managed struct {
	Manager     string
	Operation   metav1.ManagedFieldsOperationType
	Subresource string
	APIVersion  string
	Time        *metav1.Time
	fields      *fieldpath.Set
}

// managedEntries parses the managedFields of obj, subresource entries
// included (a scale through the scale subresource owns spec.replicas). An
// entry that does not parse is an error.
func managedEntries(obj *unstructured.Unstructured) ([]managed, error) {
	var out []managed
	for _, mf := range obj.GetManagedFields() {
		if mf.FieldsV1 == nil {
			continue
		}
		s := &fieldpath.Set{}
		if err := s.FromJSON(bytes.NewReader(mf.FieldsV1.Raw)); err != nil {
			return nil, fmt.Errorf("managedFields of manager %q: %w", mf.Manager, err)
		}
		out = append(out, managed{Manager: mf.Manager, Operation: mf.Operation, Subresource: mf.Subresource, APIVersion: mf.APIVersion, Time: mf.Time, fields: s})
	}
	return out, nil
}

// tetherFields returns the field set of tether's apply entry in obj, or
// nil when it has none or it does not parse.
func tetherFields(obj *unstructured.Unstructured) *fieldpath.Set {
	if obj == nil {
		return nil
	}
	entries, err := managedEntries(obj)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if e.isTether() {
			return e.fields
		}
	}
	return nil
}

// ownedInAnswer reads tether's field set from the server's answer to an
// apply. Only the metadata's managedFields are decoded: the rest of the
// object is skipped, which costs far less than decoding it. nil when the
// answer does not say.
func ownedInAnswer(answer []byte) *fieldpath.Set {
	var doc struct {
		Metadata struct {
			ManagedFields []metav1.ManagedFieldsEntry `json:"managedFields"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(answer, &doc); err != nil {
		return nil
	}
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetManagedFields(doc.Metadata.ManagedFields)
	return tetherFields(u)
}

// isTether reports whether the entry is tether's own apply.
func (m managed) isTether() bool {
	return m.Manager == contract.FieldManager && m.Operation == metav1.ManagedFieldsOperationApply && m.Subresource == ""
}

// fieldWalk walks a desired object against a live one, guided by a field
// set (tether's own, for the shape of lists), building the
// field set an apply of the desired object would own and comparing each
// value with the live one.
type fieldWalk struct {
	guide *fieldpath.Set
	// owned is the field set of the desired object, as far as walked.
	owned *fieldpath.Set
	// diffs are the fields whose desired and live values differ.
	diffs []fieldDiff
	// undecided says why the walk could not tell (empty if it could).
	undecided string
}

// fieldDiff is one field whose live value is not the desired one.
type fieldDiff struct {
	Path fieldpath.Path
	// Desired and Live are the values (nil when absent).
	Desired, Live any
}

// String is the field in the form people read:
// spec.template.spec.containers[name=app].image.
func (d fieldDiff) String() string { return fieldPathString(d.Path) }

// walkObject compares desired with live under guide. Identity fields
// (apiVersion, kind, metadata.name, metadata.namespace) are not part of
// any field set and are skipped.
func walkObject(desired, live *unstructured.Unstructured, guide *fieldpath.Set) *fieldWalk {
	w := &fieldWalk{guide: guide, owned: &fieldpath.Set{}}
	var liveObj map[string]any
	if live != nil {
		liveObj = live.Object
	}
	for k, v := range desired.Object {
		if k == "apiVersion" || k == "kind" {
			continue
		}
		if k == "metadata" {
			meta, ok := v.(map[string]any)
			if !ok {
				w.fail("metadata is not a mapping")
				continue
			}
			liveMeta, _ := liveObj["metadata"].(map[string]any)
			pe := fieldpath.FieldNameElement("metadata")
			for mk, mv := range meta {
				if mk == "name" || mk == "namespace" {
					continue
				}
				w.field(fieldpath.Path{pe}, mk, mv, liveMeta)
			}
			continue
		}
		w.field(nil, k, v, liveObj)
	}
	return w
}

func (w *fieldWalk) fail(format string, args ...any) {
	if w.undecided == "" {
		w.undecided = fmt.Sprintf(format, args...)
	}
}

// field walks the map entry key: value of the desired object at path p,
// whose live counterpart is in liveMap (nil if the live map is absent).
func (w *fieldWalk) field(p fieldpath.Path, key string, v any, liveMap map[string]any) {
	child := appendPath(p, fieldpath.FieldNameElement(key))
	lv, present := liveMap[key]
	w.value(child, v, lv, present)
}

// value walks the desired value v at path p; lv is the live value, if
// present.
func (w *fieldWalk) value(p fieldpath.Path, v, lv any, present bool) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 {
			w.fail("%s is an empty mapping", fieldPathString(p))
			return
		}
		if w.atomic(p) {
			w.owned.Insert(p)
			w.compare(p, v, lv, present)
			return
		}
		if w.guide.Has(p) {
			// Recorded as a member too (a mapping that is itself owned,
			// such as a map entry of object type).
			w.owned.Insert(p)
		}
		liveMap, _ := lv.(map[string]any)
		if present && liveMap == nil {
			w.diffs = append(w.diffs, fieldDiff{Path: p, Desired: v, Live: lv})
		}
		for k, cv := range v {
			w.field(p, k, cv, liveMap)
		}
	case []any:
		if len(v) == 0 {
			w.fail("%s is an empty list", fieldPathString(p))
			return
		}
		w.list(p, v, lv, present)
	case nil:
		w.fail("%s is null", fieldPathString(p))
	default:
		w.owned.Insert(p)
		w.compare(p, v, lv, present)
	}
}

// atomic reports whether the guide records p as a whole value: a member
// with no recorded children.
func (w *fieldWalk) atomic(p fieldpath.Path) bool {
	if !w.guide.Has(p) {
		return false
	}
	sub := subset(w.guide, p)
	return sub == nil || sub.Empty()
}

func (w *fieldWalk) compare(p fieldpath.Path, v, lv any, present bool) {
	if !present || !reflect.DeepEqual(v, lv) {
		var live any
		if present {
			live = lv
		}
		w.diffs = append(w.diffs, fieldDiff{Path: p, Desired: v, Live: live})
	}
}

// list walks a desired list at p: atomic, keyed, a set, or by index, as
// the guide recorded it.
func (w *fieldWalk) list(p fieldpath.Path, v []any, lv any, present bool) {
	if w.atomic(p) {
		w.owned.Insert(p)
		w.compare(p, v, lv, present)
		return
	}
	sub := subset(w.guide, p)
	if sub == nil || sub.Empty() {
		w.fail("%s: the managed fields do not say how this list is merged", fieldPathString(p))
		return
	}
	kind, keys := listShape(sub)
	if kind == "" {
		w.fail("%s: the managed fields record this list in more than one way", fieldPathString(p))
		return
	}
	liveList, _ := lv.([]any)
	seen := map[string]bool{}
	inOrder := len(liveList) == len(v)
	for i, el := range v {
		pe, ok := w.element(p, sub, i, el, kind, keys)
		if !ok {
			return
		}
		if id := pe.String(); seen[id] {
			w.fail("%s: two elements with the same key %s", fieldPathString(p), id)
			return
		} else {
			seen[id] = true
		}
		ep := appendPath(p, pe)
		w.owned.Insert(ep) // list elements are always members themselves
		at := -1
		for j, le := range liveList {
			if sameElement(le, el, pe, kind, i, j) {
				at = j
				break
			}
		}
		if at != i {
			inOrder = false
		}
		switch {
		case at < 0:
			w.diffs = append(w.diffs, fieldDiff{Path: ep, Desired: el})
		case kind == "value":
		default:
			w.elementFields(ep, el, liveList[at])
		}
	}
	if !inOrder {
		// Someone added, removed or reordered elements (a sidecar, say):
		// an apply may keep them, but this walk cannot prove how.
		w.diffs = append(w.diffs, fieldDiff{Path: p, Desired: fmt.Sprintf("%d elements", len(v)), Live: fmt.Sprintf("%d elements in another order or number", len(liveList))})
	}
}

// element returns the path element of the desired list element el at
// index i, for a list of the given kind whose recorded elements are sub.
func (w *fieldWalk) element(p fieldpath.Path, sub *fieldpath.Set, i int, el any, kind string, keys []string) (fieldpath.PathElement, bool) {
	switch kind {
	case "key":
		m, ok := el.(map[string]any)
		if !ok {
			w.fail("%s[%d] is not a mapping", fieldPathString(p), i)
			return fieldpath.PathElement{}, false
		}
		var fl value.FieldList
		complete := true
		for _, k := range keys {
			kv, ok := m[k]
			if !ok {
				complete = false
				continue
			}
			if !isScalar(kv) {
				w.fail("%s[%d]: key %q is not a scalar", fieldPathString(p), i, k)
				return fieldpath.PathElement{}, false
			}
			fl = append(fl, value.Field{Name: k, Value: value.NewValueInterface(kv)})
		}
		if !complete {
			// The server records keys with their defaults filled in (a
			// port's protocol: TCP) but not the defaulted field itself.
			// The one recorded key that agrees on every field given is
			// this element's; a default that differs from what was
			// recorded shows up as a field in one set and not the other.
			pe, ok := completeKey(sub, fl)
			if !ok {
				w.fail("%s[%d] leaves out a key field, and the managed fields do not tell which element it is", fieldPathString(p), i)
			}
			return pe, ok
		}
		fl.Sort()
		return fieldpath.PathElement{Key: &fl}, true
	case "value":
		if !isScalar(el) {
			w.fail("%s[%d] is not a scalar in a set", fieldPathString(p), i)
			return fieldpath.PathElement{}, false
		}
		val := value.NewValueInterface(el)
		return fieldpath.PathElement{Value: &val}, true
	}
	idx := i
	return fieldpath.PathElement{Index: &idx}, true
}

// completeKey finds the one recorded key element of a list (in sub) that
// has every field of partial with the same value.
func completeKey(sub *fieldpath.Set, partial value.FieldList) (fieldpath.PathElement, bool) {
	var found []fieldpath.PathElement
	match := func(pe fieldpath.PathElement) {
		if pe.Key == nil {
			return
		}
		for _, f := range partial {
			if v, ok := keyField(*pe.Key, f.Name); !ok || !value.Equals(v, f.Value) {
				return
			}
		}
		for _, seen := range found {
			if seen.Equals(pe) {
				return
			}
		}
		found = append(found, pe)
	}
	sub.Members.Iterate(match)
	sub.Children.Iterate(match)
	if len(found) != 1 {
		return fieldpath.PathElement{}, false
	}
	return found[0], true
}

// keyField returns the value of the field name in a key.
func keyField(key value.FieldList, name string) (value.Value, bool) {
	for _, f := range key {
		if f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

// sameElement reports whether the live element le (at j) is the desired
// element el (at i, path element pe): the same key (defaults included),
// the same value in a set, or the same index.
func sameElement(le, el any, pe fieldpath.PathElement, kind string, i, j int) bool {
	switch kind {
	case "key":
		lm, ok := le.(map[string]any)
		if !ok {
			return false
		}
		for _, f := range *pe.Key {
			lv, ok := lm[f.Name]
			if !ok || !value.Equals(value.NewValueInterface(lv), f.Value) {
				return false
			}
		}
		return true
	case "value":
		return reflect.DeepEqual(le, el)
	}
	return i == j
}

// elementFields walks the fields of one element of a keyed or indexed
// list, present in the live list as liveEl.
func (w *fieldWalk) elementFields(p fieldpath.Path, el, liveEl any) {
	m, ok := el.(map[string]any)
	if !ok {
		w.compare(p, el, liveEl, true)
		return
	}
	liveMap, _ := liveEl.(map[string]any)
	for k, cv := range m {
		w.field(p, k, cv, liveMap)
	}
}

// listShape reads from a list's recorded elements how it is merged: by
// "key" (with the key's field names), as a set of "value"s, or by "index";
// "" when the elements disagree.
func listShape(s *fieldpath.Set) (kind string, keys []string) {
	var pes []fieldpath.PathElement
	s.Members.Iterate(func(pe fieldpath.PathElement) { pes = append(pes, pe) })
	s.Children.Iterate(func(pe fieldpath.PathElement) { pes = append(pes, pe) })
	for _, pe := range pes {
		var k string
		var names []string
		switch {
		case pe.Key != nil:
			k = "key"
			for _, f := range *pe.Key {
				names = append(names, f.Name)
			}
		case pe.Value != nil:
			k = "value"
		case pe.Index != nil:
			k = "index"
		default:
			return "", nil
		}
		if kind == "" {
			kind, keys = k, names
			continue
		}
		if k != kind || strings.Join(names, ",") != strings.Join(keys, ",") {
			return "", nil
		}
	}
	return kind, keys
}

func isScalar(v any) bool {
	switch v.(type) {
	case string, bool, int64, float64, int, int32, float32:
		return true
	}
	return false
}

// subset returns the part of s below path p, or nil.
func subset(s *fieldpath.Set, p fieldpath.Path) *fieldpath.Set {
	for _, pe := range p {
		next, ok := s.Children.Get(pe)
		if !ok {
			return nil
		}
		s = next
	}
	return s
}

func appendPath(p fieldpath.Path, pe fieldpath.PathElement) fieldpath.Path {
	out := make(fieldpath.Path, len(p), len(p)+1)
	copy(out, p)
	return append(out, pe)
}

// fieldPathString renders a path the way people write it:
// spec.template.spec.containers[name=app].ports[containerPort=80,protocol=TCP],
// metadata.finalizers[example.com/x], spec.args[0].
func fieldPathString(p fieldpath.Path) string {
	var b strings.Builder
	for _, pe := range p {
		switch {
		case pe.FieldName != nil:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(*pe.FieldName)
		case pe.Key != nil:
			var parts []string
			for _, f := range *pe.Key {
				parts = append(parts, f.Name+"="+scalarString(f.Value))
			}
			sort.Strings(parts)
			b.WriteString("[" + strings.Join(parts, ",") + "]")
		case pe.Value != nil:
			b.WriteString("[" + scalarString(*pe.Value) + "]")
		case pe.Index != nil:
			fmt.Fprintf(&b, "[%d]", *pe.Index)
		}
	}
	return b.String()
}

// scalarString is a key or set value as people write it: strings bare.
func scalarString(v value.Value) string {
	if v.IsString() {
		return v.AsString()
	}
	return value.ToString(v)
}

// Writer is a field manager other than tether's apply that owns fields of
// an object, for `tether why`.
type Writer struct {
	// Manager is "name (Operation)" or "name (Operation, subresource)".
	Manager string
	At      time.Time
	// Fields are the leaf fields it owns, as people write them, at most 10
	// (then "... and N more").
	Fields []string
}

// OtherWriters lists the field managers of obj other than tether's apply
// and the status subresource's writers (controllers reporting status),
// newest first.
func OtherWriters(obj *unstructured.Unstructured) []Writer {
	entries, err := managedEntries(obj)
	if err != nil {
		return nil
	}
	var out []Writer
	for _, e := range entries {
		if e.isTether() || e.Subresource == "status" {
			continue
		}
		op := string(e.Operation)
		if e.Subresource != "" {
			op += ", " + e.Subresource
		}
		w := Writer{Manager: e.Manager + " (" + op + ")"}
		if e.Time != nil {
			w.At = e.Time.Time
		}
		n := 0
		e.fields.Leaves().Iterate(func(p fieldpath.Path) {
			n++
			if n <= 10 {
				w.Fields = append(w.Fields, fieldPathString(p))
			}
		})
		if n > 10 {
			w.Fields = append(w.Fields, fmt.Sprintf("... and %d more", n-10))
		}
		out = append(out, w)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	return out
}
