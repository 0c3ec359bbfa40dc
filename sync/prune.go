package sync

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/inventory"
)

// ProtectedKinds are the kinds never pruned unless the sync allows each by
// name (Options.PruneProtected): deleting a Namespace deletes everything in
// it, a CRD every custom resource of its kind, a PersistentVolumeClaim
// possibly its data. The configuration's pruneProtected takes their Kind
// names.
func ProtectedKinds() []schema.GroupKind {
	return []schema.GroupKind{
		{Kind: "Namespace"},
		{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"},
		{Kind: "PersistentVolumeClaim"},
	}
}

// candidate is an object the inventory has and the revision lacks.
type candidate struct {
	id   object.ObjMetadata
	ref  liveRef
	live *unstructured.Unstructured
}

// prune deletes what the sync owned before and the revision lacks.
//
// Guarantees: it runs only after a successful build, plan and apply (the
// empty-revision guard ran before apply); an object is deleted only if it
// still carries this sync's label and owning-inventory annotation (one taken
// over by someone else is forgotten, not deleted), does not carry
// tether.dev/prune: disabled, and is not of a protected kind the sync did
// not allow; an object already being deleted (deletionTimestamp set) is not
// deleted again and does not count against the delete budget; if more
// objects would be deleted than the delete budget allows, nothing is
// deleted and the refusal is reported. Deletes go in
// reverse dependency order (everything else, then Namespaces, then CRDs),
// with background propagation and a UID precondition, so an object
// recreated meanwhile is not touched. The inventory forgets what was
// deleted or let go, and keeps what could not be deleted.
func (r *run) prune(ctx context.Context) error {
	outcomes, deletable, err := r.classifyPrune(ctx)
	if err != nil {
		return err
	}
	limit := r.opts.DeleteBudget.Limit(len(r.inv.Entries))
	var refusal error
	if len(deletable) > limit {
		refusal = &GuardError{Reason: GuardDeleteBudget, Err: fmt.Errorf("delete budget exceeded: %d objects would be deleted, the budget is %s (%d); nothing was deleted (raise deleteBudget / --delete-budget if this is intended)",
			len(deletable), r.opts.DeleteBudget, limit)}
		for _, c := range deletable {
			outcomes = append(outcomes, PruneOutcome{ID: c.id, Action: ActionKeep, Reason: "delete budget exceeded"})
		}
		deletable = nil
	}
	outcomes = append(outcomes, r.deleteInStages(ctx, deletable)...)
	sort.Slice(outcomes, func(i, j int) bool { return refString(outcomes[i].ID) < refString(outcomes[j].ID) })
	r.res.Pruned = outcomes

	var removed []object.ObjMetadata
	var failed []string
	for _, o := range outcomes {
		switch {
		case o.Action == ActionPrune || o.Action == ActionOrphan:
			removed = append(removed, o.ID)
		case o.Err != nil:
			failed = append(failed, fmt.Sprintf("%s: %v", refString(o.ID), o.Err))
		}
	}
	if err := r.saveIfOwnershipChanged(ctx, inventory.Advance(r.inv, r.outcome(removed))); err != nil {
		return err
	}
	if refusal != nil {
		return refusal
	}
	if len(failed) > 0 {
		return &PhaseError{Phase: "prune", Objects: failed, Err: fmt.Errorf("%d deletes failed; the objects stay in the inventory", len(failed))}
	}
	return nil
}

// planPrune fills Result.Pruned with what prune would do, for dry runs.
func (r *run) planPrune(ctx context.Context) error {
	outcomes, deletable, err := r.classifyPrune(ctx)
	if err != nil {
		return err
	}
	limit := r.opts.DeleteBudget.Limit(len(r.inv.Entries))
	for _, c := range deletable {
		o := PruneOutcome{ID: c.id, Action: ActionPrune}
		if len(deletable) > limit {
			o.Action, o.Reason = ActionKeep, fmt.Sprintf("delete budget exceeded (%d > %d)", len(deletable), limit)
		}
		outcomes = append(outcomes, o)
	}
	sort.Slice(outcomes, func(i, j int) bool { return refString(outcomes[i].ID) < refString(outcomes[j].ID) })
	r.res.Pruned = outcomes
	return nil
}

// classifyPrune reads the prune candidates and decides, for each, whether
// it may be deleted (deletable) or is let go or already gone (outcomes).
func (r *run) classifyPrune(ctx context.Context) ([]PruneOutcome, []candidate, error) {
	var cands []candidate
	for id := range r.inv.Entries {
		if _, desired := r.byID[id]; !desired {
			cands = append(cands, candidate{id: id})
		}
	}
	if len(cands) == 0 {
		return nil, nil, nil
	}
	var outcomes []PruneOutcome
	if !r.opts.Prune {
		for _, c := range cands {
			outcomes = append(outcomes, PruneOutcome{ID: c.id, Action: ActionOrphan, Reason: "pruning is off; left in place"})
		}
		return outcomes, nil, nil
	}
	var refs []liveRef
	var served []candidate
	for _, c := range cands {
		ref, ok, err := r.refFor(c.id)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			outcomes = append(outcomes, PruneOutcome{ID: c.id, Action: ActionPrune, Reason: "already gone (its kind is no longer served)"})
			continue
		}
		c.ref = ref
		refs = append(refs, ref)
		served = append(served, c)
	}
	live, err := r.readLive(ctx, refs)
	if err != nil {
		return nil, nil, err
	}
	invID := inventory.ID(r.opts.InventoryNamespace, r.opts.Name)
	var deletable []candidate
	for _, c := range served {
		c.live = live[c.id]
		switch reason := r.keepReason(c, invID); {
		case c.live == nil:
			outcomes = append(outcomes, PruneOutcome{ID: c.id, Action: ActionPrune, Reason: "already gone"})
		case c.live.GetDeletionTimestamp() != nil:
			// Someone deleted it already and its finalizers are running:
			// no second delete, and nothing drawn from the budget.
			outcomes = append(outcomes, PruneOutcome{ID: c.id, Action: ActionPrune, Reason: "already being deleted"})
		case reason != "":
			outcomes = append(outcomes, PruneOutcome{ID: c.id, Action: ActionOrphan, Reason: reason})
		default:
			deletable = append(deletable, c)
		}
	}
	return outcomes, deletable, nil
}

// keepReason says why a live candidate must not be deleted, or "".
func (r *run) keepReason(c candidate, invID string) string {
	if c.live == nil {
		return ""
	}
	if owner := c.live.GetLabels()[contract.SyncLabel]; owner != r.opts.Name {
		if owner == "" {
			return fmt.Sprintf("taken over: its %s label was removed; left in place", contract.SyncLabel)
		}
		return fmt.Sprintf("taken over by sync %q; left in place", owner)
	}
	if inv := c.live.GetAnnotations()[contract.OwningInventoryAnnotation]; inv != "" && inv != invID {
		return fmt.Sprintf("taken over by inventory %q; left in place", inv)
	}
	if c.live.GetAnnotations()[contract.PruneAnnotation] == contract.PruneDisabled {
		return fmt.Sprintf("%s: %s; left in place", contract.PruneAnnotation, contract.PruneDisabled)
	}
	if r.protected(c.id.GroupKind) {
		return fmt.Sprintf("protected kind %s; left in place (allow with pruneProtected)", c.id.GroupKind.Kind)
	}
	return ""
}

func (r *run) protected(gk schema.GroupKind) bool {
	if !slices.Contains(ProtectedKinds(), gk) {
		return false
	}
	for _, allowed := range r.opts.PruneProtected {
		if strings.EqualFold(allowed, gk.Kind) || strings.EqualFold(allowed, gk.String()) {
			return false
		}
	}
	return true
}

// deleteInStages deletes everything but Namespaces and CRDs, then
// Namespaces, then CRDs; within a stage, in parallel.
func (r *run) deleteInStages(ctx context.Context, cands []candidate) []PruneOutcome {
	var stages [3][]candidate
	for _, c := range cands {
		s := deleteStage(c.id.GroupKind)
		stages[s] = append(stages[s], c)
	}
	var out []PruneOutcome
	for _, stage := range stages {
		results := make([]PruneOutcome, len(stage))
		for i, c := range stage {
			// What stays if the reconcile is stopped before this delete.
			results[i] = PruneOutcome{ID: c.id, Action: ActionKeep, Reason: "not attempted: the reconcile was stopped"}
		}
		parallel(ctx, r.opts.Concurrency, len(stage), func(ctx context.Context, i int) error {
			results[i] = r.delete(ctx, stage[i])
			return nil
		})
		out = append(out, results...)
	}
	return out
}

// deleteStage orders deletes: everything else (0) before Namespaces (1)
// before CRDs (2), the reverse of the order objects are applied in.
func deleteStage(gk schema.GroupKind) int {
	switch {
	case isCRD(gk):
		return 2
	case isNamespace(gk):
		return 1
	}
	return 0
}

func (r *run) delete(ctx context.Context, c candidate) PruneOutcome {
	policy := metav1.DeletePropagationBackground
	uid := c.live.GetUID()
	err := r.resource(c.ref.gvr, c.id.Namespace).Delete(ctx, c.id.Name, metav1.DeleteOptions{
		PropagationPolicy: &policy,
		Preconditions:     &metav1.Preconditions{UID: &uid},
	})
	switch {
	case err == nil:
		r.s.log.Info("pruned", "sync", r.opts.Name, "object", refString(c.id))
		return PruneOutcome{ID: c.id, Action: ActionPrune}
	case apierrors.IsNotFound(err):
		return PruneOutcome{ID: c.id, Action: ActionPrune, Reason: "already gone"}
	case apierrors.IsConflict(err):
		return PruneOutcome{ID: c.id, Action: ActionOrphan, Reason: "replaced by a new object since it was applied; left in place"}
	}
	return PruneOutcome{ID: c.id, Action: ActionKeep, Reason: "delete failed", Err: apiMessage(err)}
}
