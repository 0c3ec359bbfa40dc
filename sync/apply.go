package sync

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// apply writes the planned changes with server-side apply.
//
// Guarantees: only objects planned as create, update or recreate are sent,
// so an unchanged revision writes nothing. Namespaces and CRDs go first;
// then, once every new CRD is Established and discovery is refreshed, the
// deferred objects are planned (the same dry run as in plan, and a failure
// there stops the sync before the rest is written), and everything else is
// applied in parallel with bounded concurrency. Every object's outcome is
// recorded in its Change; any failure fails the phase after the whole stage
// was tried, naming each object.
func (r *run) apply(ctx context.Context) error {
	first, rest := applyStages(r.res.Changes)
	if err := r.applyStage(ctx, first); err != nil {
		return err
	}
	if err := r.waitEstablished(ctx, first); err != nil {
		return err
	}
	if err := r.planDeferred(ctx, rest); err != nil {
		return err
	}
	if err := r.applyStage(ctx, rest); err != nil {
		return err
	}
	r.appliedAt = r.s.now()
	return nil
}

// applyStages splits changes into what must exist before the rest can be
// planned or applied (Namespaces and CRDs) and the rest.
func applyStages(changes []*Change) (first, rest []*Change) {
	for _, c := range changes {
		if isNamespace(c.ID.GroupKind) || isCRD(c.ID.GroupKind) {
			first = append(first, c)
		} else {
			rest = append(rest, c)
		}
	}
	return first, rest
}

// applyStage writes the changes of one stage in parallel.
func (r *run) applyStage(ctx context.Context, changes []*Change) error {
	var todo []*Change
	for _, c := range changes {
		if c.Action.writes() {
			todo = append(todo, c)
		}
	}
	parallel(ctx, r.opts.Concurrency, len(todo), func(ctx context.Context, i int) error {
		c := todo[i]
		if err := r.write(ctx, c); err != nil {
			c.Err = err
			c.Action = ActionFailed
			return err
		}
		c.Written = true
		return nil
	})
	var problems []string
	for _, c := range todo {
		if c.Err != nil {
			problems = append(problems, fmt.Sprintf("%s (%s): %v", c.Ref(), c.Source, c.Err))
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return &PhaseError{Phase: "apply", Objects: problems, Err: fmt.Errorf("%d of %d writes failed", len(problems), len(todo))}
	}
	return nil
}

// write applies one change; a recreate deletes the live object first and
// waits until it is gone.
func (r *run) write(ctx context.Context, c *Change) error {
	if c.Action == ActionRecreate && c.Live != nil {
		if err := r.deleteAndWait(ctx, c); err != nil {
			return err
		}
	}
	// The answer is not needed (health reads the objects afterwards), so
	// it is not decoded.
	if c.TakeOver && c.Live != nil && c.Action != ActionRecreate {
		if err := r.takeOver(ctx, c); err != nil {
			return err
		}
	}
	answer, err := r.patchRaw(ctx, c, false)
	if err != nil {
		return apiMessage(err)
	}
	if c.owned = ownedInAnswer(answer); c.owned == nil {
		// Drift is told from what tether owns; without it the object's
		// drift goes unseen until the next write that answers with it.
		r.s.log.Warn("the API server's answer to the apply holds no managed fields of tether: drift of this object is not tracked until its next write", "sync", r.opts.Name, "object", c.Ref())
	}
	r.s.log.Debug("applied", "sync", r.opts.Name, "object", c.Ref(), "action", string(c.Action))
	return nil
}

func (r *run) deleteAndWait(ctx context.Context, c *Change) error {
	client := r.resource(c.GVR, c.ID.Namespace)
	uid := c.Live.GetUID()
	policy := metav1.DeletePropagationBackground
	err := client.Delete(ctx, c.ID.Name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting for recreate: %w", apiMessage(err))
	}
	deadline := time.Now().Add(r.opts.Timeout)
	for {
		live, err := client.Get(ctx, c.ID.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && live.GetUID() != uid) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deleted for recreate, but still present after %s (finalizers?)", r.opts.Timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitEstablished waits until the CRDs written in this stage are
// Established, then refreshes discovery so their kinds resolve.
func (r *run) waitEstablished(ctx context.Context, changes []*Change) error {
	var crds []*Change
	for _, c := range changes {
		if isCRD(c.ID.GroupKind) && c.Written {
			crds = append(crds, c)
		}
	}
	if len(crds) == 0 {
		return nil
	}
	deadline := time.Now().Add(r.opts.Timeout)
	for _, c := range crds {
		for {
			live, err := r.resource(c.GVR, "").Get(ctx, c.ID.Name, metav1.GetOptions{})
			if err == nil && conditionTrue(live, "Established") {
				break
			}
			if time.Now().After(deadline) {
				return &PhaseError{Phase: "apply", Objects: []string{c.Ref() + ": not Established after " + r.opts.Timeout.String()}, Err: fmt.Errorf("waiting for CRDs")}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	r.s.clients.Mapper.Reset()
	return nil
}

// planDeferred resolves and plans the objects whose Namespace or CRD was
// just applied.
func (r *run) planDeferred(ctx context.Context, changes []*Change) error {
	var deferred []*Change
	for _, c := range changes {
		if c.Deferred {
			deferred = append(deferred, c)
		}
	}
	if len(deferred) == 0 {
		return nil
	}
	var problems []string
	for _, c := range deferred {
		if !c.GVR.Empty() {
			continue
		}
		mapping, err := r.s.clients.Mapper.RESTMapping(c.gvk.GroupKind(), c.gvk.Version)
		if err != nil {
			c.Action = ActionFailed
			c.Err = fmt.Errorf("kind %s still unknown after its CRD was applied: %w", c.gvk, err)
			problems = append(problems, fmt.Sprintf("%s (%s): %v", c.Ref(), c.Source, c.Err))
			continue
		}
		c.GVR = mapping.Resource
	}
	if len(problems) > 0 {
		return &PhaseError{Phase: "plan", Objects: problems, Err: fmt.Errorf("objects of new kinds cannot be applied")}
	}
	if err := r.planChanges(ctx, deferred); err != nil {
		return err
	}
	return planProblems("plan", deferred)
}

func conditionTrue(obj *unstructured.Unstructured, condType string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == condType && m["status"] == "True" {
			return true
		}
	}
	return false
}
