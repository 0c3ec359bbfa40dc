package sync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// The fixtures in testdata were read from a real kube-apiserver 1.35:
// desired.yaml applied with field manager "tether" (service.json,
// deployment.json, configmap.json), then the Deployment annotated with
// kubectl annotate, its image set with kubectl set image, and scaled with
// kubectl scale, read after each step.

func loadJSON(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return u
}

// desiredObjects reads testdata/desired.yaml by kind.
func desiredObjects(t *testing.T) map[string]*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "desired.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*unstructured.Unstructured{}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		u := &unstructured.Unstructured{}
		j, err := utilyaml.ToJSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := u.UnmarshalJSON(j); err != nil {
			t.Fatal(err)
		}
		out[u.GetKind()] = u
	}
	return out
}

func TestProvenUnchanged(t *testing.T) {
	desired := desiredObjects(t)
	edit := func(kind string, fn func(u *unstructured.Unstructured)) *unstructured.Unstructured {
		u := desired[kind].DeepCopy()
		fn(u)
		return u
	}
	for _, tc := range []struct {
		name    string
		desired *unstructured.Unstructured
		live    string
		want    bool
		why     string // part of the reason when not proven
	}{
		{"service as applied (a port whose protocol the server defaulted)", desired["Service"], "service.json", true, ""},
		{"deployment as applied", desired["Deployment"], "deployment.json", true, ""},
		{"configmap as applied", desired["ConfigMap"], "configmap.json", true, ""},
		{"someone else's annotation is not tether's business", desired["Deployment"], "deployment-annotated.json", true, ""},
		{"image changed in git", edit("Deployment", func(u *unstructured.Unstructured) {
			c := u.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
			c["image"] = "nginx:1.1"
		}), "deployment.json", false, "spec.template.spec.containers[name=app].image differs"},
		{"image changed by kubectl set image", desired["Deployment"], "deployment-set-image.json", false, "containers[name=app].image differs"},
		{"replicas changed by kubectl scale", desired["Deployment"], "deployment-scaled.json", false, ""},
		{"a field removed from git", edit("Deployment", func(u *unstructured.Unstructured) {
			c := u.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
			delete(c, "readinessProbe")
		}), "deployment.json", false, "other fields than tether owns"},
		{"an env var removed from git", edit("Deployment", func(u *unstructured.Unstructured) {
			c := u.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
			c["env"] = c["env"].([]any)[:1]
		}), "deployment.json", false, ""},
		{"a quantity written another way", edit("Deployment", func(u *unstructured.Unstructured) {
			c := u.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
			c["resources"].(map[string]any)["limits"].(map[string]any)["cpu"] = "1000m"
		}), "deployment.json", false, "limits.cpu differs"},
		{"a data key added in git", edit("ConfigMap", func(u *unstructured.Unstructured) {
			u.Object["data"].(map[string]any)["c"] = "3"
		}), "configmap.json", false, "data.c differs"},
		{"an annotation value changed in git", edit("ConfigMap", func(u *unstructured.Unstructured) {
			a := u.GetAnnotations()
			a["tether.dev/source"] = "app/other.yaml"
			u.SetAnnotations(a)
		}), "configmap.json", false, "differs"},
		{"the port's protocol given explicitly as the default", edit("Service", func(u *unstructured.Unstructured) {
			p := u.Object["spec"].(map[string]any)["ports"].([]any)[0].(map[string]any)
			p["protocol"] = "TCP"
		}), "service.json", false, "other fields than tether owns"},
		{"an empty value", edit("ConfigMap", func(u *unstructured.Unstructured) {
			u.Object["binaryData"] = map[string]any{}
		}), "configmap.json", false, "empty mapping"},
		{"another apiVersion", edit("Deployment", func(u *unstructured.Unstructured) {
			u.SetAPIVersion("apps/v1beta2")
		}), "deployment.json", false, "last applied as apps/v1"},
		{"no live object", desired["ConfigMap"], "", false, "a new object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var live *unstructured.Unstructured
			if tc.live != "" {
				live = loadJSON(t, tc.live)
			}
			got, why := ProvenUnchanged(tc.desired, live)
			if got != tc.want {
				t.Fatalf("proven = %v (%s), want %v", got, why, tc.want)
			}
			if !got && !strings.Contains(why, tc.why) {
				t.Errorf("reason %q does not mention %q", why, tc.why)
			}
		})
	}
}

// Without its managed fields, nothing can be proven.
func TestProvenUnchangedNeedsManagedFields(t *testing.T) {
	live := loadJSON(t, "configmap.json")
	live.SetManagedFields(nil)
	if ok, why := ProvenUnchanged(desiredObjects(t)["ConfigMap"], live); ok || !strings.Contains(why, "not applied by tether") {
		t.Errorf("proven = %v (%s)", ok, why)
	}
}
