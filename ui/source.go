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
	// Owners returns the inventories in invNamespace that list the object.
	// The object page asks it first and reads nothing else unless a sync
	// the user may read is among them. An error with owners says that
	// some inventories could not be read.
	Owners(ctx context.Context, invNamespace string, id object.ObjMetadata) ([]inventory.Owner, error)
	// Object returns the object's live state and what tether applied to
	// it (ObjectDetail without Owners). Secret values must already be
	// masked.
	Object(ctx context.Context, id object.ObjMetadata) (*ObjectDetail, error)
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
	// from what git holds. nil means unknown (drift is not tracked, or not
	// yet: nothing applied); empty means checked and none.
	Drift []Drift
	// Images lists the sync's image updates; nil when images are not
	// automated.
	Images []ImageUpdate
}

// Drift is one field of an object that differs in the cluster from what
// git holds, or an object deleted from the cluster.
type Drift struct {
	Object object.ObjMetadata
	// Deleted is set when the object was deleted; the other fields are
	// then empty.
	Deleted bool
	// Path is the field, e.g. spec.template.spec.containers[name=app].image.
	Path string
	// Git is the value tether applied from git, Live the value in the
	// cluster now (both shortened, as the agent reports them); Removed is
	// set when the field is gone from the cluster.
	Git, Live string
	Removed   bool
	// Manager is the field manager that changed it, when known.
	Manager string
	// Since is when the change was seen.
	Since time.Time
}

// ImageState says where an image update stands; producers use these
// values and the page counts and colours by them.
type ImageState string

// The states of an image update.
const (
	// ImageUpToDate: git and the workloads hold the tag the policy picks.
	ImageUpToDate ImageState = "up to date"
	// ImagePending: the policy picks a newer tag that git does not hold
	// yet.
	ImagePending ImageState = "pending"
	// ImageCommitted: git holds the new tag (tether's commit or anyone's);
	// the workloads do not run it yet.
	ImageCommitted ImageState = "committed"
	// ImageRollingOut: the workloads are rolling out to the new tag.
	ImageRollingOut ImageState = "rolling out"
	// ImageRolledOut: the newest rollout completed.
	ImageRolledOut ImageState = "rolled out"
	// ImageRolloutFailed: the newest rollout failed; the tag is not
	// proposed again.
	ImageRolloutFailed ImageState = "rollout failed"
	// ImageHeld: a manual rollback holds the policy.
	ImageHeld ImageState = "held"
	// ImageStuck: the policy cannot move (no scan yet, no matching tag);
	// Detail says why.
	ImageStuck ImageState = "not moving"
)

// imageStates lists the states, most urgent first.
func imageStates() []ImageState {
	return []ImageState{ImageRolloutFailed, ImageHeld, ImageStuck, ImageRollingOut, ImageCommitted, ImagePending, ImageRolledOut, ImageUpToDate}
}

// Pending reports whether the update has not reached the workloads yet
// (pending, committed, rolling out).
func (s ImageState) Pending() bool {
	return s == ImagePending || s == ImageCommitted || s == ImageRollingOut
}

// Done reports whether git and the workloads hold the policy's tag.
func (s ImageState) Done() bool { return s == ImageUpToDate || s == ImageRolledOut }

// ImageUpdate is an image tag that image automation moved or would move.
type ImageUpdate struct {
	// Image is the repository, e.g. registry.example.com/web.
	Image string
	// From is the tag the workloads run, To the tag the policy picks.
	From, To string
	// Policy is the tag policy that chose To.
	Policy string
	// State says where the update is.
	State ImageState
	// Detail says more about State (the reason a policy does not move,
	// the rollback that holds it).
	Detail string
	// At is when it reached State (zero when unknown).
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
	// Owners are the inventories that list the object (filled by the page
	// from Source.Owners).
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
