//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/tether-gitops/tether/render"
)

// The example app's overlays render to the same objects, and the same
// bytes, as `kubectl kustomize` (kustomize v5.7.1 inside kubectl v1.35.4)
// prints for them; every object is traced to a file of the example. No
// cluster is needed.
func TestRenderMatchesKubectlKustomize(t *testing.T) {
	root := repoRoot(t)
	kubectl := filepath.Join(root, "bin", "kubectl")
	if dir := os.Getenv("TETHER_BIN_DIR"); dir != "" {
		kubectl = filepath.Join(dir, "kubectl")
	}
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("kubectl: %v (run make tools)", err)
	}
	checkout := filepath.Join(root, "examples")
	// Where each object of an overlay comes from: the Namespace from the
	// overlay, the rest from the base (patched and merged by the overlay).
	sourceOf := func(overlay, kind string) string {
		if kind == "Namespace" {
			return overlay + "/namespace.yaml"
		}
		file := map[string]string{
			"ConfigMap": "configmap.yaml", "Deployment": "deployment.yaml", "Service": "service.yaml",
			"Ingress": "ingress.yaml", "HorizontalPodAutoscaler": "hpa.yaml",
		}[kind]
		return "webapp/base/" + file
	}
	for _, overlay := range []string{"webapp/overlays/dev", "webapp/overlays/prod"} {
		t.Run(overlay, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			want, err := exec.CommandContext(ctx, kubectl, "kustomize", filepath.Join(checkout, filepath.FromSlash(overlay))).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize: %v", err)
			}
			resources, err := render.Build(ctx, render.Options{Root: checkout, Path: overlay})
			if err != nil {
				t.Fatalf("render.Build: %v", err)
			}

			wantObjs := decodeObjects(t, want)
			if len(resources) != len(wantObjs) {
				t.Fatalf("%d objects, kubectl kustomize prints %d", len(resources), len(wantObjs))
			}
			for i, r := range resources {
				got, err := json.Marshal(r.Object.Object)
				if err != nil {
					t.Fatal(err)
				}
				exp, err := json.Marshal(wantObjs[i].Object)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, exp) {
					t.Errorf("object %d differs:\n tether  %s\n kubectl %s", i, got, exp)
				}
				if want := sourceOf(overlay, r.Object.GetKind()); r.Source != want {
					t.Errorf("%s/%s: source %q, want %q", r.Object.GetKind(), r.Object.GetName(), r.Source, want)
				}
			}

			out, err := render.YAML(resources)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("render.YAML differs from kubectl kustomize\n--- tether\n%s\n--- kubectl\n%s", out, want)
			}
		})
	}
}

// decodeObjects splits a multi-document YAML stream into objects.
func decodeObjects(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("decoding kubectl kustomize output: %v", err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}
