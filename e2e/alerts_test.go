//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/tether-gitops/tether/e2e/gitserver"
	"github.com/tether-gitops/tether/e2e/prometheus"
)

// alertFor is the `for:` the shipped alert rules get in these tests,
// instead of minutes.
const alertFor = 2 * time.Second

// startPrometheus runs a real Prometheus that scrapes the agent every
// second and evaluates a copy of the shipped rules
// (manifests/alerts/tether.rules.yaml) every second, with every `for:`
// shortened to alertFor. adjust may change the copy further, e.g. a
// threshold in an expression (RuleFile.ReplaceInExpr).
func startPrometheus(t *testing.T, agent *agentProc, adjust ...func(*prometheus.RuleFile) error) *prometheus.Prometheus {
	t.Helper()
	rules, err := prometheus.ReadRules(filepath.Join(repoRoot(t), "manifests", "alerts", "tether.rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if rules.SetFor(alertFor) == 0 {
		t.Fatal("the shipped rules have no `for:` to shorten")
	}
	for _, fn := range adjust {
		if err := fn(rules); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "tether.rules.yaml")
	if err := rules.Write(path); err != nil {
		t.Fatal(err)
	}
	prom := prometheus.StartT(t, prometheus.Options{
		Targets:   []string{strings.TrimPrefix(agent.url, "http://")},
		RuleFiles: []string{path},
	})
	eventually(t, time.Minute, "Prometheus scrapes the agent", func() error {
		v, err := prom.Query(context.Background(), `up{job="tether"}`)
		if err != nil {
			return err
		}
		if len(v) != 1 || v[0].Value != 1 {
			return fmt.Errorf("up: %v", v)
		}
		return nil
	})
	return prom
}

// Alert states waitAlert waits for: the API's pending and firing, and
// inactive for an alert that is neither (absent from /api/v1/alerts).
const (
	alertFiring   = string(promv1.AlertStateFiring)
	alertPending  = string(promv1.AlertStatePending)
	alertInactive = string(promv1.AlertStateInactive)
)

// waitAlert waits until the alert named name is in state (alertFiring,
// alertPending or alertInactive) in Prometheus, asked through its HTTP API,
// and returns its instances in that state (none for alertInactive).
func waitAlert(t *testing.T, prom *prometheus.Prometheus, name, state string) []promv1.Alert {
	t.Helper()
	var in []promv1.Alert
	eventually(t, 2*time.Minute, fmt.Sprintf("alert %s is %s", name, state), func() error {
		all, err := prom.Alerts(context.Background(), name)
		if err != nil {
			return err
		}
		in = in[:0]
		for _, a := range all {
			if string(a.State) == state {
				in = append(in, a)
			}
		}
		switch {
		case state == alertInactive && len(all) > 0:
			return fmt.Errorf("still active: %v", all)
		case state != alertInactive && len(in) == 0:
			return fmt.Errorf("alerts named %s: %v", name, all)
		}
		return nil
	})
	return in
}

// A revision that fails to apply raises TetherSyncFailing in a real
// Prometheus running the shipped rules, with the sync and the failing
// phase, and nothing else fires; a fixed commit resolves it.
func TestAlertsInPrometheus(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	srv, err := gitserver.Start(gitserver.Options{Username: "alice", Password: "alerts-pass"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	repo, err := srv.CreateRepo("alerted")
	if err != nil {
		t.Fatal(err)
	}
	const ns, name = "alerts-app", "alerted"
	if _, err := repo.Commit("first", appFiles(ns, "v1")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(password, []byte("alerts-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "tether.yaml")
	writeFileAtomically(t, cfgPath, agentConfig(gitSync(name, repo.URL, password, "5s", "")))
	p := startAgent(t, sa.Kubeconfig, cfgPath, "--leader-elect=false")
	value := func() string {
		data, _ := (&fixture{admin: c.Client}).configMapData(ns, "settings")
		return data["value"]
	}
	eventually(t, time.Minute, "the first commit is applied", func() error {
		if v := value(); v != "v1" {
			return fmt.Errorf("value %q", v)
		}
		return nil
	})
	prom := startPrometheus(t, p)

	// A healthy sync under the shipped rules: nothing pending or firing.
	eventually(t, time.Minute, "no alert is active while the sync is healthy", func() error {
		all, err := prom.Alerts(context.Background(), "")
		if err != nil {
			return err
		}
		if len(all) > 0 {
			return fmt.Errorf("active alerts: %v", all)
		}
		return nil
	})

	// A Service with a port out of range: the API server refuses it.
	bad := appFiles(ns, "v2")
	bad["app/kustomization.yaml"] = kustomization + "- ns.yaml\n- config.yaml\n- broken.yaml\n"
	bad["app/broken.yaml"] = "apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\n  namespace: " + ns + "\nspec:\n  ports:\n    - port: 70000\n"
	if _, err := repo.Commit("second: a broken Service", bad); err != nil {
		t.Fatal(err)
	}
	firing := waitAlert(t, prom, "TetherSyncFailing", alertFiring)
	st, err := p.syncStatus(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastAttempt == nil || st.LastAttempt.Outcome != "failure" || !strings.Contains(st.LastAttempt.Error, "Service/"+ns+"/broken") {
		t.Fatalf("the broken commit did not fail naming the Service: %+v", st.LastAttempt)
	}
	phase := st.LastAttempt.Phase
	if !slices.Contains([]string{"plan", "apply"}, phase) {
		t.Errorf("the broken Service failed in phase %q, want plan or apply", phase)
	}
	want := model.LabelSet{"alertname": "TetherSyncFailing", "severity": "warning", "sync": name, "phase": model.LabelValue(phase)}
	if len(firing) != 1 || !firing[0].Labels.Equal(want) {
		t.Errorf("firing TetherSyncFailing: %v, want one with labels %v", firing, want)
	} else if s := string(firing[0].Annotations["summary"]); s != fmt.Sprintf("tether sync %s has been failing in phase %s for 10 minutes", name, phase) {
		t.Errorf("summary: %q", s)
	} else {
		t.Logf("firing since %s: %v", firing[0].ActiveAt.Format(time.TimeOnly), firing[0].Labels)
	}
	// The series behind it, through /api/v1/query.
	v, err := prom.Query(context.Background(), fmt.Sprintf(`tether_sync_failing{sync=%q}`, name))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v[0].Value != 1 || string(v[0].Metric["phase"]) != phase {
		t.Errorf("tether_sync_failing{sync=%q}: %v, want 1 with phase %s", name, v, phase)
	}
	// Nothing else fires: a failing sync is not stale yet, not degraded,
	// has no drift and a leader.
	all, err := prom.Alerts(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if n := string(a.Labels["alertname"]); n != "TetherSyncFailing" {
			t.Errorf("alert %s is %s too: %v", n, a.State, a.Labels)
		}
	}

	// The fix: the alert resolves once the sync succeeds.
	if _, err := repo.Commit("third: fixed", appFiles(ns, "v3")); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the fixed commit is applied", func() error {
		if v := value(); v != "v3" {
			return fmt.Errorf("value %q", v)
		}
		return nil
	})
	waitAlert(t, prom, "TetherSyncFailing", alertInactive)
}
