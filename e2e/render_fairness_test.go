//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/e2e/gitserver"
	"github.com/tether-gitops/tether/webhook"
)

// Limits of TestRenderFairness: the hostile commit burns the render CPU
// limit; the healthy sync's pushes must be applied well within it (and,
// whatever the load, before the hostile render ends).
const (
	fairCPULimit = 20 * time.Second
	fairPrompt   = 10 * time.Second
)

// hostileFiles is a commit that passes every screen of the renderer but
// takes kustomize minutes of CPU: a strategic-merge patch that lists a
// Deployment's 10,000 containers in the opposite order (kustomize's merge
// is super-quadratic in the list: 2,000 containers take 5 s of CPU, 8,000
// a minute). round makes each commit a new revision.
func hostileFiles(round int) map[string]string {
	const n = 10_000
	var d, p strings.Builder
	head := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: slow\n  namespace: fair-hostile\nspec:\n  selector: {matchLabels: {app: slow}}\n  template:\n    metadata: {labels: {app: slow}}\n    spec:\n      containers:\n"
	d.WriteString(head)
	p.WriteString(head)
	for i := range n {
		fmt.Fprintf(&d, "      - {name: c%d, image: x}\n", i)
		fmt.Fprintf(&p, "      - {name: c%d, image: y}\n", n-1-i)
	}
	return map[string]string{
		"app/kustomization.yaml": fmt.Sprintf("# round %d\nresources: [deployment.yaml]\npatches:\n- path: patch.yaml\n", round),
		"app/deployment.yaml":    d.String(),
		"app/patch.yaml":         p.String(),
	}
}

// pushHook sends the signed GitHub push event for a commit of repoURL and
// returns the status code.
func pushHook(t *testing.T, p *agentProc, secret, repoURL, sha string) int {
	t.Helper()
	body := fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"repository":{"clone_url":%q}}`, sha, repoURL)
	req, err := http.NewRequest(http.MethodPost, p.hookURL+webhook.GitHubPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(webhook.GitHubEventHeader, "push")
	req.Header.Set(webhook.GitHubSignatureHeader, webhook.Sign([]byte(secret), []byte(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// One agent, two syncs: one follows a repository whose commits burn the
// render CPU limit, the other a healthy one. While the hostile sync renders
// a new revision (and fails by the CPU limit, never said to be memory), a
// push to the healthy repository with its webhook is applied promptly,
// every time; and a revision that failed by the limit is not rendered
// again.
func TestRenderFairness(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	srv := srcGitServer(t, gitserver.Options{Username: "alice", Password: "fair-pass"})
	hostile, err := srv.CreateRepo("hostile")
	if err != nil {
		t.Fatal(err)
	}
	healthy, err := srv.CreateRepo("healthy")
	if err != nil {
		t.Fatal(err)
	}
	hostileSHA, err := hostile.Commit("hostile 0", hostileFiles(0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := healthy.Commit("v0", appFiles("fair-healthy", "v0")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	password, secret := filepath.Join(dir, "password"), filepath.Join(dir, "webhook-secret")
	os.WriteFile(password, []byte("fair-pass"), 0o600)
	os.WriteFile(secret, []byte("fair-secret"), 0o600)
	cfgPath := filepath.Join(dir, "tether.yaml")
	// Both poll once an hour: only webhooks explain what they do. The
	// hostile sync's timeout is far above its render's CPU limit, so its
	// render ends by the limit, not by the timeout.
	writeFileAtomically(t, cfgPath, agentConfig(
		gitSync("fair-hostile", hostile.URL, password, "1h", secret)+"    timeout: 10m\n"+
			gitSync("fair-healthy", healthy.URL, password, "1h", secret)))
	p := startAgent(t, sa.Kubeconfig, cfgPath, "--leader-elect=false", "--render-cpu-limit", fairCPULimit.String())

	value := func() string {
		data, _ := (&fixture{admin: c.Client}).configMapData("fair-healthy", "settings")
		return data["value"]
	}
	eventually(t, 2*time.Minute, "the healthy sync applies its first commit", func() error {
		if v := value(); v != "v0" {
			return fmt.Errorf("value %q", v)
		}
		return nil
	})
	// failedByCPU waits until the hostile sync's last attempt failed at sha
	// by the CPU limit, and checks what it says.
	failedByCPU := func(sha string) agent.SyncStatus {
		t.Helper()
		var st agent.SyncStatus
		eventually(t, 10*time.Minute, "the hostile sync fails at "+sha[:12], func() error {
			st, err = p.syncStatus("fair-hostile")
			if err != nil {
				return err
			}
			if a := st.LastAttempt; a == nil || !strings.HasSuffix(a.Revision, sha) || a.Outcome != "failure" {
				return fmt.Errorf("last attempt %+v", a)
			}
			return nil
		})
		msg := st.LastAttempt.Error
		if st.LastAttempt.Phase != "build" || !strings.Contains(msg, fmt.Sprintf("rendering used more than %v of CPU (the render CPU limit", fairCPULimit)) || strings.Contains(msg, "memory") {
			t.Fatalf("the hostile sync failed in phase %q with %q; want the build's CPU limit", st.LastAttempt.Phase, msg)
		}
		return st
	}
	failedByCPU(hostileSHA)

	for round := 1; round <= 3; round++ {
		// A new hostile revision: its render starts as soon as it is
		// fetched and burns the whole CPU limit.
		hostileSHA, err = hostile.Commit(fmt.Sprintf("hostile %d", round), hostileFiles(round))
		if err != nil {
			t.Fatal(err)
		}
		if code := pushHook(t, p, "fair-secret", hostile.URL, hostileSHA); code/100 != 2 {
			t.Fatalf("the hostile repository's webhook got %d", code)
		}
		eventually(t, time.Minute, "the hostile sync fetches "+hostileSHA[:12], func() error {
			st, err := p.syncStatus("fair-hostile")
			if err != nil {
				return err
			}
			if st.Fetched == nil || !strings.HasSuffix(st.Fetched.Revision, hostileSHA) {
				return fmt.Errorf("fetched %+v", st.Fetched)
			}
			return nil
		})

		want := fmt.Sprintf("v%d", round)
		sha, err := healthy.Commit(want, appFiles("fair-healthy", want))
		if err != nil {
			t.Fatal(err)
		}
		pushed := time.Now()
		if code := pushHook(t, p, "fair-secret", healthy.URL, sha); code/100 != 2 {
			t.Fatalf("the healthy repository's webhook got %d", code)
		}
		hostileRendering := func() error {
			st, err := p.syncStatus("fair-hostile")
			if err != nil {
				return err
			}
			if st.LastAttempt != nil && strings.HasSuffix(st.LastAttempt.Revision, hostileSHA) {
				return fmt.Errorf("the hostile render of %s is over: %s", hostileSHA[:12], st.LastAttempt.Error)
			}
			return nil
		}
		if err := hostileRendering(); err != nil {
			t.Fatalf("before the healthy push: %v (the round would prove nothing)", err)
		}
		eventually(t, fairPrompt, fmt.Sprintf("round %d: the healthy push is applied while the hostile sync renders", round), func() error {
			if v := value(); v != want {
				return fmt.Errorf("value %q", v)
			}
			return nil
		})
		t.Logf("round %d: the healthy push was applied %v after its webhook", round, time.Since(pushed).Round(time.Millisecond))
		if err := hostileRendering(); err != nil {
			t.Fatalf("the healthy push was applied only after the hostile render ended: %v", err)
		}
		failedByCPU(hostileSHA)
	}

	// The failed revision is remembered: asked again, it fails at once with
	// the same error, saying it is not rendered again.
	if code := pushHook(t, p, "fair-secret", hostile.URL, hostileSHA); code/100 != 2 {
		t.Fatalf("the hostile repository's webhook got %d", code)
	}
	eventually(t, time.Minute, "the hostile sync's retry fails from memory", func() error {
		st := failedByCPU(hostileSHA)
		if !strings.Contains(st.LastAttempt.Error, "is not rendered again until the revision changes") {
			return fmt.Errorf("last attempt: %s", st.LastAttempt.Error)
		}
		return nil
	})
}
