// Package sync makes a cluster match a rendered revision: it builds the
// objects, plans each change with a server-side dry run, applies what
// differs with server-side apply, records what it owns in the inventory,
// prunes what it applied before and is gone now, and reports health.
//
// Reconcile (reconcile.go) lists the phases in order; each phase is a file of
// its own with a doc comment saying what it guarantees. A phase that fails
// returns a *PhaseError naming the phase, the revision and the objects, and
// nothing after it runs, except that health (which only reads) still
// reports after a refused or failed prune.
package sync

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/kube"
	"github.com/tether-gitops/tether/render"
)

// Options configure one sync.
type Options struct {
	// Name names the sync: its inventory, the tether.dev/sync label on its
	// objects. A DNS label.
	Name string
	// Namespace is given to namespaced objects that have none.
	Namespace string
	// InventoryNamespace holds the sync's inventory ConfigMap.
	InventoryNamespace string

	// Prune deletes objects the previous inventory has and the new set
	// lacks. Off, such objects are left in place and forgotten.
	Prune bool
	// AllowEmpty lets an empty rendered set prune everything the sync owns.
	AllowEmpty bool
	// DeleteBudget bounds deletes per reconcile; more candidates than the
	// budget refuses the whole prune.
	DeleteBudget Budget
	// PruneProtected allows pruning of the kinds that are protected by
	// default (Namespace, CustomResourceDefinition, PersistentVolumeClaim),
	// by GroupKind string such as "Namespace" or
	// "CustomResourceDefinition.apiextensions.k8s.io".
	PruneProtected []string

	// Wait polls health after applying until every object is Healthy or
	// Timeout passes.
	Wait bool
	// Timeout bounds Wait and the wait for CRDs to be established.
	Timeout time.Duration
	// Concurrency bounds parallel requests per phase.
	Concurrency int
	// DryRun stops after planning (and prune planning): nothing is written.
	DryRun bool
	// DriftPolicy is the sync's drift policy (DriftCorrect, DriftWarn,
	// DriftIgnore; an object's tether.dev/drift annotation overrides it),
	// or "" outside the agent. It decides what the plan does with fields
	// other managers changed with plain updates (kubectl edit, set, scale,
	// patch): under correct it takes them back; under warn and ignore it
	// keeps them (the object is left as it is, and the kept fields are
	// described in Change.KeptDrift) unless git changed the object since
	// (KeepDrifted), and then git wins. With "" they are conflicts. Fields
	// owned by another manager through server-side apply stay conflicts.
	DriftPolicy string
	// KeepDrifted holds, for objects whose drift the sync keeps (drift
	// policy warn or ignore), the Change of the reconcile that last applied them: an
	// object whose rendering has not changed since is left as it is in the
	// cluster (unchanged, nothing sent); one that git changed is applied.
	KeepDrifted map[object.ObjMetadata]*Change
	// IgnoreDifferences are the sync's ignore rules. Besides leaving their
	// fields out of drift, a plan gives such a field up when another
	// manager changed it (the object is applied without it) rather than
	// taking it back or refusing the object (Change.Ceded).
	IgnoreDifferences []IgnoreRule
}

// Input is the revision to sync: a checkout on disk and the folder in it.
type Input struct {
	// Root is the checkout; the build reads nothing outside it.
	Root string
	// Path is the folder to render, relative to Root.
	Path string
	// Revision identifies the checkout (e.g. main@sha1:...).
	Revision string
}

// Syncer runs reconciles against one cluster.
type Syncer struct {
	clients *kube.Clients
	log     *slog.Logger
	now     func() time.Time
	render  Renderer
}

// Renderer renders a revision of a sync: render.Build in this process, or
// a render.Scheduler's Build, which renders in confined child processes,
// fairly between syncs, and remembers revisions that failed by a limit.
type Renderer func(ctx context.Context, req render.Request) ([]render.Resource, error)

// renderInProcess is the default Renderer: render.Build in this process.
func renderInProcess(ctx context.Context, req render.Request) ([]render.Resource, error) {
	return render.Build(ctx, req.Options)
}

// New returns a Syncer using clients that renders in this process; see
// WithRenderer.
func New(clients *kube.Clients, log *slog.Logger) *Syncer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Syncer{clients: clients, log: log, now: time.Now, render: renderInProcess}
}

// WithRenderer makes the Syncer render with fn (for example in a child
// process with memory and CPU limits) and returns it.
func (s *Syncer) WithRenderer(fn Renderer) *Syncer {
	s.render = fn
	return s
}

// Action is what a reconcile does (or would do) to one object.
type Action string

// The actions.
const (
	// ActionCreate: the object does not exist and is created.
	ActionCreate Action = "create"
	// ActionUpdate: the live object differs from the desired one.
	ActionUpdate Action = "update"
	// ActionUnchanged: applying would change nothing, so nothing is sent.
	ActionUnchanged Action = "unchanged"
	// ActionRecreate: an immutable field changed and the object opted in to
	// being deleted and created again.
	ActionRecreate Action = "recreate"
	// ActionConflict: another field manager or sync owns what this sync
	// would change.
	ActionConflict Action = "conflict"
	// ActionFailed: the dry run or the apply was refused.
	ActionFailed Action = "failed"
	// ActionPrune: the object is gone from the revision and deleted.
	ActionPrune Action = "prune"
	// ActionOrphan: the object is gone from the revision but left in place
	// (protected, prune disabled, or taken over by someone else) and
	// forgotten by the inventory.
	ActionOrphan Action = "orphan"
	// ActionKeep: the object is gone from the revision, should be pruned,
	// but a guard or an error kept it; it stays in the inventory.
	ActionKeep Action = "keep"
)

// writes reports whether the action writes the object.
func (a Action) writes() bool {
	return a == ActionCreate || a == ActionUpdate || a == ActionRecreate
}

// Change is the plan and outcome for one desired object.
type Change struct {
	// ID names the object.
	ID object.ObjMetadata
	// Source is the file the object came from, relative to the checkout.
	Source string
	// Action is the plan; after apply, ActionFailed if the write failed.
	Action Action
	// Desired is the object as tether applies it (labels added, default
	// namespace set).
	Desired *unstructured.Unstructured
	// Live is the object in the cluster before the sync, nil if absent.
	Live *unstructured.Unstructured
	// Predicted is the server's dry-run answer: the object as it would be
	// after applying.
	Predicted *unstructured.Unstructured
	// Conflicts lists the fields another manager owns, as "field (manager)".
	Conflicts []string
	// Force is set when the object opted in to taking the conflicting
	// fields.
	Force bool
	// Deferred is set when the object could not be planned before its
	// Namespace or CustomResourceDefinition exists; it is planned after
	// those are applied.
	Deferred bool
	// TakesBack lists the fields ("field (manager)") others changed with
	// plain updates that this apply takes back (Options.DriftPolicy).
	TakesBack []string
	// Ceded lists the fields left out of the apply because ignore rules
	// cover them and another manager changed them
	// (Options.IgnoreDifferences).
	Ceded []string
	// KeptDrift describes the fields others changed with plain updates
	// that the drift policy warn or ignore keeps, with git's values and
	// the cluster's: the object is left as it is (Options.DriftPolicy).
	KeptDrift *Drift
	// TakeOver is set when the live object was last written by
	// client-side kubectl apply: before applying, tether removes kubectl's
	// field managers (taking their fields) and its last-applied
	// annotation, so fields deleted from git are deleted in the cluster.
	TakeOver bool
	// Decision says how the plan decided the action: DecidedLocally (the
	// live object proved the apply a no-op), DecidedByDryRun or
	// DecidedKeptDrift; "" for objects not planned against a live version
	// (deferred).
	Decision string
	// DryRunReason says why the live object could not prove a no-op, when
	// a dry run decided.
	DryRunReason string
	// Err is why planning or applying failed.
	Err error
	// Written is set once the object was written successfully.
	Written bool

	// GVR is the resource the object is served as, and Namespaced whether
	// its kind is namespaced, as discovery (or a CRD in the same revision)
	// says; set by the plan.
	GVR        schema.GroupVersionResource
	Namespaced bool

	gvk schema.GroupVersionKind
	// owned is the set of fields tether's apply entry owned once the
	// reconcile was done with the object (read from the live object when
	// unchanged, from the server's answer when written): DetectDrift's
	// baseline. nil when unknown.
	owned *fieldpath.Set
	// autoscaled is set when an autoscaler in the same revision scales
	// the object: its spec.replicas is the autoscaler's, never drift.
	autoscaled bool
}

// Ref is the object as Kind/namespace/name.
func (c *Change) Ref() string { return contract.ObjectRef(c.ID) }

// PruneOutcome is what happened to one object gone from the revision.
type PruneOutcome struct {
	ID     object.ObjMetadata
	Action Action // ActionPrune, ActionOrphan or ActionKeep
	Reason string
	Err    error
}

// Result is what a reconcile did.
type Result struct {
	Sync     string
	Revision string
	Path     string
	// Changes holds one entry per rendered object, sorted by Ref.
	Changes []*Change
	// Pruned holds one entry per object the inventory had and the revision
	// lacks.
	Pruned []PruneOutcome
	// Health is the health of every rendered object after the sync (empty
	// when the sync stopped before applying).
	Health map[object.ObjMetadata]health.Result
	// Status is the worst health (Healthy for an empty set).
	Status health.Status
	// Phase names the phase that failed ("" on success).
	Phase string
	// Err is the error that stopped the reconcile, also returned.
	Err error
	// Started and Duration time the reconcile.
	Started  time.Time
	Duration time.Duration
	// Observed holds a fingerprint of every rendered object as last read
	// (everything but status and server bookkeeping), for Syncer.Drifted.
	Observed map[object.ObjMetadata]string
	// Owned is the number of objects in the sync's inventory at the end.
	Owned int
	// BuildDuration is how long rendering took.
	BuildDuration time.Duration
	// Phases holds how long each phase that ran took.
	Phases map[string]time.Duration
	// Writes counts the mutating requests sent (dry runs excluded).
	Writes int64
	// Requests counts every request sent.
	Requests int64
}

// Counts returns the number of objects per action, prune outcomes included.
func (r *Result) Counts() map[Action]int {
	out := map[Action]int{}
	for _, c := range r.Changes {
		out[c.Action]++
	}
	for _, p := range r.Pruned {
		out[p.Action]++
	}
	return out
}

// Changed reports whether the reconcile changed (or, in a dry run, would
// change) anything.
func (r *Result) Changed() bool {
	for _, c := range r.Changes {
		if c.Action != ActionUnchanged {
			return true
		}
	}
	for _, p := range r.Pruned {
		if p.Action == ActionPrune || p.Action == ActionOrphan {
			return true
		}
	}
	return false
}

// PhaseError is a reconcile that stopped in a phase.
type PhaseError struct {
	Phase    string
	Revision string
	// Objects names the objects involved, as Kind/namespace/name: reason.
	Objects []string
	Err     error
}

// Error lists the phase, the revision, the cause and the objects.
func (e *PhaseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s failed", e.Phase)
	if e.Revision != "" {
		fmt.Fprintf(&b, " at revision %s", e.Revision)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	const show = 20
	for i, o := range e.Objects {
		if i == show {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Objects)-show)
			break
		}
		fmt.Fprintf(&b, "\n  %s", o)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *PhaseError) Unwrap() error { return e.Err }

// Guard reasons, for GuardError.
const (
	// GuardEmptyRevision: the revision renders nothing and would prune
	// everything.
	GuardEmptyRevision = "empty_revision"
	// GuardDeleteBudget: more deletes than the budget allows.
	GuardDeleteBudget = "delete_budget"
)

// GuardError is a reconcile stopped by a safety guard rather than by a
// failure; Reason is one of the Guard constants.
type GuardError struct {
	Reason string
	Err    error
}

// Error is the guard's explanation.
func (e *GuardError) Error() string { return e.Err.Error() }

// Unwrap returns the explanation.
func (e *GuardError) Unwrap() error { return e.Err }

// sortChanges orders changes by Ref for stable output.
func sortChanges(cs []*Change) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Ref() < cs[j].Ref() })
}

// refString names an object as Kind/namespace/name.
func refString(id object.ObjMetadata) string { return contract.ObjectRef(id) }
