package images

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"
)

func TestChanges(t *testing.T) {
	web := &Policy{Name: "web", Image: "reg/web"}
	policies := map[string]*Policy{"web": web}
	deploy := func(name string) object.ObjMetadata {
		return object.ObjMetadata{GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}, Namespace: "app", Name: name}
	}
	rec := &Records{Workloads: map[string]map[string]string{
		"Deployment.apps/app/front": {"web": "reg/web:1.0.0"},
		"Deployment.apps/app/gone":  {"web": "reg/web:1.0.0"},
	}}
	got := Changes(map[object.ObjMetadata]map[string]string{
		deploy("front"): {"web": "reg/web:1.1.0", "sidecar": "reg/other:2"},
		deploy("new"):   {"web": "reg/web:1.1.0"},
	}, policies, rec)
	if len(got) != 1 || got[0].Workload() != "Deployment.apps/app/front" || got[0].Container != "web" || got[0].From != "1.0.0" || got[0].Tag != "1.1.0" || got[0].Policy != "web" {
		t.Errorf("changes = %+v, want front's web container from 1.0.0 to 1.1.0", got)
	}
	// The records hold what the revision applied, and nothing else: a
	// workload no longer applied is forgotten, so the records stay bounded.
	want := map[string]string{"Deployment.apps/app/front": "reg/web:1.1.0", "Deployment.apps/app/new": "reg/web:1.1.0"}
	if len(rec.Workloads) != len(want) {
		t.Errorf("records hold %v, want the keys of %v", rec.Workloads, want)
	}
	for ref, image := range want {
		if rec.Workloads[ref]["web"] != image {
			t.Errorf("records: %s = %v, want web %s", ref, rec.Workloads[ref], image)
		}
	}
}

// scriptedGetter answers Get from a list of answers, repeating the last.
type scriptedGetter struct {
	answers []getAnswer
	n       int
}

type getAnswer struct {
	obj *unstructured.Unstructured
	err error
}

func (g *scriptedGetter) Get(context.Context, object.ObjMetadata) (*unstructured.Unstructured, error) {
	a := g.answers[min(g.n, len(g.answers)-1)]
	g.n++
	return a.obj, a.err
}

func deploymentWith(image string, ready bool) *unstructured.Unstructured {
	status := map[string]any{"observedGeneration": int64(2), "replicas": int64(2), "updatedReplicas": int64(1), "readyReplicas": int64(1), "availableReplicas": int64(1)}
	if ready {
		status = map[string]any{"observedGeneration": int64(2), "replicas": int64(2), "updatedReplicas": int64(2), "readyReplicas": int64(2), "availableReplicas": int64(2),
			"conditions": []any{map[string]any{"type": "Available", "status": "True"}, map[string]any{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}}}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "front", "namespace": "app", "generation": int64(2)},
		"spec": map[string]any{"replicas": int64(2), "template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": "web", "image": image}}}}},
		"status": status,
	}}
}

func TestFollow(t *testing.T) {
	id := object.ObjMetadata{GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}, Namespace: "app", Name: "front"}
	outage := errors.New("connection refused")
	for _, tc := range []struct {
		name    string
		answers []getAnswer
		// expired starts the rollout a timeout ago: the deadline has
		// passed after the first read.
		expired bool
		want    string
		message string
	}{
		{"rolled out", []getAnswer{{obj: deploymentWith("reg/web:1.1.0", false)}, {err: outage}, {obj: deploymentWith("reg/web:1.1.0", true)}}, false, RolloutSucceeded, "rolled out reg/web:1.1.0"},
		{"never completes", []getAnswer{{obj: deploymentWith("reg/web:1.1.0", false)}}, true, RolloutFailed, "did not complete its rollout"},
		// Reads failing at the deadline say nothing about the tag: it
		// must not be remembered as failed.
		{"unreadable at the deadline", []getAnswer{{err: outage}}, true, RolloutUnknown, "could not be read"},
		{"deleted", []getAnswer{{err: outage}, {}}, false, RolloutSuperseded, "was deleted"},
		{"another image applied", []getAnswer{{obj: deploymentWith("reg/web:1.2.0", false)}}, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &scriptedGetter{answers: tc.answers}
			timeout := time.Hour
			start := time.Now()
			if tc.expired {
				start = start.Add(-timeout)
			}
			got, msg := Follow(context.Background(), g, id, "web", "reg/web:1.1.0", start, time.Millisecond, timeout)
			if got != tc.want || !strings.Contains(msg, tc.message) {
				t.Errorf("Follow = %q, %q; want %q with %q", got, msg, tc.want, tc.message)
			}
		})
	}
}
