//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/render"
	tsync "github.com/tether-gitops/tether/sync"
)

// noopCase is one entry of the corpus: an object applied by tether, maybe
// changed by another field manager, and a desired version (the same or
// changed) whose local verdict is held to the server's.
type noopCase struct {
	name string
	// base is applied first with tether's field manager.
	base string
	// other, if set, is a strategic merge patch (kubectl's kind) another
	// manager sends after that.
	other string
	// otherManager names it (default "someone-else").
	otherManager string
	// desired, if set, replaces base as what tether would apply next.
	desired string
	// proven says the local proof must succeed (the shortcut must be
	// useful, not only safe); false means either answer is acceptable as
	// long as it is not a false "unchanged".
	proven bool
}

// TestLocalNoopProofNeverLies holds the plan's local proof of a no-op
// (sync.ProvenUnchanged) to the API server's own answer on a corpus of
// objects: the bench's kinds, the example app's, and objects with defaults,
// quantities, ports, env lists, resources and probes, changed by other
// field managers or in git. Whenever the local verdict is "unchanged", a
// server-side apply dry run must leave the live object as it is.
func TestLocalNoopProofNeverLies(t *testing.T) {
	c := sharedCluster(t)
	ctx := context.Background()
	ns := "noop-proof"
	applyYAML(t, c.Config, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: "+ns+"\n")
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(c.Client.Discovery())
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)

	cases := noopCorpus()
	// Every object of the example app, as rendered.
	res, err := render.Build(ctx, render.Options{Root: filepath.Join(repoRoot(t), "examples", "webapp"), Path: "overlays/dev"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Object.GetKind() == "Namespace" {
			continue
		}
		y, err := yaml.Marshal(r.Object.Object)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, noopCase{name: "example " + r.Object.GetKind(), base: string(y), proven: true})
	}

	var provenCount, total int
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := parseObject(t, tc.base)
			name := fmt.Sprintf("noop-%d", i)
			base.SetName(name)
			if isNamespaced(t, mapper, base) {
				base.SetNamespace(ns)
			}
			mapping, err := mapper.RESTMapping(base.GroupVersionKind().GroupKind(), base.GroupVersionKind().Version)
			if err != nil {
				t.Fatal(err)
			}
			res := dyn.Resource(mapping.Resource).Namespace(base.GetNamespace())
			apply := func(obj *unstructured.Unstructured, dryRun bool) *unstructured.Unstructured {
				data, err := obj.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				force := true
				opts := metav1.PatchOptions{FieldManager: contract.FieldManager, Force: &force}
				if dryRun {
					opts.DryRun = []string{metav1.DryRunAll}
				}
				out, err := res.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, opts)
				if err != nil {
					t.Fatalf("apply (dry run %v): %v", dryRun, err)
				}
				return out
			}
			apply(base, false)
			t.Cleanup(func() {
				_ = res.Delete(context.Background(), name, metav1.DeleteOptions{})
			})
			if tc.other != "" {
				manager := tc.otherManager
				if manager == "" {
					manager = "someone-else"
				}
				if _, err := res.Patch(ctx, name, types.StrategicMergePatchType, []byte(tc.other), metav1.PatchOptions{FieldManager: manager}); err != nil {
					t.Fatalf("the other manager's patch: %v", err)
				}
			}
			desired := base
			if tc.desired != "" {
				desired = parseObject(t, tc.desired)
				desired.SetName(name)
				desired.SetNamespace(base.GetNamespace())
			}
			// Read the object as the plan would, and compare with a dry
			// run answered from that same version: a controller (the
			// Deployment controller's revision annotation) may write it
			// in between, and then both are asked again.
			var live, predicted *unstructured.Unstructured
			var local bool
			var why string
			for attempt := 0; ; attempt++ {
				if live, err = res.Get(ctx, name, metav1.GetOptions{}); err != nil {
					t.Fatal(err)
				}
				local, why = tsync.ProvenUnchanged(desired, live)
				predicted = apply(desired, true)
				if predicted.GetResourceVersion() == live.GetResourceVersion() {
					break
				}
				if attempt == 20 {
					t.Fatal("the object keeps changing under the test")
				}
				time.Sleep(100 * time.Millisecond)
			}
			server := sameLive(live, predicted)
			total++
			if local {
				provenCount++
			}
			t.Logf("local proof: %v (%s); dry run: unchanged=%v", local, why, server)
			if local && !server {
				t.Errorf("the local proof said unchanged, the server's dry run changes the object:\n%s", liveDiff(live, predicted))
			}
			if tc.proven && !local {
				t.Errorf("expected the local proof to succeed, it fell back: %s", why)
			}
		})
	}
	t.Logf("%d of %d objects proven unchanged locally", provenCount, total)
	if provenCount == 0 {
		t.Error("the local proof never succeeded: the shortcut is useless")
	}
}

// sameLive compares two versions of an object as the plan does: without
// status and the fields only the server sets.
func sameLive(a, b *unstructured.Unstructured) bool {
	return reflect.DeepEqual(comparableObject(a), comparableObject(b))
}

func comparableObject(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "generation"} {
		unstructured.RemoveNestedField(c.Object, "metadata", f)
	}
	delete(c.Object, "status")
	return c.Object
}

func liveDiff(a, b *unstructured.Unstructured) string {
	x, _ := json.MarshalIndent(comparableObject(a), "", "  ")
	y, _ := json.MarshalIndent(comparableObject(b), "", "  ")
	return "live:\n" + string(x) + "\ndry run:\n" + string(y)
}

func parseObject(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		t.Fatal(err)
	}
	return u
}

func isNamespaced(t *testing.T, mapper meta.RESTMapper, u *unstructured.Unstructured) bool {
	t.Helper()
	m, err := mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
	if err != nil {
		t.Fatal(err)
	}
	return m.Scope.Name() == meta.RESTScopeNameNamespace
}

// noopCorpus is the hand-written part of the corpus.
func noopCorpus() []noopCase {
	const cm = `apiVersion: v1
kind: ConfigMap
metadata:
  labels: {app: x, tether.dev/sync: noop}
  annotations: {tether.dev/revision: "main@sha1:1"}
data:
  a: "1"
  config.yaml: |
    key: value
`
	const svc = `apiVersion: v1
kind: Service
metadata:
  labels: {app: x}
spec:
  selector: {app: x}
  ports:
  - name: http
    port: 80
    targetPort: http
  - name: metrics
    port: 9090
    targetPort: 9090
`
	const dep = `apiVersion: apps/v1
kind: Deployment
metadata:
  labels: {app: x}
spec:
  replicas: 0
  selector:
    matchLabels: {app: x}
  template:
    metadata:
      labels: {app: x}
    spec:
      containers:
      - name: app
        image: registry.example.com/app:1.0.0
        args: ["--port", "8080"]
        ports:
        - name: http
          containerPort: 8080
        env:
        - name: A
          value: "1"
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: "1", memory: 1Gi}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 5
        livenessProbe:
          tcpSocket: {port: 8080}
`
	const svcSwapped = `apiVersion: v1
kind: Service
metadata:
  labels: {app: x}
spec:
  selector: {app: x}
  ports:
  - name: metrics
    port: 9090
    targetPort: 9090
  - name: http
    port: 80
    targetPort: http
`
	replace := func(doc, old, new string) string {
		if !strings.Contains(doc, old) {
			panic("corpus: " + old + " not found")
		}
		return strings.Replace(doc, old, new, 1)
	}
	return []noopCase{
		{name: "configmap unchanged", base: cm, proven: true},
		{name: "configmap, another manager adds a key", base: cm, other: `{"data":{"b":"2"}}`, proven: true},
		{name: "configmap, another manager changes tether's key", base: cm, other: `{"data":{"a":"9"}}`},
		{name: "configmap, another manager adds an annotation", base: cm, other: `{"metadata":{"annotations":{"note":"x"}}}`, proven: true},
		{name: "configmap, another manager removes a label", base: cm, other: `{"metadata":{"labels":{"app":null}}}`},
		{name: "configmap, git changes a value", base: cm, desired: replace(cm, `a: "1"`, `a: "2"`)},
		{name: "configmap, git removes a key", base: cm, desired: replace(cm, "  a: \"1\"\n", "")},
		{name: "configmap, git adds a key", base: cm, desired: cm + "  z: zz\n"},
		{name: "configmap, new revision annotation", base: cm, desired: replace(cm, "main@sha1:1", "main@sha1:2")},
		{name: "service unchanged (ports keyed by port and a defaulted protocol)", base: svc, proven: true},
		{name: "service, protocol given as the default", base: svc, desired: replace(svc, "    port: 80\n", "    port: 80\n    protocol: TCP\n")},
		{name: "service, targetPort as number instead of name", base: svc, desired: replace(svc, "targetPort: http", "targetPort: 8080")},
		{name: "service, port order swapped", base: svc, desired: svcSwapped},
		{name: "service, another manager adds a port", base: svc, other: `{"spec":{"ports":[{"name":"http","port":80,"targetPort":"http"},{"name":"metrics","port":9090,"targetPort":9090},{"name":"extra","port":7000}]}}`},
		{name: "deployment unchanged", base: dep, proven: true},
		{name: "deployment, quantity written another way", base: dep, desired: replace(dep, `cpu: "1"`, `cpu: 1000m`)},
		{name: "deployment, memory in other units", base: dep, desired: replace(dep, "memory: 1Gi", "memory: 1024Mi")},
		{name: "deployment, image set by kubectl", base: dep, otherManager: "kubectl-set", other: `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example.com/app:2.0.0"}]}}}}`},
		{name: "deployment, scaled by someone", base: dep, other: `{"spec":{"replicas":3}}`},
		{name: "deployment, env var added by someone", base: dep, other: `{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"DEBUG","value":"1"}]}]}}}}`},
		{name: "deployment, git drops an env var", base: replace(dep, "          value: \"1\"\n", "          value: \"1\"\n        - name: B\n          value: \"2\"\n"), desired: dep},
		{name: "deployment, git changes a probe period", base: dep, desired: replace(dep, "periodSeconds: 5", "periodSeconds: 6")},
		{name: "deployment, git sets a defaulted field to its default", base: dep, desired: replace(dep, "        image: registry.example.com/app:1.0.0\n", "        image: registry.example.com/app:1.0.0\n        imagePullPolicy: IfNotPresent\n")},
		{name: "deployment, git changes args", base: dep, desired: replace(dep, `"8080"]`, `"8081"]`)},
		// The server fills in fieldRef.apiVersion, and fieldRef is an
		// atomic struct: the proof cannot see past that default.
		{name: "deployment with a defaulted atomic struct", base: replace(dep, "          value: \"1\"\n", "          value: \"1\"\n        - name: FROM_FIELD\n          valueFrom:\n            fieldRef: {fieldPath: metadata.name}\n")},
		{name: "namespace unchanged", base: "apiVersion: v1\nkind: Namespace\nmetadata:\n  labels: {team: a}\n", proven: true},
	}
}
