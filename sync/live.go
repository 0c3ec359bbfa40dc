package sync

import (
	"context"
	"fmt"
	gosync "sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
)

// liveRef is an object to read, at the version it is applied with.
type liveRef struct {
	id         object.ObjMetadata
	gvr        schema.GroupVersionResource
	namespaced bool
}

// Reading strategy: a group (one resource in one namespace) with at least
// listMin objects is read with one LIST by the sync label (the objects the
// sync already owns); objects not found that way are read with GETs, or with
// one unfiltered LIST when there are at least listUnfilteredMin of them
// (a first sync of many objects into one namespace).
const (
	listMin           = 4
	listUnfilteredMin = 20
	listPageSize      = 500
)

// readLive returns the live objects for refs; a missing key means the
// object does not exist. It reads in two rounds, each with at most
// Concurrency requests in flight: the LISTs of the groups big enough for
// one, then GETs for whatever those did not find.
func (r *run) readLive(ctx context.Context, refs []liveRef) (map[object.ObjMetadata]*unstructured.Unstructured, error) {
	type groupKey struct {
		gvr schema.GroupVersionResource
		ns  string
	}
	groups := map[groupKey][]liveRef{}
	var order []groupKey
	for _, ref := range refs {
		k := groupKey{ref.gvr, ref.id.Namespace}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], ref)
	}
	var mu gosync.Mutex
	out := make(map[object.ObjMetadata]*unstructured.Unstructured, len(refs))
	var missing []liveRef
	errs := parallel(ctx, r.opts.Concurrency, len(order), func(ctx context.Context, i int) error {
		k := order[i]
		members := groups[k]
		if len(members) < listMin {
			mu.Lock()
			missing = append(missing, members...)
			mu.Unlock()
			return nil
		}
		client := r.resource(k.gvr, k.ns)
		found, err := r.list(ctx, client, contract.SyncLabel+"="+r.opts.Name, members)
		if err != nil {
			return err
		}
		var notFound []liveRef
		for _, m := range members {
			if _, ok := found[m.id]; !ok {
				notFound = append(notFound, m)
			}
		}
		if len(notFound) >= listUnfilteredMin {
			more, err := r.list(ctx, client, "", notFound)
			if err != nil {
				return err
			}
			for id, obj := range more {
				found[id] = obj
			}
			notFound = nil
		}
		mu.Lock()
		defer mu.Unlock()
		for id, obj := range found {
			out[id] = obj
		}
		missing = append(missing, notFound...)
		return nil
	})
	if err := firstError(errs); err != nil {
		return nil, err
	}
	errs = parallel(ctx, r.opts.Concurrency, len(missing), func(ctx context.Context, i int) error {
		m := missing[i]
		obj, err := r.resource(m.gvr, m.id.Namespace).Get(ctx, m.id.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", refString(m.id), err)
		}
		mu.Lock()
		out[m.id] = obj
		mu.Unlock()
		return nil
	})
	if err := firstError(errs); err != nil {
		return nil, err
	}
	return out, nil
}

// list reads a group with one paginated LIST and indexes what it finds by
// id, keeping only the wanted objects.
func (r *run) list(ctx context.Context, client dynamic.ResourceInterface, selector string, wanted []liveRef) (map[object.ObjMetadata]*unstructured.Unstructured, error) {
	want := make(map[object.ObjMetadata]bool, len(wanted))
	for _, w := range wanted {
		want[w.id] = true
	}
	out := map[object.ObjMetadata]*unstructured.Unstructured{}
	opts := metav1.ListOptions{LabelSelector: selector, Limit: listPageSize}
	for {
		list, err := client.List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", wanted[0].gvr.Resource, err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			id := object.UnstructuredToObjMetadata(obj)
			if want[id] {
				r.fieldSets.Share(obj)
				out[id] = obj
			}
		}
		if list.GetContinue() == "" {
			return out, nil
		}
		opts.Continue = list.GetContinue()
	}
}

// resource is the dynamic client for a resource in a namespace ("" for
// cluster-scoped resources).
func (r *run) resource(gvr schema.GroupVersionResource, namespace string) dynamic.ResourceInterface {
	res := r.s.clients.Dynamic.Resource(gvr)
	if namespace == "" {
		return res
	}
	return res.Namespace(namespace)
}

// refFor resolves an object id to a liveRef at the resource's preferred
// version. ok is false when the kind is no longer served (its CRD is gone),
// which means the object cannot exist.
func (r *run) refFor(id object.ObjMetadata) (liveRef, bool, error) {
	if c, ok := r.byID[id]; ok && !c.GVR.Empty() {
		return liveRef{id: id, gvr: c.GVR, namespaced: c.Namespaced}, true, nil
	}
	mapping, err := r.s.clients.Mapper.RESTMapping(id.GroupKind)
	if meta.IsNoMatchError(err) {
		return liveRef{}, false, nil
	}
	if err != nil {
		return liveRef{}, false, fmt.Errorf("discovering %s: %w", id.GroupKind, err)
	}
	return liveRef{id: id, gvr: mapping.Resource, namespaced: mapping.Scope.Name() == meta.RESTScopeNameNamespace}, true, nil
}

// healthReader reads objects for the health package and keeps the last
// read.
type healthReader struct {
	r    *run
	last map[object.ObjMetadata]*unstructured.Unstructured
	// seed holds objects read moments ago by the plan and not written
	// since; the first Read answers from it instead of reading them again.
	seed map[object.ObjMetadata]*unstructured.Unstructured
}

// Read implements health.Reader.
func (h *healthReader) Read(ctx context.Context, ids []object.ObjMetadata) (map[object.ObjMetadata]*unstructured.Unstructured, error) {
	seed := h.seed
	h.seed = nil
	refs := make([]liveRef, 0, len(ids))
	var seeded []object.ObjMetadata
	for _, id := range ids {
		if _, ok := seed[id]; ok {
			seeded = append(seeded, id)
			continue
		}
		ref, ok, err := h.r.refFor(id)
		if err != nil {
			return nil, err
		}
		if ok {
			refs = append(refs, ref)
		}
	}
	live, err := h.r.readLive(ctx, refs)
	if err != nil {
		return nil, err
	}
	for _, id := range seeded {
		live[id] = seed[id]
	}
	h.last = live
	return live, nil
}

// parallel runs fn for i in [0, n) with at most limit at a time and returns
// the errors by index (nil where fn succeeded). It does not stop at the
// first error: every object gets its answer.
func parallel(ctx context.Context, limit, n int, fn func(ctx context.Context, i int) error) []error {
	errs := make([]error, n)
	if n == 0 {
		return errs
	}
	if limit <= 0 || limit > n {
		limit = n
	}
	sem := make(chan struct{}, limit)
	var wg gosync.WaitGroup
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(ctx, i)
		}(i)
	}
	wg.Wait()
	return errs
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
