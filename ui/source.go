package ui

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/inventory"
)

// Source is what the sync and object pages read from the cluster.
// ClusterSource implements it over the API server; tests use fakes.
type Source interface {
	// Sync returns the objects a sync owns (its inventory in
	// invNamespace) with their live state, as a tree.
	Sync(ctx context.Context, invNamespace, sync string) (*SyncDetail, error)
	// Object returns one object: the inventories that list it, its live
	// state and what tether applied to it. Secret values must already be
	// masked.
	Object(ctx context.Context, invNamespace string, id object.ObjMetadata) (*ObjectDetail, error)
}

// ExtrasSource fills the sections other features own: drift records (the
// watch cache) and image updates (image automation). Either may be left
// nil in Extras while its feature is not there; the page then shows no
// such section. st is the agent's status the page already read, so a
// page of many syncs reads it once.
type ExtrasSource interface {
	Extras(ctx context.Context, st *agent.Status, sync string) Extras
}

// Extras are the optional sections of a sync.
type Extras struct {
	// Drift lists fields of the sync's objects that differ in the cluster
	// from what tether applied; nil when drift is not tracked.
	Drift []Drift
	// Images lists the sync's image updates; nil when images are not
	// automated.
	Images []ImageUpdate
}

// Drift is one field of an object that changed in the cluster.
type Drift struct {
	Object object.ObjMetadata
	// Field is the field path, e.g. spec.replicas.
	Field string
	// Manager is the field manager that changed it, when known.
	Manager string
	// Since is when the change was seen.
	Since time.Time
}

// ImageUpdate is an image tag that image automation moved or would move.
type ImageUpdate struct {
	// Image is the repository, e.g. registry.example.com/web.
	Image string
	// From and To are the tags.
	From, To string
	// Policy is the tag policy that chose To.
	Policy string
	// State says where the update is: pending, committed, applied, held.
	State string
	// At is when it reached State.
	At time.Time
}

// SyncDetail is what a sync owns.
type SyncDetail struct {
	// Exists is false when the sync has no inventory yet.
	Exists bool
	// Revision and AppliedAt are the inventory's last revision applied in
	// full.
	Revision  string
	AppliedAt time.Time
	// Roots is the tree: Namespaces with their objects, then cluster-scoped
	// objects.
	Roots []Node
	// Notes are things the page could not read (a kind the API server no
	// longer serves, a list it was refused).
	Notes []string
}

// Node is one object in a sync's tree.
type Node struct {
	ID object.ObjMetadata
	// Entry is the object's inventory entry; nil for objects found through
	// ownerReferences (ReplicaSets, Pods) and for Namespaces that only
	// group objects.
	Entry *inventory.Entry
	// Found is false when the object is not in the cluster.
	Found bool
	// Health is the object's health (empty for grouping Namespaces).
	Health health.Result
	// ChangedIn is the revision that last changed the object (its
	// tether.dev/revision annotation).
	ChangedIn string
	// Managers are the field managers of the object, tether's first.
	Managers []string
	// Children are the objects it owns, or for a Namespace the sync's
	// objects in it.
	Children []Node
}

// ObjectDetail is one object for its page.
type ObjectDetail struct {
	ID object.ObjMetadata
	// Owners are the inventories that list the object.
	Owners []inventory.Owner
	// Live is the object in the cluster, Secret values masked; nil when
	// not found.
	Live *unstructured.Unstructured
	// Applied is what tether applied (see appliedView), Secret values
	// masked; nil when tether owns no field of it.
	Applied map[string]any
	// Health is the live object's health.
	Health health.Result
	// Managers are the object's managedFields entries.
	Managers []metav1.ManagedFieldsEntry
	// Notes are things the page could not read.
	Notes []string
}
