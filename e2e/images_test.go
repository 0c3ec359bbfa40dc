//go:build e2e

package e2e

import (
	"context"
	"fmt"
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
	out, err := exec.Command(tetherBinary(t), "images", "--server", p.url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "webapp") || !strings.Contains(string(out), "1.1.0 Succeeded") {
		t.Errorf("tether images: %v\n%s", err, out)
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
	push(t, reg, "", "webapp", "1.1.0")
	eventually(t, 3*time.Minute, "the rollout of 1.1.0 is reported failed", func() error {
		_, s, err := p.imagePolicy("webapp", "images-fail")
		if err != nil {
			return err
		}
		if s.Rollout == nil || s.Rollout.Tag != "1.1.0" || s.Rollout.Outcome != images.RolloutFailed || len(s.Failed) != 1 || s.Failed[0].Tag != "1.1.0" {
			return fmt.Errorf("state %+v (rollout %+v)", s, s.Rollout)
		}
		if !strings.Contains(s.Rollout.Message, "Progress deadline exceeded") {
			return fmt.Errorf("message %q", s.Rollout.Message)
		}
		return nil
	})
	failedHead := head(t, repo, "main")
	if m := p.metrics(); !strings.Contains(m, `tether_image_rollouts_total{outcome="failed",policy="webapp",sync="images-fail"} 1`) ||
		!strings.Contains(m, `tether_image_failed_tags{policy="webapp",sync="images-fail"} 1`) {
		t.Errorf("metrics:\n%s", grepLines(m, "tether_image_"))
	}

	// Restarted, the agent still knows: nothing new is proposed.
	p.signal(syscall.SIGKILL)
	<-p.done
	p2 := startAgent(t, sa.Kubeconfig, cfg)
	eventually(t, time.Minute, "the restarted agent reports the failed tag", func() error {
		ps, s, err := p2.imagePolicy("webapp", "images-fail")
		if err != nil {
			return err
		}
		if ps.Latest != "1.1.0" || len(s.Failed) != 1 || s.Failed[0].Tag != "1.1.0" {
			return fmt.Errorf("policy %+v, state %+v", ps, s)
		}
		return nil
	})
	time.Sleep(15 * time.Second)
	if h := head(t, repo, "main"); h != failedHead {
		t.Fatalf("tether committed again after the failure: %s", h)
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
// again, redoes the change on the new tip and pushes; both commits are in
// the history and the server never sees a forced update.
func TestImagesPushRace(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	reg := startRegistry(t, registry.Options{})
	push(t, reg, "", "webapp", "1.0.0")
	var repo *gitserver.Repo
	var raced atomic.Bool
	var other string
	srv, err := gitserver.Start(gitserver.Options{BeforePush: func(r *http.Request) {
		if !strings.HasPrefix(r.UserAgent(), "go-git") || raced.Swap(true) {
			return
		}
		// Someone else pushes first (straight into the bare repository,
		// not through this server).
		clone := filepath.Join(os.TempDir(), fmt.Sprintf("tether-race-%d", time.Now().UnixNano()))
		defer os.RemoveAll(clone)
		for _, args := range [][]string{
			{"clone", "--quiet", repo.Bare, clone},
			{"-C", clone, "-c", "user.name=someone", "-c", "user.email=someone@example.com", "commit", "--quiet", "--allow-empty", "-m", "a commit that races tether"},
			{"-C", clone, "push", "--quiet", "origin", "HEAD:main"},
			{"-C", clone, "rev-parse", "HEAD"},
		} {
			out, err := exec.Command("git", args...).CombinedOutput()
			if err != nil {
				t.Errorf("git %v: %v\n%s", args, err, out)
				return
			}
			other = strings.TrimSpace(string(out))
		}
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
		w, err := p.writeBack("images-race")
		if err != nil {
			return err
		}
		if w.Commit == "" || w.Tries != 2 {
			return fmt.Errorf("write-back %+v", w)
		}
		return nil
	})
	pull(t, repo)
	log, _ := repo.Git("log", "--format=%H %s", first+"..HEAD")
	lines := strings.Split(log, "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "Update images of images-race") || !strings.HasPrefix(lines[1], other+" a commit that races tether") {
		t.Errorf("history after the race:\n%s", log)
	}
	// Every update of main was a fast-forward.
	reflog, err := exec.Command("git", "-C", repo.Bare, "reflog", "show", "--format=%H", "refs/heads/main").Output()
	if err != nil {
		t.Fatal(err)
	}
	hashes := strings.Fields(string(reflog))
	for i := 0; i+1 < len(hashes); i++ {
		if err := exec.Command("git", "-C", repo.Bare, "merge-base", "--is-ancestor", hashes[i+1], hashes[i]).Run(); err != nil {
			t.Errorf("main moved from %s to %s without a fast-forward", hashes[i+1], hashes[i])
		}
	}
}

// Write-back over SSH with the sync's key, to a separate branch (a pull
// request flow): main and the cluster stay as they are.
func TestImagesWriteBackSSHToBranch(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	reg := startRegistry(t, registry.Options{})
	push(t, reg, "", "webapp", "1.0.0", "1.1.0")
	srv, repo, first := gitRepo(t, gitserver.Options{}, "images-ssh", "web 1.0.0", webappFiles("images-ssh", reg.Host+"/webapp:1.0.0", 600, 0))
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
}

// Bad input is reported in /status, with the sync still applying what git
// holds: an unreachable registry, 401, an unknown repository, a 429 storm
// (bounded requests), 100,000 tags (bounded memory), a malformed marker
// and one naming no policy (file:line), and a refused push. A registry
// with TLS and htpasswd works with the right password.
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
	digest := push(t, plain, "", "many", "0")
	tags := make([]string, 100_000)
	for i := range tags {
		tags[i] = strconv.Itoa(i + 1)
	}
	if err := plain.TagDirectly("many", digest, tags); err != nil {
		t.Fatal(err)
	}
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
		semverPolicy("storm", stormHost+"/x", "5s", "*") +
		// Listing 100,000 tags costs the registry seconds of CPU: one scan
		// (at the start) is enough here.
		fmt.Sprintf("  - name: many\n    image: %s/many\n    interval: 1h\n    numerical: asc\n", plain.Host)
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
		if m := byName["many"]; m.TagsSeen != 100_001 || m.Latest != "100000" {
			return fmt.Errorf("100,000 tags: %+v", m)
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
	st, _ := p.status()
	raw := fmt.Sprintf("%+v", st)
	for where, text := range map[string]string{"status": raw, "log": p.out.String(), "metrics": p.metrics()} {
		if strings.Contains(text, password) {
			t.Errorf("the registry password is in the %s", where)
		}
	}

	// Bounded memory: 100,000 tags were scanned.
	if hwm := peakRSS(t, p.cmd.Process.Pid); hwm > 400<<20 {
		t.Errorf("the agent's peak RSS is %d MiB", hwm>>20)
	}
}

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
