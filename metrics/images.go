package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tether-gitops/tether/contract"
)

// Outcomes of image automation, the values of the outcome label.
const (
	// OutcomeCommitted: a write-back round pushed a commit.
	OutcomeCommitted = "committed"
	// OutcomeUnchanged: a write-back round found nothing to change.
	OutcomeUnchanged = "unchanged"
	// OutcomeSucceeded, OutcomeFailed, OutcomeUnknown (the gate could not
	// read the workload until the deadline) and OutcomeSuperseded (a newer
	// apply changed the image first, or the workload was deleted) are
	// rollout outcomes.
	OutcomeSucceeded  = "succeeded"
	OutcomeFailed     = "failed"
	OutcomeUnknown    = "unknown"
	OutcomeSuperseded = "superseded"
)

// imageMetrics are the image automation series: labelled by policy and
// sync names (bounded by the configuration) and fixed outcomes; never by
// tags, repositories or credentials.
type imageMetrics struct {
	scans          *prometheus.CounterVec
	scanFailing    *prometheus.GaugeVec
	tags           *prometheus.GaugeVec
	requests       *prometheus.CounterVec
	writeBacks     *prometheus.CounterVec
	writeBackFails *prometheus.GaugeVec
	rollouts       *prometheus.CounterVec
	held           *prometheus.GaugeVec
	failedTags     *prometheus.GaugeVec
	lastFailed     *prometheus.GaugeVec
}

func newImageMetrics() *imageMetrics {
	return &imageMetrics{
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: contract.MetricImageScans,
			Help: "Registry scans of each image policy's repository by outcome (success, failure).",
		}, []string{"policy", "outcome"}),
		scanFailing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: contract.MetricImageScanFailing,
			Help: "1 while the newest scan of an image policy's repository failed.",
		}, []string{"policy"}),
		tags: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: contract.MetricImageTags,
			Help: "Tags the newest scan of an image policy's repository listed.",
		}, []string{"policy"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: contract.MetricImageRegistryRequests,
			Help: "HTTP requests sent to registries, by image policy.",
		}, []string{"policy"}),
		writeBacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: contract.MetricImageWriteBacks,
			Help: "Image write-back rounds by sync and outcome (committed, unchanged, failure).",
		}, []string{"sync", "outcome"}),
		writeBackFails: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: contract.MetricImageWriteBackFailing,
			Help: "1 while the newest image write-back round of a sync failed.",
		}, []string{"sync"}),
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: contract.MetricImageRollouts,
			Help: "Rollouts of a new image tag followed by the rollout gate, by sync, policy and outcome (succeeded, failed, unknown, superseded).",
		}, []string{"sync", "policy", "outcome"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: contract.MetricImageHeld,
			Help: "1 while a manual rollback holds an image policy's updates in a sync.",
		}, []string{"sync", "policy"}),
		failedTags: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: contract.MetricImageFailedTags,
			Help: "Tags of an image policy remembered as failed in a sync (never proposed again).",
		}, []string{"sync", "policy"}),
		lastFailed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: contract.MetricImageLastFailedRollout,
			Help: "Unix time of the newest failed rollout of an image policy in a sync (from the image records, so it survives restarts); absent while none failed.",
		}, []string{"sync", "policy"}),
	}
}

func (i *imageMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{i.scans, i.scanFailing, i.tags, i.requests, i.writeBacks, i.writeBackFails, i.rollouts, i.held, i.failedTags, i.lastFailed}
}

// ImageScan records a scan of a policy's repository.
func (m *Metrics) ImageScan(policy string, err error, tags int) {
	if err != nil {
		m.images.scans.WithLabelValues(policy, OutcomeFailure).Inc()
		m.images.scanFailing.WithLabelValues(policy).Set(1)
		return
	}
	m.images.scans.WithLabelValues(policy, OutcomeSuccess).Inc()
	m.images.scanFailing.WithLabelValues(policy).Set(0)
	m.images.tags.WithLabelValues(policy).Set(float64(tags))
}

// ImageRegistryRequest counts one request to a registry.
func (m *Metrics) ImageRegistryRequest(policy string) {
	m.images.requests.WithLabelValues(policy).Inc()
}

// ImageWriteBack records a write-back round of a sync: outcome is
// OutcomeCommitted, OutcomeUnchanged or OutcomeFailure.
func (m *Metrics) ImageWriteBack(sync, outcome string) {
	m.images.writeBacks.WithLabelValues(sync, outcome).Inc()
	failing := 0.0
	if outcome == OutcomeFailure {
		failing = 1
	}
	m.images.writeBackFails.WithLabelValues(sync).Set(failing)
}

// ImageRollout records a rollout outcome (OutcomeSucceeded, OutcomeFailed,
// OutcomeUnknown, OutcomeSuperseded).
func (m *Metrics) ImageRollout(sync, policy, outcome string) {
	m.images.rollouts.WithLabelValues(sync, policy, outcome).Inc()
}

// ImageState records whether a policy is held in a sync, how many of its
// tags failed there and when the newest failure was (zero: none).
func (m *Metrics) ImageState(sync, policy string, held bool, failedTags int, lastFailed time.Time) {
	h := 0.0
	if held {
		h = 1
	}
	m.images.held.WithLabelValues(sync, policy).Set(h)
	m.images.failedTags.WithLabelValues(sync, policy).Set(float64(failedTags))
	if lastFailed.IsZero() {
		m.images.lastFailed.DeleteLabelValues(sync, policy)
		return
	}
	m.images.lastFailed.WithLabelValues(sync, policy).Set(float64(lastFailed.UnixNano()) / 1e9)
}

// ForgetImagePolicy removes the series of a policy no longer configured
// (or no longer scanned by this process).
func (m *Metrics) ForgetImagePolicy(policy string) {
	l := prometheus.Labels{"policy": policy}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.images.scans, m.images.scanFailing, m.images.tags, m.images.requests, m.images.rollouts, m.images.held, m.images.failedTags, m.images.lastFailed} {
		v.DeletePartialMatch(l)
	}
}

// ForgetImageSync removes the image series of a sync.
func (m *Metrics) ForgetImageSync(sync string) {
	l := prometheus.Labels{"sync": sync}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.images.writeBacks, m.images.writeBackFails, m.images.rollouts, m.images.held, m.images.failedTags, m.images.lastFailed} {
		v.DeletePartialMatch(l)
	}
}
