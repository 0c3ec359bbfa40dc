package inventory

import (
	"time"

	"sigs.k8s.io/cli-utils/pkg/object"
)

// Merge returns old with the applied entries added or updated, for a sync
// whose apply failed part way: the objects it did apply are recorded, so a
// later sync still owns (and can prune) them, while the inventory's
// Revision and AppliedAt stay where they were, because that revision was not
// applied in full. Entries of old that were not applied are kept as they
// are.
//
// An applied entry replaces the old one, except that a zero WrittenAt (the
// object was unchanged, not written) keeps the old WrittenAt; Stale is
// cleared, since the object is in the desired set again. old is not
// modified and must not be nil (use New for a sync without an inventory);
// the result saves over the same ConfigMap as old.
func Merge(old *Inventory, applied []Entry) *Inventory {
	out := old.clone()
	for _, e := range applied {
		if prev, ok := old.Entries[e.ID]; ok && e.WrittenAt.IsZero() {
			e.WrittenAt = prev.WrittenAt
		}
		e.Stale = false
		out.Entries[e.ID] = e
	}
	return out
}

// Outcome describes a sync whose apply succeeded, for Advance.
type Outcome struct {
	// Revision is the revision that was applied in full.
	Revision string
	// AppliedAt is when it was applied.
	AppliedAt time.Time
	// Desired is the whole new set, with provenance: an entry's WrittenAt
	// is when this sync created or updated it, or zero when the object was
	// unchanged; an empty Revision means Outcome.Revision.
	Desired []Entry
	// Removed lists the objects that leave the inventory: pruned (deleted,
	// or found already gone) or let go without deleting (pruning disabled,
	// taken over by another sync). An object of the old inventory that is
	// neither desired nor removed could not be pruned yet and is kept as
	// Stale, so a later sync can prune it.
	Removed []object.ObjMetadata
}

// Advance returns the inventory after a successful sync: the desired set
// with its provenance (keeping the old WrittenAt of objects not written this
// time), plus the old entries that are neither desired nor removed, marked
// Stale (their Revision, Source and WrittenAt kept), with Revision and
// AppliedAt moved to the outcome's. An object both desired and removed
// stays: the inventory errs toward remembering what tether applied.
//
// Saving Advance(old, o) before prune with o.Removed empty, then again after
// prune with what it removed, means a crash between the two leaves every
// prune candidate recorded. old is not modified and must not be nil; the
// result saves over the same ConfigMap as old.
func Advance(old *Inventory, o Outcome) *Inventory {
	out := old.clone()
	out.Revision = o.Revision
	out.AppliedAt = o.AppliedAt
	next := make(map[object.ObjMetadata]Entry, len(o.Desired)+len(old.Entries))
	for _, e := range o.Desired {
		if e.WrittenAt.IsZero() {
			e.WrittenAt = old.Entries[e.ID].WrittenAt
		}
		if e.Revision == "" {
			e.Revision = o.Revision
		}
		e.Stale = false
		next[e.ID] = e
	}
	removed := make(map[object.ObjMetadata]bool, len(o.Removed))
	for _, id := range o.Removed {
		removed[id] = true
	}
	for id, e := range old.Entries {
		if _, desired := next[id]; desired || removed[id] {
			continue
		}
		e.Stale = true
		next[id] = e
	}
	out.Entries = next
	return out
}
