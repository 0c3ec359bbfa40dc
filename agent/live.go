package agent

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	gosync "sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/live"
	"github.com/tether-gitops/tether/metrics"
	tsync "github.com/tether-gitops/tether/sync"
)

// liveState is what the agent needs from the live-state cache
// (*live.Cache): follow a sync's objects, read them, and tell whether
// (and which of) its watches the API server refuses.
type liveState interface {
	Follow(sync string, owner any, refs []live.Ref, notify func(live.Event))
	Forget(sync string, owner any)
	Ready(sync string) (bool, string)
	Watches(sync string) []live.WatchState
	Get(sync string, ref live.Ref, name string) (*unstructured.Unstructured, bool)
}

// How a drift was found, for its report: by the watch as it happened, by
// the first plan of an agent that did not watch then (a restart), by the
// poll of an interval when the watches cannot tell, or by a reconcile run
// after a correction failed.
const (
	foundByWatch     = "the watch"
	foundByPlan      = "the plan"
	foundByPolling   = "polling"
	foundByReconcile = "a reconcile"
)

// openDrift is the drift of one object the sync owns, from when it was
// seen until it is corrected or resolved.
type openDrift struct {
	drift  *tsync.Drift
	policy string
	since  time.Time
	// summary is what was last reported, so a repeat is not reported
	// again.
	summary string
	// corrected is when tether last put the object back, and correctErr
	// why it could not.
	corrected  time.Time
	correctErr string
	// fromPlan is set for drift a plan found and kept (warn, ignore)
	// rather than the cache (tsync.Change.KeptDrift).
	fromPlan bool
}

// reportDrift logs, records as an Event and counts an object's drift,
// unless it was reported as it is already; foundBy says how it was found
// (foundByWatch, ...).
func (r *runner) reportDrift(c *tsync.Change, open *openDrift, foundBy string) {
	summary := open.drift.Summary()
	if summary == open.summary {
		return
	}
	open.summary = summary
	r.a.log.Warn("drift", "sync", r.cfg.Name, "object", c.Ref(), "policy", open.policy, "foundBy", foundBy, "drift", summary)
	r.a.event(r.cfg, eventWarning, contract.EventDriftDetected, "%s %s: %s (policy %s, found by %s)", c.ID.GroupKind.Kind, refName(c.ID), summary, open.policy, foundBy)
	r.a.metrics.DriftEvent(r.cfg.Name, metrics.DriftDetected)
	if open.policy == tsync.DriftWarn {
		r.a.metrics.DriftEvent(r.cfg.Name, metrics.DriftKept)
	}
}

// mergeDrift adds to a the fields of b it does not list.
func mergeDrift(a, b *tsync.Drift) *tsync.Drift {
	out := &tsync.Drift{Deleted: a.Deleted || b.Deleted, Fields: slices.Clone(a.Fields)}
	for _, f := range b.Fields {
		if !slices.ContainsFunc(out.Fields, func(g tsync.FieldChange) bool { return g.Path == f.Path }) {
			out.Fields = append(out.Fields, f)
		}
	}
	return out
}

// liveRunner is the part of a runner that follows its objects through the
// cache. Its maps are touched only by the runner's loop goroutine; dirty is
// filled by the cache's goroutines.
type liveRunner struct {
	// ch is poked (slot of one) when objects changed.
	ch      chan struct{}
	dirtyMu gosync.Mutex
	dirty   map[object.ObjMetadata]bool

	// applied holds the changes of the last successful reconcile, by
	// object: what tether applied and the fields it owned afterwards.
	applied map[object.ObjMetadata]*tsync.Change
	refs    map[object.ObjMetadata]live.Ref
	// health is the newest health of every applied object.
	health map[object.ObjMetadata]health.Result
	// drift holds the open drift, by object.
	drift map[object.ObjMetadata]*openDrift
	// needsReconcile is set when a correction failed: the next poll runs
	// a full reconcile instead of trusting the cache.
	needsReconcile bool
	// fights holds each object's correction history, for the backoff.
	fights map[object.ObjMetadata]*fight
	// wake is the timer that pokes ch for objects to look at again.
	wake     *time.Timer
	wakeTime time.Time
	// unlisted is how long to wait before looking again at objects the
	// cache cannot answer for: a second at first, doubling to
	// maxUnlistedWait while it still cannot (a watch the API server
	// refuses: the agent polls instead), back to a second once it can.
	unlisted time.Duration
	// refusedWarned is set once the fallback to polling for a refused
	// watch was logged, until the sync watches again.
	refusedWarned bool
}

// maxUnlistedWait bounds the wait before looking again at objects the
// cache cannot answer for.
const maxUnlistedWait = 30 * time.Second

func newLiveRunner() liveRunner {
	return liveRunner{ch: make(chan struct{}, 1), dirty: map[object.ObjMetadata]bool{},
		drift: map[object.ObjMetadata]*openDrift{}, fights: map[object.ObjMetadata]*fight{}}
}

// follow starts (or moves) the cache's watches on the objects res applied.
func (r *runner) follow(res *tsync.Result) {
	l := &r.live
	l.applied = map[object.ObjMetadata]*tsync.Change{}
	l.refs = map[object.ObjMetadata]live.Ref{}
	l.health = map[object.ObjMetadata]health.Result{}
	seen := map[live.Ref]bool{}
	var refs []live.Ref
	for _, c := range res.Changes {
		if c.GVR.Empty() {
			continue
		}
		ref := live.Ref{GVR: c.GVR}
		if c.Namespaced {
			ref.Namespace = c.ID.Namespace
		}
		// The live versions the plan read are stale from now on (the
		// cache has the current ones) and would double the memory a
		// sync holds: only what was applied, and its owned fields, stay.
		c.Live, c.Predicted = nil, nil
		l.applied[c.ID] = c
		l.refs[c.ID] = ref
		if h, ok := res.Health[c.ID]; ok {
			l.health[c.ID] = h
		}
		if !seen[ref] {
			seen[ref] = true
			refs = append(refs, ref)
		}
	}
	for id, f := range l.fights {
		if _, ok := l.applied[id]; !ok || time.Since(f.last) > fightWindow {
			delete(l.fights, id) // forgotten like the fight itself
		}
	}
	for id, d := range l.drift {
		c, ok := l.applied[id]
		// Gone from git, or applied again: the drift is over. Drift the
		// plan found and kept is over when a plan no longer keeps it.
		if !ok || c.Written || d.fromPlan && c.Decision != tsync.DecidedKeptDrift {
			delete(l.drift, id)
		}
	}
	now := time.Now()
	for _, c := range res.Changes {
		if c.KeptDrift == nil || l.drift[c.ID] != nil {
			continue
		}
		// Changed by hand before this agent knew the object (a restart):
		// the policy keeps the change; what the plan saw is the record.
		// The cache cannot see it (tether's fields at the plan no longer
		// hold the changed ones), so it stays until a plan says otherwise.
		open := &openDrift{drift: c.KeptDrift, policy: tsync.DriftPolicyOf(c.Desired, r.cfg.Drift), since: now, fromPlan: true}
		l.drift[c.ID] = open
		if open.policy != tsync.DriftIgnore {
			r.reportDrift(c, open, foundByPlan)
		} else {
			open.summary = open.drift.Summary()
			r.a.metrics.DriftEvent(r.cfg.Name, metrics.DriftIgnored)
		}
	}
	l.needsReconcile = false
	r.a.live.Follow(r.cfg.Name, r, refs, r.onLive)
	// Look at every object once the watches have listed: a change made
	// between the apply and the first list raises no event.
	for id := range l.applied {
		r.markDirty(id)
	}
	r.wakeAt(now)
	r.publishDrift()
}

// rebaseFailed brings the drift baseline up to date after a reconcile that
// failed (it does not follow): an object it wrote is compared from now on
// with what it wrote, and one gone from its revision (pruned, orphaned or
// kept) is no longer compared. Compared with the last successful reconcile
// instead, a field the new revision removed, or a prune, would look like
// drift, and its correction would put the old revision back (and bring a
// pruned object back, one the saved inventory no longer lists). A new
// object it wrote is followed after the next successful reconcile.
func (r *runner) rebaseFailed(res *tsync.Result) {
	l := &r.live
	if l.applied == nil || res == nil {
		return
	}
	changed := false
	for _, c := range res.Changes {
		if _, ok := l.applied[c.ID]; ok && c.Written {
			c.Live, c.Predicted = nil, nil // as in follow
			l.applied[c.ID] = c
			delete(l.drift, c.ID) // applied again: the drift is over
			changed = true
		}
	}
	for _, p := range res.Pruned {
		if _, ok := l.applied[p.ID]; ok {
			delete(l.applied, p.ID)
			delete(l.drift, p.ID)
			changed = true
		}
	}
	if changed {
		r.publishDrift()
	}
}

// onLive is called by the cache for every change of a followed object.
func (r *runner) onLive(e live.Event) {
	r.markDirty(object.UnstructuredToObjMetadata(e.Object))
	select {
	case r.live.ch <- struct{}{}:
	default:
	}
}

// takeDirty returns and clears the objects that changed.
func (r *runner) takeDirty() []object.ObjMetadata {
	r.live.dirtyMu.Lock()
	defer r.live.dirtyMu.Unlock()
	out := make([]object.ObjMetadata, 0, len(r.live.dirty))
	for id := range r.live.dirty {
		out = append(out, id)
	}
	clear(r.live.dirty)
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Correction backoff: an object put back and changed again within
// fightWindow is put back after fightBase, doubling up to fightMax, so
// that tether never fights another writer at API-server speed.
const (
	fightBase   = 5 * time.Second
	fightMax    = 5 * time.Minute
	fightWindow = 10 * time.Minute
)

// fight is the correction history of one object.
type fight struct {
	n    int       // corrections in a row (each within fightWindow of the last)
	last time.Time // when the last one was sent
}

// next is when the object may be put back again.
func (f *fight) next() time.Time {
	if f == nil || f.n == 0 {
		return time.Time{}
	}
	return f.last.Add(min(Backoff(f.n, fightBase, fightMax), fightMax))
}

// checkLive handles objects that changed in the cluster: their health is
// recomputed from the cache, and their drift found and, by policy,
// corrected (at once, one write each, with a backoff for an object that
// keeps changing), kept and reported (warn), or kept silently (ignore).
// Objects the cache cannot answer for yet stay queued.
func (r *runner) checkLive(ctx context.Context) {
	l := &r.live
	if l.applied == nil {
		r.takeDirty()
		return
	}
	now := time.Now()
	var correct []*tsync.Change
	var later time.Time
	unlisted := false
	for _, id := range r.takeDirty() {
		c, ok := l.applied[id]
		if !ok {
			continue
		}
		obj, ok := r.a.live.Get(r.cfg.Name, l.refs[id], id.Name)
		if !ok {
			// The cache has not listed yet (or is refused): look again
			// in a moment, so a change made before the first list is not
			// lost.
			r.markDirty(id)
			unlisted = true
			continue
		}
		if obj == nil {
			l.health[id] = health.Result{Status: health.Failed, Message: "deleted from the cluster"}
		} else {
			l.health[id] = health.Object(obj, time.Time{}, now)
		}
		// Git's annotation, never the live object's (see DriftPolicyOf).
		policy := tsync.DriftPolicyOf(c.Desired, r.cfg.Drift)
		d, err := tsync.DetectDrift(c, obj, r.cfg.IgnoreDifferences)
		if err != nil {
			r.a.log.Warn("cannot tell drift", "sync", r.cfg.Name, "object", c.Ref(), "error", err)
			continue
		}
		if open := l.drift[id]; open != nil && open.fromPlan {
			// Found and kept by the plan: the plan says when it is over.
			if d != nil {
				open.drift = mergeDrift(open.drift, d)
			}
			continue
		}
		if d == nil {
			if open := l.drift[id]; open != nil {
				r.a.log.Info("drift resolved", "sync", r.cfg.Name, "object", c.Ref())
				delete(l.drift, id)
			}
			continue
		}
		open := l.drift[id]
		if open == nil {
			open = &openDrift{since: now}
			l.drift[id] = open
		}
		open.drift, open.policy = d, policy
		if policy == tsync.DriftIgnore {
			// Kept, unreported, until git changes the object; counted.
			if summary := d.Summary(); summary != open.summary {
				open.summary = summary
				r.a.metrics.DriftEvent(r.cfg.Name, metrics.DriftIgnored)
			}
			continue
		}
		r.reportDrift(c, open, foundByWatch)
		if policy != tsync.DriftCorrect {
			continue
		}
		if appliers := d.Appliers(); len(appliers) > 0 {
			// Another tool owns these fields through server-side apply:
			// it means to. Reported, not fought over.
			open.correctErr = fmt.Sprintf("not put back: %s own the fields through server-side apply; to take them, set the annotation %s on the object in git (the fields, or \"true\")", strings.Join(appliers, ", "), contract.ForceConflictsAnnotation)
			continue
		}
		if next := l.fights[id].next(); now.Before(next) {
			later = earliest(later, next)
			r.markDirty(id)
			continue
		}
		if obj == nil {
			// The watch follows the sync's label: an object whose label
			// was removed or changed (moved to another sync) looks
			// deleted. Recreating it would take it back from its new
			// owner, so a deleted object is read once before.
			if label, moved := r.relabelled(ctx, id); moved {
				open.correctErr = fmt.Sprintf("not put back: the object exists, but %s is %q now (another sync or a person took it)", contract.SyncLabel, label)
				continue
			}
		}
		c.Live = obj
		correct = append(correct, c)
	}
	if unlisted {
		l.unlisted = min(max(2*l.unlisted, time.Second), maxUnlistedWait)
		later = earliest(later, now.Add(l.unlisted))
	} else {
		l.unlisted = 0
	}
	if len(correct) > 0 {
		r.correct(ctx, correct, now)
	}
	if !later.IsZero() {
		r.wakeAt(later)
	}
	r.publishHealth()
	r.publishDrift()
	r.noteLive()
}

// pollHealth recomputes the health of every applied object from what the
// poll of an unchanged revision read (Syncer.Drifted), as checkLive does
// from the cache: with wait false a sync would otherwise stay Progressing,
// and a Deployment that degrades would not show, until the next commit.
func (r *runner) pollHealth(read map[object.ObjMetadata]*unstructured.Unstructured) {
	l := &r.live
	if l.applied == nil {
		return
	}
	now := time.Now()
	for id := range l.applied {
		if obj := read[id]; obj != nil {
			l.health[id] = health.Object(obj, time.Time{}, now)
		} else {
			l.health[id] = health.Result{Status: health.Failed, Message: "deleted from the cluster"}
		}
	}
	r.publishHealth()
}

// reconciledDrift reports the drift a reconcile of the applied revision
// put back (found by polling when the watches cannot tell, or left to a
// reconcile after a correction failed) as checkLive reports what the
// watch finds: a DriftDetected Event naming fields and managers unless it
// was reported as it is already, one count detected and one corrected per
// object, and a DriftCorrected Event. An object written for no drift its
// baseline shows is not drift. It returns the objects put back; call it
// before follow or rebaseFailed, which drop what the plan read.
func (r *runner) reconciledDrift(res *tsync.Result, foundBy string) int {
	l := &r.live
	if l.applied == nil || res == nil {
		return 0
	}
	now := time.Now()
	var names []string
	for _, c := range res.Changes {
		if !c.Written {
			continue
		}
		d := r.putBack(c)
		if d == nil || tsync.DriftPolicyOf(c.Desired, r.cfg.Drift) == tsync.DriftIgnore {
			// ignore: neither reported nor counted, as on the watch path.
			continue
		}
		open := l.drift[c.ID]
		if open == nil {
			open = &openDrift{since: now}
			l.drift[c.ID] = open
		}
		open.drift, open.policy = d, tsync.DriftPolicyOf(c.Desired, r.cfg.Drift)
		r.reportDrift(c, open, foundBy)
		r.a.metrics.DriftEvent(r.cfg.Name, metrics.DriftCorrected)
		names = append(names, c.Ref())
	}
	if len(names) > 0 {
		sort.Strings(names)
		r.a.log.Info("drift corrected by a reconcile", "sync", r.cfg.Name, "objects", names, "foundBy", foundBy)
		r.a.event(r.cfg, eventNormal, contract.EventDriftCorrected, "put back %d drifted objects in a reconcile: %s", len(names), joinShort(names))
	}
	return len(names)
}

// putBack is the drift a reconcile's write of c took back: the fields that
// left tether's ownership since the last successful reconcile (c.Live is
// the object as the plan read it, nil when deleted), else the fields the
// plan took back from plain updaters; nil when c was not applied before
// or shows no drift.
func (r *runner) putBack(c *tsync.Change) *tsync.Drift {
	prev := r.live.applied[c.ID]
	if prev == nil {
		return nil
	}
	if c.Live == nil {
		return &tsync.Drift{Deleted: true}
	}
	if d, err := tsync.DetectDrift(prev, c.Live, r.cfg.IgnoreDifferences); err == nil && d != nil {
		return d
	}
	return tsync.TakenBackDrift(c)
}

// noteLive records in the status where the sync's live state comes from
// (watches, or polling and why), and logs once that it polls because the
// API server refuses a watch, naming the verb and the resource (and, once,
// that it watches again).
func (r *runner) noteLive() {
	l := &r.live
	if l.applied == nil {
		return
	}
	ok, why := r.a.live.Ready(r.cfg.Name)
	st := &LiveStatus{Source: LiveWatch}
	for _, w := range r.a.live.Watches(r.cfg.Name) {
		ws := WatchStatus{Resource: w.Ref.String(), Listed: w.Listed, Refused: w.Refused}
		if !w.Since.IsZero() {
			since := w.Since
			ws.Since = &since
		}
		st.Watches = append(st.Watches, ws)
		if w.Refused != "" && st.Refused == nil {
			st.Refused = &Refusal{Verb: w.Refused, Resource: w.Ref.String(), Error: w.Error}
		}
	}
	if !ok {
		st.Source, st.Reason = LivePolling, why
	}
	switch {
	case st.Source == LivePolling && st.Refused != nil && !l.refusedWarned:
		l.refusedWarned = true
		r.a.log.Warn("the API server refuses to "+st.Refused.Verb+" "+st.Refused.Resource+"; the sync's live state comes from polling (a LIST per resource and namespace each interval) until it allows it",
			"sync", r.cfg.Name, "verb", st.Refused.Verb, "resource", st.Refused.Resource, "error", st.Refused.Error)
	case st.Source == LiveWatch && l.refusedWarned:
		l.refusedWarned = false
		r.a.log.Info("the sync's live state comes from watches again", "sync", r.cfg.Name)
	}
	r.update(func(s *SyncStatus) { s.Live = st })
}

// relabelled reports whether an object the watch saw deleted exists with
// another value of the sync label (or none), and that value.
func (r *runner) relabelled(ctx context.Context, id object.ObjMetadata) (string, bool) {
	if r.a.clients == nil || r.a.clients.Dynamic == nil {
		return "", false
	}
	ref := r.live.refs[id]
	obj, err := r.a.clients.Dynamic.Resource(ref.GVR).Namespace(ref.Namespace).Get(ctx, id.Name, metav1.GetOptions{})
	if err != nil {
		return "", false // gone (or unreadable): put back as usual
	}
	label := obj.GetLabels()[contract.SyncLabel]
	return label, label != r.cfg.Name
}

// correct puts drifted objects back, and remembers when, for the backoff.
// Each object is counted corrected once it was put back; one that could
// not be is left to the next poll's reconcile, which reports nothing new
// about it (its drift was reported) and counts it corrected if it puts it
// back.
func (r *runner) correct(ctx context.Context, changes []*tsync.Change, now time.Time) {
	for _, c := range changes {
		f := r.live.fights[c.ID]
		if f == nil || now.Sub(f.last) > fightWindow {
			f = &fight{}
			r.live.fights[c.ID] = f
		}
		f.n++
		f.last = now
		c.Err = nil
	}
	opts := r.syncOptions()
	writes, err := r.a.syncer.Correct(ctx, opts, changes)
	// An error that names no object (a cancelled context) leaves every
	// object in doubt.
	named := false
	for _, c := range changes {
		named = named || c.Err != nil
	}
	var names []string
	for _, c := range changes {
		c.Live = nil // the cache's copy: not kept past the correction
		failed := c.Err
		if failed == nil && err != nil && !named {
			failed = err
		}
		c.Err = nil
		if open := r.live.drift[c.ID]; open != nil {
			open.corrected, open.correctErr = now, ""
			if failed != nil {
				open.correctErr = failed.Error()
			}
		}
		if failed == nil {
			names = append(names, c.Ref())
			r.a.metrics.DriftEvent(r.cfg.Name, metrics.DriftCorrected)
		}
	}
	if len(names) > 0 {
		r.a.log.Info("drift corrected", "sync", r.cfg.Name, "objects", names, "writes", writes)
		r.a.event(r.cfg, eventNormal, contract.EventDriftCorrected, "put back %d drifted objects (%d writes): %s", len(names), writes, joinShort(names))
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		r.live.needsReconcile = true
		r.a.log.Error("correcting drift failed", "sync", r.cfg.Name, "error", err)
		r.a.event(r.cfg, eventWarning, reasonFailed, "correcting drift failed: %v", err)
	}
}

// markDirty queues id for the next checkLive.
func (r *runner) markDirty(id object.ObjMetadata) {
	r.live.dirtyMu.Lock()
	r.live.dirty[id] = true
	r.live.dirtyMu.Unlock()
}

// wakeAt pokes the runner's live slot at t (or earlier, when a wake-up is
// already due before).
func (r *runner) wakeAt(t time.Time) {
	l := &r.live
	if l.wake != nil && !l.wakeTime.After(t) && time.Now().Before(l.wakeTime) {
		return
	}
	if l.wake != nil {
		l.wake.Stop()
	}
	l.wakeTime = t
	l.wake = time.AfterFunc(time.Until(t), func() {
		select {
		case l.ch <- struct{}{}:
		default:
		}
	})
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// publishHealth updates status and metrics with the health from the cache.
func (r *runner) publishHealth() {
	sum := health.Summarize(r.live.health)
	r.a.metrics.SyncHealth(r.cfg.Name, sum.Status)
	var unhealthy []ObjectHealth
	for id, h := range sum.Unhealthy {
		unhealthy = append(unhealthy, ObjectHealth{Object: contract.ObjectRef(id), Status: h.Status, Message: h.Message})
	}
	sort.Slice(unhealthy, func(i, j int) bool { return unhealthy[i].Object < unhealthy[j].Object })
	r.update(func(s *SyncStatus) {
		s.Health = sum.Status
		s.Unhealthy = unhealthy
	})
}

// publishDrift updates status and metrics with the open drift.
func (r *runner) publishDrift() {
	var out []DriftStatus
	var objs []metrics.DriftObject
	for id, d := range r.live.drift {
		if d.policy == tsync.DriftIgnore {
			continue
		}
		st := DriftStatus{Object: contract.ObjectRef(id), ID: id, Policy: d.policy, Deleted: d.drift.Deleted, Managers: d.drift.ManagerNames(), Since: d.since, CorrectionError: d.correctErr}
		if !d.corrected.IsZero() {
			t := d.corrected
			st.Corrected = &t
		}
		for _, f := range d.drift.Fields {
			st.Fields = append(st.Fields, f.String())
		}
		out = append(out, st)
		objs = append(objs, metrics.DriftObject{Kind: id.GroupKind.Kind, Namespace: id.Namespace, Name: id.Name, Manager: st.Managers, Since: d.since})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Object < out[j].Object })
	r.a.metrics.SetDrift(r.cfg.Name, objs)
	r.update(func(s *SyncStatus) { s.Drift = out })
}

// keepDrifted returns the changes whose drift a reconcile must keep
// (policies warn and ignore).
func (r *runner) keepDrifted() map[object.ObjMetadata]*tsync.Change {
	var out map[object.ObjMetadata]*tsync.Change
	for id, d := range r.live.drift {
		if d.policy == tsync.DriftCorrect {
			continue
		}
		if c, ok := r.live.applied[id]; ok {
			if out == nil {
				out = map[object.ObjMetadata]*tsync.Change{}
			}
			out[id] = c
		}
	}
	return out
}

// cacheCanSkip reports whether the cache can stand in for the LIST of the
// skip path: it watches every object of the sync, and no correction
// failed. (Drift that waits for its correction backoff is handled when the
// backoff ends, not by a reconcile.) why says why not.
func (r *runner) cacheCanSkip() (bool, string) {
	if r.live.applied == nil {
		return false, "nothing applied yet"
	}
	if r.live.needsReconcile {
		return false, "a drift correction failed"
	}
	return r.a.live.Ready(r.cfg.Name)
}

func refName(id object.ObjMetadata) string {
	if id.Namespace == "" {
		return id.Name
	}
	return id.Namespace + "/" + id.Name
}

func joinShort(names []string) string {
	const show = 10
	if len(names) <= show {
		return fmt.Sprint(names)
	}
	return fmt.Sprintf("%v and %d more", names[:show], len(names)-show)
}
