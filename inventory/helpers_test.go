package inventory

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/cli-utils/pkg/object"
)

const testNS = "tether-system"

// at returns a whole-second UTC time, minutes after a fixed instant.
func at(minutes int) time.Time {
	return time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC).Add(time.Duration(minutes) * time.Minute)
}

func objID(group, kind, namespace, name string) object.ObjMetadata {
	return object.ObjMetadata{Namespace: namespace, Name: name, GroupKind: schema.GroupKind{Group: group, Kind: kind}}
}

func deploy(name string) object.ObjMetadata { return objID("apps", "Deployment", "shop", name) }

func entries(es ...Entry) map[object.ObjMetadata]Entry {
	m := map[object.ObjMetadata]Entry{}
	for _, e := range es {
		m[e.ID] = e
	}
	return m
}

// realistic returns n entries that look like a large real sync: team
// namespaces, the usual kinds, generated names, file paths per app, a few
// revisions (most objects from the newest) and write times spread over
// weeks. Deterministic.
func realistic(n int) []Entry {
	rng := rand.New(rand.NewPCG(1, 2))
	namespaces := []string{"payments-prod", "checkout-prod", "catalog-prod", "search-prod", "identity-prod",
		"notifications-prod", "inventory-prod", "shipping-prod", "analytics-prod", "platform-observability"}
	kinds := []struct{ group, kind, file string }{
		{"apps", "Deployment", "deployment.yaml"},
		{"", "Service", "service.yaml"},
		{"", "ConfigMap", "configmap.yaml"},
		{"", "ServiceAccount", "rbac.yaml"},
		{"rbac.authorization.k8s.io", "Role", "rbac.yaml"},
		{"rbac.authorization.k8s.io", "RoleBinding", "rbac.yaml"},
		{"autoscaling", "HorizontalPodAutoscaler", "hpa.yaml"},
		{"networking.k8s.io", "Ingress", "ingress.yaml"},
		{"policy", "PodDisruptionBudget", "pdb.yaml"},
		{"monitoring.coreos.com", "ServiceMonitor", "monitoring.yaml"},
	}
	components := []string{"api", "worker", "scheduler", "gateway", "consumer", "migrator", "cache", "frontend"}
	revisions := []string{
		"main@sha1:4f2c9e1d7a8b3c6e5f0a1b2c3d4e5f60718293a4",
		"main@sha1:91ab7c3e2d4f6a8b0c1d2e3f4a5b6c7d8e9f0a1b",
		"main@sha1:0c7d5e3f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d",
	}
	out := make([]Entry, 0, n)
	for i := 0; len(out) < n; i++ {
		ns := namespaces[i%len(namespaces)]
		k := kinds[(i/len(namespaces))%len(kinds)]
		app := fmt.Sprintf("%s-%s-%03d", ns[:len(ns)-5], components[i%len(components)], i/(len(namespaces)*len(kinds)))
		e := Entry{
			ID:     objID(k.group, k.kind, ns, app),
			Source: "clusters/production/apps/" + ns + "/" + app + "/" + k.file,
		}
		switch r := rng.IntN(100); {
		case r < 85:
			e.Revision = revisions[0]
		case r < 95:
			e.Revision = revisions[1]
		default:
			e.Revision = revisions[2]
		}
		if rng.IntN(10) > 0 {
			e.WrittenAt = at(0).Add(time.Duration(rng.IntN(30*24*3600)) * time.Second)
		}
		out = append(out, e)
	}
	return out
}

// fakeClient is client-go's fake clientset with the API server's optimistic
// concurrency added (the fake tracker ignores resourceVersions): create
// sets one; an update with a resourceVersion other than the current one
// gets a Conflict, one without any overwrites (as the API server does).
func fakeClient(t *testing.T, objs ...runtime.Object) *fake.Clientset {
	t.Helper()
	client := fake.NewClientset(objs...)
	var (
		mu sync.Mutex
		rv = 100
	)
	gvr := corev1.SchemeGroupVersion.WithResource("configmaps")
	tracker := client.Tracker()
	client.PrependReactor("create", "configmaps", func(action k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		cm := action.(k8stesting.CreateAction).GetObject().(*corev1.ConfigMap).DeepCopy()
		if cm.ResourceVersion != "" {
			return true, nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
		}
		rv++
		cm.ResourceVersion = strconv.Itoa(rv)
		if err := tracker.Create(gvr, cm, action.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, cm, nil
	})
	client.PrependReactor("update", "configmaps", func(action k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		cm := action.(k8stesting.UpdateAction).GetObject().(*corev1.ConfigMap).DeepCopy()
		cur, err := tracker.Get(gvr, action.GetNamespace(), cm.Name)
		if err != nil {
			return true, nil, err
		}
		// Like the API server: no resourceVersion is an unconditional
		// update, a different one a conflict.
		if cm.ResourceVersion != "" && cm.ResourceVersion != cur.(*corev1.ConfigMap).ResourceVersion {
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), cm.Name,
				fmt.Errorf("the object has been modified; please apply your changes to the latest version and try again"))
		}
		rv++
		cm.ResourceVersion = strconv.Itoa(rv)
		if err := tracker.Update(gvr, cm, action.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, cm, nil
	})
	return client
}

// verbs lists the verbs of the recorded actions.
func verbs(client *fake.Clientset) []string {
	var out []string
	for _, a := range client.Actions() {
		out = append(out, a.GetVerb())
	}
	return out
}
