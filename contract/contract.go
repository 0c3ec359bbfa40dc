// Package contract holds every name tether writes to or reads from a cluster:
// labels, annotations, the field manager and the inventory format. Each constant
// says who depends on it. Changing one breaks clusters that an older tether
// version manages, so treat them as a public API.
package contract

const (
	// Domain prefixes every label and annotation tether owns.
	Domain = "tether.dev"

	// FieldManager is the server-side apply field manager tether applies with.
	// Users see it in metadata.managedFields; changing it would make tether
	// fight with itself over every field it applied before.
	FieldManager = "tether"

	// SyncLabel names the sync that owns an object, on every object tether
	// applies, so `kubectl get -l tether.dev/sync=NAME` lists a sync's objects.
	// Prune reads it: an object whose label names another sync (or is gone) has
	// been taken over and is never deleted.
	SyncLabel = Domain + "/sync"

	// PruneAnnotation set to PruneDisabled on an object in git keeps tether
	// from ever deleting that object; it is dropped from the inventory instead.
	PruneAnnotation = Domain + "/prune"
	// PruneDisabled is the value of PruneAnnotation that disables pruning.
	PruneDisabled = "disabled"

	// ForceConflictsAnnotation opts an object in to forced server-side apply.
	// "true" forces every conflicting field; a comma-separated list of field
	// paths (for example "spec.replicas,data.key") forces only when every
	// conflicting field is in the list.
	ForceConflictsAnnotation = Domain + "/force-conflicts"

	// RecreateAnnotation set to "true" lets tether delete and recreate an
	// object whose change touches an immutable field (a Job's template, a
	// Service's clusterIP). Without it such a change fails the sync.
	RecreateAnnotation = Domain + "/recreate"

	// SourceAnnotation is the path of the file an object came from, relative
	// to the repository root. tether reads it from kustomize's origin
	// annotation at build time and records it in the inventory, not on the
	// object (so moving a file does not rewrite the object).
	SourceAnnotation = Domain + "/source"
)

const (
	// InventoryIDLabel is cli-utils' inventory label; cli-utils tooling (and
	// kpt) find the inventory ConfigMap by it.
	InventoryIDLabel = "cli-utils.sigs.k8s.io/inventory-id"

	// OwningInventoryAnnotation is cli-utils' ownership annotation, set on
	// every applied object to the inventory id, so cli-utils based tools
	// refuse to prune an object tether owns.
	OwningInventoryAnnotation = "config.k8s.io/owning-inventory"

	// InventoryNamePrefix prefixes the inventory ConfigMap of a sync:
	// tether-inventory-<sync>.
	InventoryNamePrefix = "tether-inventory-"

	// InventoryRevisionAnnotation on the inventory ConfigMap holds the last
	// revision that was applied in full (read by `tether why` and status).
	InventoryRevisionAnnotation = Domain + "/revision"

	// InventoryAppliedAtAnnotation on the inventory ConfigMap holds the time
	// (RFC 3339) the last revision was applied in full.
	InventoryAppliedAtAnnotation = Domain + "/applied-at"

	// InventoryProvenanceKey is the binaryData key of the inventory ConfigMap
	// holding per-object provenance (revision, source file, apply time) as
	// gzip-compressed JSON. cli-utils ignores binaryData, so the data keys stay
	// in cli-utils' format.
	InventoryProvenanceKey = "tether.provenance.json.gz"

	// ManagedByLabel marks the objects tether itself creates (inventories).
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on tether's own objects.
	ManagedByValue = "tether"
)
