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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
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

// The cache lists what exists without events, then reports every change:
// an update, a creation, a deletion.
func TestCacheFollowsChanges(t *testing.T) {
	client := newFake(cm("a", "1"))
	c := New(client, nil)
	defer c.Stop()
	events := make(chan Event, 10)
	ref := Ref{GVR: cmGVR, Namespace: "app"}
	c.Follow("web", t, []Ref{ref}, func(e Event) { events <- e })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ok, why := c.WaitReady(ctx, "web"); !ok {
		t.Fatalf("not ready: %s", why)
	}
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
		if strings.Contains(why, "refused") {
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
	if ok, why := c.Ready("web"); ok || !strings.Contains(why, "refused") {
		t.Errorf("Ready = %v, %q after lists allowed and watches refused; want not ready, refused", ok, why)
	}
	var warns int
	for _, m := range logs.messages() {
		if strings.Contains(m, "again") {
			t.Errorf("logged %q although the watch is still refused", m)
		}
		if strings.HasPrefix(m, "WARN") {
			warns++
		}
	}
	if warns != 1 {
		t.Errorf("%d warnings for one refused watch, want 1: %q", warns, logs.messages())
	}
}
