package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/health"
)

// healthPollInterval is how often --wait reads the objects.
const healthPollInterval = time.Second

// health computes the health of every rendered object from the live state,
// once, or with Wait until all are Healthy or the timeout passes.
//
// Guarantees: every rendered object gets a verdict (missing after apply is
// Failed); the sync's status is the worst of them; a timeout names each
// object that is not Healthy with its message.
func (r *run) health(ctx context.Context) error {
	ids := make([]object.ObjMetadata, 0, len(r.res.Changes))
	applied := map[object.ObjMetadata]time.Time{}
	for _, c := range r.res.Changes {
		ids = append(ids, c.ID)
		if c.Written {
			applied[c.ID] = r.appliedAt
		}
	}
	var res map[object.ObjMetadata]health.Result
	var err error
	// Objects the plan read and this reconcile did not write are as the
	// plan saw them a moment ago: the first check uses those, so an
	// unchanged revision reads nothing twice.
	reader := &healthReader{r: r, seed: map[object.ObjMetadata]*unstructured.Unstructured{}}
	for _, c := range r.res.Changes {
		if !c.Written && c.Live != nil && c.Action == ActionUnchanged {
			reader.seed[c.ID] = c.Live
		}
	}
	if r.opts.Wait {
		res, err = health.Wait(ctx, reader, ids, applied, healthPollInterval, r.opts.Timeout, r.s.now)
	} else {
		res, err = health.Check(ctx, reader, ids, applied, r.s.now())
	}
	r.res.Observed = observe(reader.last)
	if res != nil {
		r.res.Health = res
		r.res.Status = health.Summarize(res).Status
	}
	return err
}

// observe records a fingerprint of every live object read, so that a later
// reconcile of the same revision can tell whether anything changed.
func observe(live map[object.ObjMetadata]*unstructured.Unstructured) map[object.ObjMetadata]string {
	if live == nil {
		return nil
	}
	out := make(map[object.ObjMetadata]string, len(live))
	for id, obj := range live {
		out[id] = fingerprint(obj)
	}
	return out
}

// fingerprint hashes an object without its status and the bookkeeping the
// server changes on every write (serverFields): controllers update status
// all the time, and that is not drift from git. An object being deleted
// has another fingerprint than the same object alive.
func fingerprint(obj *unstructured.Unstructured) string {
	c := withoutServerFields(obj)
	if obj.GetDeletionTimestamp() != nil {
		c.Object["deleting"] = true
	}
	data, err := json.Marshal(c.Object) // map keys are sorted: stable
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Drifted reports whether any object a previous reconcile observed has
// changed or gone since (everything but its status compared). It reads
// with one LIST per resource and namespace where it can, and writes
// nothing: when the revision is the same and nothing drifted, the agent
// skips the reconcile altogether. When nothing drifted, live holds every
// observed object as just read, status included, so the caller can
// recompute health without reading again; otherwise it may be partial.
func (s *Syncer) Drifted(ctx context.Context, opts Options, observed map[object.ObjMetadata]string) (drifted bool, live map[object.ObjMetadata]*unstructured.Unstructured, err error) {
	if len(observed) == 0 {
		return true, nil, nil
	}
	r := &run{s: s, opts: opts.withDefaults(), res: &Result{}}
	ids := make([]object.ObjMetadata, 0, len(observed))
	for id := range observed {
		ids = append(ids, id)
	}
	reader := &healthReader{r: r}
	live, err = reader.Read(ctx, ids)
	if err != nil {
		return true, nil, err
	}
	for id, fp := range observed {
		obj, ok := live[id]
		if !ok || fingerprint(obj) != fp {
			return true, live, nil
		}
	}
	return false, live, nil
}
