package sync

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	gosync "sync"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/kube"
)

// Drift policies: what a sync does when someone changes an object it owns
// (Options.DriftPolicy, and per object contract.DriftAnnotation).
const (
	// DriftCorrect puts a drifted object back at once.
	DriftCorrect = "correct"
	// DriftWarn keeps the change, reported, until git changes the object.
	DriftWarn = "warn"
	// DriftIgnore keeps the change, unreported, until git changes the
	// object.
	DriftIgnore = "ignore"
)

// DriftPolicies returns the drift policies.
func DriftPolicies() []string { return []string{DriftCorrect, DriftWarn, DriftIgnore} }

// DriftPolicyOf is an object's drift policy: its tether.dev/drift
// annotation as git has it (desired), else def. The live object's
// annotation does not count: whoever can edit an object in the cluster
// could otherwise switch its correction off (or on) without a commit, and
// an annotation tether does not apply is not drift, so that change would
// go unreported. A value that is not a policy is refused by the plan
// (CheckDriftAnnotation).
func DriftPolicyOf(desired *unstructured.Unstructured, def string) string {
	if desired != nil {
		if p := desired.GetAnnotations()[contract.DriftAnnotation]; slices.Contains(DriftPolicies(), p) {
			return p
		}
	}
	return def
}

// CheckDriftAnnotation returns an error naming the annotation and its
// value when obj (as git has it) sets tether.dev/drift to something that
// is not a drift policy; nil when it sets a policy or none.
func CheckDriftAnnotation(obj *unstructured.Unstructured) error {
	v, ok := obj.GetAnnotations()[contract.DriftAnnotation]
	if !ok || slices.Contains(DriftPolicies(), v) {
		return nil
	}
	return fmt.Errorf("annotation %s: %q is not a drift policy (want one of %s)", contract.DriftAnnotation, shortValue(v), strings.Join(DriftPolicies(), ", "))
}

// Drift is what changed in the cluster in an object a sync owns, since
// tether last applied it.
type Drift struct {
	// Deleted is set when the object is gone.
	Deleted bool
	// Fields lists the fields tether applied whose live value changed or
	// was removed, by path.
	Fields []FieldChange
}

// FieldChange is one drifted field.
type FieldChange struct {
	// Path is the field as people write it:
	// spec.template.spec.containers[name=app].image.
	Path string
	// Desired is the value tether applied, Live the value now; Removed is
	// set when the field is gone. Secret values are "***".
	Desired, Live any
	Removed       bool
	// Managers are the field managers that own the field now (none when
	// it was removed), each as "name (Operation)" or "name (Operation,
	// subresource)", sorted.
	Managers []string
	// At is when the newest of those managers last wrote, zero if unknown.
	At time.Time
	// Appliers are the managers among them that own the field through
	// server-side apply: they mean to, so tether does not take the field
	// back from them by force (see Drift.Appliers).
	Appliers []string
}

// String is one line: "spec.replicas: 2 → 3 by kubectl (Update, scale)".
func (f FieldChange) String() string {
	var b strings.Builder
	b.WriteString(f.Path)
	b.WriteString(": ")
	if f.Removed {
		fmt.Fprintf(&b, "%s removed", shortValue(f.Desired))
	} else {
		fmt.Fprintf(&b, "%s → %s", shortValue(f.Desired), shortValue(f.Live))
	}
	if len(f.Managers) > 0 {
		b.WriteString(" by ")
		b.WriteString(strings.Join(f.Managers, ", "))
	}
	if !f.At.IsZero() {
		b.WriteString(" at ")
		b.WriteString(f.At.UTC().Format("15:04:05"))
	}
	return b.String()
}

// Summary is the drift in one line, for logs, events and status.
func (d *Drift) Summary() string {
	if d.Deleted {
		return "deleted"
	}
	parts := make([]string, len(d.Fields))
	for i, f := range d.Fields {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

// Appliers returns the managers that own drifted fields through
// server-side apply (another tool that means to own them), sorted.
func (d *Drift) Appliers() []string {
	var out []string
	for _, f := range d.Fields {
		for _, m := range f.Appliers {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ManagerNames returns the managers behind the drift, sorted and
// comma-separated, without operations ("" for a deletion).
func (d *Drift) ManagerNames() string {
	seen := map[string]bool{}
	var out []string
	for _, f := range d.Fields {
		for _, m := range f.Managers {
			name, _, _ := strings.Cut(m, " (")
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// IgnoreRule leaves fields of matching objects out of drift detection, as
// Argo CD's ignoreDifferences does: changes to them are neither reported
// nor corrected (tether still applies what git says when it applies the
// object for another reason).
type IgnoreRule struct {
	// Group and Kind select the objects ("" group: the core group); Kind
	// is required.
	Group, Kind string
	// Namespace and Name narrow it to some objects ("" matches any).
	Namespace, Name string
	// Paths are fields in the form drift reports them
	// (spec.replicas, metadata.annotations.example.com/x,
	// spec.template.spec.containers[name=app].image); a path also covers
	// every field below it.
	Paths []string
}

// matches reports whether the rule applies to c.
func (r IgnoreRule) matches(c *Change) bool {
	return r.Kind == c.ID.GroupKind.Kind && r.Group == c.ID.GroupKind.Group &&
		(r.Namespace == "" || r.Namespace == c.ID.Namespace) && (r.Name == "" || r.Name == c.ID.Name)
}

// covers reports whether p is one of the rule's paths or below one. The
// comparison is by whole path elements, so a rule for the annotation
// "example" does not cover "example.com/x".
func (r IgnoreRule) covers(p fieldpath.Path) bool {
	for i := 1; i <= len(p); i++ {
		if slices.Contains(r.Paths, fieldPathString(p[:i])) {
			return true
		}
	}
	return false
}

// DetectDrift compares the object live with what the reconcile that
// produced c applied, and returns the drift, or nil when there is none or
// when it cannot tell (c has no record of the fields tether owned, such as
// an object the reconcile did not apply).
//
// It reads field ownership, not values: tether's apply entry in
// managedFields owned a set of fields when the reconcile ended; a field
// that left that set was changed by another manager (who now owns it, and
// whose entry says when) or removed. Values the server normalises (1000m
// and 1) are therefore never taken for drift, while a change by anyone,
// whatever tool they used, is. A field that another manager took over but
// set back to the value tether applied is not drift. Fields covered by
// ignore rules are left out, as are fields no longer in the desired
// object, and the replicas of a workload an autoscaler scales: one in the
// same revision, or one outside git that owns them now through the scale
// subresource (scaledByAutoscaler; kubectl scale is drift).
func DetectDrift(c *Change, live *unstructured.Unstructured, ignore []IgnoreRule) (*Drift, error) {
	if c.owned == nil {
		return nil, nil
	}
	if live == nil {
		return &Drift{Deleted: true}, nil
	}
	entries, err := managedEntries(live)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Ref(), err)
	}
	now := &fieldpath.Set{}
	for _, e := range entries {
		if e.isTether() {
			now = e.fields
		}
	}
	var rules []IgnoreRule
	for _, r := range ignore {
		if r.matches(c) {
			rules = append(rules, r)
		}
	}
	secret := c.ID.GroupKind.Group == "" && c.ID.GroupKind.Kind == "Secret"
	d := &Drift{}
	autoscaled := c.autoscaled || scaledByAutoscaler(live)
	c.owned.Leaves().Difference(now).Iterate(func(p fieldpath.Path) {
		path := fieldPathString(p)
		if autoscaled && path == "spec.replicas" {
			return // the autoscaler's to change
		}
		for _, r := range rules {
			if r.covers(p) {
				return
			}
		}
		if fc, ok := changeAt(c, live, entries, p, secret); ok {
			d.Fields = append(d.Fields, fc)
		}
	})
	if len(d.Fields) == 0 {
		return nil, nil
	}
	sort.Slice(d.Fields, func(i, j int) bool { return d.Fields[i].Path < d.Fields[j].Path })
	return d, nil
}

// SetBaseline records the fields tether's apply entry owns in obj (the
// object as tether last applied it) as the change's drift baseline, the
// one DetectDrift compares with: for a change built outside a reconcile.
func (c *Change) SetBaseline(obj *unstructured.Unstructured) {
	c.owned = tetherFields(obj)
}

// changeAt describes the field at p of c's desired object as the live
// object has it: git's value, the cluster's and who changed it (from
// entries, the live object's managed fields), secret values masked. ok is
// false when the field is not in the desired object or the live object
// holds the desired value.
func changeAt(c *Change, live *unstructured.Unstructured, entries []managed, p fieldpath.Path, secret bool) (FieldChange, bool) {
	path := fieldPathString(p)
	want, inDesired := valueAt(c.Desired.Object, p)
	if !inDesired {
		return FieldChange{}, false
	}
	got, present := valueAt(live.Object, p)
	if present && reflect.DeepEqual(want, got) {
		return FieldChange{}, false
	}
	fc := FieldChange{Path: path, Desired: want, Live: got, Removed: !present}
	for _, e := range entries {
		if e.isTether() || !e.fields.Has(p) {
			continue
		}
		op := string(e.Operation)
		if e.Subresource != "" {
			op += ", " + e.Subresource
		}
		fc.Managers = append(fc.Managers, e.Manager+" ("+op+")")
		if e.Operation == metav1.ManagedFieldsOperationApply {
			fc.Appliers = append(fc.Appliers, e.Manager)
		}
		if e.Time != nil && e.Time.After(fc.At) {
			fc.At = e.Time.Time
		}
	}
	sort.Strings(fc.Managers)
	if secret && !shownOnSecret(path) {
		fc.Desired, fc.Live = "***", "***"
	}
	return fc, true
}

// shownOnSecret reports whether the value at path (a field path of a
// Secret) may be shown: its labels and the annotations tether writes (a
// file, a revision, an inventory). Every other value is masked: data and
// stringData, and annotations too, which may hold a value (kubectl's
// last-applied copy does, and anyone may annotate a Secret with a token).
func shownOnSecret(path string) bool {
	if strings.HasPrefix(path, "metadata.labels.") {
		return true
	}
	for _, a := range []string{contract.SourceAnnotation, contract.RevisionAnnotation, contract.OwningInventoryAnnotation} {
		if path == "metadata.annotations."+a {
			return true
		}
	}
	return false
}

// keptDrift describes as drift the fields of c that others changed with
// plain updates and that the plan kept (the drift policy warn or ignore):
// conflicts are the dry run's conflicting fields as the API server names
// them (".spec.replicas"). A field the live object's managed fields do not
// name is listed by its path alone.
func keptDrift(c *Change, conflicts []string) *Drift {
	d := &Drift{}
	entries, _ := managedEntries(c.Live)
	secret := c.ID.GroupKind.Group == "" && c.ID.GroupKind.Kind == "Secret"
	paths := conflictFieldPaths(entries, conflicts)
	for _, s := range conflicts {
		p, ok := paths[s]
		if !ok {
			d.Fields = append(d.Fields, FieldChange{Path: strings.TrimPrefix(s, ".")})
			continue
		}
		if fc, ok := changeAt(c, c.Live, entries, p, secret); ok {
			d.Fields = append(d.Fields, fc)
		}
	}
	sort.Slice(d.Fields, func(i, j int) bool { return d.Fields[i].Path < d.Fields[j].Path })
	return d
}

// TakenBackDrift describes as drift the fields a plan took back from
// plain updaters (c.TakesBack), with git's values, the cluster's as the
// plan read them (c.Live) and the managers; nil when it took nothing back.
func TakenBackDrift(c *Change) *Drift {
	if len(c.TakesBack) == 0 || c.Live == nil {
		return nil
	}
	paths := make([]string, 0, len(c.TakesBack))
	for _, t := range c.TakesBack {
		field, _, _ := strings.Cut(t, " (")
		paths = append(paths, "."+field)
	}
	if d := keptDrift(c, paths); len(d.Fields) > 0 {
		return d
	}
	return nil
}

// conflictFieldPaths finds the conflicting fields of a dry run, as the API
// server names them (".spec.replicas"), among the fields other managers
// own (entries: the live object's managed fields).
func conflictFieldPaths(entries []managed, conflicts []string) map[string]fieldpath.Path {
	out := map[string]fieldpath.Path{}
	for _, e := range entries {
		if e.isTether() {
			continue
		}
		e.fields.Leaves().Iterate(func(p fieldpath.Path) {
			if s := p.String(); slices.Contains(conflicts, s) {
				out[s] = p.Copy()
			}
		})
	}
	return out
}

// cedeIgnored removes from c's desired object the conflicting fields that
// the sync's ignore rules cover (conflicts as the API server names them):
// another manager changed them, the user said to leave them, and an apply
// without them gives them up instead of taking them back. It returns the
// fields removed.
func cedeIgnored(c *Change, rules []IgnoreRule, conflicts []string) []string {
	var matching []IgnoreRule
	for _, r := range rules {
		if r.matches(c) {
			matching = append(matching, r)
		}
	}
	if len(matching) == 0 || len(conflicts) == 0 {
		return nil
	}
	entries, err := managedEntries(c.Live)
	if err != nil {
		return nil
	}
	var ceded []string
	desired := c.Desired.DeepCopy()
	for _, p := range conflictFieldPaths(entries, conflicts) {
		if slices.ContainsFunc(matching, func(r IgnoreRule) bool { return r.covers(p) }) && removeAt(desired.Object, p) {
			ceded = append(ceded, fieldPathString(p))
		}
	}
	if len(ceded) > 0 {
		c.Desired = desired
	}
	sort.Strings(ceded)
	return ceded
}

// removeAt removes the value at path p from an object; false when it is
// not there.
func removeAt(obj map[string]any, p fieldpath.Path) bool {
	if len(p) == 0 {
		return false
	}
	parent := any(obj)
	if len(p) > 1 {
		var ok bool
		if parent, ok = valueAt(obj, p[:len(p)-1]); !ok {
			return false
		}
	}
	last := p[len(p)-1]
	switch {
	case last.FieldName != nil:
		m, ok := parent.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := m[*last.FieldName]; !ok {
			return false
		}
		delete(m, *last.FieldName)
		return true
	default:
		// A list element: its list is set again without it.
		list, ok := parent.([]any)
		if !ok || len(p) < 2 {
			return false
		}
		for i, item := range list {
			if elementMatches(item, i, last) {
				rest := append(slices.Clone(list[:i]), list[i+1:]...)
				if grand, ok := valueAt(obj, p[:len(p)-2]); ok && p[len(p)-2].FieldName != nil {
					if m, ok := grand.(map[string]any); ok {
						m[*p[len(p)-2].FieldName] = rest
						return true
					}
				}
				return false
			}
		}
		return false
	}
}

// valueAt returns the value at path p in an object, if present.
func valueAt(obj map[string]any, p fieldpath.Path) (any, bool) {
	var cur any = obj
	for _, pe := range p {
		if pe.FieldName != nil {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[*pe.FieldName]; !ok {
				return nil, false
			}
			continue
		}
		l, ok := cur.([]any)
		if !ok {
			return nil, false
		}
		found := false
		for i, el := range l {
			if elementMatches(el, i, pe) {
				cur, found = el, true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return cur, true
}

// elementMatches reports whether el, the i-th element of a list, is the
// one a path element names (by its keys, its value or its index).
func elementMatches(el any, i int, pe fieldpath.PathElement) bool {
	switch {
	case pe.Key != nil:
		return sameElement(el, nil, pe, "key", 0, 0)
	case pe.Value != nil:
		return isScalar(el) && value.Equals(value.NewValueInterface(el), *pe.Value)
	case pe.Index != nil:
		return *pe.Index == i
	}
	return false
}

// shortValue renders a value for one line of text, cut at 80 characters.
func shortValue(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		s = "(none)"
	case string:
		s = v
	default:
		s = fmt.Sprint(v)
	}
	if len(s) > 80 {
		cut := 77
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut-- // never inside a character
		}
		s = s[:cut] + "..."
	}
	return s
}

// Correct puts drifted objects back: it applies each change's desired
// object again, taking back the fields others changed (force), one write
// per object, in parallel, and records the fields tether owns afterwards
// for the next DetectDrift. A deleted object is created again. Each
// change's Live must be the object as it is now (nil when deleted): the
// replicas of an autoscaled workload are left to its autoscaler, as in a
// reconcile, and so are those an autoscaler outside git owns. It returns
// the writes it sent and an error naming every object it could not put
// back; each change's Err says why it could not be put back (nil when it
// was). The changes come from a successful reconcile of opts.
func (s *Syncer) Correct(ctx context.Context, opts Options, changes []*Change) (int64, error) {
	r := &run{s: s, opts: opts.withDefaults(), res: &Result{}}
	tally := &kube.Tally{}
	ctx = kube.WithTally(ctx, tally)
	var mu gosync.Mutex
	var problems []string
	skipped := parallel(ctx, r.opts.Concurrency, len(changes), func(ctx context.Context, i int) error {
		c := changes[i]
		if c.GVR.Empty() {
			return nil
		}
		fitReplicas(c)
		force := c.Force
		c.Force = true
		answer, err := r.patchRaw(ctx, c, false)
		c.Force = force
		if err != nil {
			c.Err = apiMessage(err)
			mu.Lock()
			problems = append(problems, fmt.Sprintf("%s: %v", c.Ref(), c.Err))
			mu.Unlock()
			return nil
		}
		c.Err = nil
		c.owned = ownedInAnswer(answer)
		return nil
	})
	// A change never started (the context ended first) was not put back:
	// it says so, so that no caller counts it as corrected.
	for i, err := range skipped {
		if err != nil && changes[i].Err == nil {
			changes[i].Err = fmt.Errorf("not put back: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return tally.Writes(), err
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return tally.Writes(), &PhaseError{Phase: "correct", Objects: problems, Err: fmt.Errorf("%d of %d drifted objects could not be put back", len(problems), len(changes))}
	}
	return tally.Writes(), nil
}
