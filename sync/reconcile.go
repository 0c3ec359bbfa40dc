package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/inventory"
	"github.com/tether-gitops/tether/kube"
)

// Reconcile makes the cluster match one revision. It reads as the list of
// phases; each phase lives in the file of its name. The result is returned
// also on error, filled as far as the reconcile got.
func (s *Syncer) Reconcile(ctx context.Context, opts Options, in Input) (*Result, error) {
	r := &run{s: s, opts: opts.withDefaults(), in: in}
	r.res = &Result{Sync: opts.Name, Revision: in.Revision, Path: in.Path, Started: s.now(), Status: health.Healthy}
	// Every request this reconcile sends is counted by the clients'
	// transport into its tally.
	tally := &kube.Tally{}
	ctx = kube.WithTally(ctx, tally)
	defer func() {
		if r.inv != nil {
			r.res.Owned = len(r.inv.Entries)
		}
		r.res.Duration = s.now().Sub(r.res.Started)
		r.res.Writes = tally.Writes()
		r.res.Requests = tally.Requests()
		sortChanges(r.res.Changes)
	}()
	if err := r.opts.validate(); err != nil {
		return r.fail("config", err)
	}
	// Discovery is cached between reconciles; refresh it, so kinds that
	// others installed (or removed) since are seen. With aggregated
	// discovery this costs two requests.
	s.clients.Mapper.Reset()
	if err := r.timed("build", func() error { return r.build(ctx) }); err != nil {
		return r.fail("build", err)
	}
	if err := r.loadInventory(ctx); err != nil {
		return r.fail("inventory", err)
	}
	if err := r.guardEmpty(); err != nil {
		return r.fail("prune", err)
	}
	if err := r.timed("plan", func() error { return r.plan(ctx) }); err != nil {
		return r.fail("plan", err)
	}
	if r.opts.DryRun {
		if err := r.planPrune(ctx); err != nil {
			return r.fail("prune", err)
		}
		return r.res, nil
	}
	if err := r.recordIntent(ctx); err != nil {
		return r.fail("inventory", err)
	}
	if err := r.timed("apply", func() error { return r.apply(ctx) }); err != nil {
		return r.fail("apply", err)
	}
	if err := r.saveInventory(ctx); err != nil {
		return r.fail("inventory", err)
	}
	pruneErr := r.timed("prune", func() error { return r.prune(ctx) })
	healthErr := r.timed("health", func() error { return r.health(ctx) })
	if pruneErr != nil {
		return r.fail("prune", pruneErr)
	}
	if healthErr != nil {
		return r.fail("health", healthErr)
	}
	return r.res, nil
}

// timed runs a phase and records how long it took.
func (r *run) timed(phase string, fn func() error) error {
	start := r.s.now()
	err := fn()
	if r.res.Phases == nil {
		r.res.Phases = map[string]time.Duration{}
	}
	r.res.Phases[phase] = r.s.now().Sub(start)
	return err
}

// run is the state of one reconcile, shared by the phases.
type run struct {
	s    *Syncer
	opts Options
	in   Input
	res  *Result

	// inv is the inventory as loaded; owned is the inventory as it is being
	// rewritten by this reconcile.
	inv *inventory.Inventory
	// byID indexes the rendered objects.
	byID map[object.ObjMetadata]*Change
	// invID is the inventory id, on every object the sync owns.
	invID string
	// appliedAt is when the apply phase finished.
	appliedAt time.Time
	// fieldSets shares the equal field sets of the live objects read.
	fieldSets fieldSets
}

// fail records the failed phase and returns the error as a *PhaseError.
func (r *run) fail(phase string, err error) (*Result, error) {
	var pe *PhaseError
	if !errors.As(err, &pe) {
		pe = &PhaseError{Phase: phase, Revision: r.in.Revision, Err: err}
	}
	if pe.Phase == "" {
		pe.Phase = phase
	}
	if pe.Revision == "" {
		pe.Revision = r.in.Revision
	}
	r.res.Phase = pe.Phase
	r.res.Err = pe
	r.s.log.Debug("sync failed", "sync", r.opts.Name, "phase", pe.Phase, "revision", r.in.Revision, "error", pe.Err, "objects", len(pe.Objects))
	return r.res, pe
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.InventoryNamespace == "" {
		o.InventoryNamespace = "tether-system"
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	return o
}

func (o Options) validate() error {
	if o.Name == "" {
		return fmt.Errorf("the sync needs a name")
	}
	if len(validation.IsDNS1123Label(o.Name)) > 0 {
		return fmt.Errorf("sync name %q: must be a DNS label (lower case letters, digits and '-', at most 63)", o.Name)
	}
	return nil
}
