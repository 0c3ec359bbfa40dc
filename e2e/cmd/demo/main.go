// Command demo is `make demo`: it starts a local control plane and a git
// server, pushes the example web app, runs the tether agent against it as a
// ServiceAccount with the install bundle's RBAC, shows the app synced and
// Healthy, then pushes a change, sends the webhook a git host would, and
// shows the change applied. On a terminal it then keeps everything running
// until Ctrl-C so you can look around; otherwise (CI) it stops.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/e2e/cluster"
	"github.com/tether-gitops/tether/e2e/gitserver"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		stop()
		os.Exit(1)
	}
}

type demo struct {
	bin      string
	examples string
	out      io.Writer
	cluster  *cluster.Cluster
	work     string
}

const (
	gitUser     = "demo"
	gitPassword = "demo-password"
	hookSecret  = "demo-webhook-secret"
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin-dir", "bin", "folder with tether and the control plane binaries")
	examples := fs.String("examples", "examples", "folder with the example app")
	manifests := fs.String("manifests", "manifests", "the install bundle (for its RBAC)")
	keep := fs.String("keep", "auto", "keep running until Ctrl-C: yes, no, or auto (yes on a terminal outside CI)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bin, err := filepath.Abs(*binDir)
	if err != nil {
		return err
	}
	d := &demo{bin: bin, examples: *examples, out: stdout}

	d.step("starting a local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
	d.cluster, err = cluster.Start(ctx, cluster.Options{BinDir: bin, Log: stdout})
	if err != nil {
		return err
	}
	defer d.cluster.Stop()
	d.work = filepath.Join(d.cluster.Dir, "demo")
	if err := os.MkdirAll(d.work, 0o700); err != nil {
		return err
	}

	d.step("starting a git server (HTTPS with its own CA, basic auth) and pushing the example app")
	git, err := gitserver.Start(gitserver.Options{Username: gitUser, Password: gitPassword, TLS: true})
	if err != nil {
		return err
	}
	defer git.Close()
	repo, err := git.CreateRepo("webapp")
	if err != nil {
		return err
	}
	sha, err := repo.CopyDir("webapp 1.0.0", filepath.Join(d.examples, "webapp"), ".")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pushed %s at %s\n", repo.URL, sha[:12])

	d.step("installing tether's ServiceAccount and RBAC from manifests/ (no system:masters)")
	if err := d.kubectl(ctx, "apply", "--server-side",
		"-f", filepath.Join(*manifests, "namespace.yaml"),
		"-f", filepath.Join(*manifests, "serviceaccount.yaml"),
		"-f", filepath.Join(*manifests, "rbac.yaml")); err != nil {
		return err
	}
	sa, err := d.cluster.ServiceAccount(ctx, "tether-system", "tether", 24*time.Hour)
	if err != nil {
		return err
	}

	d.step("starting the tether agent: sync webapp-dev follows overlays/dev on branch main")
	cfgPath, err := d.writeConfig(repo.URL, git.CACertPEM())
	if err != nil {
		return err
	}
	port, err := cluster.FreePort()
	if err != nil {
		return err
	}
	hookPort, err := cluster.FreePort()
	if err != nil {
		return err
	}
	statusURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	hookURL := fmt.Sprintf("http://127.0.0.1:%d", hookPort)
	logPath := filepath.Join(d.work, "tether.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	agentCmd := exec.CommandContext(ctx, filepath.Join(bin, "tether"), "run",
		"--kubeconfig", sa.Kubeconfig,
		"--config", cfgPath,
		"--data-dir", filepath.Join(d.work, "data"),
		"--namespace", "tether-system",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--webhook-listen", fmt.Sprintf("127.0.0.1:%d", hookPort))
	agentCmd.Stdout, agentCmd.Stderr = logFile, logFile
	agentCmd.Env = append(os.Environ(), "KUBECONFIG=")
	agentCmd.Cancel = func() error { return agentCmd.Process.Signal(syscall.SIGTERM) }
	if err := agentCmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = agentCmd.Process.Signal(syscall.SIGTERM)
		_ = agentCmd.Wait()
	}()
	fmt.Fprintf(stdout, "agent running (log: %s); status on %s\n", logPath, statusURL)

	st, err := d.waitApplied(ctx, statusURL, sha, 3*time.Minute, logPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %s (%q), health %s\n", st.Applied.Revision, st.Applied.Commit.Subject, st.Health)
	pageURL := statusURL + "/ui/"
	tokenFile, err := d.pageLogin(ctx, pageURL)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "web page: %s (sign in with the token in %s)\n", pageURL, tokenFile)
	if err := d.tether(ctx, "status", "--server", statusURL); err != nil {
		return err
	}
	d.step("the app in the cluster")
	if err := d.kubectl(ctx, "-n", "webapp-dev", "get", "deployment,pod,service,ingress,hpa,configmap", "-o", "wide"); err != nil {
		return err
	}
	d.step("tether why deployment/webapp-dev/webapp")
	if err := d.tether(ctx, "why", "deployment/webapp-dev/webapp", "--kubeconfig", sa.Kubeconfig); err != nil {
		return err
	}

	d.step("pushing a change (image 1.1.0, a new greeting) and sending the push webhook")
	files := map[string]string{}
	kust, err := os.ReadFile(filepath.Join(d.examples, "webapp", "overlays", "dev", "kustomization.yaml"))
	if err != nil {
		return err
	}
	files["overlays/dev/kustomization.yaml"] = strings.Replace(string(kust), "GREETING=Hello from tether (dev)", "GREETING=Hello again from tether (dev)", 1) +
		"images:\n  - name: registry.example.com/webapp\n    newTag: 1.1.0\n"
	sha2, err := repo.Commit("webapp 1.1.0: new greeting", files)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pushed %s\n", sha2[:12])
	if err := sendWebhook(ctx, hookURL, repo.URL, sha2); err != nil {
		return err
	}
	st, err = d.waitApplied(ctx, statusURL, sha2, 2*time.Minute, logPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %s (%q): %v, %d writes; health %s\n", st.Applied.Revision, st.Applied.Commit.Subject, st.LastAttempt.Counts, st.LastAttempt.Writes, st.Health)
	if err := d.kubectl(ctx, "-n", "webapp-dev", "get", "deployment/webapp", "-o", "wide"); err != nil {
		return err
	}
	if err := d.kubectl(ctx, "-n", "webapp-dev", "get", "configmap/webapp-config", "-o", "jsonpath={.data.GREETING}{\"\\n\"}"); err != nil {
		return err
	}

	stopRegistry, err := d.imagesStep(ctx, repo, cfgPath, statusURL, logPath) // images.go
	if err != nil {
		return err
	}
	defer stopRegistry()

	if err := d.driftStep(ctx, statusURL, logPath); err != nil {
		return err
	}

	if !keepRunning(*keep) {
		d.step("done; stopping the agent, the control plane and the git server")
		return nil
	}
	d.step("everything keeps running until you press Ctrl-C")
	fmt.Fprintf(stdout, "export KUBECONFIG=%s\n", d.cluster.Kubeconfig)
	fmt.Fprintf(stdout, "%s/tether status --server %s\n", bin, statusURL)
	fmt.Fprintf(stdout, "web page: %s  (paste the token from %s; it may read the syncs' inventories and nothing else)\n", pageURL, tokenFile)
	fmt.Fprintf(stdout, "git -c http.sslCAInfo=%s clone %s  (user %s, password %s)\n", filepath.Join(d.work, "git-ca.pem"), repo.URL, gitUser, gitPassword)
	fmt.Fprintf(stdout, "agent log: %s\n", logPath)
	<-ctx.Done()
	return nil
}

// pageLogin mints a token for a ServiceAccount that may read the syncs'
// inventories (so it sees every sync on the web page, and may change
// nothing), writes it to a file and checks that the page lets it in.
func (d *demo) pageLogin(ctx context.Context, pageURL string) (string, error) {
	const ns, name = "tether-system", "demo-viewer"
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}},
	}
	if _, err := d.cluster.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating Role/%s/%s: %w", ns, name, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
	}
	if _, err := d.cluster.Client.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating RoleBinding/%s/%s: %w", ns, name, err)
	}
	sa, err := d.cluster.ServiceAccount(ctx, ns, name, 24*time.Hour)
	if err != nil {
		return "", err
	}
	path := filepath.Join(d.work, "ui-token")
	if err := os.WriteFile(path, []byte(sa.Token+"\n"), 0o600); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pageURL, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+sa.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("opening the web page: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "webapp-dev") {
		return "", fmt.Errorf("the web page answered %s without the sync webapp-dev", resp.Status)
	}
	return path, nil
}

// writeConfig writes the agent's configuration and the credential files it
// names.
func (d *demo) writeConfig(repoURL string, caPEM []byte) (string, error) {
	password := filepath.Join(d.work, "git-password")
	secret := filepath.Join(d.work, "webhook-secret")
	ca := filepath.Join(d.work, "git-ca.pem")
	if err := os.WriteFile(password, []byte(gitPassword+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(ca, caPEM, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(secret, []byte(hookSecret+"\n"), 0o600); err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`apiVersion: tether.dev/v1alpha1
kind: AgentConfig
defaults:
  interval: 1m
  timeout: 3m
  prune: true
webhook:
  secretFile: %s
syncs:
  - name: webapp-dev
    source:
      url: %s
      ref:
        branch: main
      auth:
        username: %s
        passwordFile: %s
        caFile: %s
    path: overlays/dev
    namespace: webapp-dev
`, secret, repoURL, gitUser, password, ca)
	path := filepath.Join(d.work, "tether.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// waitApplied polls /status until the commit is applied and Healthy.
func (d *demo) waitApplied(ctx context.Context, statusURL, sha string, timeout time.Duration, logPath string) (agent.SyncStatus, error) {
	deadline := time.Now().Add(timeout)
	var last agent.SyncStatus
	for {
		st, err := fetchSync(ctx, statusURL, "webapp-dev")
		if err == nil {
			last = st
			if st.Applied != nil && st.Applied.Commit != nil && st.Applied.Commit.Hash == sha && st.Health == health.Healthy {
				return st, nil
			}
		}
		if time.Now().After(deadline) {
			logTail, _ := os.ReadFile(logPath)
			return last, fmt.Errorf("commit %s not applied and Healthy after %s (last status %+v); agent log:\n%s", sha[:12], timeout, last, tailLines(string(logTail), 30))
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func fetchSync(ctx context.Context, statusURL, name string) (agent.SyncStatus, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, statusURL+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return agent.SyncStatus{}, err
	}
	defer resp.Body.Close()
	var st agent.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return agent.SyncStatus{}, err
	}
	for _, s := range st.Syncs {
		if s.Name == name {
			return s, nil
		}
	}
	return agent.SyncStatus{}, fmt.Errorf("no sync %s", name)
}

// sendWebhook posts a signed GitHub push event, as GitHub would.
func sendWebhook(ctx context.Context, hookURL, repoURL, sha string) error {
	body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"repository":{"clone_url":%q}}`, sha, repoURL))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hookURL+webhook.GitHubPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.GitHubEventHeader, "push")
	req.Header.Set(webhook.GitHubSignatureHeader, webhook.Sign([]byte(hookSecret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("sending the webhook: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the webhook got %s: %s", resp.Status, answer)
	}
	fmt.Fprintf(os.Stdout, "webhook answered %s: %s", resp.Status, answer)
	return nil
}

func (d *demo) step(msg string) {
	fmt.Fprintf(d.out, "\n==> %s\n", msg)
}

func (d *demo) kubectl(ctx context.Context, args ...string) error {
	return d.cmd(ctx, filepath.Join(d.bin, "kubectl"), append([]string{"--kubeconfig", d.cluster.Kubeconfig}, args...)...)
}

// kubectlOutput runs kubectl as the admin and returns what it printed.
func (d *demo) kubectlOutput(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "kubectl"), append([]string{"--kubeconfig", d.cluster.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

func (d *demo) tether(ctx context.Context, args ...string) error {
	return d.cmd(ctx, filepath.Join(d.bin, "tether"), args...)
}

func (d *demo) cmd(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = d.out, d.out
	cmd.Env = append(os.Environ(), "KUBECONFIG=")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return nil
}

func keepRunning(keep string) bool {
	switch keep {
	case "yes":
		return true
	case "no":
		return false
	}
	if os.Getenv("CI") != "" {
		return false
	}
	return term.IsTerminal(int(os.Stdin.Fd()))
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// driftStep changes the Deployment by hand, as someone debugging would
// (kubectl set image), and shows tether's drift report, which names the
// field and kubectl-set, and the correction.
func (d *demo) driftStep(ctx context.Context, statusURL, logPath string) error {
	d.step("someone runs kubectl set image on the Deployment: tether names the field and who changed it, and puts it back")
	before, err := d.kubectlOutput(ctx, "-n", "webapp-dev", "get", "deployment/webapp", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
	if err != nil {
		return err
	}
	if err := d.kubectl(ctx, "-n", "webapp-dev", "set", "image", "deployment/webapp", "web=registry.example.com/webapp:debug"); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		events, err := d.kubectlOutput(ctx, "-n", "tether-system", "get", "events", "--field-selector", "involvedObject.name=tether-inventory-webapp-dev",
			"-o", "jsonpath={range .items[?(@.reason==\"DriftDetected\")]}{.message}{\"\\n\"}{end}")
		if err != nil {
			return err
		}
		image, err := d.kubectlOutput(ctx, "-n", "webapp-dev", "get", "deployment/webapp", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		if err != nil {
			return err
		}
		if strings.Contains(events, "kubectl-set") && image == before {
			fmt.Fprintf(d.out, "drift reported (Event DriftDetected on the inventory):\n%s", lastLine(events))
			fmt.Fprintf(d.out, "image put back: %s\n", image)
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no drift report naming kubectl-set, or the image not put back (%s), within a minute; see %s", image, logPath)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return d.kubectl(ctx, "-n", "tether-system", "get", "events", "--field-selector", "involvedObject.name=tether-inventory-webapp-dev,reason=DriftCorrected")
}

// lastLine returns the last non-empty line of s, with its newline.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1] + "\n"
}
