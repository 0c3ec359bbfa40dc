//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tether-gitops/tether/contract"
	tsync "github.com/tether-gitops/tether/sync"
)

// Objects first applied with client-side `kubectl apply`, then synced by
// tether: when a field is later removed in git, it is gone from the
// cluster, not kept alive by kubectl's field manager; kubectl's
// last-applied annotation and managers are gone after the take-over.
func TestTakeOverFromKubectl(t *testing.T) {
	f := newFixture(t, "takeover")
	ns := "takeover"
	files := func(keys string) map[string]string {
		return map[string]string{
			"kustomization.yaml": kustomization + "- ns.yaml\n- cm.yaml\n",
			"ns.yaml":            nsYAML(ns),
			"cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: " + ns + "\ndata:\n" + keys,
		}
	}
	f.write(files("  a: \"1\"\n  b: \"2\"\n"))
	// What a team did before tether: kubectl apply, client-side.
	kubectl := exec.Command(filepath.Join(repoRoot(t), "bin", "kubectl"), "--kubeconfig", f.c.Kubeconfig, "apply", "-f", filepath.Join(f.dir, "ns.yaml"), "-f", filepath.Join(f.dir, "cm.yaml"))
	kubectl.Env = append(os.Environ(), "KUBECONFIG=")
	if out, err := kubectl.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	res, _ := f.mustSync("main@sha1:1")
	var taken bool
	for _, c := range res.Changes {
		if c.ID.Name == "settings" {
			taken = c.TakeOver
		}
	}
	if !taken {
		t.Error("the plan did not mark the ConfigMap for take-over")
	}
	cm, err := f.admin.CoreV1().ConfigMaps(ns).Get(context.Background(), "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cm.Annotations[contract.LastAppliedAnnotation]; ok {
		t.Errorf("the last-applied annotation is still there")
	}
	for _, mf := range cm.ManagedFields {
		if mf.Manager == "kubectl-client-side-apply" || mf.Manager == "before-first-apply" {
			t.Errorf("kubectl's field manager %q is still there", mf.Manager)
		}
	}
	// Now git drops b.
	f.write(files("  a: \"1\"\n"))
	f.mustSync("main@sha1:2")
	data, err := f.configMapData(ns, "settings")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := data["b"]; ok || data["a"] != "1" {
		t.Errorf("data %v after b was removed from git, want only a", data)
	}
	// Taken over once: the next reconcile of the same revision writes
	// nothing.
	res, writes := f.mustSync("main@sha1:2")
	if writes != 0 {
		var changed []string
		for _, c := range res.Changes {
			if c.Action != tsync.ActionUnchanged {
				changed = append(changed, string(c.Action)+" "+c.Ref())
			}
		}
		t.Errorf("%d writes on an unchanged revision after the take-over: %s", writes, strings.Join(changed, ", "))
	}
}
