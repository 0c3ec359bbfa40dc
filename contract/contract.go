// Package contract holds every name tether writes to or reads from a cluster:
// labels, annotations, the field manager and the inventory format. Each constant
// says who depends on it. Changing one breaks clusters that an older tether
// version manages, so treat them as a public API.
package contract

import "sigs.k8s.io/cli-utils/pkg/object"

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

	// SourceAnnotation on an applied object is the file it came from,
	// relative to the repository root (from kustomize's origin tracking).
	// `tether why` and `kubectl get -o yaml` show it.
	SourceAnnotation = Domain + "/source"

	// RevisionAnnotation on an applied object is the revision that last
	// changed it. It is written only together with a real change, so a new
	// commit that leaves an object alone does not rewrite it: tether keeps
	// the live value when nothing else differs.
	RevisionAnnotation = Domain + "/revision"

	// DriftAnnotation on an object in git overrides its sync's drift
	// policy for that object: "correct", "warn" or "ignore" (see the
	// configuration's drift field). Only git's value counts, never one
	// set in the cluster (so whoever can edit the object cannot switch its
	// correction off); any other value fails the plan.
	DriftAnnotation = Domain + "/drift"

	// LastAppliedAnnotation is kubectl's client-side apply record. When
	// tether takes an object over from `kubectl apply`, it removes the
	// annotation and kubectl's field managers (KubectlManagers()), so a field
	// later deleted from git is deleted in the cluster instead of being
	// kept by a stale co-owner.
	LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"
)

// KubectlManagers returns the field managers of client-side `kubectl
// apply` (and of kubectl's migration of such objects to server-side apply)
// whose fields tether takes over when it adopts an object.
func KubectlManagers() []string {
	return []string{"kubectl-client-side-apply", "before-first-apply"}
}

const (
	// EventDriftDetected is the reason of the Event recorded on a sync's
	// inventory ConfigMap when an object it owns is changed or deleted by
	// someone else.
	EventDriftDetected = "DriftDetected"
	// EventDriftCorrected is the reason of the Event recorded when tether
	// puts a drifted object back.
	EventDriftCorrected = "DriftCorrected"
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

const (
	// InventoryIDPrefix starts every inventory id tether derives (see
	// inventory.ID): "tether.<namespace>.<sync>", or, when that is not a
	// valid label value of at most 63 characters, a readable prefix of it,
	// "_" and a hash of namespace and sync name. The id is the value of
	// InventoryIDLabel on the inventory and of OwningInventoryAnnotation on
	// every applied object, so it must never change for a given sync.
	InventoryIDPrefix = "tether."

	// InventoryProvenanceVersion is the version of the JSON document under
	// InventoryProvenanceKey. A tether that reads a higher version refuses
	// to write the inventory rather than drop what it does not understand.
	InventoryProvenanceVersion = 1
)

// Metric names tether exports on /metrics. Alert rules
// (manifests/alerts/tether.rules.yaml) and users' dashboards depend on them.
// Labels are bounded: sync name, phase, outcome, kind, verb; never object
// names, except in MetricDriftInfo, which is capped per sync.
const (
	// MetricReconcileDuration is a histogram of reconcile durations by sync
	// and outcome (success, failure, skipped).
	MetricReconcileDuration = "tether_reconcile_duration_seconds"
	// MetricLastSuccess is the Unix time of each sync's last successful
	// reconcile; alert on time() - it.
	MetricLastSuccess = "tether_last_successful_reconcile_timestamp_seconds"
	// MetricRevisionInfo is 1 for the revision (and commit) each sync last
	// applied.
	MetricRevisionInfo = "tether_applied_revision_info"
	// MetricObjects is the number of objects per action in each sync's last
	// reconcile.
	MetricObjects = "tether_objects"
	// MetricHealth is 1 for each sync's current health status and 0 for
	// the others.
	MetricHealth = "tether_sync_health"
	// MetricSyncFailing is 1 while a sync's last reconcile failed, with the
	// phase it failed in.
	MetricSyncFailing = "tether_sync_failing"
	// MetricDrift is the number of objects per sync and kind whose drift
	// is open: changed in the cluster and not (yet) put back, e.g. kept by
	// policy warn.
	MetricDrift = "tether_drifted_objects"
	// MetricDriftInfo is 1 for each object with open drift (sync, kind,
	// namespace, name, manager), capped per sync; the series goes when
	// the drift ends.
	MetricDriftInfo = "tether_drift_info"
	// MetricDriftInfoOverflow counts the drifted objects of a sync left out
	// of MetricDriftInfo by its cap.
	MetricDriftInfoOverflow = "tether_drift_info_overflow"
	// MetricDriftEvents counts drift events per sync and action (detected,
	// corrected, kept, ignored); the TetherDriftRecurring alert reads it.
	MetricDriftEvents = "tether_drift_events_total"
	// MetricDriftOldest is the Unix time the oldest open drift of a sync
	// began (absent when none is open); the TetherDriftOpen alert reads
	// it.
	MetricDriftOldest = "tether_drift_oldest_open_timestamp_seconds"
	// MetricInventory is the number of objects each sync owns.
	MetricInventory = "tether_inventory_objects"
	// MetricGitRefListings counts remote ref listings per sync.
	MetricGitRefListings = "tether_git_ref_listings_total"
	// MetricGitFetches counts fetches (new revisions transferred) per sync.
	MetricGitFetches = "tether_git_fetches_total"
	// MetricGitFetchedBytes counts bytes transferred by fetches per sync.
	MetricGitFetchedBytes = "tether_git_fetched_bytes_total"
	// MetricAPIRequests counts Kubernetes API requests by verb and dry run.
	MetricAPIRequests = "tether_api_requests_total"
	// MetricBuildDuration is a histogram of build (render) durations.
	MetricBuildDuration = "tether_build_duration_seconds"
	// MetricGuardRefusals counts syncs stopped by a safety guard, by reason
	// (empty_revision, delete_budget).
	MetricGuardRefusals = "tether_guard_refusals_total"
	// MetricLeader is 1 while this process holds the leader lease.
	MetricLeader = "tether_leader"
	// MetricConfigReloads counts configuration reloads by outcome.
	MetricConfigReloads = "tether_config_reloads_total"
	// MetricWebhookRequests counts webhook requests by endpoint and code.
	MetricWebhookRequests = "tether_webhook_requests_total"
)

// ObjectRef names an object the way every tether message does:
// Kind[.group]/namespace/name, or Kind[.group]/name when cluster-scoped
// (Deployment.apps/web/frontend, ConfigMap/web/settings, Namespace/web).
func ObjectRef(id object.ObjMetadata) string {
	kind := id.GroupKind.Kind
	if id.GroupKind.Group != "" {
		kind += "." + id.GroupKind.Group
	}
	if id.Namespace == "" {
		return kind + "/" + id.Name
	}
	return kind + "/" + id.Namespace + "/" + id.Name
}

// Image automation (package images). Users write the marker into their
// manifests and read the records with kubectl; alert rules and dashboards
// read the metrics.
const (
	// ImageMarker starts the YAML comment that ties a value in a manifest
	// to an image policy: `image: reg/app:1.0.0 # tether:image webapp`.
	// Changing it would leave every marked file in every repository
	// unrecognised.
	ImageMarker = "tether:image"

	// ImageRecordsPrefix prefixes the ConfigMap, in the inventory
	// namespace, that holds a sync's image update records (what tether
	// wrote, rollout outcomes, failed tags, holds): tether-images-<sync>.
	// A restarted agent or a new leader reads them, and
	// `tether images release` edits them.
	ImageRecordsPrefix = "tether-images-"
	// ImageRecordsKey is the data key of that ConfigMap holding the
	// records as JSON.
	ImageRecordsKey = "images.json"
	// ImageRecordsLabel marks the records ConfigMaps; its value is the
	// sync name, so `kubectl get cm -l tether.dev/image-records` lists
	// them.
	ImageRecordsLabel = Domain + "/image-records"
	// ImageRecordsVersion is the version of the JSON document under
	// ImageRecordsKey. A tether that reads a higher version refuses to
	// write the records rather than drop what it does not understand.
	ImageRecordsVersion = 1
)

// Image automation metrics. Labels are bounded by the configuration:
// policy and sync names, and fixed outcome values.
const (
	// MetricImageScans counts registry scans per policy and outcome
	// (success, failure).
	MetricImageScans = "tether_image_scans_total"
	// MetricImageScanFailing is 1 while a policy's newest scan failed.
	MetricImageScanFailing = "tether_image_scan_failing"
	// MetricImageTags is the number of tags the newest scan of a policy
	// saw in its repository.
	MetricImageTags = "tether_image_tags"
	// MetricImageRegistryRequests counts HTTP requests sent to registries
	// per policy (pings, token exchanges, tag pages, manifests).
	MetricImageRegistryRequests = "tether_image_registry_requests_total"
	// MetricImageWriteBacks counts write-back rounds per sync and outcome
	// (committed, unchanged, failure).
	MetricImageWriteBacks = "tether_image_writebacks_total"
	// MetricImageWriteBackFailing is 1 while a sync's newest write-back
	// round failed (push refused, unreachable remote, bad markers).
	MetricImageWriteBackFailing = "tether_image_writeback_failing"
	// MetricImageRollouts counts gated rollouts per sync, policy and
	// outcome (succeeded, failed, unknown, superseded).
	MetricImageRollouts = "tether_image_rollouts_total"
	// MetricImageHeld is 1 while a policy is held for a sync (a manual
	// rollback, until a newer tag or `tether images release`).
	MetricImageHeld = "tether_image_update_held"
	// MetricImageFailedTags is the number of tags remembered as failed per
	// sync and policy (never proposed again).
	MetricImageFailedTags = "tether_image_failed_tags"
	// MetricImageLastFailedRollout is the time of the newest failed
	// rollout per sync and policy (Unix seconds), restored from the image
	// records when an agent starts leading: the alert on failed rollouts
	// reads it, because a counter born at 1 on the first failure shows no
	// increase.
	MetricImageLastFailedRollout = "tether_image_last_failed_rollout_timestamp_seconds"
)
