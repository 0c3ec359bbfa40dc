// Package metrics defines what tether exports on /metrics
// (github.com/prometheus/client_golang). Every series is labelled by bounded
// values only: sync name, phase, outcome, action, kind, verb; revisions as
// free text only on the one revision info metric, and object names only on
// the drift info metric, which is capped per sync (drift.go). The names are
// constants in package contract, which alert rules depend on.
package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/kube"
	"github.com/tether-gitops/tether/source"
	tsync "github.com/tether-gitops/tether/sync"
)

// Metrics holds tether's collectors in a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	reconcileDuration *prometheus.HistogramVec
	lastSuccess       *prometheus.GaugeVec
	revisionInfo      *prometheus.GaugeVec
	objects           *prometheus.GaugeVec
	health            *prometheus.GaugeVec
	failing           *prometheus.GaugeVec
	drift             *driftMetrics // drift.go
	inventory         *prometheus.GaugeVec
	gitRefListings    *prometheus.CounterVec
	gitFetches        *prometheus.CounterVec
	gitFetchedBytes   *prometheus.CounterVec
	apiRequests       *prometheus.CounterVec
	buildDuration     *prometheus.HistogramVec
	guardRefusals     *prometheus.CounterVec
	leader            prometheus.Gauge
	configReloads     *prometheus.CounterVec
	webhookRequests   *prometheus.CounterVec
	images            *imageMetrics // images.go
}

// Outcomes of a reconcile, the values of the outcome label.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	// OutcomeSkipped: the revision was unchanged and nothing drifted, so
	// nothing was planned or applied.
	OutcomeSkipped = "skipped"
)

// New registers tether's metrics and the Go and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reconcileDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    contract.MetricReconcileDuration,
		Help:    "Duration of reconciles by sync and outcome (success, failure, skipped).",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"sync", "outcome"})
	m.lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: contract.MetricLastSuccess,
		Help: "Unix time of the last successful reconcile of each sync.",
	}, []string{"sync"})
	m.revisionInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: contract.MetricRevisionInfo,
		Help: "The revision and commit each sync last applied in full (value 1).",
	}, []string{"sync", "revision", "commit"})
	m.objects = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: contract.MetricObjects,
		Help: "Objects per action (create, update, unchanged, prune, ...) in the last reconcile of each sync.",
	}, []string{"sync", "action"})
	m.health = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: contract.MetricHealth,
		Help: "1 for each sync's current health (Healthy, Progressing, Degraded, Failed), 0 for the others.",
	}, []string{"sync", "status"})
	m.failing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: contract.MetricSyncFailing,
		Help: "1 while the last reconcile of a sync failed, labelled with the phase it failed in.",
	}, []string{"sync", "phase"})
	m.drift = newDriftMetrics()
	m.inventory = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: contract.MetricInventory,
		Help: "Objects each sync owns (its inventory).",
	}, []string{"sync"})
	m.gitRefListings = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: contract.MetricGitRefListings,
		Help: "Remote ref listings (one round trip each) per sync.",
	}, []string{"sync"})
	m.gitFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: contract.MetricGitFetches,
		Help: "Pack transfers (new revisions fetched) per sync.",
	}, []string{"sync"})
	m.gitFetchedBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: contract.MetricGitFetchedBytes,
		Help: "Bytes of git packs received per sync.",
	}, []string{"sync"})
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: contract.MetricAPIRequests,
		Help: "Kubernetes API requests by verb, and whether they were dry runs.",
	}, []string{"verb", "dry_run"})
	m.buildDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    contract.MetricBuildDuration,
		Help:    "Duration of rendering a revision (kustomize build) by sync.",
		Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"sync"})
	m.guardRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: contract.MetricGuardRefusals,
		Help: "Reconciles stopped by a safety guard, by sync and reason (empty_revision, delete_budget).",
	}, []string{"sync", "reason"})
	m.leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: contract.MetricLeader,
		Help: "1 while this process holds the leader lease and runs the syncs.",
	})
	m.configReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: contract.MetricConfigReloads,
		Help: "Configuration loads and reloads by outcome (success, failure).",
	}, []string{"outcome"})
	m.webhookRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: contract.MetricWebhookRequests,
		Help: "Webhook requests by endpoint and HTTP status code.",
	}, []string{"endpoint", "code"})
	m.images = newImageMetrics()
	m.reg.MustRegister(
		m.reconcileDuration, m.lastSuccess, m.revisionInfo, m.objects, m.health, m.failing,
		m.drift, m.inventory, m.gitRefListings, m.gitFetches, m.gitFetchedBytes, m.apiRequests,
		m.buildDuration, m.guardRefusals, m.leader, m.configReloads, m.webhookRequests,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.reg.MustRegister(m.images.collectors()...)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry the metrics live in, for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Reconcile records a reconcile's outcome. commit is the applied commit
// (empty for folders); inventory is the number of objects the sync owns.
// It counts no drift events: drift a reconcile puts back is counted, like
// all drift, through DriftEvent by the one who reports it, so an object
// the watch found, whose correction failed and which a reconcile then put
// back, is detected once and corrected once.
func (m *Metrics) Reconcile(sync string, res *tsync.Result, err error, commit string, inventory int) {
	m.initSync(sync)
	outcome := OutcomeSuccess
	if err != nil {
		outcome = OutcomeFailure
	}
	if res != nil {
		m.reconcileDuration.WithLabelValues(sync, outcome).Observe(res.Duration.Seconds())
		if res.BuildDuration > 0 {
			m.buildDuration.WithLabelValues(sync).Observe(res.BuildDuration.Seconds())
		}
		m.objects.DeletePartialMatch(prometheus.Labels{"sync": sync})
		for action, n := range res.Counts() {
			m.objects.WithLabelValues(sync, string(action)).Set(float64(n))
		}
	}
	var guard *tsync.GuardError
	if errors.As(err, &guard) {
		m.guardRefusals.WithLabelValues(sync, guard.Reason).Inc()
	}
	if res != nil && res.Health != nil {
		// Health is known also when a later phase (or the health wait
		// itself) failed: a Degraded sync must show as Degraded.
		m.setHealth(sync, res.Status)
	}
	m.failing.DeletePartialMatch(prometheus.Labels{"sync": sync})
	if err != nil {
		phase := "unknown"
		var pe *tsync.PhaseError
		if errors.As(err, &pe) {
			phase = pe.Phase
		}
		m.failing.WithLabelValues(sync, phase).Set(1)
		return
	}
	m.lastSuccess.WithLabelValues(sync).Set(float64(time.Now().Unix()))
	m.revisionInfo.DeletePartialMatch(prometheus.Labels{"sync": sync})
	m.revisionInfo.WithLabelValues(sync, res.Revision, commit).Set(1)
	m.inventory.WithLabelValues(sync).Set(float64(inventory))
}

// initSync exports the counters of a sync whose label values are known in
// advance at 0 (guard refusals by reason, drift events by action): a
// counter that first appears at 1 is invisible to increase() and
// changes(), so the first refusal or correction would never alert.
func (m *Metrics) initSync(sync string) {
	for _, reason := range []string{tsync.GuardEmptyRevision, tsync.GuardDeleteBudget} {
		m.guardRefusals.WithLabelValues(sync, reason)
	}
	m.drift.initEvents(sync)
}

// Skipped records a poll that found the revision unchanged and nothing
// drifted, so nothing was planned.
func (m *Metrics) Skipped(sync string, d time.Duration) {
	m.initSync(sync)
	m.reconcileDuration.WithLabelValues(sync, OutcomeSkipped).Observe(d.Seconds())
	m.lastSuccess.WithLabelValues(sync).Set(float64(time.Now().Unix()))
	m.failing.DeletePartialMatch(prometheus.Labels{"sync": sync})
}

// FetchFailed records a reconcile that failed before build (the source).
func (m *Metrics) FetchFailed(sync string, d time.Duration) {
	m.initSync(sync)
	m.reconcileDuration.WithLabelValues(sync, OutcomeFailure).Observe(d.Seconds())
	m.failing.DeletePartialMatch(prometheus.Labels{"sync": sync})
	m.failing.WithLabelValues(sync, "fetch").Set(1)
}

func (m *Metrics) setHealth(sync string, status health.Status) {
	for _, s := range []health.Status{health.Healthy, health.Progressing, health.Degraded, health.Failed} {
		v := 0.0
		if s == status {
			v = 1
		}
		m.health.WithLabelValues(sync, string(s)).Set(v)
	}
}

// Git adds the growth of a source's counters since the previous snapshot.
func (m *Metrics) Git(sync string, prev, now source.Stats) {
	add := func(c *prometheus.CounterVec, d int64) {
		if d > 0 {
			c.WithLabelValues(sync).Add(float64(d))
		}
	}
	add(m.gitRefListings, now.RefListings-prev.RefListings)
	add(m.gitFetches, now.Fetches-prev.Fetches)
	add(m.gitFetchedBytes, now.FetchedBytes-prev.FetchedBytes)
}

// APIRequest counts one Kubernetes API request (kube.RequestCounter's
// observer).
func (m *Metrics) APIRequest(r kube.Request) {
	m.apiRequests.WithLabelValues(string(r.Verb), strconv.FormatBool(r.DryRun)).Inc()
}

// SetLeader records whether this process leads.
func (m *Metrics) SetLeader(leading bool) {
	if leading {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// ConfigReload counts a configuration load.
func (m *Metrics) ConfigReload(ok bool) {
	if ok {
		m.configReloads.WithLabelValues(OutcomeSuccess).Inc()
	} else {
		m.configReloads.WithLabelValues(OutcomeFailure).Inc()
	}
}

// Webhook counts a webhook request.
func (m *Metrics) Webhook(endpoint string, code int) {
	m.webhookRequests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
}

// Forget removes the series of a sync that was removed from the
// configuration.
func (m *Metrics) Forget(sync string) {
	l := prometheus.Labels{"sync": sync}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.reconcileDuration, m.lastSuccess, m.revisionInfo, m.objects, m.health, m.failing, m.inventory,
		m.gitRefListings, m.gitFetches, m.gitFetchedBytes, m.buildDuration, m.guardRefusals} {
		v.DeletePartialMatch(l)
	}
	m.drift.forget(sync)
}
