//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/tether-gitops/tether/e2e/cluster"
)

// A ServiceAccount bound to a namespaced Role (not system:masters) creates a
// Deployment and a Service; the Deployment becomes Available on the fake
// node.
func TestControlPlaneRunsWorkloadsAsServiceAccount(t *testing.T) {
	c := sharedCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "foundation"
	sa, err := c.ServiceAccount(ctx, ns, "deployer", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "deployer"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "deployer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "deployer"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "deployer"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(sa.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The ServiceAccount has no rights outside its namespace.
	if _, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing namespaces as the ServiceAccount: got %v, want Forbidden", err)
	}

	labels := map[string]string{"app": "web"}
	_, err = client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "registry.invalid/web:1.0",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating the Deployment as the ServiceAccount: %v", err)
	}
	_, err = client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating the Service as the ServiceAccount: %v", err)
	}

	var last *appsv1.Deployment
	for ctx.Err() == nil {
		last, err = client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, cond := range last.Status.Conditions {
			if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue && last.Status.AvailableReplicas == 2 {
				svc, err := client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if svc.Spec.ClusterIP == "" {
					t.Fatal("the Service got no cluster IP")
				}
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("Deployment web not Available with 2 replicas: status %+v", last.Status)
}

// Stop ends every process the control plane started.
func TestControlPlaneStopLeavesNoProcesses(t *testing.T) {
	c := cluster.StartT(t, cluster.Options{})
	pids := c.PIDs()
	if len(pids) != 5 {
		t.Fatalf("expected 5 processes, got %v", pids)
	}
	for name, pid := range pids {
		if !cluster.Alive(pid) {
			t.Fatalf("%s (pid %d) is not running before Stop", name, pid)
		}
	}
	dir := c.Dir
	c.Stop()
	for name, pid := range pids {
		if cluster.Alive(pid) {
			t.Errorf("%s (pid %d) still runs after Stop", name, pid)
		}
		if err := syscall.Kill(-pid, 0); err == nil {
			t.Errorf("process group of %s (%d) still has members", name, pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("state folder %s still exists after Stop (err %v)", dir, err)
	}
}

// The control plane goes away with the test process that started it, also
// when the test panics or the test binary is killed outright (no cleanup
// runs then; the kernel's parent-death signal does the work).
func TestControlPlaneDiesWithItsTest(t *testing.T) {
	if mode := os.Getenv("TETHER_E2E_CHILD"); mode != "" {
		controlPlaneChild(t, mode)
		return
	}
	for _, mode := range []string{"panic", "sigkill"} {
		t.Run(mode, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pids.json")
			cmd := exec.Command(os.Args[0], "-test.run=^TestControlPlaneDiesWithItsTest$", "-test.v")
			cmd.Env = append(os.Environ(), "TETHER_E2E_CHILD="+mode, "TETHER_E2E_PIDFILE="+pidFile)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var pids map[string]int
			deadline := time.Now().Add(2 * time.Minute)
			for pids == nil {
				if data, err := os.ReadFile(pidFile); err == nil && json.Unmarshal(data, &pids) == nil {
					break
				}
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					t.Fatalf("the child never reported its control plane; output:\n%s", out.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			if mode == "sigkill" {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			err := cmd.Wait()
			if err == nil {
				t.Fatalf("the child exited cleanly; it should have died (%s); output:\n%s", mode, out.String())
			}
			if mode == "panic" && !strings.Contains(out.String(), "panic: deliberate") {
				t.Fatalf("the child did not panic as planned; output:\n%s", out.String())
			}
			// The signal is delivered asynchronously; give the kernel a moment.
			for name, pid := range pids {
				for i := 0; cluster.Alive(pid) && i < 100; i++ {
					time.Sleep(100 * time.Millisecond)
				}
				if cluster.Alive(pid) {
					t.Errorf("%s (pid %d) outlived the test that started it (%s)", name, pid, mode)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		})
	}
}

func controlPlaneChild(t *testing.T, mode string) {
	c := cluster.StartT(t, cluster.Options{})
	data, _ := json.Marshal(c.PIDs())
	if err := os.WriteFile(os.Getenv("TETHER_E2E_PIDFILE"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if mode == "panic" {
		panic("deliberate panic with a control plane running")
	}
	time.Sleep(5 * time.Minute) // the parent SIGKILLs us
}
