package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	gosync "sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynfake "k8s.io/client-go/dynamic/fake"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/inventory"
	"github.com/tether-gitops/tether/kube"
	"github.com/tether-gitops/tether/render"
)

// fakeCluster stands in for the API server in unit tests of the phases'
// error handling: client-go's fake clients behind kube.Clients, with a toy
// server-side apply (the applied object replaces the live one's content,
// keeping its server fields; a dry run answers without storing). It knows
// ConfigMaps, Secrets, Namespaces and Deployments. The e2e suite is the
// proof against a real API server; this is for the paths a real one
// rarely takes (a write refused half-way, a delete that fails).
type fakeCluster struct {
	t       *testing.T
	dyn     *dynfake.FakeDynamicClient
	typed   *k8sfake.Clientset
	clients *kube.Clients

	mu gosync.Mutex
	// failApply and failDelete make the named object's (Kind/ns/name)
	// real apply or delete fail with the error; failDryRun its dry run
	// (an admission denial, say).
	failApply, failDelete, failDryRun map[string]error
	// log records the writes: "apply Kind/ns/name", "delete Kind/ns/name".
	log []string
	rv  int
}

var fakeKinds = []struct {
	gvk        schema.GroupVersionKind
	resource   string
	namespaced bool
}{
	{schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, "configmaps", true},
	{schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, "secrets", true},
	{schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, "namespaces", false},
	{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, "deployments", true},
}

// resettableMapper adds a no-op Reset to a static mapper.
type resettableMapper struct{ meta.RESTMapper }

func (resettableMapper) Reset() {}

func newFakeCluster(t *testing.T, objs ...*unstructured.Unstructured) *fakeCluster {
	t.Helper()
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{{Version: "v1"}, {Group: "apps", Version: "v1"}})
	listKinds := map[schema.GroupVersionResource]string{}
	for _, k := range fakeKinds {
		scope := meta.RESTScopeRoot
		if k.namespaced {
			scope = meta.RESTScopeNamespace
		}
		mapper.AddSpecific(k.gvk, k.gvk.GroupVersion().WithResource(k.resource), k.gvk.GroupVersion().WithResource(strings.TrimSuffix(k.resource, "s")), scope)
		listKinds[k.gvk.GroupVersion().WithResource(k.resource)] = k.gvk.Kind + "List"
	}
	f := &fakeCluster{
		t:          t,
		dyn:        dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds),
		typed:      k8sfake.NewSimpleClientset(),
		failApply:  map[string]error{},
		failDelete: map[string]error{},
		failDryRun: map[string]error{},
	}
	for _, o := range objs {
		f.add(o)
	}
	f.dyn.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchActionImpl)
		if p.PatchType != types.ApplyPatchType {
			return true, nil, fmt.Errorf("fake cluster: patch type %s", p.PatchType)
		}
		obj, err := f.apply(p.Resource, p.Namespace, p.Name, p.Patch, len(p.PatchOptions.DryRun) > 0)
		return true, obj, err
	})
	f.dyn.PrependReactor("delete", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		d := a.(k8stesting.DeleteActionImpl)
		key := f.key(d.Resource, d.Namespace, d.Name)
		f.mu.Lock()
		defer f.mu.Unlock()
		if err := f.failDelete[key]; err != nil {
			return true, nil, err
		}
		f.log = append(f.log, "delete "+key)
		return false, nil, nil // the tracker deletes
	})
	// The fake clientset's tracker sets no resourceVersion; the inventory
	// store needs one to update.
	f.typed.PrependReactor("*", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if w, ok := a.(interface{ GetObject() runtime.Object }); ok {
			if o, ok := w.GetObject().(metav1.Object); ok {
				f.mu.Lock()
				f.rv++
				o.SetResourceVersion(fmt.Sprint(f.rv))
				f.mu.Unlock()
			}
		}
		return false, nil, nil
	})
	raw, err := rest.UnversionedRESTClientForConfigAndClient(&rest.Config{
		Host:    "http://fake-apiserver",
		APIPath: "/",
		ContentConfig: rest.ContentConfig{
			GroupVersion:         &schema.GroupVersion{},
			NegotiatedSerializer: scheme.Codecs.WithoutConversion(),
		},
	}, &http.Client{Transport: roundTripper(f.serveRaw)})
	if err != nil {
		t.Fatal(err)
	}
	f.clients = &kube.Clients{Dynamic: f.dyn, Typed: f.typed, Mapper: resettableMapper{mapper}, Raw: raw, Requests: kube.NewRequestCounter()}
	return f
}

// syncer returns a Syncer on the fake cluster that renders objs.
func (f *fakeCluster) syncer(objs ...*unstructured.Unstructured) *Syncer {
	return New(f.clients, slog.New(slog.DiscardHandler)).WithRenderer(func(context.Context, render.Request) ([]render.Resource, error) {
		out := make([]render.Resource, len(objs))
		for i, o := range objs {
			out[i] = render.Resource{Object: o.DeepCopy(), Source: "app.yaml"}
		}
		return out, nil
	})
}

func (f *fakeCluster) gvr(kind string) (schema.GroupVersionResource, bool) {
	for _, k := range fakeKinds {
		if k.gvk.Kind == kind {
			return k.gvk.GroupVersion().WithResource(k.resource), k.namespaced
		}
	}
	f.t.Fatalf("fake cluster: unknown kind %s", kind)
	return schema.GroupVersionResource{}, false
}

func (f *fakeCluster) kindOf(gvr schema.GroupVersionResource) string {
	for _, k := range fakeKinds {
		if k.resource == gvr.Resource {
			return k.gvk.Kind
		}
	}
	return gvr.Resource
}

func (f *fakeCluster) key(gvr schema.GroupVersionResource, ns, name string) string {
	if ns == "" {
		return f.kindOf(gvr) + "/" + name
	}
	return f.kindOf(gvr) + "/" + ns + "/" + name
}

// add stores obj as it is (server fields included).
func (f *fakeCluster) add(obj *unstructured.Unstructured) {
	f.t.Helper()
	gvr, _ := f.gvr(obj.GetKind())
	if err := f.dyn.Tracker().Create(gvr, obj.DeepCopy(), obj.GetNamespace()); err != nil {
		f.t.Fatal(err)
	}
}

// get returns the stored object or nil.
func (f *fakeCluster) get(kind, ns, name string) *unstructured.Unstructured {
	f.t.Helper()
	gvr, _ := f.gvr(kind)
	obj, err := f.dyn.Tracker().Get(gvr, ns, name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return obj.(*unstructured.Unstructured)
}

// writes returns the writes recorded so far.
func (f *fakeCluster) writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// apply is the toy server-side apply.
func (f *fakeCluster) apply(gvr schema.GroupVersionResource, ns, name string, patch []byte, dryRun bool) (*unstructured.Unstructured, error) {
	desired := &unstructured.Unstructured{}
	if err := desired.UnmarshalJSON(patch); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	key := f.key(gvr, ns, name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failApply[key]; err != nil && !dryRun {
		return nil, err
	}
	if err := f.failDryRun[key]; err != nil && dryRun {
		return nil, err
	}
	live, err := f.dyn.Tracker().Get(gvr, ns, name)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	out := desired.DeepCopy()
	if exists {
		l := live.(*unstructured.Unstructured)
		out.SetUID(l.GetUID())
		out.SetCreationTimestamp(l.GetCreationTimestamp())
		out.SetResourceVersion(l.GetResourceVersion())
		out.SetManagedFields(l.GetManagedFields())
		if st, ok := l.Object["status"]; ok {
			out.Object["status"] = st
		}
		if sameObject(l, out) {
			return out, nil
		}
	} else {
		out.SetUID(types.UID("uid-" + name))
	}
	if dryRun {
		return out, nil
	}
	f.rv++
	out.SetResourceVersion(fmt.Sprint(f.rv))
	f.log = append(f.log, "apply "+key)
	if exists {
		return out, f.dyn.Tracker().Update(gvr, out, ns)
	}
	return out, f.dyn.Tracker().Create(gvr, out, ns)
}

// serveRaw answers the raw client's apply patches (kube.Clients.Raw).
func (f *fakeCluster) serveRaw(req *http.Request) (*http.Response, error) {
	segs := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	if segs[0] == "api" {
		segs = append([]string{"api", ""}, segs[1:]...)
	}
	// apis, group, version, [namespaces, ns,] resource, name
	gvr := schema.GroupVersionResource{Group: segs[1], Version: segs[2]}
	rest, ns := segs[3:], ""
	if len(rest) == 4 && rest[0] == "namespaces" {
		ns, rest = rest[1], rest[2:]
	}
	gvr.Resource = rest[0]
	body, _ := io.ReadAll(req.Body)
	obj, err := f.apply(gvr, ns, rest[1], body, req.URL.Query().Get("dryRun") != "")
	if err != nil {
		status := apierrors.NewInternalError(err).ErrStatus
		if se, ok := err.(apierrors.APIStatus); ok {
			status = se.Status()
		}
		status.Kind, status.APIVersion = "Status", "v1" // as the API server sends it
		data, _ := json.Marshal(status)
		return &http.Response{StatusCode: int(status.Code), Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(data))}, nil
	}
	data, _ := obj.MarshalJSON()
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(data))}, nil
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// configMap returns a ConfigMap in namespace app with one data key.
func configMap(name, value string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "app"},
		"data":     map[string]any{"k": value},
	}}
}

// cmID is the id of configMap(name, ...).
func cmID(name string) object.ObjMetadata {
	return object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "ConfigMap"}, Namespace: "app", Name: name}
}

// owned returns obj as the live object a sync named sync applied: labelled,
// annotated with its inventory, with server fields.
func owned(obj *unstructured.Unstructured, syncName string, uid string) *unstructured.Unstructured {
	o := obj.DeepCopy()
	o.SetLabels(map[string]string{contract.SyncLabel: syncName})
	o.SetAnnotations(map[string]string{contract.OwningInventoryAnnotation: inventory.ID("tether-system", syncName)})
	o.SetUID(types.UID(uid))
	o.SetResourceVersion("1")
	o.SetCreationTimestamp(metav1.Now())
	return o
}
