package inventory

import (
	"testing"

	"sigs.k8s.io/cli-utils/pkg/object"
)

// oldInventory is an inventory at revision r1 with objects a, b and c.
func oldInventory() *Inventory {
	inv := New(testNS, "web")
	inv.Revision, inv.AppliedAt = "r1", at(0)
	inv.Entries = entries(
		Entry{ID: deploy("a"), Revision: "r1", Source: "a.yaml", WrittenAt: at(0)},
		Entry{ID: deploy("b"), Revision: "r1", Source: "b.yaml", WrittenAt: at(0)},
		Entry{ID: deploy("c"), Revision: "r0", Source: "c.yaml", WrittenAt: at(-10), Stale: true},
	)
	// as if loaded: Merge and Advance must carry this over
	inv.exists = true
	return inv
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name    string
		applied []Entry
		want    []Entry
	}{
		{
			name: "nothing applied",
			want: oldInventory().SortedEntries(),
		},
		{
			name:    "a new object is added",
			applied: []Entry{{ID: deploy("d"), Revision: "r2", Source: "d.yaml", WrittenAt: at(5)}},
			want: []Entry{
				{ID: deploy("a"), Revision: "r1", Source: "a.yaml", WrittenAt: at(0)},
				{ID: deploy("b"), Revision: "r1", Source: "b.yaml", WrittenAt: at(0)},
				{ID: deploy("c"), Revision: "r0", Source: "c.yaml", WrittenAt: at(-10), Stale: true},
				{ID: deploy("d"), Revision: "r2", Source: "d.yaml", WrittenAt: at(5)},
			},
		},
		{
			name: "an updated object takes the new provenance; an unchanged one keeps its write time",
			applied: []Entry{
				{ID: deploy("a"), Revision: "r2", Source: "moved/a.yaml", WrittenAt: at(5)},
				{ID: deploy("b"), Revision: "r2", Source: "b.yaml"},
			},
			want: []Entry{
				{ID: deploy("a"), Revision: "r2", Source: "moved/a.yaml", WrittenAt: at(5)},
				{ID: deploy("b"), Revision: "r2", Source: "b.yaml", WrittenAt: at(0)},
				{ID: deploy("c"), Revision: "r0", Source: "c.yaml", WrittenAt: at(-10), Stale: true},
			},
		},
		{
			name:    "a stale object applied again is no longer stale",
			applied: []Entry{{ID: deploy("c"), Revision: "r2", Source: "c.yaml", WrittenAt: at(5), Stale: true}},
			want: []Entry{
				{ID: deploy("a"), Revision: "r1", Source: "a.yaml", WrittenAt: at(0)},
				{ID: deploy("b"), Revision: "r1", Source: "b.yaml", WrittenAt: at(0)},
				{ID: deploy("c"), Revision: "r2", Source: "c.yaml", WrittenAt: at(5)},
			},
		},
		{
			name:    "a new object that was not written has no write time",
			applied: []Entry{{ID: deploy("d"), Revision: "r2", Source: "d.yaml"}},
			want: append(oldInventory().SortedEntries(),
				Entry{ID: deploy("d"), Revision: "r2", Source: "d.yaml"}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := oldInventory()
			got := Merge(old, tt.applied)
			want := oldInventory()
			want.Entries = entries(tt.want...)
			// The inventory's revision does not move: r2 was not applied in full.
			sameInventory(t, got, want)
			if !got.Exists() {
				t.Error("Merge lost the loaded state")
			}
			sameInventory(t, old, oldInventory()) // old is not modified
		})
	}
}

func TestAdvance(t *testing.T) {
	tests := []struct {
		name    string
		desired []Entry
		removed []object.ObjMetadata
		want    []Entry
	}{
		{
			name: "same set, nothing written: only the revision moves",
			desired: []Entry{
				{ID: deploy("a"), Source: "a.yaml"},
				{ID: deploy("b"), Source: "b.yaml"},
				{ID: deploy("c"), Source: "c.yaml"},
			},
			want: []Entry{
				{ID: deploy("a"), Revision: "r2", Source: "a.yaml", WrittenAt: at(0)},
				{ID: deploy("b"), Revision: "r2", Source: "b.yaml", WrittenAt: at(0)},
				{ID: deploy("c"), Revision: "r2", Source: "c.yaml", WrittenAt: at(-10)},
			},
		},
		{
			name: "written objects get their write time, new ones are added",
			desired: []Entry{
				{ID: deploy("a"), Revision: "r2", Source: "a.yaml", WrittenAt: at(5)},
				{ID: deploy("b"), Source: "b.yaml"},
				{ID: deploy("c"), Source: "c.yaml"},
				{ID: deploy("d"), Source: "d.yaml", WrittenAt: at(5)},
			},
			want: []Entry{
				{ID: deploy("a"), Revision: "r2", Source: "a.yaml", WrittenAt: at(5)},
				{ID: deploy("b"), Revision: "r2", Source: "b.yaml", WrittenAt: at(0)},
				{ID: deploy("c"), Revision: "r2", Source: "c.yaml", WrittenAt: at(-10)},
				{ID: deploy("d"), Revision: "r2", Source: "d.yaml", WrittenAt: at(5)},
			},
		},
		{
			name:    "pruned objects leave the inventory",
			desired: []Entry{{ID: deploy("a"), Source: "a.yaml"}},
			removed: []object.ObjMetadata{deploy("b"), deploy("c")},
			want:    []Entry{{ID: deploy("a"), Revision: "r2", Source: "a.yaml", WrittenAt: at(0)}},
		},
		{
			name:    "objects not pruned yet stay, stale, with their old provenance",
			desired: []Entry{{ID: deploy("a"), Source: "a.yaml"}},
			removed: []object.ObjMetadata{deploy("c")},
			want: []Entry{
				{ID: deploy("a"), Revision: "r2", Source: "a.yaml", WrittenAt: at(0)},
				{ID: deploy("b"), Revision: "r1", Source: "b.yaml", WrittenAt: at(0), Stale: true},
			},
		},
		{
			name: "an object both desired and removed stays",
			desired: []Entry{
				{ID: deploy("a"), Source: "a.yaml"},
			},
			removed: []object.ObjMetadata{deploy("a"), deploy("b"), deploy("c")},
			want:    []Entry{{ID: deploy("a"), Revision: "r2", Source: "a.yaml", WrittenAt: at(0)}},
		},
		{
			name:    "removing an object the inventory never had changes nothing",
			desired: []Entry{{ID: deploy("a"), Source: "a.yaml"}, {ID: deploy("b"), Source: "b.yaml"}, {ID: deploy("c"), Source: "c.yaml"}},
			removed: []object.ObjMetadata{deploy("zzz")},
			want: []Entry{
				{ID: deploy("a"), Revision: "r2", Source: "a.yaml", WrittenAt: at(0)},
				{ID: deploy("b"), Revision: "r2", Source: "b.yaml", WrittenAt: at(0)},
				{ID: deploy("c"), Revision: "r2", Source: "c.yaml", WrittenAt: at(-10)},
			},
		},
		{
			name:    "an empty desired set keeps everything until it is pruned",
			desired: nil,
			want: []Entry{
				{ID: deploy("a"), Revision: "r1", Source: "a.yaml", WrittenAt: at(0), Stale: true},
				{ID: deploy("b"), Revision: "r1", Source: "b.yaml", WrittenAt: at(0), Stale: true},
				{ID: deploy("c"), Revision: "r0", Source: "c.yaml", WrittenAt: at(-10), Stale: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := oldInventory()
			got := Advance(old, Outcome{Revision: "r2", AppliedAt: at(5), Desired: tt.desired, Removed: tt.removed})
			want := oldInventory()
			want.Revision, want.AppliedAt = "r2", at(5)
			want.Entries = entries(tt.want...)
			sameInventory(t, got, want)
			if !got.Exists() {
				t.Error("Advance lost the loaded state")
			}
			sameInventory(t, old, oldInventory()) // old is not modified
		})
	}
}

// The two-step save of a sync: after apply (nothing removed yet), then after
// prune; and a failed apply in between.
func TestSyncSequence(t *testing.T) {
	inv := New(testNS, "web")
	// First sync fails after applying a: a is recorded, no revision yet.
	inv = Merge(inv, []Entry{{ID: deploy("a"), Revision: "r1", Source: "a.yaml", WrittenAt: at(1)}})
	if inv.Revision != "" || len(inv.Entries) != 1 {
		t.Fatalf("after a failed first sync: revision %q, %d entries", inv.Revision, len(inv.Entries))
	}
	// Retry succeeds with a and b.
	inv = Advance(inv, Outcome{Revision: "r1", AppliedAt: at(2), Desired: []Entry{
		{ID: deploy("a"), Source: "a.yaml"},
		{ID: deploy("b"), Source: "b.yaml", WrittenAt: at(2)},
	}})
	// r2 drops a: saved before prune, a is still there (stale).
	inv = Advance(inv, Outcome{Revision: "r2", AppliedAt: at(3), Desired: []Entry{{ID: deploy("b"), Source: "b.yaml"}}})
	want := New(testNS, "web")
	want.Revision, want.AppliedAt = "r2", at(3)
	want.Entries = entries(
		Entry{ID: deploy("a"), Revision: "r1", Source: "a.yaml", WrittenAt: at(1), Stale: true},
		Entry{ID: deploy("b"), Revision: "r2", Source: "b.yaml", WrittenAt: at(2)},
	)
	sameInventory(t, inv, want)
	// Prune deleted a.
	inv = Advance(inv, Outcome{Revision: "r2", AppliedAt: at(3), Desired: []Entry{{ID: deploy("b"), Source: "b.yaml"}}, Removed: []object.ObjMetadata{deploy("a")}})
	delete(want.Entries, deploy("a"))
	sameInventory(t, inv, want)
}
