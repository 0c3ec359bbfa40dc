// Package inventory keeps the record of what a sync owns: one ConfigMap per
// sync in the agent's namespace, in cli-utils' inventory format (so kpt and
// other cli-utils tools read the same object set), plus tether's provenance
// for every object: the revision it was rendered from, the file it came from
// and when tether last wrote it.
//
// The ConfigMap tether-inventory-<sync> carries:
//
//   - labels cli-utils.sigs.k8s.io/inventory-id (ID), app.kubernetes.io/managed-by
//     and tether.dev/sync;
//   - data: one key per object, object.ObjMetadata.String()
//     ("<namespace>_<name>_<group>_<kind>"), each with an empty value, which is
//     what cli-utils writes under its StatusPolicyNone (tether keeps actuation
//     and reconcile status out of the inventory, so an unchanged sync never
//     rewrites it);
//   - binaryData tether.provenance.json.gz: gzip-compressed JSON, see
//     provenance.go;
//   - annotations tether.dev/revision and tether.dev/applied-at for the last
//     revision applied in full.
//
// The package records; it never applies or prunes anything. Merge and
// Advance are the pure steps the sync phases use to compute the next record,
// and Store reads and writes it with optimistic concurrency.
package inventory

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/cli-utils/pkg/object"

	corev1 "k8s.io/api/core/v1"

	"github.com/tether-gitops/tether/contract"
)

// Entry is the provenance of one object a sync owns.
type Entry struct {
	// ID identifies the object (group, kind, namespace, name).
	ID object.ObjMetadata
	// Revision is the source revision the object was last rendered from.
	Revision string
	// Source is the path of the file the object came from, relative to the
	// repository root ("" when unknown).
	Source string
	// WrittenAt is the last time tether created or updated the object; zero
	// if this inventory never recorded a write. Stored with second precision.
	WrittenAt time.Time
	// Stale marks an object that is no longer in the desired set but has not
	// been pruned yet (prune failed, was over budget or is guarded); it stays
	// in the inventory so a later sync can prune it, and `tether why` can say
	// so. Revision and Source then tell where it was last seen.
	Stale bool
}

// Inventory is the record of one sync: the objects it owns, with
// provenance. An Inventory is not safe for concurrent use.
type Inventory struct {
	// Sync is the sync's name.
	Sync string
	// Namespace is where the ConfigMap lives (the agent's namespace).
	Namespace string
	// ID is the inventory id, ID(Namespace, Sync).
	ID string
	// Revision is the last revision applied in full ("" before the first).
	Revision string
	// AppliedAt is when Revision was applied in full (zero before the
	// first). Stored with second precision.
	AppliedAt time.Time
	// Entries holds one entry per owned object, keyed by its ID.
	Entries map[object.ObjMetadata]Entry

	// exists reports whether the ConfigMap exists (as loaded or saved).
	exists bool
	// live is the ConfigMap as last loaded or saved (read-only); Save
	// updates a copy of it, so labels, annotations and binaryData keys
	// that others added survive, and its resourceVersion makes a
	// concurrent change a conflict.
	live *corev1.ConfigMap
	// stored is the decoded content of live, to skip writes that would
	// change nothing.
	stored *content
}

// New returns an empty inventory for a sync that has none in the cluster
// yet.
func New(namespace, sync string) *Inventory {
	return &Inventory{
		Sync:      sync,
		Namespace: namespace,
		ID:        ID(namespace, sync),
		Entries:   map[object.ObjMetadata]Entry{},
	}
}

// Exists reports whether the inventory's ConfigMap existed when it was
// loaded, or has been saved since.
func (inv *Inventory) Exists() bool { return inv.exists }

// Name is the name of the inventory's ConfigMap: tether-inventory-<sync>.
func (inv *Inventory) Name() string { return ConfigMapName(inv.Sync) }

// Set returns the IDs of every entry, sorted by group, kind, namespace and
// name.
func (inv *Inventory) Set() object.ObjMetadataSet {
	set := object.ObjMetadataSet(slices.Collect(maps.Keys(inv.Entries)))
	slices.SortFunc(set, compareIDs)
	return set
}

// SortedEntries returns every entry in the order of Set.
func (inv *Inventory) SortedEntries() []Entry {
	out := make([]Entry, 0, len(inv.Entries))
	for _, id := range inv.Set() {
		out = append(out, inv.Entries[id])
	}
	return out
}

// clone returns a deep copy of the exported fields that shares the
// (read-only) record of what is stored, so saving the copy updates the same
// ConfigMap with the same optimistic concurrency.
func (inv *Inventory) clone() *Inventory {
	out := *inv
	out.Entries = maps.Clone(inv.Entries)
	if out.Entries == nil {
		out.Entries = map[object.ObjMetadata]Entry{}
	}
	return &out
}

// ConfigMapName is the name of a sync's inventory ConfigMap.
func ConfigMapName(sync string) string { return contract.InventoryNamePrefix + sync }

// idHashLen is the number of hex digits of the hash in a long inventory id.
const idHashLen = 16

// ID returns the inventory id of a sync: "tether.<namespace>.<sync>" when
// that is a valid label value (at most 63 characters), otherwise the first
// 46 characters of that string (characters a label value cannot hold
// replaced by "-"), "_" and the first 16 hex digits of the SHA-256 of
// "<namespace>/<sync>". Both forms are deterministic, always valid label
// values, and cannot collide with each other: the short form never contains
// "_" (a namespace is a DNS label, a sync name a DNS subdomain), the long
// form always does. The id must never change for a sync, because every
// object tether applied carries it in config.k8s.io/owning-inventory.
func ID(namespace, sync string) string {
	short := contract.InventoryIDPrefix + namespace + "." + sync
	if len(validation.IsDNS1123Label(namespace)) == 0 &&
		len(validation.IsDNS1123Subdomain(sync)) == 0 &&
		len(validation.IsValidLabelValue(short)) == 0 {
		return short
	}
	sum := sha256.Sum256([]byte(namespace + "/" + sync))
	prefix := []byte(short[:min(len(short), validation.LabelValueMaxLength-1-idHashLen)])
	for i, c := range prefix {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			prefix[i] = '-'
		}
	}
	return string(prefix) + "_" + hex.EncodeToString(sum[:])[:idHashLen]
}

// validateSync checks that a sync name makes a valid ConfigMap name and
// label value.
func validateSync(sync string) error {
	if sync == "" {
		return fmt.Errorf("empty sync name")
	}
	if errs := validation.IsDNS1123Subdomain(ConfigMapName(sync)); len(errs) > 0 {
		return fmt.Errorf("sync name %q does not make a valid ConfigMap name: %s", sync, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(sync); len(errs) > 0 {
		return fmt.Errorf("sync name %q is not a valid label value: %s", sync, strings.Join(errs, "; "))
	}
	return nil
}

// compareIDs orders object IDs by group, kind, namespace and name.
func compareIDs(a, b object.ObjMetadata) int {
	return cmp.Or(
		cmp.Compare(a.GroupKind.Group, b.GroupKind.Group),
		cmp.Compare(a.GroupKind.Kind, b.GroupKind.Kind),
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name),
	)
}

// configMapRef names a ConfigMap in errors: ConfigMap/<namespace>/<name>.
func configMapRef(namespace, name string) string {
	return "ConfigMap/" + namespace + "/" + name
}
