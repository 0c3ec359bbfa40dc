package sync

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/inventory"
)

// The inventory records what the sync owns. It is written only when
// ownership changes (objects added, removed, moved to another file, or left
// to be pruned later), never just because a new revision was applied: the
// revision that last changed an object is on the object itself
// (tether.dev/revision), written together with the change. So an unchanged
// revision, and a new one that changes one object, write nothing else.

func (r *run) store() *inventory.Store {
	return inventory.NewStore(r.s.clients.Typed.CoreV1(), r.opts.InventoryNamespace)
}

// loadInventory reads what the sync owned before this reconcile.
func (r *run) loadInventory(ctx context.Context) error {
	inv, err := r.store().Load(ctx, r.opts.Name)
	if err != nil {
		return err
	}
	r.inv = inv
	return nil
}

// guardEmpty refuses a revision that renders nothing while the sync owns
// objects and would prune them, unless the sync allows it: an empty build is
// far more often a mistake (a wrong path, a deleted kustomization) than an
// intent to delete an application.
func (r *run) guardEmpty() error {
	if len(r.res.Changes) > 0 || len(r.inv.Entries) == 0 || !r.opts.Prune || r.opts.AllowEmpty {
		return nil
	}
	return &GuardError{Reason: GuardEmptyRevision, Err: fmt.Errorf("refusing to prune all %d objects the sync owns: the revision renders no objects (allow it with allowEmpty / --allow-empty if deleting everything is intended)", len(r.inv.Entries))}
}

// recordIntent adds the objects about to be created to the inventory before
// anything is written, so that a crash in the middle of apply never leaves
// an object the sync created but does not know it owns. It writes only
// when there are new objects.
func (r *run) recordIntent(ctx context.Context) error {
	var added []inventory.Entry
	now := r.s.now()
	for _, c := range r.res.Changes {
		if _, known := r.inv.Entries[c.ID]; known || !(c.Action.writes() || c.Deferred) {
			continue
		}
		added = append(added, inventory.Entry{ID: c.ID, Revision: r.in.Revision, Source: c.Source, WrittenAt: now})
	}
	if len(added) == 0 {
		return nil
	}
	if err := r.ensureNamespace(ctx, r.opts.InventoryNamespace); err != nil {
		return err
	}
	return r.saveIfOwnershipChanged(ctx, inventory.Merge(r.inv, added))
}

// saveInventory records the applied revision's objects, keeping the
// objects that are gone from it (prune candidates) until prune decides.
func (r *run) saveInventory(ctx context.Context) error {
	return r.saveIfOwnershipChanged(ctx, inventory.Advance(r.inv, r.outcome(nil)))
}

// outcome describes this reconcile for inventory.Advance.
func (r *run) outcome(removed []object.ObjMetadata) inventory.Outcome {
	o := inventory.Outcome{Revision: r.in.Revision, AppliedAt: r.appliedAt, Removed: removed}
	for _, c := range r.res.Changes {
		e := inventory.Entry{ID: c.ID, Source: c.Source}
		if c.Written {
			e.WrittenAt = r.appliedAt
		}
		o.Desired = append(o.Desired, e)
	}
	return o
}

// saveIfOwnershipChanged saves next when its set of objects, their sources
// or their stale marks differ from what is stored.
func (r *run) saveIfOwnershipChanged(ctx context.Context, next *inventory.Inventory) error {
	if r.inv.Exists() && sameOwnership(r.inv, next) {
		return nil
	}
	if _, err := r.store().Save(ctx, next); err != nil {
		return err
	}
	r.inv = next
	return nil
}

func sameOwnership(a, b *inventory.Inventory) bool {
	if len(a.Entries) != len(b.Entries) {
		return false
	}
	for id, ea := range a.Entries {
		eb, ok := b.Entries[id]
		if !ok || ea.Source != eb.Source || ea.Stale != eb.Stale {
			return false
		}
	}
	return true
}

// ensureNamespace creates the inventory's namespace when it is missing.
func (r *run) ensureNamespace(ctx context.Context, name string) error {
	nss := r.s.clients.Typed.CoreV1().Namespaces()
	if _, err := nss.Get(ctx, name, metav1.GetOptions{}); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		// Without the right to read namespaces, assume it exists; saving
		// the inventory will say otherwise.
		if apierrors.IsForbidden(err) {
			return nil
		}
		return fmt.Errorf("checking namespace %s for the inventory: %w", name, err)
	}
	_, err := nss.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{contract.ManagedByLabel: contract.ManagedByValue},
	}}, metav1.CreateOptions{FieldManager: contract.FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s for the inventory: %w", name, err)
	}
	return nil
}
