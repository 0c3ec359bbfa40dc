package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/kube"
	"github.com/tether-gitops/tether/source"
	tsync "github.com/tether-gitops/tether/sync"
)

func TestMetricsFollowReconciles(t *testing.T) {
	m := New()
	ok := &tsync.Result{Revision: "main@sha1:abc", Status: health.Progressing, Duration: time.Second, BuildDuration: 10 * time.Millisecond,
		Changes: []*tsync.Change{{Action: tsync.ActionCreate}, {Action: tsync.ActionUnchanged}, {Action: tsync.ActionUnchanged}},
		Health:  map[object.ObjMetadata]health.Result{}}
	m.Reconcile("web", ok, nil, "abc", 3)
	m.Git("web", source.Stats{}, source.Stats{RefListings: 3, Fetches: 1, FetchedBytes: 2048})
	m.APIRequest(kube.Request{Verb: kube.VerbPatch, DryRun: true})
	m.SetLeader(true)
	m.ConfigReload(true)
	m.Webhook("/hooks/github", 200)

	expect := func(name, want string) {
		t.Helper()
		if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), name); err != nil {
			t.Error(err)
		}
	}
	expect("tether_objects", `
# HELP tether_objects Objects per action (create, update, unchanged, prune, ...) in the last reconcile of each sync.
# TYPE tether_objects gauge
tether_objects{action="create",sync="web"} 1
tether_objects{action="unchanged",sync="web"} 2
`)
	expect("tether_applied_revision_info", `
# HELP tether_applied_revision_info The revision and commit each sync last applied in full (value 1).
# TYPE tether_applied_revision_info gauge
tether_applied_revision_info{commit="abc",revision="main@sha1:abc",sync="web"} 1
`)
	expect("tether_sync_health", `
# HELP tether_sync_health 1 for each sync's current health (Healthy, Progressing, Degraded, Failed), 0 for the others.
# TYPE tether_sync_health gauge
tether_sync_health{status="Degraded",sync="web"} 0
tether_sync_health{status="Failed",sync="web"} 0
tether_sync_health{status="Healthy",sync="web"} 0
tether_sync_health{status="Progressing",sync="web"} 1
`)
	expect("tether_git_fetched_bytes_total", `
# HELP tether_git_fetched_bytes_total Bytes of git packs received per sync.
# TYPE tether_git_fetched_bytes_total counter
tether_git_fetched_bytes_total{sync="web"} 2048
`)
	// A reconcile counts no drift itself (whoever reports drift counts it
	// through DriftEvent, once): the counters are exported at 0.
	expect("tether_drift_events_total", `
# HELP tether_drift_events_total Drift events by sync and action (detected, corrected, kept by policy warn, ignored by policy ignore).
# TYPE tether_drift_events_total counter
tether_drift_events_total{action="corrected",sync="web"} 0
tether_drift_events_total{action="detected",sync="web"} 0
tether_drift_events_total{action="ignored",sync="web"} 0
tether_drift_events_total{action="kept",sync="web"} 0
`)
	expect("tether_drifted_objects", "")

	// A guard refusal: failing with its phase, the refusal counted, the
	// applied revision left as it was.
	guard := &tsync.PhaseError{Phase: "prune", Err: &tsync.GuardError{Reason: tsync.GuardDeleteBudget, Err: errors.New("budget")}}
	m.Reconcile("web", &tsync.Result{Revision: "main@sha1:def", Phase: "prune"}, guard, "def", 3)
	expect("tether_sync_failing", `
# HELP tether_sync_failing 1 while the last reconcile of a sync failed, labelled with the phase it failed in.
# TYPE tether_sync_failing gauge
tether_sync_failing{phase="prune",sync="web"} 1
`)
	expect("tether_guard_refusals_total", `
# HELP tether_guard_refusals_total Reconciles stopped by a safety guard, by sync and reason (empty_revision, delete_budget).
# TYPE tether_guard_refusals_total counter
tether_guard_refusals_total{reason="delete_budget",sync="web"} 1
tether_guard_refusals_total{reason="empty_revision",sync="web"} 0
`)
	if n := testutil.CollectAndCount(m.revisionInfo); n != 1 {
		t.Errorf("%d revision series after a failure, want the old one only", n)
	}
	// Success clears the failing series.
	m.Skipped("web", time.Millisecond)
	if n := testutil.CollectAndCount(m.failing); n != 0 {
		t.Errorf("failing series left after a success: %d", n)
	}

	lint(t, m)

	m.Forget("web")
	if n := testutil.CollectAndCount(m.objects) + testutil.CollectAndCount(m.health) + testutil.CollectAndCount(m.lastSuccess) +
		testutil.CollectAndCount(m.guardRefusals) + testutil.CollectAndCount(m.drift); n != 0 {
		t.Errorf("%d series of a forgotten sync remain", n)
	}
}

// lint fails the test for every promlint problem (the checks of
// `promtool check metrics`).
func lint(t *testing.T, m *Metrics) {
	t.Helper()
	problems, err := promlint.NewWithMetricFamilies(mustGather(t, m)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func mustGather(t *testing.T, m *Metrics) []*dto.MetricFamily {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
