package live

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	dynfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tether-gitops/tether/contract"
)

var cmGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

func cm(name, value string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "app", "labels": map[string]any{contract.SyncLabel: "web"}},
		"data":     map[string]any{"k": value},
	}}
	return u
}

func newFake(objs ...runtime.Object) *dynfake.FakeDynamicClient {
	return dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{cmGVR: "ConfigMapList"}, objs...)
}

func nextEvent(t *testing.T, events <-chan Event) Event {
	t.Helper()
	select {
	case e := <-events:
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

// followConfigMaps starts a cache on client that follows the ConfigMaps
// of namespace app for sync web, sending its events on the channel, and
// waits until it is ready; ctx ends with the test (or after 30 s).
func followConfigMaps(t *testing.T, client dynamic.Interface) (*Cache, Ref, chan Event, context.Context) {
	t.Helper()
	c := New(client, nil)
	t.Cleanup(c.Stop)
	events := make(chan Event, 10)
	ref := Ref{GVR: cmGVR, Namespace: "app"}
	c.Follow("web", t, []Ref{ref}, func(e Event) { events <- e })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if ok, why := c.WaitReady(ctx, "web"); !ok {
		t.Fatalf("not ready: %s", why)
	}
	return c, ref, events, ctx
}

// The cache lists what exists without events, then reports every change:
// an update, a creation, a deletion.
func TestCacheFollowsChanges(t *testing.T) {
	client := newFake(cm("a", "1"))
	c, ref, events, ctx := followConfigMaps(t, client)
	if obj, ok := c.Get("web", ref, "a"); !ok || obj == nil || obj.Object["data"].(map[string]any)["k"] != "1" {
		t.Fatalf("Get a = %v, %v", obj, ok)
	}
	if obj, ok := c.Get("web", ref, "missing"); !ok || obj != nil {
		t.Errorf("Get missing = %v, %v; want nil, true", obj, ok)
	}
	if len(events) != 0 {
		t.Errorf("events for the first list: %d", len(events))
	}
	res := client.Resource(cmGVR).Namespace("app")
	if _, err := res.Update(ctx, cm("a", "2"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, events); e.Deleted || e.Object.GetName() != "a" || e.Sync != "web" {
		t.Errorf("update event %+v", e)
	}
	if _, err := res.Create(ctx, cm("b", "1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, events); e.Deleted || e.Object.GetName() != "b" {
		t.Errorf("create event %+v", e)
	}
	if err := res.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, events); !e.Deleted || e.Object.GetName() != "a" {
		t.Errorf("delete event %+v", e)
	}
	if n := c.Size("web"); n != 1 {
		t.Errorf("size %d, want 1", n)
	}
	// Following nothing stops the watch: Get can no longer answer.
	c.Follow("web", t, nil, func(Event) {})
	if _, ok := c.Get("web", ref, "b"); ok {
		t.Error("Get answers for a ref no longer watched")
	}
	c.Follow("web", t, []Ref{ref}, func(Event) {})
	c.Forget("web", "someone else")
	if ok, _ := c.WaitReady(ctx, "web"); !ok {
		t.Error("another owner's Forget stopped the watch")
	}
	c.Forget("web", t)
	if ok, _ := c.Ready("web"); ok {
		t.Error("ready after Forget")
	}
}

// A watch the API server refuses is reported (and retried), so the agent
// polls instead.
func TestCacheReportsRefusedWatch(t *testing.T) {
	client := newFake()
	client.PrependReactor("list", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", errors.New("RBAC: watch not allowed"))
	})
	c := New(client, nil)
	defer c.Stop()
	c.Follow("web", t, []Ref{{GVR: cmGVR, Namespace: "app"}}, func(Event) {})
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, why := c.Ready("web")
		if ok {
			t.Fatal("ready although the watch is refused")
		}
		if strings.Contains(why, "the API server refuses to list configmaps/v1 in app") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never reported as refused: %s", why)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := c.Get("web", Ref{GVR: cmGVR, Namespace: "app"}, "a"); ok {
		t.Error("Get answers from a refused watch")
	}
	ws := c.Watches("web")
	if len(ws) != 1 || ws[0].Refused != "list" || ws[0].Ref.String() != "configmaps/v1 in app" || !strings.Contains(ws[0].Error, "RBAC") {
		t.Errorf("watches %+v, want the list of configmaps in app refused", ws)
	}
}

// A watch refused for a while (RBAC loading after an API server restart,
// or granted later) recovers once the API server allows it: Ready, Get
// answers, the refusal is gone from Watches, and it is logged as allowed
// again.
func TestCacheRecoversWhenAllowed(t *testing.T) {
	client := newFake(cm("a", "1"))
	var allowed atomic.Bool
	client.PrependReactor("list", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if allowed.Load() {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", errors.New("RBAC: list not allowed"))
	})
	logs := &logRecorder{}
	c := New(client, slog.New(logs))
	defer c.Stop()
	ref := Ref{GVR: cmGVR, Namespace: "app"}
	c.Follow("web", t, []Ref{ref}, func(Event) {})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ws := c.Watches("web"); len(ws) == 1 && ws[0].Refused == "list" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never refused: %+v", c.Watches("web"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	allowed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if ok, why := c.WaitReady(ctx, "web"); !ok {
		t.Fatalf("not ready after the list was allowed: %s", why)
	}
	if obj, ok := c.Get("web", ref, "a"); !ok || obj == nil {
		t.Errorf("Get a = %v, %v after recovery", obj, ok)
	}
	ws := c.Watches("web")
	if len(ws) != 1 || ws[0].Refused != "" || ws[0].Error != "" || !ws[0].Listed || ws[0].Since.IsZero() {
		t.Errorf("watches %+v after recovery, want listed, watching, nothing refused", ws)
	}
	var again int
	for _, m := range logs.messages() {
		if strings.Contains(m, "allows to") && strings.Contains(m, "again") {
			again++
		}
	}
	if again != 1 {
		t.Errorf("logged %q, want one line saying the API server allows it again", logs.messages())
	}
}

// Only objects with the sync's label enter the cache: every list and
// watch asks the API server for the label, so an unlabelled object in the
// same namespace is neither held nor reported. (The fake's watch, unlike
// its list, ignores selectors; the reactor filters as the API server
// does.)
func TestCacheHoldsOnlyLabelledObjects(t *testing.T) {
	stray := cm("stray", "1")
	stray.SetLabels(nil)
	other := cm("other", "1")
	other.SetLabels(map[string]string{contract.SyncLabel: "api"})
	client := newFake(cm("a", "1"), stray, other)
	var mu gosync.Mutex
	var selectors []string
	client.PrependReactor("list", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		selectors = append(selectors, "list "+a.(k8stesting.ListActionImpl).ListRestrictions.Labels.String())
		mu.Unlock()
		return false, nil, nil
	})
	client.PrependWatchReactor("configmaps", func(a k8stesting.Action) (bool, watch.Interface, error) {
		sel := a.(k8stesting.WatchActionImpl).WatchRestrictions.Labels
		mu.Lock()
		selectors = append(selectors, "watch "+sel.String())
		mu.Unlock()
		w, err := client.Tracker().Watch(cmGVR, a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		return true, watch.Filter(w, func(e watch.Event) (watch.Event, bool) {
			o, ok := e.Object.(metav1.Object)
			return e, ok && sel.Matches(labels.Set(o.GetLabels()))
		}), nil
	})
	c, ref, events, ctx := followConfigMaps(t, client)
	for _, name := range []string{"stray", "other"} {
		if obj, ok := c.Get("web", ref, name); !ok || obj != nil {
			t.Errorf("Get %s = %v, %v; want nil, true", name, obj, ok)
		}
	}
	if n := c.Size("web"); n != 1 {
		t.Errorf("the cache holds %d objects, want 1", n)
	}
	res := client.Resource(cmGVR).Namespace("app")
	late := cm("late-stray", "1")
	late.SetLabels(nil)
	if _, err := res.Create(ctx, late, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Create(ctx, cm("b", "1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Events of one watch arrive in order: had the unlabelled object been
	// reported, it would come first.
	if e := nextEvent(t, events); e.Object.GetName() != "b" {
		t.Errorf("event for %s, want b", e.Object.GetName())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(selectors) < 2 {
		t.Fatalf("requests %v, want a list and a watch", selectors)
	}
	for _, s := range selectors {
		if !strings.HasSuffix(s, " "+contract.SyncLabel+"=web") {
			t.Errorf("request %q does not select the sync's label", s)
		}
	}
}

// logRecorder keeps the messages logged through it.
type logRecorder struct {
	mu   gosync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Level.String()+" "+r.Message)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.msgs)
}

// Where RBAC allows list but not watch, every retry lists fine and has its
// watch refused: the watch stays reported as refused, and the refusal is
// logged once, not once per retry together with an "allowed again".
func TestCacheListAllowedWatchRefused(t *testing.T) {
	client := newFake(cm("a", "1"))
	var lists atomic.Int32
	client.PrependReactor("list", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		lists.Add(1)
		return false, nil, nil
	})
	client.PrependWatchReactor("configmaps", func(k8stesting.Action) (bool, watch.Interface, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "", errors.New("RBAC: watch not allowed"))
	})
	logs := &logRecorder{}
	c := New(client, slog.New(logs))
	defer c.Stop()
	c.Follow("web", t, []Ref{{GVR: cmGVR, Namespace: "app"}}, func(Event) {})
	// The third list starts after the second one and its refused watch
	// are done.
	deadline := time.Now().Add(60 * time.Second)
	for lists.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d lists", lists.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ok, why := c.Ready("web"); ok || !strings.Contains(why, "refuses to watch") {
		t.Errorf("Ready = %v, %q after lists allowed and watches refused; want not ready, refused", ok, why)
	}
	var refusals int
	for _, m := range logs.messages() {
		if strings.Contains(m, "again") {
			t.Errorf("logged %q although the watch is still refused", m)
		}
		if strings.Contains(m, "refuses to watch") {
			refusals++
		}
	}
	if refusals != 1 {
		t.Errorf("%d lines for one refused watch, want 1: %q", refusals, logs.messages())
	}
}
