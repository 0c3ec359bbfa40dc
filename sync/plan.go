package sync

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tether-gitops/tether/contract"
)

// plan decides what to do with every rendered object and writes nothing.
//
// Guarantees: an object whose live version proves that applying it would
// change nothing (tether's managed fields are exactly its fields, no other
// manager shares them, every value equal; see provenUnchanged) is Unchanged
// without a request; every other object is compared with its live version
// through a server-side apply dry run, so admission denials, schema errors,
// immutable fields and field-manager conflicts surface here, before
// anything is written; an object whose dry run matches the live object is
// Unchanged and will not be sent at all; an object that another sync owns is a conflict.
// Objects that cannot be dry-run yet (their Namespace or CRD is created by
// this revision) are Deferred and planned by apply after those exist. Any
// failed or conflicting object fails the plan, naming each one.
func (r *run) plan(ctx context.Context) error {
	if err := r.normalize(); err != nil {
		return err
	}
	var ready []*Change
	for _, c := range r.res.Changes {
		if c.Deferred {
			c.Action = ActionCreate
			continue
		}
		ready = append(ready, c)
	}
	if err := r.planChanges(ctx, ready); err != nil {
		return err
	}
	return planProblems("plan", ready)
}

// planChanges reads the live objects and dry-runs the changes.
func (r *run) planChanges(ctx context.Context, changes []*Change) error {
	refs := make([]liveRef, len(changes))
	for i, c := range changes {
		refs[i] = liveRef{id: c.ID, gvr: c.GVR, namespaced: c.Namespaced}
	}
	live, err := r.readLive(ctx, refs)
	if err != nil {
		return err
	}
	newNamespaces := map[string]bool{}
	for _, c := range changes {
		c.Live = live[c.ID]
		if isNamespace(c.ID.GroupKind) && c.Live == nil {
			newNamespaces[c.ID.Name] = true
		}
	}
	var todo []*Change
	for _, c := range changes {
		if c.Namespaced && newNamespaces[c.ID.Namespace] {
			// The namespace does not exist yet, so the API server would
			// refuse the dry run; plan it once the namespace is applied.
			c.Deferred = true
			c.Action = ActionCreate
			continue
		}
		todo = append(todo, c)
	}
	adjustForAutoscalers(todo, r.res.Changes)
	parallel(ctx, r.opts.Concurrency, len(todo), func(ctx context.Context, i int) error {
		r.dryRun(ctx, todo[i])
		return nil
	})
	return ctx.Err()
}

// dryRun plans one change with a server-side apply dry run.
func (r *run) dryRun(ctx context.Context, c *Change) {
	c.Deferred = false
	if err := CheckDriftAnnotation(c.Desired); err != nil {
		c.Action, c.Err = ActionFailed, err
		return
	}
	if reason := r.ownedElsewhere(c.Live); reason != "" && forceMode(c.Desired) != forceAll {
		c.Action = ActionConflict
		c.Conflicts = []string{reason}
		c.Err = fmt.Errorf("%s; set %s: \"true\" on the object to take it over", reason, contract.ForceConflictsAnnotation)
		return
	}
	// A new commit that leaves the object alone must not rewrite it just to
	// bump the revision annotation: plan with the live value, and set the
	// new revision only if something else changes.
	rev := r.in.Revision
	if c.Live != nil {
		if v, ok := c.Live.GetAnnotations()[contract.RevisionAnnotation]; ok {
			rev = v
		}
	}
	setAnnotation(c.Desired, contract.RevisionAnnotation, rev)

	// The live object, read by the plan's LISTs, may prove that the apply
	// would change nothing; then no dry run is needed. Whatever it cannot
	// prove, the server decides.
	prev, kept := r.opts.KeepDrifted[c.ID]
	if kept && sameRendering(prev.Desired, c.Desired) {
		c.Action, c.Decision, c.owned = ActionUnchanged, DecidedKeptDrift, prev.owned
		c.Desired = prev.Desired
		return
	}
	// Git changed an object whose drift was kept: git wins.
	gitChanged := kept
	c.TakeOver = needsTakeOver(c.Live)
	proven, why := ProvenUnchanged(c.Desired, c.Live)
	if proven && !c.TakeOver {
		c.Action, c.Decision, c.Predicted = ActionUnchanged, DecidedLocally, c.Live
		c.owned = r.fieldSets.owned(c.Live)
		return
	}
	c.Decision, c.DryRunReason = DecidedByDryRun, why

	mode := forceMode(c.Desired)
	c.Force = mode == forceAll
	dryRun := func() (*unstructured.Unstructured, error) {
		if c.Live == nil {
			// A new object: the dry run only has to be accepted; its
			// answer is never compared, so it is not decoded.
			_, err := r.patchRaw(ctx, c, true)
			return nil, err
		}
		return r.patch(ctx, c, true)
	}
	pred, err := dryRun()
	if ceded := cedeIgnored(c, r.opts.IgnoreDifferences, conflictPaths(err)); len(ceded) > 0 {
		// Fields the ignore rules cover, changed by another manager: left
		// to it. The rest of the object is applied as usual.
		c.Ceded = ceded
		pred, err = dryRun()
	}
	if conflicts := conflictFields(err); len(conflicts) > 0 {
		switch {
		case mode == forceFields && covered(conflicts, forceFieldList(c.Desired)):
			c.Force = true
			pred, err = dryRun()
		case r.opts.DriftPolicy == "" || !updatersOnly(c.Live, conflicts):
			// A conflict: outside the agent, or fields another tool
			// owns through server-side apply.
		case gitChanged || DriftPolicyOf(c.Desired, r.opts.DriftPolicy) == DriftCorrect:
			// Fields someone changed by hand (kubectl edit, set, scale):
			// drift, taken back.
			c.Force, c.TakesBack = true, conflicts
			pred, err = dryRun()
		default:
			// The policy warn or ignore keeps the hand-made change: the
			// object is left as it is.
			c.Action, c.Decision, c.KeptDrift = ActionUnchanged, DecidedKeptDrift, keptDrift(c, conflictPaths(err))
			c.owned = r.fieldSets.owned(c.Live)
			return
		}
	}
	if err == nil && c.Live != nil && pred.GetResourceVersion() != c.Live.GetResourceVersion() {
		// Someone (usually a controller) changed the object between our
		// read and the dry run, which answered from the newer version:
		// compare with that version, or the controller's change would
		// look like ours.
		if fresh, gerr := r.resource(c.GVR, c.ID.Namespace).Get(ctx, c.ID.Name, metav1.GetOptions{}); gerr == nil {
			c.Live = fresh
		}
	}
	conflicts := conflictFields(err)
	switch {
	case err == nil:
		c.Predicted = pred
		switch {
		case c.Live == nil:
			c.Action = ActionCreate
		case c.TakeOver:
			// Written even if nothing else changes: see takeOver.
			c.Action = ActionUpdate
		case sameObject(c.Live, pred):
			c.Action = ActionUnchanged
			c.owned = r.fieldSets.owned(c.Live)
		default:
			c.Action = ActionUpdate
		}
		if c.Action.writes() {
			setAnnotation(c.Desired, contract.RevisionAnnotation, r.in.Revision)
		}
	case len(conflicts) > 0:
		c.Action = ActionConflict
		c.Conflicts = conflicts
		c.Err = fmt.Errorf("fields owned by other managers (set %s on the object to take them)", contract.ForceConflictsAnnotation)
	case isImmutableChange(err):
		if c.Desired.GetAnnotations()[contract.RecreateAnnotation] == "true" {
			c.Action = ActionRecreate
			setAnnotation(c.Desired, contract.RevisionAnnotation, r.in.Revision)
			return
		}
		c.Action = ActionFailed
		c.Err = fmt.Errorf("%w (set %s: \"true\" on the object to delete and recreate it)", apiMessage(err), contract.RecreateAnnotation)
	default:
		c.Action = ActionFailed
		c.Err = apiMessage(err)
	}
}

// patch sends the desired object as a server-side apply patch.
func (r *run) patch(ctx context.Context, c *Change, dryRun bool) (*unstructured.Unstructured, error) {
	data, err := c.Desired.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", c.Ref(), err)
	}
	force := c.Force
	opts := metav1.PatchOptions{FieldManager: contract.FieldManager, Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return r.resource(c.GVR, c.ID.Namespace).Patch(ctx, c.ID.Name, types.ApplyPatchType, data, opts)
}

// patchRaw sends the desired object as a server-side apply patch and
// returns the server's answer undecoded.
func (r *run) patchRaw(ctx context.Context, c *Change, dryRun bool) ([]byte, error) {
	data, err := c.Desired.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", c.Ref(), err)
	}
	req := r.s.clients.Raw.Patch(types.ApplyPatchType).
		AbsPath(resourcePath(c.GVR, c.ID.Namespace, c.ID.Name)...).
		Param("fieldManager", contract.FieldManager).
		Param("force", strconv.FormatBool(c.Force)).
		Body(data)
	if dryRun {
		req = req.Param("dryRun", metav1.DryRunAll)
	}
	// Error, not Raw's error: it decodes the API server's Status, so the
	// message names the object and the field that were refused.
	res := req.Do(ctx)
	body, _ := res.Raw()
	return body, res.Error()
}

// resourcePath is the URL path of an object: /api/v1/... for the core
// group, /apis/GROUP/VERSION/... otherwise.
func resourcePath(gvr schema.GroupVersionResource, namespace, name string) []string {
	p := []string{"/apis", gvr.Group, gvr.Version}
	if gvr.Group == "" {
		p = []string{"/api", gvr.Version}
	}
	if namespace != "" {
		p = append(p, "namespaces", namespace)
	}
	return append(p, gvr.Resource, name)
}

// planProblems fails a phase if any change failed or conflicts.
func planProblems(phase string, changes []*Change) error {
	var problems []string
	for _, c := range changes {
		switch c.Action {
		case ActionFailed:
			problems = append(problems, fmt.Sprintf("%s (%s): %v", c.Ref(), c.Source, c.Err))
		case ActionConflict:
			problems = append(problems, fmt.Sprintf("%s (%s): conflict: %s", c.Ref(), c.Source, strings.Join(c.Conflicts, ", ")))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &PhaseError{Phase: phase, Objects: problems, Err: fmt.Errorf("%d of %d objects cannot be applied; nothing was written", len(problems), len(changes))}
}

// ownedElsewhere says why a live object belongs to someone else: another
// sync (its label), or another inventory (another tether installation, or
// a cli-utils tool such as kpt). An object without either is adopted, as
// Flux does, so that moving from kubectl apply to tether needs no rewrite.
func (r *run) ownedElsewhere(live *unstructured.Unstructured) string {
	if live == nil {
		return ""
	}
	if owner := live.GetLabels()[contract.SyncLabel]; owner != "" && owner != r.opts.Name {
		return fmt.Sprintf("owned by sync %q (label %s)", owner, contract.SyncLabel)
	}
	if inv := live.GetAnnotations()[contract.OwningInventoryAnnotation]; inv != "" && inv != r.invID {
		return fmt.Sprintf("owned by inventory %q (annotation %s): another tether installation or a cli-utils tool", inv, contract.OwningInventoryAnnotation)
	}
	return ""
}

// sameObject reports whether applying would leave the live object as it is:
// the dry-run answer equals it, except for bookkeeping only the server
// changes (serverFields) and status, which an apply does not write and
// controllers change all the time (between reading the live object and the
// dry run, a Deployment's status may well move on).
func sameObject(live, predicted *unstructured.Unstructured) bool {
	return equality.Semantic.DeepEqual(withoutServerFields(live).Object, withoutServerFields(predicted).Object)
}

type force int

const (
	forceNone force = iota
	forceAll
	forceFields
)

// updatersOnly reports whether every manager in conflicts ("field
// (manager)") wrote to live only with plain updates, as people do with
// kubectl edit, set, scale or patch; a manager that applies (server-side
// apply) owns its fields on purpose and is left a conflict.
func updatersOnly(live *unstructured.Unstructured, conflicts []string) bool {
	if live == nil {
		return false
	}
	for _, c := range conflicts {
		_, manager, ok := strings.Cut(c, " (")
		manager = strings.TrimSuffix(manager, ")")
		if !ok || manager == "" || manager == "another manager" {
			return false
		}
		found := false
		for _, mf := range live.GetManagedFields() {
			if mf.Manager != manager {
				continue
			}
			if mf.Operation != metav1.ManagedFieldsOperationUpdate {
				return false
			}
			found = true
		}
		if !found {
			return false
		}
	}
	return true
}

// forceMode reads the force-conflicts annotation: "true" forces every
// field, a comma-separated list forces only those fields.
func forceMode(obj *unstructured.Unstructured) force {
	switch v := strings.TrimSpace(obj.GetAnnotations()[contract.ForceConflictsAnnotation]); v {
	case "", "false":
		return forceNone
	case "true":
		return forceAll
	}
	return forceFields
}

func forceFieldList(obj *unstructured.Unstructured) map[string]bool {
	out := map[string]bool{}
	for _, f := range strings.Split(obj.GetAnnotations()[contract.ForceConflictsAnnotation], ",") {
		if f = strings.Trim(strings.TrimSpace(f), "."); f != "" {
			out[f] = true
		}
	}
	return out
}

// covered reports whether every conflict ("field (manager)") is on a field
// the object opted in to forcing.
func covered(conflicts []string, fields map[string]bool) bool {
	for _, c := range conflicts {
		field, _, _ := strings.Cut(c, " ")
		if !fields[field] {
			return false
		}
	}
	return true
}

var managerInMessage = regexp.MustCompile(`conflict with "([^"]*)"`)

// conflictFields lists the fields of a server-side apply conflict as
// "field (manager)", or nil when err is not one.
func conflictFields(err error) []string {
	var out []string
	for _, cause := range conflictCauses(err) {
		manager := "another manager"
		if m := managerInMessage.FindStringSubmatch(cause.Message); m != nil {
			manager = m[1]
		}
		out = append(out, fmt.Sprintf("%s (%s)", strings.TrimPrefix(cause.Field, "."), manager))
	}
	return out
}

// conflictPaths returns the conflicting fields of a dry run's conflict
// as the API server names them (".spec.replicas").
func conflictPaths(err error) []string {
	var out []string
	for _, cause := range conflictCauses(err) {
		out = append(out, cause.Field)
	}
	return out
}

// conflictCauses returns the field manager conflicts of an apply's error.
func conflictCauses(err error) []metav1.StatusCause {
	var status apierrors.APIStatus
	if err == nil || !apierrors.IsConflict(err) || !errors.As(err, &status) {
		return nil
	}
	details := status.Status().Details
	if details == nil {
		return nil
	}
	var out []metav1.StatusCause
	for _, cause := range details.Causes {
		if cause.Type == metav1.CauseTypeFieldManagerConflict {
			out = append(out, cause)
		}
	}
	return out
}

// isImmutableChange recognises the API server's answers to a change of a
// field that cannot change after creation.
func isImmutableChange(err error) bool {
	if err == nil || !apierrors.IsInvalid(err) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "immutable") ||
		strings.Contains(msg, "may not change once set") ||
		strings.Contains(msg, "updates to statefulset spec for fields other than")
}

// apiMessage keeps the API server's own message, which already names the
// object and the field.
func apiMessage(err error) error {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return fmt.Errorf("%s", status.Status().Message)
	}
	return err
}
