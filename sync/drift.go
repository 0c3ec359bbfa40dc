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
// annotation as the cluster has it, else as git has it, else def.
func DriftPolicyOf(desired, live *unstructured.Unstructured, def string) string {
	for _, u := range []*unstructured.Unstructured{live, desired} {
		if u == nil {
			continue
		}
		if p := u.GetAnnotations()[contract.DriftAnnotation]; slices.Contains(DriftPolicies(), p) {
			return p
		}
	}
	return def
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
// object, and the replicas of a workload an autoscaler in the same
// revision scales.
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
	c.owned.Leaves().Difference(now).Iterate(func(p fieldpath.Path) {
		path := fieldPathString(p)
		if c.autoscaled && path == "spec.replicas" {
			return // the autoscaler's to change
		}
		for _, r := range rules {
			if r.covers(p) {
				return
			}
		}
		want, inDesired := valueAt(c.Desired.Object, p)
		if !inDesired {
			return
		}
		got, present := valueAt(live.Object, p)
		if present && reflect.DeepEqual(want, got) {
			return
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
		if secret && (strings.HasPrefix(path, "data.") || strings.HasPrefix(path, "stringData.")) {
			fc.Desired, fc.Live = "***", "***"
		}
		d.Fields = append(d.Fields, fc)
	})
	if len(d.Fields) == 0 {
		return nil, nil
	}
	sort.Slice(d.Fields, func(i, j int) bool { return d.Fields[i].Path < d.Fields[j].Path })
	return d, nil
}

// valueAt returns the value at path p in an object, if present.
func valueAt(obj map[string]any, p fieldpath.Path) (any, bool) {
	var cur any = obj
	for _, pe := range p {
		switch {
		case pe.FieldName != nil:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[*pe.FieldName]; !ok {
				return nil, false
			}
		case pe.Key != nil:
			l, ok := cur.([]any)
			if !ok {
				return nil, false
			}
			found := false
			for _, el := range l {
				if sameElement(el, nil, pe, "key", 0, 0) {
					cur, found = el, true
					break
				}
			}
			if !found {
				return nil, false
			}
		case pe.Value != nil:
			l, ok := cur.([]any)
			if !ok {
				return nil, false
			}
			found := false
			for _, el := range l {
				if isScalar(el) && value.Equals(value.NewValueInterface(el), *pe.Value) {
					cur, found = el, true
					break
				}
			}
			if !found {
				return nil, false
			}
		case pe.Index != nil:
			l, ok := cur.([]any)
			if !ok || *pe.Index >= len(l) {
				return nil, false
			}
			cur = l[*pe.Index]
		default:
			return nil, false
		}
	}
	return cur, true
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
		s = s[:77] + "..."
	}
	return s
}

// Correct puts drifted objects back: it applies each change's desired
// object again, taking back the fields others changed (force), one write
// per object, in parallel, and records the fields tether owns afterwards
// for the next DetectDrift. A deleted object is created again. Each
// change's Live must be the object as it is now (nil when deleted): the
// replicas of an autoscaled workload are left to its autoscaler, as in a
// reconcile. It returns the writes it sent and an error naming every
// object it could not put back. The changes come from a successful
// reconcile of opts.
func (s *Syncer) Correct(ctx context.Context, opts Options, changes []*Change) (int64, error) {
	r := &run{s: s, opts: opts.withDefaults(), res: &Result{}}
	tally := &kube.Tally{}
	ctx = kube.WithTally(ctx, tally)
	var mu gosync.Mutex
	var problems []string
	parallel(ctx, r.opts.Concurrency, len(changes), func(ctx context.Context, i int) error {
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
			mu.Lock()
			problems = append(problems, fmt.Sprintf("%s: %v", c.Ref(), apiMessage(err)))
			mu.Unlock()
			return nil
		}
		c.owned = ownedInAnswer(answer)
		return nil
	})
	if err := ctx.Err(); err != nil {
		return tally.Writes(), err
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return tally.Writes(), &PhaseError{Phase: "correct", Objects: problems, Err: fmt.Errorf("%d of %d drifted objects could not be put back", len(problems), len(changes))}
	}
	return tally.Writes(), nil
}
