// Package live keeps the live state of the objects each sync owns, fed by
// watches: one informer per resource and namespace a sync has objects in,
// selected by the tether.dev/sync label, so its memory grows with what
// tether owns and not with the cluster. The agent reads it instead of
// listing each interval: to tell that nothing changed, to recompute health
// when an object changes, and to find drift the moment it happens.
//
// A watch that breaks is resumed by client-go's reflector, which relists
// when it cannot resume and reports every difference it finds as an event,
// so no change is lost. A watch the API server refuses (RBAC without the
// watch verb, or RBAC not loaded yet after an API server restart) is
// reported by Ready and Watches (the verb and the resource refused), so
// the agent polls instead, and retried with the reflector's backoff, so the
// cache recovers once it is allowed. The cache never writes.
package live

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	gosync "sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/tether-gitops/tether/contract"
)

// Ref is a resource, and for a namespaced one a namespace, in which a sync
// has objects.
type Ref struct {
	GVR schema.GroupVersionResource
	// Namespace is "" for cluster-scoped resources.
	Namespace string
}

// String is "deployments.apps/v1 in web" or "namespaces/v1".
func (r Ref) String() string {
	s := r.GVR.Resource
	if r.GVR.Group != "" {
		s += "." + r.GVR.Group
	}
	s += "/" + r.GVR.Version
	if r.Namespace != "" {
		s += " in " + r.Namespace
	}
	return s
}

// Event is a change of an object a sync owns, after the watch's first
// list.
type Event struct {
	Sync string
	Ref  Ref
	// Object is the object now, or its last known state when Deleted.
	Object  *unstructured.Unstructured
	Deleted bool
}

// Cache follows the objects of every sync the agent runs. It is safe for
// concurrent use.
type Cache struct {
	client dynamic.Interface
	log    *slog.Logger

	mu    gosync.Mutex
	syncs map[string]*followed
}

// followed is one sync's watches.
type followed struct {
	// owner is who follows (a token given to Follow): only it can Forget.
	owner    any
	notify   func(Event)
	watchers map[Ref]*watcher
}

// watcher is one informer.
type watcher struct {
	informer cache.SharedIndexInformer
	stop     chan struct{}
	done     chan struct{}

	mu gosync.Mutex
	// refused holds, by operation ("list", "watch"), why the API server
	// last refused it; empty while it allows both.
	refused map[string]string
	// since is when the watch last (re)connected.
	since time.Time
	// fields shares the equal field sets of the objects it holds.
	fields *FieldSets
}

// WatchState is the state of one watch of a sync.
type WatchState struct {
	Ref Ref
	// Listed is set once the watch has done its first list.
	Listed bool
	// Since is when the watch last (re)connected (the reflector resumes
	// or relists after a break); zero before it first did.
	Since time.Time
	// Refused is the verb the API server refuses ("list" or "watch"), ""
	// while it allows both; Error is its answer.
	Refused, Error string
}

// New returns a cache that watches with client. It watches nothing until
// Follow is called.
func New(client dynamic.Interface, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{client: client, log: log, syncs: map[string]*followed{}}
}

// Follow makes the cache watch sync's objects in refs (and no others),
// starting the watches that are new and stopping those no longer needed;
// notify is called, from the watches' goroutines, for every change after a
// watch's first list. owner identifies the caller (a sync's runner): a
// later Follow by another owner takes the sync over, and only the current
// owner's Forget stops it. It never blocks on the API server.
func (c *Cache) Follow(sync string, owner any, refs []Ref, notify func(Event)) {
	c.mu.Lock()
	f := c.syncs[sync]
	if f == nil {
		f = &followed{watchers: map[Ref]*watcher{}}
		c.syncs[sync] = f
	}
	f.owner, f.notify = owner, notify
	want := map[Ref]bool{}
	for _, r := range refs {
		want[r] = true
	}
	var stop []*watcher
	for r, w := range f.watchers {
		if !want[r] {
			stop = append(stop, w)
			delete(f.watchers, r)
		}
	}
	for r := range want {
		if _, ok := f.watchers[r]; !ok {
			f.watchers[r] = c.start(sync, r)
		}
	}
	c.mu.Unlock()
	for _, w := range stop {
		w.halt()
	}
}

// Forget stops watching sync's objects, if owner is the one that follows
// them (a runner stopping after its replacement started leaves the
// replacement's watches alone).
func (c *Cache) Forget(sync string, owner any) {
	c.mu.Lock()
	f := c.syncs[sync]
	if f == nil || f.owner != owner {
		c.mu.Unlock()
		return
	}
	delete(c.syncs, sync)
	c.mu.Unlock()
	for _, w := range f.watchers {
		w.halt()
	}
}

// Stop stops every watch.
func (c *Cache) Stop() {
	c.mu.Lock()
	all := c.syncs
	c.syncs = map[string]*followed{}
	c.mu.Unlock()
	for _, f := range all {
		for _, w := range f.watchers {
			w.halt()
		}
	}
}

// start begins one watch. Called with c.mu held.
func (c *Cache) start(sync string, r Ref) *watcher {
	selector := contract.SyncLabel + "=" + sync
	res := c.client.Resource(r.GVR)
	var client dynamic.ResourceInterface = res
	if r.Namespace != "" {
		client = res.Namespace(r.Namespace)
	}
	w := &watcher{stop: make(chan struct{}), done: make(chan struct{})}
	// The list and the watch report whether the API server refuses them:
	// a refusal (RBAC without list or watch, or RBAC not loaded yet after
	// an API server restart) makes Ready false, and the reflector keeps
	// retrying with its backoff, so the cache recovers when it is allowed.
	refused := func(op string, err error) {
		w.mu.Lock()
		defer w.mu.Unlock()
		was := w.refused[op]
		if err == nil && op == "watch" {
			w.since = time.Now()
		}
		// Logged at debug level: the agent warns once per sync, naming
		// the verb and resource (from Watches), when it falls back to
		// polling.
		if err != nil && (apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)) {
			w.refused[op] = err.Error()
			if was == "" {
				c.log.Debug("the API server refuses to "+op, "sync", sync, "resource", r.String(), "error", err)
			}
			return
		}
		if err == nil && len(w.refused) > 0 {
			// A watch allowed clears both: the reflector streams its
			// first list over the watch and lists only as a fallback, so
			// a list refused once might never be retried. A list allowed
			// clears only the list: where RBAC allows list but not watch,
			// each retry lists fine and then has its watch refused, and
			// clearing the watch's refusal there would make Ready flicker
			// and log both lines at every retry.
			if op == "watch" {
				clear(w.refused)
			} else {
				delete(w.refused, op)
			}
			if len(w.refused) == 0 {
				c.log.Debug("the API server allows to "+op+" again", "sync", sync, "resource", r.String())
			}
		}
	}
	w.refused = map[string]string{}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = selector
			list, err := client.List(ctx, o)
			refused("list", err)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = selector
			wi, err := client.Watch(ctx, o)
			refused("watch", err)
			return wi, err
		},
	}
	// The dynamic client says whether it can stream the first list over
	// the watch (fakes cannot); the wrapper passes that on.
	inf := cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, c.client), &unstructured.Unstructured{},
		cache.SharedIndexInformerOptions{ObjectDescription: r.String()})
	w.fields = NewFieldSets(maxSharedFieldSets)
	_ = inf.SetTransform(func(obj any) (any, error) { return slim(obj, w.fields) })
	// A refusal is recorded by refused and reported once, by the agent;
	// the reflector's own handler would log it at every retry.
	_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, rf *cache.Reflector, err error) {
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			return
		}
		cache.DefaultWatchErrorHandler(ctx, rf, err)
	})
	w.informer = inf
	emit := func(obj any, deleted bool) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		c.mu.Lock()
		f := c.syncs[sync]
		var notify func(Event)
		if f != nil && f.watchers[r] == w {
			notify = f.notify
		}
		c.mu.Unlock()
		if notify != nil {
			notify(Event{Sync: sync, Ref: r, Object: u, Deleted: deleted})
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if !initial {
				emit(obj, false)
			}
		},
		UpdateFunc: func(_, obj any) { emit(obj, false) },
		DeleteFunc: func(obj any) { emit(obj, true) },
	})
	go func() {
		defer close(w.done)
		inf.Run(w.stop)
	}()
	return w
}

// maxSharedFieldSets bounds the distinct field sets one watch shares
// between its objects (a sync's objects of one kind have a few).
const maxSharedFieldSets = 256

// slim drops from a cached object what nothing reads from the cache and
// can be large: kubectl's last-applied annotation (a second copy of the
// object). Drift reads managed fields and values, health reads status.
// Its field sets are shared with the watch's other objects (fields).
func slim(obj any, fields *FieldSets) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		fields.Share(u)
		if ann := u.GetAnnotations(); ann != nil {
			if _, found := ann[contract.LastAppliedAnnotation]; found {
				delete(ann, contract.LastAppliedAnnotation)
				u.SetAnnotations(ann)
			}
		}
	}
	return obj, nil
}

// halt stops the watch and waits for it; it is safe to call more than once.
func (w *watcher) halt() {
	w.mu.Lock()
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.mu.Unlock()
	<-w.done
}

// refusal says which operation the API server refuses for this watch, and
// its answer; "" if it refuses none.
func (w *watcher) refusal() (op, why string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, op := range []string{"list", "watch"} {
		if why := w.refused[op]; why != "" {
			return op, why
		}
	}
	return "", ""
}

// Ready reports whether every watch of sync has done its first list and is
// running, so that Get answers for the whole sync; why says what is
// missing. A sync the cache does not follow is not ready.
func (c *Cache) Ready(sync string) (ok bool, why string) {
	c.mu.Lock()
	f := c.syncs[sync]
	var ws []*watcher
	var refs []Ref
	if f != nil {
		for r, w := range f.watchers {
			refs = append(refs, r)
			ws = append(ws, w)
		}
	}
	c.mu.Unlock()
	if f == nil {
		return false, "not watched"
	}
	for i, w := range ws {
		if op, refused := w.refusal(); op != "" {
			return false, fmt.Sprintf("the API server refuses to %s %s: %s", op, refs[i], refused)
		}
		if !w.informer.HasSynced() {
			return false, fmt.Sprintf("the watch of %s has not listed yet", refs[i])
		}
	}
	return true, ""
}

// WaitReady waits until Ready(sync) or ctx ends, and returns Ready's answer.
func (c *Cache) WaitReady(ctx context.Context, sync string) (bool, string) {
	for {
		ok, why := c.Ready(sync)
		if ok || ctx.Err() != nil {
			return ok, why
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Get returns the object name of sync in ref, as last seen (nil when it
// does not exist). ok is false when the cache cannot answer (not watched,
// not listed yet, refused): ask the API server then.
func (c *Cache) Get(sync string, ref Ref, name string) (obj *unstructured.Unstructured, ok bool) {
	c.mu.Lock()
	var w *watcher
	if f := c.syncs[sync]; f != nil {
		w = f.watchers[ref]
	}
	c.mu.Unlock()
	if w == nil || !w.informer.HasSynced() {
		return nil, false
	}
	if op, _ := w.refusal(); op != "" {
		return nil, false
	}
	key := name
	if ref.Namespace != "" {
		key = ref.Namespace + "/" + name
	}
	item, exists, err := w.informer.GetStore().GetByKey(key)
	if err != nil || !exists {
		return nil, err == nil
	}
	u, _ := item.(*unstructured.Unstructured)
	return u, true
}

// Size returns how many objects the cache holds for sync.
func (c *Cache) Size(sync string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	if f := c.syncs[sync]; f != nil {
		for _, w := range f.watchers {
			n += len(w.informer.GetStore().ListKeys())
		}
	}
	return n
}

// Refs returns the refs sync is watched in, sorted.
func (c *Cache) Refs(sync string) []Ref {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Ref
	if f := c.syncs[sync]; f != nil {
		for r := range f.watchers {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Watches returns the state of each watch of sync, sorted by ref (none
// when the cache does not follow it).
func (c *Cache) Watches(sync string) []WatchState {
	c.mu.Lock()
	var ws []*watcher
	var refs []Ref
	if f := c.syncs[sync]; f != nil {
		for r, w := range f.watchers {
			refs = append(refs, r)
			ws = append(ws, w)
		}
	}
	c.mu.Unlock()
	out := make([]WatchState, len(ws))
	for i, w := range ws {
		op, why := w.refusal()
		w.mu.Lock()
		since := w.since
		w.mu.Unlock()
		out[i] = WatchState{Ref: refs[i], Listed: w.informer.HasSynced(), Since: since, Refused: op, Error: why}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref.String() < out[j].Ref.String() })
	return out
}
