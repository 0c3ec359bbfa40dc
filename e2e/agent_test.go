//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/e2e/cluster"
	"github.com/tether-gitops/tether/e2e/gitserver"
	"github.com/tether-gitops/tether/webhook"
)

// agentProc is a `tether run` subprocess.
type agentProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *syncBuffer
	url     string
	hookURL string
	done    chan struct{}
}

// syncBuffer is a bytes.Buffer safe for a writer (a process, a logger) and
// a test reading at the same time.
type syncBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := cluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// startAgent runs `tether run` with a ServiceAccount's kubeconfig and waits
// until it is ready.
func startAgent(t *testing.T, kubeconfig, configPath string, extra ...string) *agentProc {
	t.Helper()
	port, hookPort := freePort(t), freePort(t)
	p := &agentProc{
		t:       t,
		out:     &syncBuffer{},
		url:     fmt.Sprintf("http://127.0.0.1:%d", port),
		hookURL: fmt.Sprintf("http://127.0.0.1:%d", hookPort),
		done:    make(chan struct{}),
	}
	args := append([]string{"run",
		"--kubeconfig", kubeconfig,
		"--config", configPath,
		"--data-dir", t.TempDir(),
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--webhook-listen", fmt.Sprintf("127.0.0.1:%d", hookPort),
		"--namespace", "tether-system",
		"--log-level", "debug",
		// The tests' renders take well under a second; their syncs'
		// timeouts (1m) must be longer than a render may take.
		"--render-cpu-limit", "30s",
	}, extra...)
	p.cmd = exec.Command(tetherBinary(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(os.Environ(), "KUBECONFIG=")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("agent %s output:\n%s", p.url, tail(p.out.String(), 60))
		}
	})
	eventually(t, time.Minute, "the agent is ready", func() error {
		select {
		case <-p.done:
			return fmt.Errorf("the agent exited: %s", tail(p.out.String(), 20))
		default:
		}
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	return p
}

func (p *agentProc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

func (p *agentProc) status() (agent.Status, error) {
	var st agent.Status
	resp, err := http.Get(p.url + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func (p *agentProc) syncStatus(name string) (agent.SyncStatus, error) {
	st, err := p.status()
	if err != nil {
		return agent.SyncStatus{}, err
	}
	for _, s := range st.Syncs {
		if s.Name == name {
			return s, nil
		}
	}
	return agent.SyncStatus{}, fmt.Errorf("no sync %s in /status", name)
}

func (p *agentProc) metrics() string {
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

// metricValue finds the value of the first series whose line starts with
// prefix (name{labels...).
func metricValue(metrics, prefix string) (float64, bool) {
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, prefix) {
			fields := strings.Fields(line)
			v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// writes sums the agent's own count of mutating API requests.
func (p *agentProc) writes() float64 {
	m := p.metrics()
	total := 0.0
	for _, verb := range []string{"create", "update", "patch", "delete"} {
		v, _ := metricValue(m, `tether_api_requests_total{dry_run="false",verb="`+verb+`"}`)
		total += v
	}
	return total
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// writeFileAtomically replaces a file by rename, as editors do.
func writeFileAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func appFiles(ns, value string) map[string]string {
	return map[string]string{
		"app/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ns.yaml\n- config.yaml\n",
		"app/ns.yaml":            nsYAML(ns),
		"app/config.yaml":        cm(ns, "settings", value),
	}
}

func agentConfig(syncs string) string {
	return "apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\ndefaults:\n  prune: true\n  timeout: 1m\nsyncs:\n" + syncs
}

func gitSync(name, url, passwordFile, interval, secretFile string) string {
	s := fmt.Sprintf(`  - name: %s
    source:
      url: %s
      interval: %s
      auth:
        username: alice
        passwordFile: %s
        allowInsecureHTTP: true
    path: app
`, name, url, interval, passwordFile)
	if secretFile != "" {
		s += "    webhook:\n      secretFile: " + secretFile + "\n"
	}
	return s
}

// A push is applied within one interval; a webhook applies at once; the
// revision shows in /status, `tether status`, `tether why` and /metrics; a
// bad commit shows as failed while the previous revision stays applied.
func TestAgentFollowsGit(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	bin := tetherBinary(t)
	ctx := context.Background()
	srv, err := gitserver.Start(gitserver.Options{Username: "alice", Password: "agent-pass-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	polled, err := srv.CreateRepo("polled")
	if err != nil {
		t.Fatal(err)
	}
	hooked, err := srv.CreateRepo("hooked")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := polled.Commit("first", appFiles("agent-polled", "v1")); err != nil {
		t.Fatal(err)
	}
	if _, err := hooked.Commit("first", appFiles("agent-hooked", "v1")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	password := filepath.Join(dir, "password")
	secret := filepath.Join(dir, "webhook-secret")
	os.WriteFile(password, []byte("agent-pass-1\n"), 0o600)
	os.WriteFile(secret, []byte("hook-secret-1\n"), 0o600)
	cfgPath := filepath.Join(dir, "tether.yaml")
	writeFileAtomically(t, cfgPath, agentConfig(
		gitSync("polled", polled.URL, password, "5s", "")+
			gitSync("hooked", hooked.URL, password, "1h", secret)))
	p := startAgent(t, sa.Kubeconfig, cfgPath, "--leader-elect=false")

	value := func(ns string) string {
		data, err := (&fixture{admin: c.Client}).configMapData(ns, "settings")
		if err != nil {
			return ""
		}
		return data["value"]
	}
	eventually(t, time.Minute, "both syncs apply their first commit", func() error {
		if a, b := value("agent-polled"), value("agent-hooked"); a != "v1" || b != "v1" {
			return fmt.Errorf("values %q %q", a, b)
		}
		return nil
	})

	// A push to the polled repository is applied within its interval.
	sha2, err := polled.Commit("second: settings v2", appFiles("agent-polled", "v2"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the polled sync applies the push", func() error {
		if v := value("agent-polled"); v != "v2" {
			return fmt.Errorf("value %q", v)
		}
		return nil
	})

	// The hooked sync polls once an hour: only the webhook can explain a
	// quick apply.
	hookSHA, err := hooked.Commit("second", appFiles("agent-hooked", "v2"))
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"repository":{"clone_url":%q}}`, hookSHA, hooked.URL)
	send := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, p.hookURL+webhook.GitHubPath, strings.NewReader(body))
		req.Header.Set(webhook.GitHubEventHeader, "push")
		req.Header.Set(webhook.GitHubSignatureHeader, sig)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(webhook.Sign([]byte("wrong-secret"), []byte(body))); code != http.StatusUnauthorized {
		t.Errorf("a webhook with a wrong signature got %d, want 401", code)
	}
	if code := send(webhook.Sign([]byte("hook-secret-1"), []byte(body))); code != http.StatusOK {
		t.Fatalf("a signed webhook got %d, want 200", code)
	}
	eventually(t, 30*time.Second, "the webhook triggers the hooked sync", func() error {
		if v := value("agent-hooked"); v != "v2" {
			return fmt.Errorf("value %q", v)
		}
		return nil
	})

	// /status shows the applied revision with its commit.
	var st agent.SyncStatus
	eventually(t, 30*time.Second, "/status shows the second commit applied", func() error {
		st, err = p.syncStatus("polled")
		if err != nil {
			return err
		}
		if st.Applied == nil || st.Applied.Commit == nil || st.Applied.Commit.Hash != sha2 {
			return fmt.Errorf("applied %+v", st.Applied)
		}
		return nil
	})
	if st.Applied.Revision != "main@sha1:"+sha2 || st.Applied.Commit.Subject != "second: settings v2" || st.Applied.Commit.Author != "tether e2e <e2e@tether.invalid>" {
		t.Errorf("applied revision in /status: %+v %+v", st.Applied, st.Applied.Commit)
	}
	out, err := exec.Command(bin, "status", "--server", p.url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "polled") || !strings.Contains(string(out), "main@sha1:"+sha2[:12]) {
		t.Errorf("tether status (%v):\n%s", err, out)
	}
	out, err = exec.Command(bin, "why", "configmap/agent-polled/settings", "--kubeconfig", sa.Kubeconfig).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sync:          polled") || !strings.Contains(string(out), "app/config.yaml") || !strings.Contains(string(out), "main@sha1:"+sha2) {
		t.Errorf("tether why (%v):\n%s", err, out)
	}
	metrics := p.metrics()
	if v, ok := metricValue(metrics, `tether_applied_revision_info{commit="`+sha2+`",revision="main@sha1:`+sha2+`",sync="polled"}`); !ok || v != 1 {
		t.Errorf("no applied revision metric for %s:\n%s", sha2, grep(metrics, "tether_applied_revision_info"))
	}
	promtool(t, metrics)

	// A bad commit fails in build; the previous revision stays applied.
	bad := appFiles("agent-polled", "v3")
	bad["app/config.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings\n"
	badSHA, err := polled.Commit("third: broken", bad)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the bad commit shows as failed", func() error {
		st, err = p.syncStatus("polled")
		if err != nil {
			return err
		}
		if st.Fetched == nil || !strings.HasSuffix(st.Fetched.Revision, badSHA) || st.LastAttempt == nil || st.LastAttempt.Outcome != "failure" {
			return fmt.Errorf("fetched %+v last attempt %+v", st.Fetched, st.LastAttempt)
		}
		return nil
	})
	if st.LastAttempt.Phase != "build" || !strings.Contains(st.LastAttempt.Error, "config.yaml") {
		t.Errorf("failed attempt: phase %q error %q", st.LastAttempt.Phase, st.LastAttempt.Error)
	}
	if st.Applied == nil || st.Applied.Commit.Hash != sha2 {
		t.Errorf("the applied revision moved to %+v", st.Applied)
	}
	if v := value("agent-polled"); v != "v2" {
		t.Errorf("the previous revision is no longer applied: value %q", v)
	}
	if v, ok := metricValue(p.metrics(), `tether_sync_failing{phase="build",sync="polled"}`); !ok || v != 1 {
		t.Errorf("tether_sync_failing for the build phase:\n%s", grep(p.metrics(), "tether_sync_failing"))
	}
	cmd := exec.Command(bin, "status", "--server", p.url)
	out, err = cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "build:") {
		t.Errorf("tether status with a failing sync: exit %d, want 1:\n%s", cmd.ProcessState.ExitCode(), out)
	}
	// Events on the inventory record the failure and the applies.
	evs, err := c.Client.CoreV1().Events("tether-system").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=tether-inventory-polled"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, e := range evs.Items {
		reasons[e.Reason] = true
	}
	if !reasons["Applied"] || !reasons["ReconcileFailed"] {
		t.Errorf("events on the inventory: %v", reasons)
	}
	// The password never reaches the output.
	if strings.Contains(p.out.String(), "agent-pass-1") || strings.Contains(p.metrics(), "agent-pass-1") {
		t.Error("the git password leaked into the agent's logs or metrics")
	}
}

// promtool lints the metrics exposition.
func promtool(t *testing.T, metrics string) {
	t.Helper()
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(metrics)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The configuration is hot-reloaded, also when it is a mounted ConfigMap
// (kubelet swaps a ..data symlink): an added sync starts, a removed one
// stops and leaves its objects, and a bad version is rejected while the
// previous one keeps running.
func TestAgentHotReload(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	dir := t.TempDir()
	app := func(name string) string {
		d := filepath.Join(dir, "apps", name)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "ns.yaml"), []byte(nsYAML(name)), 0o644)
		os.WriteFile(filepath.Join(d, "cm.yaml"), []byte(cm(name, "settings", name)), 0o644)
		return d
	}
	localSync := func(name string) string {
		return fmt.Sprintf("  - name: %s\n    source:\n      localPath: %s\n      interval: 5s\n", name, app(name))
	}
	// The layout kubelet gives a mounted ConfigMap.
	mount := filepath.Join(dir, "mount")
	os.MkdirAll(mount, 0o755)
	version := 0
	publish := func(content string) {
		version++
		ts := filepath.Join(mount, fmt.Sprintf("..2026_11_25_%06d", version))
		os.MkdirAll(ts, 0o755)
		os.WriteFile(filepath.Join(ts, "tether.yaml"), []byte(content), 0o644)
		tmpLink := filepath.Join(mount, "..data_tmp")
		os.Remove(tmpLink)
		if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmpLink, filepath.Join(mount, "..data")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(mount, "tether.yaml")); os.IsNotExist(err) {
			os.Symlink("..data/tether.yaml", filepath.Join(mount, "tether.yaml"))
		}
	}
	publish(agentConfig(localSync("reload-a")))
	p := startAgent(t, sa.Kubeconfig, filepath.Join(mount, "tether.yaml"), "--leader-elect=false", "--delete-on-remove-grace", "1s")
	exists := func(ns string) bool {
		_, err := (&fixture{admin: c.Client}).configMapData(ns, "settings")
		return err == nil
	}
	eventually(t, time.Minute, "sync reload-a applies", func() error {
		if !exists("reload-a") {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	publish(agentConfig(localSync("reload-a") + localSync("reload-b")))
	eventually(t, time.Minute, "the added sync reload-b starts and applies", func() error {
		if !exists("reload-b") {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	// A bad version is rejected; both syncs keep running.
	publish(agentConfig(localSync("reload-a") + "  - name: reload-c\n    prun: true\n"))
	eventually(t, 30*time.Second, "the bad configuration is rejected", func() error {
		st, err := p.status()
		if err != nil {
			return err
		}
		if !strings.Contains(st.ConfigError, "prun") || len(st.Syncs) != 2 {
			return fmt.Errorf("config error %q, %d syncs", st.ConfigError, len(st.Syncs))
		}
		return nil
	})
	if v, ok := metricValue(p.metrics(), `tether_config_reloads_total{outcome="failure"}`); !ok || v < 1 {
		t.Errorf("no failed reload counted:\n%s", grep(p.metrics(), "tether_config_reloads_total"))
	}

	// A sync that asks for deleteOnRemove: its objects go with it, after
	// the grace period.
	deleting := localSync("reload-c") + "    deleteOnRemove: true\n    pruneProtected: [Namespace]\n"
	publish(agentConfig(localSync("reload-a") + localSync("reload-b") + deleting))
	eventually(t, time.Minute, "sync reload-c applies", func() error {
		if !exists("reload-c") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	publish(agentConfig(localSync("reload-a") + localSync("reload-b")))
	eventually(t, time.Minute, "removing reload-c deletes its objects and its inventory", func() error {
		if exists("reload-c") {
			return fmt.Errorf("ConfigMap reload-c/settings still there")
		}
		if _, err := c.Client.CoreV1().Namespaces().Get(context.Background(), "reload-c", metav1.GetOptions{}); err == nil {
			if ns, _ := c.Client.CoreV1().Namespaces().Get(context.Background(), "reload-c", metav1.GetOptions{}); ns.DeletionTimestamp == nil {
				return fmt.Errorf("Namespace reload-c still there")
			}
		}
		if _, err := c.Client.CoreV1().ConfigMaps("tether-system").Get(context.Background(), "tether-inventory-reload-c", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("inventory still there: %v", err)
		}
		return nil
	})

	// Removing reload-b stops it and leaves its objects in place.
	publish(agentConfig(localSync("reload-a")))
	eventually(t, 30*time.Second, "the removed sync stops", func() error {
		st, err := p.status()
		if err != nil {
			return err
		}
		if len(st.Syncs) != 1 || st.Syncs[0].Name != "reload-a" || st.ConfigError != "" {
			return fmt.Errorf("syncs %v, config error %q", st.Syncs, st.ConfigError)
		}
		return nil
	})
	if !exists("reload-b") {
		t.Error("removing a sync without deleteOnRemove deleted its objects")
	}
	// Its folder changes no longer reach the cluster.
	os.WriteFile(filepath.Join(dir, "apps", "reload-b", "cm.yaml"), []byte(cm("reload-b", "settings", "changed")), 0o644)
	time.Sleep(7 * time.Second) // longer than the removed sync's interval
	if data, _ := (&fixture{admin: c.Client}).configMapData("reload-b", "settings"); data["value"] != "reload-b" {
		t.Errorf("the removed sync still applies: %v", data)
	}
}

// Two agents with leader election: exactly one applies; when it is killed
// the other takes over and converges.
func TestAgentLeaderElection(t *testing.T) {
	c := sharedCluster(t)
	tetherIdentity(t, c) // RBAC from manifests/
	ctx := context.Background()
	identity := func(name string) *cluster.ServiceAccount {
		sa, err := c.ServiceAccount(ctx, "tether-system", name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range []struct{ kind, name, ns string }{{"ClusterRole", "tether-sync", ""}, {"Role", "tether-agent", "tether-system"}} {
			subj := []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: "tether-system"}}
			ref := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: b.kind, Name: b.name}
			meta := metav1.ObjectMeta{Name: b.name + "-" + name, Namespace: b.ns}
			if b.ns == "" {
				_, err = c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: subj}, metav1.CreateOptions{})
			} else {
				_, err = c.Client.RbacV1().RoleBindings(b.ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: subj}, metav1.CreateOptions{})
			}
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
		return sa
	}
	srv, err := gitserver.Start(gitserver.Options{Username: "alice", Password: "lease-pass"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	repo, err := srv.CreateRepo("leased")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Commit("first", appFiles("agent-leased", "v1")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	password := filepath.Join(dir, "password")
	os.WriteFile(password, []byte("lease-pass"), 0o600)
	cfgPath := filepath.Join(dir, "tether.yaml")
	writeFileAtomically(t, cfgPath, agentConfig(gitSync("leased", repo.URL, password, "5s", "")))
	lease := []string{"--leader-elect-lease", "tether-e2e", "--leader-elect-lease-duration", "6s", "--leader-elect-renew-deadline", "4s", "--leader-elect-retry-period", "1s"}
	a := startAgent(t, identity("tether-a").Kubeconfig, cfgPath, append(lease, "--leader-elect-id", "agent-a")...)
	b := startAgent(t, identity("tether-b").Kubeconfig, cfgPath, append(lease, "--leader-elect-id", "agent-b")...)

	value := func() string {
		data, _ := (&fixture{admin: c.Client}).configMapData("agent-leased", "settings")
		return data["value"]
	}
	var leader, standby *agentProc
	eventually(t, time.Minute, "one agent leads", func() error {
		sa, err1 := a.status()
		sb, err2 := b.status()
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%v %v", err1, err2)
		}
		switch {
		case sa.Leader && sb.Leader:
			t.Fatal("both agents lead")
		case sa.Leader:
			leader, standby = a, b
		case sb.Leader:
			leader, standby = b, a
		default:
			return fmt.Errorf("no leader yet")
		}
		return nil
	})
	eventually(t, time.Minute, "the leader applies the first commit", func() error {
		if v := value(); v != "v1" {
			return fmt.Errorf("value %q", v)
		}
		return nil
	})
	if _, err := repo.Commit("second", appFiles("agent-leased", "v2")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the leader applies the second commit", func() error {
		if v := value(); v != "v2" {
			return fmt.Errorf("value %q", v)
		}
		return nil
	})
	if w := standby.writes(); w != 0 {
		t.Errorf("the standby wrote %v times", w)
	}
	if w := leader.writes(); w == 0 {
		t.Error("the leader counted no writes")
	}
	if st, _ := standby.status(); st.Leader || len(st.Syncs) != 1 || st.Syncs[0].LastAttempt != nil {
		t.Errorf("standby status: %+v", st)
	}

	// Kill the leader outright: the standby takes over and converges.
	leader.signal(syscall.SIGKILL)
	if _, err := repo.Commit("third", appFiles("agent-leased", "v3")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "the standby takes over and applies the third commit", func() error {
		st, err := standby.status()
		if err != nil {
			return err
		}
		if !st.Leader {
			return fmt.Errorf("not leading yet")
		}
		if v := value(); v != "v3" {
			return fmt.Errorf("value %q", v)
		}
		return nil
	})
	if w := standby.writes(); w == 0 {
		t.Error("the new leader counted no writes")
	}

	// SIGTERM: the new leader stops cleanly and releases the lease.
	standby.signal(syscall.SIGTERM)
	select {
	case <-standby.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop on SIGTERM")
	}
	if code := standby.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM\n%s", code, tail(standby.out.String(), 20))
	}
	l, err := c.Client.CoordinationV1().Leases("tether-system").Get(ctx, "tether-e2e", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
		t.Errorf("the lease is still held by %q after a graceful stop", *l.Spec.HolderIdentity)
	}
}
