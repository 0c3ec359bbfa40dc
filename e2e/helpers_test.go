//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/tether-gitops/tether/e2e/cluster"
)

// repoRoot is the root of the tether repository.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && filepath.Base(filepath.Dir(d)) != "tools" {
			if data, _ := os.ReadFile(filepath.Join(d, "go.mod")); bytes.HasPrefix(data, []byte("module github.com/tether-gitops/tether\n")) {
				return d
			}
		}
		if filepath.Dir(d) == d {
			t.Fatal("cannot find the repository root")
		}
	}
}

var tetherBin struct {
	once gosync.Once
	path string
	err  error
}

// tetherBinary builds cmd/tether once per test run.
func tetherBinary(t testing.TB) string {
	t.Helper()
	tetherBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "tether-e2e-bin-")
		if err != nil {
			tetherBin.err = err
			return
		}
		tetherBin.path = filepath.Join(dir, "tether")
		cmd := exec.Command("go", "build", "-o", tetherBin.path, "./cmd/tether")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			tetherBin.err = errors.New("go build ./cmd/tether: " + err.Error() + ": " + string(out))
		}
	})
	if tetherBin.err != nil {
		t.Fatal(tetherBin.err)
	}
	return tetherBin.path
}

var identities struct {
	mu  gosync.Mutex
	sas map[*cluster.Cluster]*cluster.ServiceAccount
}

// tetherIdentity is the ServiceAccount tether runs as in the tests: tether
// in tether-system, bound by manifests/rbac.yaml (never system:masters).
func tetherIdentity(t testing.TB, c *cluster.Cluster) *cluster.ServiceAccount {
	t.Helper()
	identities.mu.Lock()
	defer identities.mu.Unlock()
	if sa, ok := identities.sas[c]; ok {
		return sa
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sa, err := c.ServiceAccount(ctx, "tether-system", "tether", 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	applyFile(t, c.Config, filepath.Join(repoRoot(t), "manifests", "rbac.yaml"))
	if identities.sas == nil {
		identities.sas = map[*cluster.Cluster]*cluster.ServiceAccount{}
	}
	identities.sas[c] = sa
	return sa
}

// applyFile creates (or replaces) the objects of a YAML file with cfg.
func applyFile(t testing.TB, cfg *rest.Config, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	applyYAML(t, cfg, string(data))
}

// applyYAML creates the objects in a multi-document YAML string, replacing
// existing ones, as an admin would with kubectl.
func applyYAML(t testing.TB, cfg *rest.Config, docs string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(docs), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			t.Fatal(err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		res := dyn.Resource(guessResource(obj.GroupVersionKind()))
		var ri dynamic.ResourceInterface = res
		if obj.GetNamespace() != "" {
			ri = res.Namespace(obj.GetNamespace())
		}
		if _, err := ri.Create(ctx, obj, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
			live, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			obj.SetResourceVersion(live.GetResourceVersion())
			if _, err := ri.Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
				t.Fatalf("updating %s %s: %v", obj.GetKind(), obj.GetName(), err)
			}
		} else if err != nil {
			t.Fatalf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
}

// guessResource maps the few kinds the tests create directly to resources.
func guessResource(gvk schema.GroupVersionKind) schema.GroupVersionResource {
	plural := strings.ToLower(gvk.Kind) + "s"
	switch gvk.Kind {
	case "ValidatingAdmissionPolicy":
		plural = "validatingadmissionpolicies"
	}
	return gvk.GroupVersion().WithResource(plural)
}

// eventually polls cond until it returns nil or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
