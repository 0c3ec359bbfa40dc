package metrics

import (
	"cmp"
	"slices"
	"strconv"
	gosync "sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tether-gitops/tether/contract"
)

// DriftObject is one object whose drift is open (found and not yet
// corrected or resolved).
type DriftObject struct {
	Kind, Namespace, Name string
	// Manager names the field manager(s) that changed it, comma-separated
	// and sorted ("" when the object was deleted or nobody owns the field).
	Manager string
	// Since is when the drift was first seen.
	Since time.Time
}

// Drift actions, the values of the action label of
// tether_drift_events_total.
const (
	// DriftDetected: a change made in the cluster was found.
	DriftDetected = "detected"
	// DriftCorrected: tether put the object back as git has it.
	DriftCorrected = "corrected"
	// DriftKept: policy warn keeps the change and keeps reporting it.
	DriftKept = "kept"
	// DriftIgnored: policy ignore neither corrects nor reports it.
	DriftIgnored = "ignored"
)

// DriftInfoCap is how many drifted objects of one sync tether_drift_info
// names (the oldest drifts first); the rest are counted in
// tether_drift_info_overflow. It keeps the object-named series bounded
// when someone edits a whole namespace by hand.
const DriftInfoCap = 50

// driftActions are the values DriftEvent accepts. Each is exported at 0
// from a sync's first report on, so that increase() and changes() see the
// first event too.
func driftActions() []string {
	return []string{DriftDetected, DriftCorrected, DriftKept, DriftIgnored}
}

// driftMetrics are the drift series: the open drift of each sync, which a
// collector of its own exports from one snapshot per sync (a scrape sees a
// sync's drift as it was before or after a SetDrift, never half of it, so
// an alert's pending time is never reset by a scrape that caught the
// update midway), and the drift events, a plain counter.
type driftMetrics struct {
	events *prometheus.CounterVec

	objects, info, overflow, oldest *prometheus.Desc

	mu   gosync.Mutex
	open map[string]openDrift // by sync; absent when nothing is open
}

// openDrift is what SetDrift computed for one sync.
type openDrift struct {
	kinds    map[string]int
	info     []DriftObject // the oldest DriftInfoCap objects
	overflow int
	oldest   time.Time
}

func newDriftMetrics() *driftMetrics {
	return &driftMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: contract.MetricDriftEvents,
			Help: "Drift events by sync and action (detected, corrected, kept by policy warn, ignored by policy ignore).",
		}, []string{"sync", "action"}),
		objects: prometheus.NewDesc(contract.MetricDrift,
			"Objects by sync and kind whose drift is open: changed in the cluster and not put back (yet).",
			[]string{"sync", "kind"}, nil),
		info: prometheus.NewDesc(contract.MetricDriftInfo,
			"1 for each object with open drift and the field managers that changed it; at most "+strconv.Itoa(DriftInfoCap)+" per sync, the oldest drifts first.",
			[]string{"sync", "kind", "namespace", "name", "manager"}, nil),
		overflow: prometheus.NewDesc(contract.MetricDriftInfoOverflow,
			"Objects with open drift left out of "+contract.MetricDriftInfo+" by its cap of "+strconv.Itoa(DriftInfoCap)+" per sync.",
			[]string{"sync"}, nil),
		oldest: prometheus.NewDesc(contract.MetricDriftOldest,
			"Unix time the oldest open drift of each sync was first seen; absent while none is open.",
			[]string{"sync"}, nil),
		open: map[string]openDrift{},
	}
}

// Describe implements prometheus.Collector.
func (d *driftMetrics) Describe(ch chan<- *prometheus.Desc) {
	d.events.Describe(ch)
	for _, desc := range []*prometheus.Desc{d.objects, d.info, d.overflow, d.oldest} {
		ch <- desc
	}
}

// Collect implements prometheus.Collector.
func (d *driftMetrics) Collect(ch chan<- prometheus.Metric) {
	d.events.Collect(ch)
	d.mu.Lock()
	defer d.mu.Unlock()
	for sync, o := range d.open {
		for kind, n := range o.kinds {
			ch <- prometheus.MustNewConstMetric(d.objects, prometheus.GaugeValue, float64(n), sync, kind)
		}
		for _, obj := range o.info {
			ch <- prometheus.MustNewConstMetric(d.info, prometheus.GaugeValue, 1, sync, obj.Kind, obj.Namespace, obj.Name, obj.Manager)
		}
		ch <- prometheus.MustNewConstMetric(d.overflow, prometheus.GaugeValue, float64(o.overflow), sync)
		ch <- prometheus.MustNewConstMetric(d.oldest, prometheus.GaugeValue, float64(o.oldest.UnixMilli())/1000, sync)
	}
}

// summarize computes a sync's open drift: objects named twice count once
// (the earliest Since wins), the info series keep the oldest DriftInfoCap
// drifts (ties by kind, namespace, name, so a scrape is stable).
func summarize(open []DriftObject) openDrift {
	type key struct{ kind, namespace, name string }
	byKey := make(map[key]DriftObject, len(open))
	for _, o := range open {
		k := key{o.Kind, o.Namespace, o.Name}
		if prev, ok := byKey[k]; !ok || o.Since.Before(prev.Since) {
			byKey[k] = o
		}
	}
	objs := make([]DriftObject, 0, len(byKey))
	kinds := map[string]int{}
	for _, o := range byKey {
		objs = append(objs, o)
		kinds[o.Kind]++
	}
	slices.SortFunc(objs, func(a, b DriftObject) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	s := openDrift{kinds: kinds, info: objs, oldest: objs[0].Since}
	if len(objs) > DriftInfoCap {
		s.info, s.overflow = slices.Clone(objs[:DriftInfoCap]), len(objs)-DriftInfoCap
	}
	return s
}

func (d *driftMetrics) set(sync string, open []DriftObject) {
	var s openDrift
	if len(open) > 0 {
		s = summarize(open)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(open) == 0 {
		delete(d.open, sync)
		return
	}
	d.open[sync] = s
}

// initEvents exports a sync's drift event counters at 0.
func (d *driftMetrics) initEvents(sync string) {
	for _, a := range driftActions() {
		d.events.WithLabelValues(sync, a)
	}
}

func (d *driftMetrics) forget(sync string) {
	d.events.DeletePartialMatch(prometheus.Labels{"sync": sync})
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.open, sync)
}

// SetDrift replaces the open drift of a sync (nil or empty: none).
func (m *Metrics) SetDrift(sync string, open []DriftObject) {
	m.initSync(sync)
	m.drift.set(sync, open)
}

// DriftEvent counts drift events of a sync by action: "detected",
// "corrected", "kept" (policy warn), "ignored" (policy ignore). Any other
// action is not counted: the label stays bounded.
func (m *Metrics) DriftEvent(sync, action string) {
	if !slices.Contains(driftActions(), action) {
		return
	}
	m.initSync(sync)
	m.drift.events.WithLabelValues(sync, action).Inc()
}
