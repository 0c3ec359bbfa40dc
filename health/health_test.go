package health

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"
	"sigs.k8s.io/yaml"
)

func obj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatal(err)
	}
	return u
}

const availableDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app, generation: 2}
spec: {replicas: 2}
status:
  observedGeneration: 2
  replicas: 2
  updatedReplicas: 2
  readyReplicas: 2
  availableReplicas: 2
  conditions:
  - {type: Available, status: "True"}
  - {type: Progressing, status: "True", reason: NewReplicaSetAvailable}
`

func TestObject(t *testing.T) {
	applied := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		obj     string // empty: not found
		now     time.Time
		want    Status
		message string
	}{
		{name: "available deployment", obj: availableDeployment, want: Healthy},
		{name: "deployment rolling out", obj: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app, generation: 3}
spec: {replicas: 2}
status: {observedGeneration: 2, replicas: 2, availableReplicas: 2}
`, want: Progressing},
		{name: "deployment past its progress deadline", obj: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app, generation: 2}
spec: {replicas: 2}
status:
  observedGeneration: 2
  replicas: 2
  updatedReplicas: 1
  conditions:
  - {type: Progressing, status: "False", reason: ProgressDeadlineExceeded, message: "too slow"}
`, want: Degraded},
		{name: "not found after apply", want: Failed, message: "not found after apply"},
		{name: "terminating", obj: `
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: app, deletionTimestamp: "2026-01-01T12:00:00Z"}
`, want: Progressing, message: "terminating"},
		{name: "configmap", obj: `{apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: app}}`, want: Healthy},
		{name: "hpa unable to scale", obj: `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: app}
status:
  conditions:
  - {type: AbleToScale, status: "False", message: "deployments/scale.apps \"web\" not found"}
`, want: Degraded, message: "cannot scale its target"},
		{name: "hpa without metrics yet", obj: `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: app}
status:
  conditions:
  - {type: AbleToScale, status: "True"}
  - {type: ScalingActive, status: "False", reason: FailedGetResourceMetric}
`, want: Healthy},
		{name: "custom resource without conditions, in grace period", obj: `{apiVersion: example.com/v1, kind: Widget, metadata: {name: w, namespace: app}}`,
			now: applied.Add(2 * time.Second), want: Progressing, message: "waiting for its controller"},
		{name: "custom resource without conditions, after grace period", obj: `{apiVersion: example.com/v1, kind: Widget, metadata: {name: w, namespace: app}}`,
			now: applied.Add(CustomResourceGrace + time.Second), want: Healthy},
		{name: "custom resource not ready", obj: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w, namespace: app}
status:
  conditions: [{type: Ready, status: "False", reason: Waiting, message: "backend down"}]
`, now: applied.Add(time.Hour), want: Progressing, message: "backend down"},
		{name: "custom resource stalled", obj: `
apiVersion: example.com/v1
kind: Widget
metadata: {name: w, namespace: app}
status:
  conditions: [{type: Stalled, status: "True", message: "bad spec"}]
`, now: applied.Add(2 * time.Second), want: Degraded, message: "bad spec"},
		{name: "built-in group under k8s.io is not custom", obj: `{apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: i, namespace: app}}`,
			now: applied.Add(time.Second), want: Healthy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o *unstructured.Unstructured
			if tc.obj != "" {
				o = obj(t, tc.obj)
			}
			now := tc.now
			if now.IsZero() {
				now = applied.Add(time.Minute)
			}
			got := Object(o, applied, now)
			if got.Status != tc.want {
				t.Fatalf("status %s (%s), want %s", got.Status, got.Message, tc.want)
			}
			if !strings.Contains(got.Message, tc.message) {
				t.Errorf("message %q lacks %q", got.Message, tc.message)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	if s := Summarize(nil); s.Status != Healthy || len(s.Unhealthy) != 0 {
		t.Errorf("empty set: %+v", s)
	}
	id := func(name string) object.ObjMetadata {
		return object.ObjMetadata{Namespace: "app", Name: name, GroupKind: schema.GroupKind{Kind: "ConfigMap"}}
	}
	s := Summarize(map[object.ObjMetadata]Result{
		id("a"): {Status: Healthy},
		id("b"): {Status: Progressing, Message: "rolling"},
		id("c"): {Status: Degraded, Message: "broken"},
		id("d"): {Status: Healthy},
	})
	if s.Status != Degraded {
		t.Errorf("worst status %s, want Degraded", s.Status)
	}
	if s.Counts[Healthy] != 2 || s.Counts[Progressing] != 1 || s.Counts[Degraded] != 1 {
		t.Errorf("counts %v", s.Counts)
	}
	if len(s.Unhealthy) != 2 || s.Unhealthy[id("c")].Message != "broken" {
		t.Errorf("unhealthy %v", s.Unhealthy)
	}
	if !Worse(Failed, Degraded) || Worse(Healthy, Progressing) {
		t.Error("ordering of statuses is wrong")
	}
}

// fakeReader serves a Deployment that becomes available after n reads.
type fakeReader struct {
	reads     atomic.Int32
	readyFrom int32
	fail      bool
	t         *testing.T
}

func (f *fakeReader) Read(_ context.Context, ids []object.ObjMetadata) (map[object.ObjMetadata]*unstructured.Unstructured, error) {
	n := f.reads.Add(1)
	if f.fail {
		return nil, errors.New("connection refused")
	}
	out := map[object.ObjMetadata]*unstructured.Unstructured{}
	for _, id := range ids {
		if f.readyFrom > 0 && n >= f.readyFrom {
			out[id] = obj(f.t, availableDeployment)
		} else {
			out[id] = obj(f.t, `{apiVersion: apps/v1, kind: Deployment, metadata: {name: web, namespace: app, generation: 2}, status: {observedGeneration: 1}}`)
		}
	}
	return out, nil
}

func TestWait(t *testing.T) {
	ids := []object.ObjMetadata{{Namespace: "app", Name: "web", GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}}}
	ctx := context.Background()

	r := &fakeReader{readyFrom: 3, t: t}
	res, err := Wait(ctx, r, ids, nil, time.Millisecond, 10*time.Second, time.Now)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if res[ids[0]].Status != Healthy || r.reads.Load() != 3 {
		t.Errorf("result %v after %d reads", res, r.reads.Load())
	}

	never := &fakeReader{t: t}
	res, err = Wait(ctx, never, ids, nil, time.Millisecond, 50*time.Millisecond, time.Now)
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("want a TimeoutError, got %v", err)
	}
	if res[ids[0]].Status != Progressing || !strings.Contains(err.Error(), "Deployment.apps/app/web: Progressing") {
		t.Errorf("timeout error %q, result %v", err, res)
	}

	broken := &fakeReader{fail: true, t: t}
	if _, err := Wait(ctx, broken, ids, nil, time.Millisecond, 20*time.Millisecond, time.Now); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("read failure: got %v", err)
	}
}

// A wait stopped from outside says so, rather than blaming the objects.
func TestWaitStoppedIsNotATimeout(t *testing.T) {
	ids := []object.ObjMetadata{{Namespace: "app", Name: "web", GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(30 * time.Millisecond); cancel() }()
	_, err := Wait(ctx, &fakeReader{t: t}, ids, nil, time.Millisecond, time.Hour, time.Now)
	var te *TimeoutError
	if errors.As(err, &te) || !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}
