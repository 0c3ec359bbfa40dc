//go:build e2e

package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// `tether build manifests/` renders the install bundle, the Deployment is
// hardened as the README says, and promtool accepts the alert rules.
func TestInstallBundle(t *testing.T) {
	root := repoRoot(t)
	out, err := exec.Command(tetherBinary(t), "build", filepath.Join(root, "manifests")).Output()
	if err != nil {
		t.Fatalf("tether build manifests/: %v", err)
	}
	kinds := map[string]bool{}
	var deploy *appsv1.Deployment
	for _, doc := range strings.Split(string(out), "\n---\n") {
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name, Namespace string
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		kinds[meta.Kind+"/"+meta.Metadata.Name] = true
		if meta.Kind == "Deployment" {
			deploy = &appsv1.Deployment{}
			if err := utilyaml.Unmarshal([]byte(doc), deploy); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, want := range []string{
		"Namespace/tether-system", "ServiceAccount/tether", "ClusterRole/tether-sync", "ClusterRoleBinding/tether-sync",
		"Role/tether-agent", "RoleBinding/tether-agent", "ClusterRole/tether-ui", "ClusterRoleBinding/tether-ui", "ConfigMap/tether-config", "ConfigMap/tether-alert-rules",
		"Deployment/tether", "Service/tether",
	} {
		if !kinds[want] {
			t.Errorf("the bundle lacks %s (has %v)", want, kinds)
		}
	}
	if deploy == nil {
		t.Fatal("no Deployment")
	}
	pod := deploy.Spec.Template.Spec
	c := pod.Containers[0]
	switch {
	case pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot:
		t.Error("the pod may run as root")
	case c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem:
		t.Error("the root file system is writable")
	case c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation:
		t.Error("privilege escalation is allowed")
	case c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz":
		t.Error("probes are not /healthz and /readyz")
	case c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero():
		t.Error("no resource requests and limits")
	}
	if out, err := exec.Command("promtool", "check", "rules", filepath.Join(root, "manifests", "alerts", "tether.rules.yaml")).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	if out, err := exec.Command("promtool", "test", "rules", filepath.Join(root, "manifests", "alerts", "tether.rules.test.yaml")).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}
