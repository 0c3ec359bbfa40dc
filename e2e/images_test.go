//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/e2e/gitserver"
	"github.com/tether-gitops/tether/e2e/registry"
	"github.com/tether-gitops/tether/e2e/sshserver"
	"github.com/tether-gitops/tether/images"
)

// webappFiles is an app folder: a Namespace, a Deployment whose image
// line (line 19 of app/deployment.yaml) carries the marker, and when
// minReplicas > 0 an HPA.
func webappFiles(ns, image string, progressDeadline, minReplicas int) map[string]string {
	res := "- ns.yaml\n- deployment.yaml\n"
	files := map[string]string{
		"app/ns.yaml": nsYAML(ns),
		"app/deployment.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %s
spec:
  replicas: 1
  progressDeadlineSeconds: %d
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web   # the app
          image: %s # tether:image webapp
`, ns, progressDeadline, image),
	}
	if minReplicas > 0 {
		res += "- hpa.yaml\n"
		files["app/hpa.yaml"] = fmt.Sprintf(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
  namespace: %s
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: web
  minReplicas: %d
  maxReplicas: %d
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 80
`, ns, minReplicas, minReplicas+2)
	}
	files["app/kustomization.yaml"] = kustomization + res
	return files
}

func imagesConfig(registries, policies, syncs string) string {
	return "apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\ndefaults:\n  prune: true\n  timeout: 1m\n" +
		"registries:\n" + registries + "imagePolicies:\n" + policies + "syncs:\n" + syncs
}

func insecureRegistry(host string) string {
	return fmt.Sprintf("  - host: %s\n    insecure: true\n", host)
}

func semverPolicy(name, image, interval, rng string) string {
	return fmt.Sprintf("  - name: %s\n    image: %s\n    interval: %s\n    semver: %q\n", name, image, interval, rng)
}

func imageSync(name, url, extra string) string {
	return fmt.Sprintf("  - name: %s\n    source:\n      url: %s\n      interval: 5s\n    path: app\n    imageUpdates:\n      rolloutTimeout: 2m\n%s", name, url, extra)
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tether.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func startRegistry(t *testing.T, opts registry.Options) *registry.Registry {
	t.Helper()
	r, err := registry.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("registry %s logs:\n%s", r.Host, tail(r.Logs(), 30))
		}
		r.Close()
	})
	return r
}

func push(t *testing.T, r *registry.Registry, user, repo string, tags ...string) string {
	t.Helper()
	digest := ""
	for _, tag := range tags {
		d, err := r.Push(context.Background(), user, repo, tag)
		if err != nil {
			t.Fatal(err)
		}
		digest = d
	}
	return digest
}

// imagePolicy finds a policy, and its state in a sync, in /status.
func (p *agentProc) imagePolicy(policy, sync string) (agent.ImagePolicyStatus, agent.ImagePolicySyncStatus, error) {
	st, err := p.status()
	if err != nil {
		return agent.ImagePolicyStatus{}, agent.ImagePolicySyncStatus{}, err
	}
	if st.Images == nil {
		return agent.ImagePolicyStatus{}, agent.ImagePolicySyncStatus{}, fmt.Errorf("no images in /status")
	}
	for _, ps := range st.Images.Policies {
		if ps.Name != policy {
			continue
		}
		for _, s := range ps.Syncs {
			if s.Sync == sync {
				return ps, s, nil
			}
		}
		return ps, agent.ImagePolicySyncStatus{}, fmt.Errorf("policy %s has no state for sync %s yet (scan error %q)", policy, sync, ps.LastScanError)
	}
	return agent.ImagePolicyStatus{}, agent.ImagePolicySyncStatus{}, fmt.Errorf("no policy %s in /status", policy)
}

func (p *agentProc) writeBack(sync string) (agent.ImageWriteBackStatus, error) {
	st, err := p.status()
	if err != nil {
		return agent.ImageWriteBackStatus{}, err
	}
	if st.Images != nil {
		for _, w := range st.Images.WriteBacks {
			if w.Sync == sync {
				return w, nil
			}
		}
	}
	return agent.ImageWriteBackStatus{}, fmt.Errorf("no write-back of %s in /status yet", sync)
}

// head is the commit main points to on the server.
func head(t *testing.T, repo *gitserver.Repo, branch string) string {
	t.Helper()
	refs, err := repo.LsRemote()
	if err != nil {
		t.Fatal(err)
	}
	return refs["refs/heads/"+branch]
}

// pull brings the work tree up to the server's main (tether's commits).
func pull(t *testing.T, repo *gitserver.Repo) {
	t.Helper()
	if _, err := repo.Git("pull", "--quiet", "--ff-only", "origin", "main"); err != nil {
		t.Fatal(err)
	}
}

func deploymentImage(ctx context.Context, client kubernetes.Interface, ns string) (*appsv1.Deployment, string, error) {
	d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		return nil, "", err
	}
	return d, d.Spec.Template.Spec.Containers[0].Image, nil
}

// A policy ">=1.0.0 <2.0.0" over 1.0.0, 1.1.0, 2.0.0-rc.1 and a .sig tag
// picks 1.1.0; tether commits exactly the marker line, applies it, and the
// Deployment rolls out with the HPA's replicas. Then a manual rollback
// holds the image until 1.2.0 appears.
func TestImagesBumpCommitApplyAndRollback(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	ctx := context.Background()
	client, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t, registry.Options{})
	digest := push(t, reg, "", "webapp", "1.0.0", "1.1.0", "2.0.0-rc.1")
	push(t, reg, "", "webapp", "sha256-"+strings.TrimPrefix(digest, "sha256:")+".sig")
	const ns = "images-bump"
	image := reg.Host + "/webapp"
	_, repo, first := gitRepo(t, gitserver.Options{}, "images-bump", "web 1.0.0", webappFiles(ns, image+":1.0.0", 600, 3))
	cfg := writeConfig(t, imagesConfig(insecureRegistry(reg.Host), semverPolicy("webapp", image, "5s", ">=1.0.0 <2.0.0"), imageSync("images-bump", repo.URL, "")))
	p := startAgent(t, sa.Kubeconfig, cfg)

	// tether commits the bump on main.
	var bump string
	eventually(t, 2*time.Minute, "tether commits 1.1.0", func() error {
		if h := head(t, repo, "main"); h != first {
			bump = h
			return nil
		}
		return fmt.Errorf("main still at the first commit")
	})
	pull(t, repo)
	numstat, err := repo.Git("diff", "--numstat", first, bump)
	if err != nil {
		t.Fatal(err)
	}
	if numstat != "1\t1\tapp/deployment.yaml" {
		t.Errorf("the commit changes more than the marker line:\n%s", numstat)
	}
	diff, _ := repo.Git("diff", "-U0", first, bump)
	if !strings.Contains(diff, "-          image: "+image+":1.0.0 # tether:image webapp\n+          image: "+image+":1.1.0 # tether:image webapp") {
		t.Errorf("diff:\n%s", diff)
	}
	msg, _ := repo.Git("log", "-1", "--format=%an <%ae>%n%B", bump)
	if !strings.Contains(msg, "tether <tether@localhost>") || !strings.Contains(msg, image+":1.0.0 → "+image+":1.1.0 (policy webapp, app/deployment.yaml:19)") {
		t.Errorf("commit message:\n%s", msg)
	}

	// The agent applies it; the rollout completes with the HPA's replicas.
	eventually(t, 3*time.Minute, "the rollout of 1.1.0 succeeds with the HPA's 3 replicas", func() error {
		d, img, err := deploymentImage(ctx, client, ns)
		if err != nil {
			return err
		}
		if img != image+":1.1.0" {
			return fmt.Errorf("image %s", img)
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 || d.Status.UpdatedReplicas != 3 || d.Status.AvailableReplicas != 3 {
			return fmt.Errorf("replicas %v, updated %d, available %d", d.Spec.Replicas, d.Status.UpdatedReplicas, d.Status.AvailableReplicas)
		}
		ps, s, err := p.imagePolicy("webapp", "images-bump")
		if err != nil {
			return err
		}
		if ps.Latest != "1.1.0" || ps.TagsSeen != 4 || s.InGit != "1.1.0" || s.Running != "1.1.0" || s.Rollout == nil || s.Rollout.Outcome != images.RolloutSucceeded || s.LastGood != "1.1.0" {
			return fmt.Errorf("policy %+v, sync %+v", ps, s)
		}
		return nil
	})
	// The HPA's replicas were never tether's: its field manager does not
	// own spec.replicas (an apply that set them would, and would fight
	// the HPA on every rollout).
	d, _, err := deploymentImage(ctx, client, ns)
	if err != nil {
		t.Fatal(err)
	}
	if owned, err := managerOwns(d.ManagedFields, contract.FieldManager, "f:spec", "f:replicas"); err != nil || owned {
		t.Errorf("tether's field manager owns spec.replicas (%v): %+v", err, d.ManagedFields)
	}
	if owned, err := managerOwns(d.ManagedFields, contract.FieldManager, "f:spec", "f:template"); err != nil || !owned {
		t.Errorf("tether's field manager does not own spec.template, so the check above proves nothing (%v): %+v", err, d.ManagedFields)
	}
	out, err := exec.Command(tetherBinary(t), "images", "--server", p.url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "webapp") || !strings.Contains(string(out), "1.1.0 Succeeded") {
		t.Errorf("tether images: %v\n%s", err, out)
	}
	// The running tag is read from the live Deployment.
	if _, s, err := p.imagePolicy("webapp", "images-bump"); err != nil || s.Running != "1.1.0" || s.RunningApplied {
		t.Errorf("running %q (applied %v): %v", s.Running, s.RunningApplied, err)
	}
	if m := p.metrics(); !strings.Contains(m, `tether_image_rollouts_total{outcome="succeeded",policy="webapp",sync="images-bump"} 1`) ||
		!strings.Contains(m, `tether_image_writebacks_total{outcome="committed",sync="images-bump"} 1`) {
		t.Errorf("metrics:\n%s", grepLines(m, "tether_image_"))
	}

	// A person rolls back to 1.0.0: tether holds, no re-bump.
	files := webappFiles(ns, image+":1.0.0", 600, 3)
	rollback, err := repo.Commit("roll back web to 1.0.0", map[string]string{"app/deployment.yaml": files["app/deployment.yaml"]})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the rollback is applied and held", func() error {
		_, img, err := deploymentImage(ctx, client, ns)
		if err != nil {
			return err
		}
		_, s, err := p.imagePolicy("webapp", "images-bump")
		if err != nil {
			return err
		}
		if img != image+":1.0.0" || s.Hold == nil || s.Hold.From != "1.1.0" || s.Hold.Tag != "1.0.0" {
			return fmt.Errorf("image %s, state %+v", img, s)
		}
		return nil
	})
	time.Sleep(15 * time.Second) // three scan intervals
	if h := head(t, repo, "main"); h != rollback {
		t.Fatalf("tether moved main after the manual rollback: %s", h)
	}
	if out, err := exec.Command(tetherBinary(t), "images", "--server", p.url).CombinedOutput(); err == nil || !strings.Contains(string(out), "held") {
		t.Errorf("tether images during the hold: %v\n%s", err, out)
	}

	// 1.2.0 is newer than the tag rolled back from: the hold lifts.
	push(t, reg, "", "webapp", "1.2.0")
	eventually(t, 2*time.Minute, "tether bumps to 1.2.0", func() error {
		_, img, err := deploymentImage(ctx, client, ns)
		if err != nil {
			return err
		}
		_, s, err := p.imagePolicy("webapp", "images-bump")
		if err != nil {
			return err
		}
		if img != image+":1.2.0" || s.Hold != nil || s.InGit != "1.2.0" {
			return fmt.Errorf("image %s, state %+v", img, s)
		}
		return nil
	})
	pull(t, repo)
	if log, _ := repo.Git("log", "--format=%s", "-3"); !strings.HasPrefix(log, "Update images of images-bump\nroll back web to 1.0.0\n") {
		t.Errorf("history:\n%s", log)
	}
}

// managerOwns reports whether a field manager's entries (any operation)
// own the field at path (FieldsV1 keys, "f:spec", "f:replicas").
func managerOwns(entries []metav1.ManagedFieldsEntry, manager string, path ...string) (bool, error) {
	found := false
	for _, e := range entries {
		if e.Manager != manager || e.FieldsV1 == nil {
			continue
		}
		found = true
		var fields map[string]any
		if err := json.Unmarshal(e.FieldsV1.Raw, &fields); err != nil {
			return false, err
		}
		node := fields
		for i, key := range path {
			next, ok := node[key].(map[string]any)
			if !ok {
				break
			}
			if i == len(path)-1 {
				return true, nil
			}
			node = next
		}
	}
	if !found {
		return false, fmt.Errorf("no managedFields entry of %s", manager)
	}
	return false, nil
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A registry notification triggers the bump within seconds although the
// policy scans only every hour.
func TestImagesRegistryNotification(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	port := freePort(t)
	host := "127.0.0.1:" + strconv.Itoa(port)
	_, repo, first := gitRepo(t, gitserver.Options{}, "images-notify", "web 1.0.0", webappFiles("images-notify", host+"/webapp:1.0.0", 600, 0))
	secretFile := filepath.Join(t.TempDir(), "notify-secret")
	const secret = "registry-notify-s3cret"
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	registries := fmt.Sprintf("  - host: %s\n    insecure: true\n    notificationSecretFile: %s\n", host, secretFile)
	cfg := writeConfig(t, imagesConfig(registries, semverPolicy("webapp", host+"/webapp", "1h", ">=1.0.0"), imageSync("images-notify", repo.URL, "")))
	p := startAgent(t, sa.Kubeconfig, cfg)
	reg := startRegistry(t, registry.Options{Port: port, NotifyURL: p.hookURL + "/hooks/registry", NotifyToken: secret})
	push(t, reg, "", "webapp", "1.0.0")
	eventually(t, time.Minute, "a successful scan (after the first one found no registry)", func() error {
		ps, _, err := p.imagePolicy("webapp", "images-notify")
		if ps.Latest != "1.0.0" {
			return fmt.Errorf("latest %q (%v)", ps.Latest, err)
		}
		return nil
	})
	pushed := time.Now()
	push(t, reg, "", "webapp", "1.1.0")
	eventually(t, 45*time.Second, "the notification triggers the bump", func() error {
		if head(t, repo, "main") == first {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	t.Logf("bumped %s after the push (scan interval 1h)", time.Since(pushed).Round(time.Millisecond))
	// A notification with a wrong secret is refused.
	req, _ := http.NewRequest(http.MethodPost, p.hookURL+"/hooks/registry", strings.NewReader(`{"events":[]}`))
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong secret: %s", resp.Status)
	}
	// Docker Hub sends no headers: its payload may carry the secret in
	// the URL; the secret is not logged.
	hub := `{"push_data":{"tag":"1.1.0"},"repository":{"repo_name":"webapp"}}`
	for _, tc := range []struct {
		query string
		want  int
	}{{"?token=wrong", http.StatusUnauthorized}, {"?token=" + secret, http.StatusOK}} {
		resp, err := http.Post(p.hookURL+"/hooks/registry"+tc.query, "application/json", strings.NewReader(hub))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want || tc.want == http.StatusOK && !strings.Contains(string(body), `"webapp"`) {
			t.Errorf("Docker Hub payload with %s: %s %s", strings.Replace(tc.query, secret, "SECRET", 1), resp.Status, body)
		}
	}
	if strings.Contains(p.out.String(), secret) {
		t.Error("the registry secret is in the log")
	}
}

// A rollout that fails (a short progress deadline and a ResourceQuota
// that blocks the new pods) is reported failed and its tag is not
// proposed again, also after the agent restarts; a newer tag proceeds.
func TestImagesFailedRollout(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	ctx := context.Background()
	client, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t, registry.Options{})
	push(t, reg, "", "webapp", "1.0.0")
	srv, err := gitserver.Start(gitserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	repo, err := srv.CreateRepo("images-fail")
	if err != nil {
		t.Fatal(err)
	}
	const ns = "images-fail"
	image := reg.Host + "/webapp"
	if _, err := repo.Commit("web 1.0.0", webappFiles(ns, image+":1.0.0", 10, 0)); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, imagesConfig(insecureRegistry(reg.Host), semverPolicy("webapp", image, "5s", ">=1.0.0"), imageSync("images-fail", repo.URL, "")))
	p := startAgent(t, sa.Kubeconfig, cfg)
	eventually(t, 2*time.Minute, "1.0.0 is running", func() error {
		d, img, err := deploymentImage(ctx, client, ns)
		if err != nil || img != image+":1.0.0" || d.Status.AvailableReplicas != 1 {
			return fmt.Errorf("image %s: %v", img, err)
		}
		return nil
	})
	// One pod at most: the rolling update cannot start a new one.
	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "one-pod", Namespace: ns},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}}}
	if _, err := client.CoreV1().ResourceQuotas(ns).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the quota is counted", func() error {
		q, err := client.CoreV1().ResourceQuotas(ns).Get(ctx, "one-pod", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if used := q.Status.Used[corev1.ResourcePods]; used.Value() != 1 {
			return fmt.Errorf("used %v", q.Status.Used)
		}
		return nil
	})
	beforeFailure := head(t, repo, "main")
	push(t, reg, "", "webapp", "1.1.0")
	eventually(t, 3*time.Minute, "the rollout of 1.1.0 is reported failed", func() error {
		_, s, err := p.imagePolicy("webapp", "images-fail")
		if err != nil {
			return err
		}
		if len(s.Failed) != 1 || s.Failed[0].Tag != "1.1.0" || s.Failed[0].From != "1.0.0" {
			return fmt.Errorf("state %+v (rollout %+v)", s, s.Rollout)
		}
		if !strings.Contains(s.Failed[0].Reason, "Progress deadline exceeded") {
			return fmt.Errorf("reason %q", s.Failed[0].Reason)
		}
		return nil
	})
	m := p.metrics()
	const lastFailed = `tether_image_last_failed_rollout_timestamp_seconds{policy="webapp",sync="images-fail"} `
	failedAt, _ := metricValue(m, lastFailed)
	if !strings.Contains(m, `tether_image_rollouts_total{outcome="failed",policy="webapp",sync="images-fail"} 1`) ||
		!strings.Contains(m, `tether_image_failed_tags{policy="webapp",sync="images-fail"} 1`) || failedAt < float64(time.Now().Add(-5*time.Minute).Unix()) {
		t.Errorf("metrics:\n%s", grepLines(m, "tether_image_"))
	}

	// The tag in git is tether's own: the next round writes back the tag
	// that ran before, saying why, and the Deployment is healthy again.
	// It is no manual rollback: nothing is held.
	eventually(t, 3*time.Minute, "tether rolls back to 1.0.0 and the Deployment is healthy", func() error {
		d, img, err := deploymentImage(ctx, client, ns)
		if err != nil {
			return err
		}
		_, s, err := p.imagePolicy("webapp", "images-fail")
		if err != nil {
			return err
		}
		if img != image+":1.0.0" || s.InGit != "1.0.0" || s.Hold != nil || s.Rollout == nil || s.Rollout.Tag != "1.0.0" || s.Rollout.Outcome != images.RolloutSucceeded || s.LastGood != "1.0.0" {
			return fmt.Errorf("image %s, state %+v (rollout %+v)", img, s, s.Rollout)
		}
		if d.Status.AvailableReplicas != 1 || d.Status.UpdatedReplicas != 1 {
			return fmt.Errorf("available %d, updated %d", d.Status.AvailableReplicas, d.Status.UpdatedReplicas)
		}
		return nil
	})
	if _, err := repo.Git("fetch", "--quiet", "origin", "main"); err != nil {
		t.Fatal(err)
	}
	log, _ := repo.Git("log", "--format=%s%n%b", beforeFailure+"..origin/main")
	if !strings.HasPrefix(log, "Roll back images of images-fail\n") || !strings.Contains(log, image+":1.1.0 → "+image+":1.0.0 (policy webapp, app/deployment.yaml:19): rollback, 1.1.0 failed its rollout") ||
		!strings.Contains(log, "Update images of images-fail") {
		t.Errorf("history since the failure:\n%s", log)
	}
	rolledBack := head(t, repo, "main")

	// Restarted, the agent still knows: 1.1.0 is newer than the tag in
	// git, yet it is not proposed again; the failure's time is back in
	// the metrics before anything else happens.
	p.signal(syscall.SIGKILL)
	<-p.done
	p2 := startAgent(t, sa.Kubeconfig, cfg)
	eventually(t, time.Minute, "the restarted agent reports the failed tag", func() error {
		ps, s, err := p2.imagePolicy("webapp", "images-fail")
		if err != nil {
			return err
		}
		if ps.Latest != "1.1.0" || len(s.Failed) != 1 || s.Failed[0].Tag != "1.1.0" || s.InGit != "1.0.0" || s.Target != "1.0.0" {
			return fmt.Errorf("policy %+v, state %+v", ps, s)
		}
		if got, _ := metricValue(p2.metrics(), lastFailed); got != failedAt {
			return fmt.Errorf("the failure's time after the restart: %v, want %v", got, failedAt)
		}
		return nil
	})
	time.Sleep(15 * time.Second) // three scans, and write-back rounds after each
	if h := head(t, repo, "main"); h != rolledBack {
		t.Fatalf("tether committed again after the restart: %s", h)
	}
	if _, s, _ := p2.imagePolicy("webapp", "images-fail"); s.Hold != nil {
		t.Errorf("tether's own rollback was taken for a manual one: %+v", s.Hold)
	}

	// A newer tag proceeds (and, with the quota gone, rolls out).
	if err := client.CoreV1().ResourceQuotas(ns).Delete(ctx, "one-pod", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	push(t, reg, "", "webapp", "1.2.0")
	eventually(t, 3*time.Minute, "1.2.0 rolls out", func() error {
		_, s, err := p2.imagePolicy("webapp", "images-fail")
		if err != nil {
			return err
		}
		if s.InGit != "1.2.0" || s.Rollout == nil || s.Rollout.Tag != "1.2.0" || s.Rollout.Outcome != images.RolloutSucceeded {
			return fmt.Errorf("state %+v", s)
		}
		return nil
	})
}

// A commit lands between tether's fetch and its push: tether fetches
// again, redoes the change on the new tip and pushes; both commits, and
// both changes, are in the history and the server never sees a forced
// update.
func TestImagesPushRace(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	reg := startRegistry(t, registry.Options{})
	push(t, reg, "", "webapp", "1.0.0")
	var repo *gitserver.Repo
	var tetherPushes atomic.Int64
	var other string
	const notes = "a file the racing commit adds\n"
	srv, err := gitserver.Start(gitserver.Options{BeforePush: func(r *http.Request) {
		if !strings.HasPrefix(r.UserAgent(), "go-git") || tetherPushes.Add(1) != 1 {
			return
		}
		// Someone else pushes first (straight into the bare repository,
		// not through this server).
		clone := filepath.Join(os.TempDir(), fmt.Sprintf("tether-race-%d", time.Now().UnixNano()))
		defer os.RemoveAll(clone)
		run := func(args ...string) string {
			out, err := exec.Command("git", args...).CombinedOutput()
			if err != nil {
				t.Errorf("git %v: %v\n%s", args, err, out)
			}
			return strings.TrimSpace(string(out))
		}
		run("clone", "--quiet", repo.Bare, clone)
		// Another file, and another line of the file tether changes: a
		// retry that reused the stale tree would lose both.
		deployment := filepath.Join(clone, "app", "deployment.yaml")
		data, err := os.ReadFile(deployment)
		if err != nil {
			t.Error(err)
			return
		}
		if err := os.WriteFile(deployment, []byte(strings.Replace(string(data), "replicas: 1\n", "replicas: 2\n", 1)), 0o644); err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(filepath.Join(clone, "NOTES.md"), []byte(notes), 0o644); err != nil {
			t.Error(err)
		}
		run("-C", clone, "add", "-A")
		run("-C", clone, "-c", "user.name=someone", "-c", "user.email=someone@example.com", "commit", "--quiet", "-m", "a commit that races tether")
		run("-C", clone, "push", "--quiet", "origin", "HEAD:main")
		other = run("-C", clone, "rev-parse", "HEAD")
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if repo, err = srv.CreateRepo("images-race"); err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][]string{{"receive.denyNonFastForwards", "true"}, {"core.logAllRefUpdates", "true"}} {
		if out, err := exec.Command("git", "-C", repo.Bare, "config", kv[0], kv[1]).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	first, err := repo.Commit("web 1.0.0", webappFiles("images-race", reg.Host+"/webapp:1.0.0", 600, 0))
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, imagesConfig(insecureRegistry(reg.Host), semverPolicy("webapp", reg.Host+"/webapp", "5s", ">=1.0.0"), imageSync("images-race", repo.URL, "")))
	p := startAgent(t, sa.Kubeconfig, cfg)
	push(t, reg, "", "webapp", "1.1.0")
	eventually(t, 2*time.Minute, "tether's commit lands after the racing one", func() error {
		if h := head(t, repo, "main"); h == first || h == other {
			return fmt.Errorf("main at %s", h)
		}
		return nil
	})
	pull(t, repo)
	log, _ := repo.Git("log", "--format=%H %an %s", first+"..HEAD")
	lines := strings.Split(log, "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "tether Update images of images-race") || !strings.HasPrefix(lines[1], other+" someone a commit that races tether") {
		t.Errorf("history after the race:\n%s", log)
	}
	// Both changes are in the final tree: the racing commit's file and
	// line, and tether's image.
	if got, _ := os.ReadFile(filepath.Join(repo.Work, "NOTES.md")); string(got) != notes {
		t.Errorf("NOTES.md after the race: %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(repo.Work, "app", "deployment.yaml")); !strings.Contains(string(got), "replicas: 2\n") ||
		!strings.Contains(string(got), "image: "+reg.Host+"/webapp:1.1.0 # tether:image webapp") {
		t.Errorf("app/deployment.yaml after the race:\n%s", got)
	}
	// tether pushed twice: once refused (the race), once on the new tip.
	if n := tetherPushes.Load(); n != 2 {
		t.Errorf("tether sent %d pushes, want 2", n)
	}
	if w, err := p.writeBack("images-race"); err != nil || w.Error != "" {
		t.Errorf("the newest write-back round: %+v %v", w, err)
	}
	// Every update of main was a fast-forward.
	onlyFastForwards(t, repo.Bare, "main", 0)
}

// onlyFastForwards checks that branch of the bare repository moved only
// by fast-forwards (each entry of its reflog an ancestor of the next),
// and at least min times.
func onlyFastForwards(t *testing.T, bare, branch string, min int) {
	t.Helper()
	reflog, err := exec.Command("git", "-C", bare, "reflog", "show", "--format=%H", "refs/heads/"+branch).Output()
	if err != nil {
		t.Fatal(err)
	}
	hashes := strings.Fields(string(reflog))
	if len(hashes) < min {
		t.Errorf("the reflog of %s has %d entries, want at least %d", branch, len(hashes), min)
	}
	for i := 0; i+1 < len(hashes); i++ {
		if err := exec.Command("git", "-C", bare, "merge-base", "--is-ancestor", hashes[i+1], hashes[i]).Run(); err != nil {
			t.Errorf("%s moved from %s to %s without a fast-forward", branch, hashes[i+1], hashes[i])
		}
	}
}

// Write-back over SSH with the sync's key, to a separate branch (a pull
// request flow): main and the cluster stay as they are. Later rounds merge
// main into the branch while it holds only tether's commits, start from
// main again once main merged it, and build on it (saying so) when someone
// else committed there; the branch only ever fast-forwards.
func TestImagesWriteBackSSHToBranch(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	reg := startRegistry(t, registry.Options{})
	push(t, reg, "", "webapp", "1.0.0", "1.1.0")
	srv, repo, first := gitRepo(t, gitserver.Options{}, "images-ssh", "web 1.0.0", webappFiles("images-ssh", reg.Host+"/webapp:1.0.0", 600, 0))
	if out, err := exec.Command("git", "-C", repo.Bare, "config", "core.logAllRefUpdates", "true").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id_ed25519")
	pub, err := sshserver.GenerateKey(keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	sshd, err := sshserver.Start(sshserver.Options{Root: srv.Root, AuthorizedKeys: []string{pub}})
	if err != nil {
		t.Fatal(err)
	}
	defer sshd.Close()
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(sshd.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	syncs := fmt.Sprintf(`  - name: images-ssh
    source:
      url: %s
      interval: 5s
      auth:
        sshKeyFile: %s
        knownHostsFile: %s
    path: app
    imageUpdates:
      branch: image-updates
      author:
        name: image bot
        email: bot@example.com
`, sshd.RepoURL("images-ssh"), keyFile, knownHosts)
	cfg := writeConfig(t, imagesConfig(insecureRegistry(reg.Host), semverPolicy("webapp", reg.Host+"/webapp", "5s", ">=1.0.0"), syncs))
	httpPushes := srv.Count("receive-pack") // the test's own, over HTTP
	p := startAgent(t, sa.Kubeconfig, cfg)
	eventually(t, 2*time.Minute, "tether pushes branch image-updates over SSH", func() error {
		if head(t, repo, "image-updates") == "" {
			w, err := p.writeBack("images-ssh")
			return fmt.Errorf("no branch yet: %+v %v", w, err)
		}
		return nil
	})
	branch := head(t, repo, "image-updates")
	if _, err := repo.Git("fetch", "--quiet", "origin", "image-updates"); err != nil {
		t.Fatal(err)
	}
	if parent, _ := repo.Git("rev-parse", branch+"~1"); parent != first {
		t.Errorf("the branch's commit is not on top of main: parent %s, main %s", parent, first)
	}
	if author, _ := repo.Git("log", "-1", "--format=%an <%ae>", branch); author != "image bot <bot@example.com>" {
		t.Errorf("author %q", author)
	}
	if h := head(t, repo, "main"); h != first {
		t.Errorf("main moved: %s", h)
	}
	if n := srv.Count("receive-pack"); n != httpPushes {
		t.Errorf("tether pushed over HTTP (%d pushes), not over SSH", n-httpPushes)
	}
	// A later round builds on the branch and finds nothing to change.
	time.Sleep(12 * time.Second)
	if h := head(t, repo, "image-updates"); h != branch {
		t.Errorf("the branch moved again: %s", h)
	}

	git := func(args ...string) string {
		t.Helper()
		out, err := repo.Git(args...)
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return out
	}
	// waitBranch waits for tether's next commit on the branch (after
	// prev) and returns it, with the round that pushed it.
	waitBranch := func(what, prev string) (string, agent.ImageWriteBackStatus) {
		t.Helper()
		var tip string
		var round agent.ImageWriteBackStatus
		eventually(t, 2*time.Minute, what, func() error {
			tip = head(t, repo, "image-updates")
			w, err := p.writeBack("images-ssh")
			if err != nil {
				return err
			}
			if tip == prev || w.Commit != tip {
				return fmt.Errorf("branch at %s, newest round %+v", tip, w)
			}
			round = w
			return nil
		})
		git("fetch", "--quiet", "origin", "image-updates", "main")
		return tip, round
	}

	// main moves (the pull request is not merged) and a new tag appears:
	// tether merges main into the branch, both tips as parents, main's
	// tree with the marker set again.
	mainMoved, err := repo.Commit("someone edits the README", map[string]string{"README.md": "edited on main\n"})
	if err != nil {
		t.Fatal(err)
	}
	push(t, reg, "", "webapp", "1.2.0")
	merge, round := waitBranch("tether merges main into the branch", branch)
	if parents := git("log", "-1", "--format=%P", merge); parents != branch+" "+mainMoved || round.Start != "merge" {
		t.Errorf("the merge's parents %q (want the branch %s and main %s), round %+v", parents, branch, mainMoved, round)
	}
	if readme := git("show", merge+":README.md"); readme != "edited on main" {
		t.Errorf("the merge's README.md: %q", readme)
	}
	if d := git("show", merge+":app/deployment.yaml"); !strings.Contains(d, "image: "+reg.Host+"/webapp:1.2.0 # tether:image webapp") {
		t.Errorf("the merge's deployment:\n%s", d)
	}
	if diff := git("diff", "--stat", mainMoved, merge); !strings.Contains(diff, "app/deployment.yaml") || strings.Contains(diff, "README") {
		t.Errorf("the branch differs from main in more than the image:\n%s", diff)
	}

	// The pull request is merged: the next round starts from main again.
	git("-c", "user.name=reviewer", "-c", "user.email=reviewer@example.com", "merge", "--quiet", "--no-ff", "-m", "Merge image updates", "origin/image-updates")
	git("push", "--quiet", "origin", "HEAD:refs/heads/main")
	merged := git("rev-parse", "HEAD")
	push(t, reg, "", "webapp", "1.3.0")
	forward, round := waitBranch("tether starts from main again", merge)
	if parents := git("log", "-1", "--format=%P", forward); parents != merged || round.Start != "forward" {
		t.Errorf("the commit after the merge: parents %q, want main %s; round %+v", parents, merged, round)
	}

	// Someone else commits on the branch, and main moves: tether keeps
	// building on the branch (no merge of someone's work) and says so.
	git("checkout", "--quiet", "-B", "image-updates", "origin/image-updates")
	theirs, err := repo.Commit("notes for the reviewer", map[string]string{"NOTES.md": "please check the dashboards\n"})
	if err != nil {
		t.Fatal(err)
	}
	git("checkout", "--quiet", "main")
	if _, err := repo.Commit("main moves again", map[string]string{"README.md": "edited again\n"}); err != nil {
		t.Fatal(err)
	}
	push(t, reg, "", "webapp", "1.4.0")
	stacked, round := waitBranch("tether stacks on the branch", theirs)
	if parents := git("log", "-1", "--format=%P", stacked); parents != theirs || round.Start != "stack" ||
		!strings.Contains(round.BranchNote, "commits tether did not write ("+theirs[:12]+" by ") {
		t.Errorf("after someone else's commit: parents %q (want %s), round %+v", parents, theirs, round)
	}
	if out, _ := exec.Command(tetherBinary(t), "images", "--server", p.url).CombinedOutput(); !strings.Contains(string(out), "branch image-updates: the sync's branch moved") {
		t.Errorf("tether images does not show the branch note:\n%s", out)
	}

	// Every update of the branch was a fast-forward.
	onlyFastForwards(t, repo.Bare, "image-updates", 5)
}

// Bad input is reported in /status, with the sync still applying what git
// holds: an unreachable registry, 401, an unknown repository, a 429 storm
// (bounded requests), a malformed marker and one naming no policy
// (file:line), and a refused push. A registry with TLS and htpasswd works
// with the right password. (100,000 tags: TestImagesManyTagsPaged.)
func TestImagesBadInput(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	ctx := context.Background()
	client, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	const password = "htpasswd-Pa55-word"
	secure := startRegistry(t, registry.Options{TLS: true, Users: map[string]string{"robot": password}})
	push(t, secure, "robot", "webapp", "1.0.0", "1.3.0")
	plain := startRegistry(t, registry.Options{})
	var storm atomic.Int64
	limited := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storm.Add(1)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer limited.Close()
	stormHost := strings.TrimPrefix(limited.URL, "http://")
	closedPort := freePort(t)

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	for path, content := range map[string]string{ca: string(secure.CACertPEM()), good: password, bad: "wrong-" + password} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := gitserver.Start(gitserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	repo, err := srv.CreateRepo("images-bad")
	if err != nil {
		t.Fatal(err)
	}
	files := webappFiles("images-bad", secure.Host+"/webapp:1.0.0", 600, 0)
	files["app/other.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n  namespace: images-bad\ndata:\n  a: x # tether:image\n  b: y # tether:image nosuchpolicy\n"
	files["app/kustomization.yaml"] += "- other.yaml\n"
	head1, err := repo.Commit("app", files)
	if err != nil {
		t.Fatal(err)
	}
	refused, err := srv.CreateRepo("images-refused")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := refused.Commit("app", webappFiles("images-refused", secure.Host+"/webapp:1.0.0", 600, 0)); err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(refused.Bare, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	registries := fmt.Sprintf("  - host: %s\n    caFile: %s\n    username: robot\n    passwordFile: %s\n", secure.Host, ca, good) +
		insecureRegistry(plain.Host) + insecureRegistry(stormHost) + insecureRegistry("127.0.0.1:"+strconv.Itoa(closedPort))
	policies := semverPolicy("webapp", secure.Host+"/webapp", "5s", ">=1.0.0") +
		semverPolicy("unreachable", "127.0.0.1:"+strconv.Itoa(closedPort)+"/x", "5s", "*") +
		semverPolicy("unknown", plain.Host+"/no/such/repo", "5s", "*") +
		semverPolicy("storm", stormHost+"/x", "5s", "*")
	syncs := imageSync("images-bad", repo.URL, "") + imageSync("images-refused", refused.URL, "")
	cfgPath := writeConfig(t, imagesConfig(registries, policies, syncs))
	started := time.Now()
	p := startAgent(t, sa.Kubeconfig, cfgPath)

	eventually(t, 3*time.Minute, "every problem is reported", func() error {
		st, err := p.status()
		if err != nil || st.Images == nil {
			return fmt.Errorf("status: %v", err)
		}
		byName := map[string]agent.ImagePolicyStatus{}
		for _, ps := range st.Images.Policies {
			byName[ps.Name] = ps
		}
		for name, want := range map[string]string{
			"unreachable": "connection refused",
			"unknown":     "no such repository (HTTP 404)",
			"storm":       "rate limiting (HTTP 429)",
		} {
			if !strings.Contains(byName[name].LastScanError, want) {
				return fmt.Errorf("policy %s: error %q, want %q", name, byName[name].LastScanError, want)
			}
		}
		if w := byName["webapp"]; w.Latest != "1.3.0" {
			return fmt.Errorf("TLS + htpasswd: %+v", w)
		}
		wb, err := p.writeBack("images-bad")
		if err != nil {
			return err
		}
		problems := strings.Join(wb.Problems, "\n")
		if !strings.Contains(problems, "app/other.yaml:7: malformed marker") || !strings.Contains(problems, `app/other.yaml:8: the marker names policy "nosuchpolicy"`) {
			return fmt.Errorf("problems %q", wb.Problems)
		}
		// The last round may have found nothing left to do: what tether
		// wrote is in the policy's record.
		if _, ps, _ := p.imagePolicy("webapp", "images-bad"); ps.LastWritten == nil || ps.LastWritten.Tag != "1.3.0" || ps.LastWritten.Commit == "" {
			return fmt.Errorf("the valid marker was not committed: %+v; policy webapp in the sync: %+v", wb, ps)
		}
		rf, err := p.writeBack("images-refused")
		if err != nil {
			return err
		}
		if !rf.Refused || !strings.Contains(rf.Error, "main is protected") && !strings.Contains(rf.Error, "pre-receive hook declined") {
			return fmt.Errorf("refused push: %+v", rf)
		}
		return nil
	})
	t.Logf("every problem reported %s after the agent started", time.Since(started).Round(time.Second))
	// The syncs still apply what git holds.
	eventually(t, 2*time.Minute, "the sync applies tether's commit despite the bad markers", func() error {
		s, err := p.syncStatus("images-bad")
		if err != nil || s.Applied == nil || strings.Contains(s.Applied.Revision, head1) {
			return fmt.Errorf("applied %+v: %v", s.Applied, err)
		}
		_, img, err := deploymentImage(ctx, client, "images-bad")
		if err != nil || img != secure.Host+"/webapp:1.3.0" {
			return fmt.Errorf("image %s: %v", img, err)
		}
		return nil
	})
	if s, err := p.syncStatus("images-refused"); err != nil || s.Applied == nil {
		t.Errorf("the sync with the refused push applies nothing: %+v %v", s, err)
	}

	// No hot loops: over 30 s, few requests to the 429 registry and few
	// pushes to the refusing repository.
	before, pushes := storm.Load(), srv.Count("receive-pack")
	time.Sleep(30 * time.Second)
	if n := storm.Load() - before; n > 8 {
		t.Errorf("%d requests to the rate-limiting registry in 30s", n)
	}
	if n := srv.Count("receive-pack") - pushes; n > 4 {
		t.Errorf("%d pushes to the refusing repository in 30s", n)
	}

	// The wrong password: 401, and the password is nowhere.
	cfg2 := strings.Replace(imagesConfig(registries, policies, syncs), good, bad, 1)
	writeFileAtomically(t, cfgPath, cfg2)
	eventually(t, time.Minute, "a wrong password is reported as 401", func() error {
		ps, _, _ := p.imagePolicy("webapp", "images-bad")
		if !strings.Contains(ps.LastScanError, "401") {
			return fmt.Errorf("error %q", ps.LastScanError)
		}
		return nil
	})
	// The password is in none of the bytes the agent hands out: /status
	// as sent, `tether images -o json`, the log and the metrics.
	resp, err := http.Get(p.url + "/status")
	if err != nil {
		t.Fatal(err)
	}
	rawStatus, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Contains(rawStatus, []byte("401")) {
		t.Fatalf("/status: %v\n%s", err, rawStatus)
	}
	imagesJSON, _ := exec.Command(tetherBinary(t), "images", "--server", p.url, "-o", "json").CombinedOutput()
	if !bytes.Contains(imagesJSON, []byte(`"lastScanError"`)) {
		t.Fatalf("tether images -o json:\n%s", imagesJSON)
	}
	for where, text := range map[string]string{"/status": string(rawStatus), "tether images -o json": string(imagesJSON), "log": p.out.String(), "metrics": p.metrics()} {
		for _, secret := range []string{password, "wrong-" + password, base64.StdEncoding.EncodeToString([]byte("robot:wrong-" + password))} {
			if strings.Contains(text, secret) {
				t.Errorf("the registry password is in the %s", where)
			}
		}
	}
}

// 100,000 tags (of 112 characters), served in pages of 1,000 with Link
// headers by a registry front that pages (Debian's docker-registry does
// not): the scan follows every page, finds the one tag the policy wants,
// and the agent's peak memory grows little over its baseline, since only
// the best tags are kept.
func TestImagesManyTagsPaged(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	const n = 100_000
	// Tags in lexical order of i; the policy orders them by the extracted
	// number, which is highest for one i in the middle.
	tag := func(i int) string {
		sum := sha512.Sum512([]byte(strconv.Itoa(i)))
		return fmt.Sprintf("main-%08x%s-%d", i, hex.EncodeToString(sum[:])[:88], 1_700_000_000+(i*7919)%n)
	}
	want := ""
	for i := range n {
		if (i*7919)%n == n-1 {
			want = tag(i)
		}
	}
	pager := &registry.Pager{Repository: "many", MaxPage: 1000}
	pager.SetTags(3, tag)
	front := httptest.NewServer(pager)
	defer front.Close()
	host := strings.TrimPrefix(front.URL, "http://")
	secretFile := filepath.Join(t.TempDir(), "notify-secret")
	if err := os.WriteFile(secretFile, []byte("paging-s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, repo, _ := gitRepo(t, gitserver.Options{}, "images-many", "app", map[string]string{
		"app/kustomization.yaml": kustomization + "- ns.yaml\n", "app/ns.yaml": nsYAML("images-many")})
	registries := fmt.Sprintf("  - host: %s\n    insecure: true\n    notificationSecretFile: %s\n", host, secretFile)
	policy := fmt.Sprintf("  - name: many\n    image: %s/many\n    interval: 1h\n    numerical: asc\n    filterTags:\n      pattern: '^main-[a-f0-9]+-(?P<ts>[0-9]+)$'\n      extract: ts\n", host)
	sync := fmt.Sprintf("  - name: images-many\n    source:\n      url: %s\n      interval: 5s\n    path: app\n", repo.URL)
	p := startAgent(t, sa.Kubeconfig, writeConfig(t, imagesConfig(registries, policy, sync)))
	eventually(t, 2*time.Minute, "the first scan and the first apply", func() error {
		ps, _, _ := p.imagePolicy("many", "images-many")
		if ps.TagsSeen != 3 {
			return fmt.Errorf("policy %+v", ps)
		}
		s, err := p.syncStatus("images-many")
		if err != nil || s.Applied == nil {
			return fmt.Errorf("applied %+v: %v", s.Applied, err)
		}
		return nil
	})
	time.Sleep(10 * time.Second) // two more syncs: the agent at rest
	// The peak so far is the start and the first apply: reset it to the
	// memory in use now, so the peak after the scan is the scan's.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0); err != nil {
		t.Fatalf("resetting the agent's peak RSS: %v", err)
	}
	baseline := peakRSS(t, p.cmd.Process.Pid)

	pager.SetTags(n, tag)
	pages := pager.Pages.Load()
	notify := fmt.Sprintf(`{"events":[{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"many","tag":%q}}]}`, want)
	req, _ := http.NewRequest(http.MethodPost, p.hookURL+"/hooks/registry", strings.NewReader(notify))
	req.Header.Set("Authorization", "Bearer paging-s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("notification: %s", resp.Status)
	}
	eventually(t, 2*time.Minute, "the scan of 100,000 tags", func() error {
		ps, _, _ := p.imagePolicy("many", "images-many")
		if ps.TagsSeen != n {
			return fmt.Errorf("policy %+v", ps)
		}
		if ps.Latest != want || ps.TagsMatched != n || ps.LastScanError != "" {
			return fmt.Errorf("latest %q (want %q), matched %d, error %q", ps.Latest, want, ps.TagsMatched, ps.LastScanError)
		}
		return nil
	})
	if got := pager.Pages.Load() - pages; got != n/1000 {
		t.Errorf("%d tag pages served for one scan, want %d", got, n/1000)
	}
	peak := peakRSS(t, p.cmd.Process.Pid)
	t.Logf("peak RSS %d MiB before the scan of %d tags, %d MiB after", baseline>>20, n, peak>>20)
	if grown := peak - baseline; grown > maxManyTagsGrowth {
		t.Errorf("the agent's peak RSS grew by %d MiB scanning %d tags (baseline %d MiB)", grown>>20, n, baseline>>20)
	}
}

// maxManyTagsGrowth bounds the peak memory a scan of 100,000 tags may
// add. The tags alone are 11 MiB of text: an agent that kept them all
// grew by 32 MiB here, the agent that keeps the best 51 by 4 MiB.
const maxManyTagsGrowth = 16 << 20

// peakRSS reads a process's VmHWM.
func peakRSS(t *testing.T, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// gitRepo starts a git server with one repository holding files (its
// first commit, msg) and stops it when the test ends.
func gitRepo(t *testing.T, opts gitserver.Options, name, msg string, files map[string]string) (*gitserver.Server, *gitserver.Repo, string) {
	t.Helper()
	srv, err := gitserver.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	repo, err := srv.CreateRepo(name)
	if err != nil {
		t.Fatal(err)
	}
	first, err := repo.Commit(msg, files)
	if err != nil {
		t.Fatal(err)
	}
	return srv, repo, first
}
