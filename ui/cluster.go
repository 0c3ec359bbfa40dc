package ui

import (
	"context"
	"fmt"
	"slices"
	gosync "sync"
	"time"

	"golang.org/x/sync/singleflight"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/inventory"
)

// ClusterSource reads the sync and object pages from the API server with
// the agent's own credentials (the page decides who may see what), and
// keeps each answer for a few seconds, so a page that refreshes itself, or
// many people looking at once, cost one read.
type ClusterSource struct {
	typed   kubernetes.Interface
	dynamic dynamic.Interface
	mapper  meta.RESTMapper
	ttl     time.Duration
	now     func() time.Time

	cache   *cache.LRUExpireCache
	flights singleflight.Group
}

// Bounds of what one page reads.
const (
	// sourceCacheSize bounds the cached answers (syncs, objects, inventory
	// lists).
	sourceCacheSize = 256
	// maxGets bounds the single GETs for inventory objects a labelled LIST
	// did not find.
	maxGets = 100
	// childListLimit bounds each list of ReplicaSets, Pods or Jobs in a
	// namespace.
	childListLimit = 500
	// loadTimeout bounds one shared read.
	loadTimeout = 30 * time.Second
)

// NewClusterSource returns a Source over the cluster that keeps answers for
// ttl.
func NewClusterSource(typed kubernetes.Interface, dyn dynamic.Interface, mapper meta.RESTMapper, ttl time.Duration) *ClusterSource {
	return &ClusterSource{typed: typed, dynamic: dyn, mapper: mapper, ttl: ttl, now: time.Now, cache: cache.NewLRUExpireCache(sourceCacheSize)}
}

// cached returns the answer for key, loading it once for all callers that
// ask at the same time. The load runs with a context of its own, so one
// caller giving up does not fail the others.
func cached[T any](ctx context.Context, s *ClusterSource, key string, load func(context.Context) (T, error)) (T, error) {
	if v, ok := s.cache.Get(key); ok {
		return v.(T), nil
	}
	ch := s.flights.DoChan(key, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		v, err := load(lctx)
		if err == nil {
			s.cache.Add(key, v, s.ttl)
		}
		return v, err
	})
	select {
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			var zero T
			return zero, r.Err
		}
		return r.Val.(T), nil
	}
}

// Sync reads a sync's inventory, its objects (one LIST by the sync label
// per kind and namespace, GETs for the few it misses) and the ReplicaSets,
// Pods and Jobs in the namespaces where it has workloads.
func (s *ClusterSource) Sync(ctx context.Context, invNamespace, sync string) (*SyncDetail, error) {
	return cached(ctx, s, "sync\x00"+invNamespace+"\x00"+sync, func(ctx context.Context) (*SyncDetail, error) {
		inv, err := inventory.NewStore(s.typed.CoreV1(), invNamespace).Load(ctx, sync)
		if err != nil {
			return nil, err
		}
		d := &SyncDetail{Exists: inv.Exists(), Revision: inv.Revision, AppliedAt: inv.AppliedAt}
		entries := inv.SortedEntries()
		ids := make([]object.ObjMetadata, len(entries))
		for i, e := range entries {
			ids[i] = e.ID
		}
		live, notes := s.readLive(ctx, sync, ids)
		owned, more := s.readOwned(ctx, ids)
		d.Notes = append(notes, more...)
		d.Roots = buildTree(entries, live, owned, s.now())
		return d, nil
	})
}

// groupKey is one resource in one namespace.
type groupKey struct {
	gvr schema.GroupVersionResource
	ns  string
}

// readLive reads the live objects of ids: a LIST by the sync label per
// resource and namespace, then GETs (at most maxGets) for what that missed
// (an object whose label someone changed). What it cannot read becomes a
// note; a missing key in the map means not found.
func (s *ClusterSource) readLive(ctx context.Context, sync string, ids []object.ObjMetadata) (map[object.ObjMetadata]*unstructured.Unstructured, []string) {
	live := map[object.ObjMetadata]*unstructured.Unstructured{}
	var notes []string
	groups := map[groupKey][]object.ObjMetadata{}
	var order []groupKey
	for _, id := range ids {
		mapping, err := s.mapper.RESTMapping(id.GroupKind)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: the API server does not serve this kind: %v", contract.ObjectRef(id), err))
			continue
		}
		k := groupKey{mapping.Resource, id.Namespace}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], id)
	}
	var mu gosync.Mutex
	var missing []object.ObjMetadata
	missingGVR := map[object.ObjMetadata]schema.GroupVersionResource{}
	parallel(len(order), func(i int) {
		k := order[i]
		list, err := s.resource(k.gvr, k.ns).List(ctx, metav1.ListOptions{LabelSelector: contract.SyncLabel + "=" + sync})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			notes = append(notes, fmt.Sprintf("listing %s in %s: %v", k.gvr.Resource, nsName(k.ns), err))
		}
		found := map[string]*unstructured.Unstructured{}
		if list != nil {
			for i := range list.Items {
				found[list.Items[i].GetName()] = &list.Items[i]
			}
		}
		for _, id := range groups[k] {
			if o, ok := found[id.Name]; ok {
				live[id] = o
			} else {
				missing = append(missing, id)
				missingGVR[id] = k.gvr
			}
		}
	})
	if len(missing) > maxGets {
		notes = append(notes, fmt.Sprintf("%d objects are not labelled %s=%s; only %d of them were read one by one", len(missing), contract.SyncLabel, sync, maxGets))
		missing = missing[:maxGets]
	}
	parallel(len(missing), func(i int) {
		id := missing[i]
		o, err := s.resource(missingGVR[id], id.Namespace).Get(ctx, id.Name, metav1.GetOptions{})
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			live[id] = o
		case !apierrors.IsNotFound(err):
			notes = append(notes, fmt.Sprintf("reading %s: %v", contract.ObjectRef(id), err))
		}
	})
	slices.Sort(notes)
	return live, notes
}

// ownedKinds are the kinds whose ownerReferences the tree follows below a
// sync's workloads.
func ownedKinds() []schema.GroupVersionResource {
	return []schema.GroupVersionResource{
		{Group: "apps", Version: "v1", Resource: "replicasets"},
		{Version: "v1", Resource: "pods"},
		{Group: "batch", Version: "v1", Resource: "jobs"},
	}
}

// isWorkload reports whether objects of gk own ReplicaSets, Pods or Jobs.
func isWorkload(gk schema.GroupKind) bool {
	switch gk {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}, schema.GroupKind{Group: "apps", Kind: "ReplicaSet"},
		schema.GroupKind{Group: "apps", Kind: "StatefulSet"}, schema.GroupKind{Group: "apps", Kind: "DaemonSet"},
		schema.GroupKind{Group: "batch", Kind: "Job"}, schema.GroupKind{Group: "batch", Kind: "CronJob"}:
		return true
	}
	return false
}

// readOwned lists the ReplicaSets, Pods and Jobs of the namespaces where
// the sync has workloads (at most childListLimit of each).
func (s *ClusterSource) readOwned(ctx context.Context, ids []object.ObjMetadata) ([]*unstructured.Unstructured, []string) {
	var namespaces []string
	for _, id := range ids {
		if isWorkload(id.GroupKind) && !slices.Contains(namespaces, id.Namespace) {
			namespaces = append(namespaces, id.Namespace)
		}
	}
	var keys []groupKey
	for _, ns := range namespaces {
		for _, gvr := range ownedKinds() {
			keys = append(keys, groupKey{gvr, ns})
		}
	}
	var mu gosync.Mutex
	var out []*unstructured.Unstructured
	var notes []string
	parallel(len(keys), func(i int) {
		k := keys[i]
		list, err := s.resource(k.gvr, k.ns).List(ctx, metav1.ListOptions{Limit: childListLimit})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			notes = append(notes, fmt.Sprintf("listing %s in %s: %v", k.gvr.Resource, nsName(k.ns), err))
			return
		}
		if list.GetContinue() != "" {
			notes = append(notes, fmt.Sprintf("more than %d %s in %s: only the first are shown", childListLimit, k.gvr.Resource, nsName(k.ns)))
		}
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
	})
	slices.Sort(notes)
	return out, notes
}

// inventoryList is every inventory of a namespace, and why some could not
// be read.
type inventoryList struct {
	invs []*inventory.Inventory
	err  error
}

// inventories lists the inventories of invNamespace, kept like any other
// answer: object pages ask for any object name they are given, and each
// would otherwise read every inventory again.
func (s *ClusterSource) inventories(ctx context.Context, invNamespace string) (inventoryList, error) {
	return cached(ctx, s, "inventories\x00"+invNamespace, func(ctx context.Context) (inventoryList, error) {
		invs, err := inventory.NewStore(s.typed.CoreV1(), invNamespace).List(ctx)
		if err != nil && len(invs) == 0 {
			return inventoryList{}, err
		}
		return inventoryList{invs: invs, err: err}, nil
	})
}

// Owners returns the inventories that list the object, from the list of
// every inventory (kept for the cache period, so pages for many names cost
// one read).
func (s *ClusterSource) Owners(ctx context.Context, invNamespace string, id object.ObjMetadata) ([]inventory.Owner, error) {
	list, err := s.inventories(ctx, invNamespace)
	if err != nil {
		return nil, err
	}
	var owners []inventory.Owner
	for _, inv := range list.invs {
		if e, ok := inv.Entries[id]; ok {
			owners = append(owners, inventory.Owner{Inventory: inv, Entry: e})
		}
	}
	return owners, list.err
}

// Object reads the object itself, with Secret values masked before
// anything else sees them. The page calls it only for an object a sync
// the user may read owns.
func (s *ClusterSource) Object(ctx context.Context, id object.ObjMetadata) (*ObjectDetail, error) {
	return cached(ctx, s, "object\x00"+id.String(), func(ctx context.Context) (*ObjectDetail, error) {
		d := &ObjectDetail{ID: id}
		mapping, err := s.mapper.RESTMapping(id.GroupKind)
		if err != nil {
			d.Notes = append(d.Notes, fmt.Sprintf("the API server does not serve %s: %v", id.GroupKind, err))
			return d, nil
		}
		obj, err := s.resource(mapping.Resource, id.Namespace).Get(ctx, id.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			d.Health = health.Object(nil, time.Time{}, s.now())
			return d, nil
		case err != nil:
			return nil, fmt.Errorf("reading %s: %w", contract.ObjectRef(id), err)
		}
		d.Health = health.Object(obj, time.Time{}, s.now())
		d.Managers = obj.GetManagedFields()
		applied, err := appliedView(obj)
		if err != nil {
			d.Notes = append(d.Notes, err.Error())
		}
		d.Applied = maskSecret(id.GroupKind, applied)
		d.Live = &unstructured.Unstructured{Object: maskSecret(id.GroupKind, obj.Object)}
		return d, nil
	})
}

func (s *ClusterSource) resource(gvr schema.GroupVersionResource, ns string) dynamic.ResourceInterface {
	if ns == "" {
		return s.dynamic.Resource(gvr)
	}
	return s.dynamic.Resource(gvr).Namespace(ns)
}

// parallel runs fn for 0..n-1, at most 8 at a time (reads of one page,
// reviews of one request), and waits.
func parallel(n int, fn func(i int)) {
	sem := make(chan struct{}, 8)
	var wg gosync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(i)
		}()
	}
	wg.Wait()
}

func nsName(ns string) string {
	if ns == "" {
		return "the cluster"
	}
	return "namespace " + ns
}
