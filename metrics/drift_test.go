package metrics

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tether-gitops/tether/contract"
)

var t0 = time.Unix(1_800_000_000, 0)

func at(seconds float64) time.Time { return t0.Add(time.Duration(seconds * float64(time.Second))) }

// driftSeries are the names of the open-drift series.
func driftSeries() []string {
	return []string{contract.MetricDrift, contract.MetricDriftInfo, contract.MetricDriftInfoOverflow, contract.MetricDriftOldest}
}

// samples renders the series of the named metrics as sorted lines
// `name{label="value",...} value`, leaving out labels with empty values
// (as Prometheus does).
func samples(t *testing.T, m *Metrics, names ...string) []string {
	t.Helper()
	var out []string
	for _, mf := range mustGather(t, m) {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		for _, s := range mf.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				if l.GetValue() != "" {
					labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
			}
			v := s.GetGauge().GetValue() + s.GetCounter().GetValue()
			out = append(out, fmt.Sprintf("%s{%s} %s", mf.GetName(), strings.Join(labels, ","), strconv.FormatFloat(v, 'f', -1, 64)))
		}
	}
	slices.Sort(out)
	return out
}

func diffLines(t *testing.T, step string, got, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("%s:\ngot\n  %s\nwant\n  %s", step, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// Each step replaces one sync's open drift; the series of every sync are
// checked after each step, so a step also proves that what the previous one
// set is gone when it should be.
func TestSetDrift(t *testing.T) {
	m := New()
	webFour := []string{
		`tether_drifted_objects{kind="ConfigMap",sync="web"} 2`,
		`tether_drifted_objects{kind="Deployment",sync="web"} 1`,
		`tether_drifted_objects{kind="Namespace",sync="web"} 1`,
		`tether_drift_info{kind="ConfigMap",manager="kubectl-edit,kubectl-patch",name="flags",namespace="web",sync="web"} 1`,
		`tether_drift_info{kind="ConfigMap",name="settings",namespace="web",sync="web"} 1`,
		`tether_drift_info{kind="Deployment",manager="kubectl-set",name="frontend",namespace="web",sync="web"} 1`,
		`tether_drift_info{kind="Namespace",manager="kubectl-label",name="web",sync="web"} 1`,
		`tether_drift_info_overflow{sync="web"} 0`,
		`tether_drift_oldest_open_timestamp_seconds{sync="web"} 1800000001.5`,
	}
	apiOne := []string{
		`tether_drifted_objects{kind="Secret",sync="api"} 1`,
		`tether_drift_info{kind="Secret",manager="helm",name="token",namespace="api",sync="api"} 1`,
		`tether_drift_info_overflow{sync="api"} 0`,
		`tether_drift_oldest_open_timestamp_seconds{sync="api"} 1800000030`,
	}
	steps := []struct {
		name string
		sync string
		open []DriftObject
		want []string
	}{{
		name: "nothing open exports nothing",
		sync: "web",
		open: nil,
		want: nil,
	}, {
		name: "open drift by kind, one info series per object, the oldest start",
		sync: "web",
		open: []DriftObject{
			{Kind: "Deployment", Namespace: "web", Name: "frontend", Manager: "kubectl-set", Since: at(60)},
			{Kind: "ConfigMap", Namespace: "web", Name: "settings", Since: at(1.5)}, // deleted: no manager
			{Kind: "ConfigMap", Namespace: "web", Name: "flags", Manager: "kubectl-edit,kubectl-patch", Since: at(120)},
			{Kind: "Namespace", Name: "web", Manager: "kubectl-label", Since: at(90)},
		},
		want: webFour,
	}, {
		name: "another sync has series of its own",
		sync: "api",
		open: []DriftObject{{Kind: "Secret", Namespace: "api", Name: "token", Manager: "helm", Since: at(30)}},
		want: append(slices.Clone(webFour), apiOne...),
	}, {
		name: "a corrected object leaves, its kind's count drops, the oldest start moves on; an object named twice counts once (the earliest)",
		sync: "web",
		open: []DriftObject{
			{Kind: "Deployment", Namespace: "web", Name: "frontend", Manager: "kubectl-set", Since: at(60)},
			{Kind: "ConfigMap", Namespace: "web", Name: "flags", Manager: "kubectl-patch", Since: at(200)},
			{Kind: "ConfigMap", Namespace: "web", Name: "flags", Manager: "kubectl-edit,kubectl-patch", Since: at(120)},
		},
		want: []string{
			`tether_drifted_objects{kind="ConfigMap",sync="web"} 1`,
			`tether_drifted_objects{kind="Deployment",sync="web"} 1`,
			`tether_drift_info{kind="ConfigMap",manager="kubectl-edit,kubectl-patch",name="flags",namespace="web",sync="web"} 1`,
			`tether_drift_info{kind="Deployment",manager="kubectl-set",name="frontend",namespace="web",sync="web"} 1`,
			`tether_drift_info_overflow{sync="web"} 0`,
			`tether_drift_oldest_open_timestamp_seconds{sync="web"} 1800000060`,
			apiOne[0], apiOne[1], apiOne[2], apiOne[3],
		},
	}, {
		name: "drift ends: every series of the sync goes",
		sync: "web",
		open: nil,
		want: apiOne,
	}, {
		name: "an empty slice is none too",
		sync: "api",
		open: []DriftObject{},
		want: nil,
	}}
	for _, s := range steps {
		m.SetDrift(s.sync, s.open)
		diffLines(t, s.name, samples(t, m, driftSeries()...), s.want)
	}
}

// More drifted objects than the cap: the oldest are named, the rest
// counted; the counts by kind and the oldest start still cover all.
func TestDriftInfoCap(t *testing.T) {
	m := New()
	const n = DriftInfoCap + 3
	var open []DriftObject
	for i := n - 1; i >= 0; i-- { // newest first: the order given must not matter
		kind := []string{"ConfigMap", "Secret"}[i%2]
		open = append(open, DriftObject{Kind: kind, Namespace: "web", Name: fmt.Sprintf("obj-%02d", i), Manager: "kubectl-edit", Since: at(float64(i))})
	}
	m.SetDrift("web", open)
	got := samples(t, m, driftSeries()...)
	var want []string
	for i := range DriftInfoCap {
		want = append(want, fmt.Sprintf(`tether_drift_info{kind=%q,manager="kubectl-edit",name="obj-%02d",namespace="web",sync="web"} 1`, []string{"ConfigMap", "Secret"}[i%2], i))
	}
	want = append(want,
		`tether_drifted_objects{kind="ConfigMap",sync="web"} 27`,
		`tether_drifted_objects{kind="Secret",sync="web"} 26`,
		`tether_drift_info_overflow{sync="web"} 3`,
		`tether_drift_oldest_open_timestamp_seconds{sync="web"} 1800000000`,
	)
	diffLines(t, "53 objects", got, want)

	// Down to the cap: nothing overflows.
	m.SetDrift("web", open[3:])
	if got := samples(t, m, contract.MetricDriftInfoOverflow); !slices.Equal(got, []string{`tether_drift_info_overflow{sync="web"} 0`}) {
		t.Errorf("overflow at the cap: %v", got)
	}
	if got := samples(t, m, contract.MetricDriftInfo); len(got) != DriftInfoCap {
		t.Errorf("%d info series at the cap, want %d", len(got), DriftInfoCap)
	}
}

func TestDriftEvents(t *testing.T) {
	type event struct{ sync, action string }
	tests := []struct {
		name   string
		events []event
		want   []string
	}{{
		name:   "the first event of a sync exports every action, at 0 but the one counted",
		events: []event{{"web", DriftDetected}},
		want: []string{
			`tether_drift_events_total{action="corrected",sync="web"} 0`,
			`tether_drift_events_total{action="detected",sync="web"} 1`,
			`tether_drift_events_total{action="ignored",sync="web"} 0`,
			`tether_drift_events_total{action="kept",sync="web"} 0`,
		},
	}, {
		name: "each action of each sync counts on its own",
		events: []event{
			{"web", DriftDetected}, {"web", DriftCorrected}, {"web", DriftDetected}, {"web", DriftCorrected},
			{"api", DriftDetected}, {"api", DriftKept}, {"api", DriftIgnored},
		},
		want: []string{
			`tether_drift_events_total{action="corrected",sync="web"} 2`,
			`tether_drift_events_total{action="detected",sync="web"} 2`,
			`tether_drift_events_total{action="ignored",sync="web"} 0`,
			`tether_drift_events_total{action="kept",sync="web"} 0`,
			`tether_drift_events_total{action="corrected",sync="api"} 0`,
			`tether_drift_events_total{action="detected",sync="api"} 1`,
			`tether_drift_events_total{action="ignored",sync="api"} 1`,
			`tether_drift_events_total{action="kept",sync="api"} 1`,
		},
	}, {
		name:   "an unknown action is not counted and makes no series",
		events: []event{{"web", "deleted"}, {"web", ""}},
		want:   nil,
	}}
	for _, tt := range tests {
		m := New()
		for _, e := range tt.events {
			m.DriftEvent(e.sync, e.action)
		}
		diffLines(t, tt.name, samples(t, m, contract.MetricDriftEvents), tt.want)
	}
}

// SetDrift exports the sync's event counters at 0 even before the first
// event, so that the first correction is an increase; so does any
// reconcile.
func TestDriftEventsStartAtZero(t *testing.T) {
	m := New()
	m.SetDrift("web", nil)
	m.Skipped("api", time.Millisecond)
	want := []string{}
	for _, sync := range []string{"web", "api"} {
		for _, a := range driftActions() {
			want = append(want, fmt.Sprintf(`tether_drift_events_total{action=%q,sync=%q} 0`, a, sync))
		}
	}
	diffLines(t, "before any event", samples(t, m, contract.MetricDriftEvents), want)
}

// Forget removes every drift series of one sync and leaves the others.
func TestForgetDrift(t *testing.T) {
	m := New()
	for _, sync := range []string{"web", "api"} {
		m.SetDrift(sync, []DriftObject{{Kind: "ConfigMap", Namespace: sync, Name: "settings", Manager: "kubectl-edit", Since: t0}})
		m.DriftEvent(sync, DriftKept)
	}
	m.Forget("web")
	got := samples(t, m, append(driftSeries(), contract.MetricDriftEvents)...)
	for _, line := range got {
		if strings.Contains(line, `sync="web"`) {
			t.Errorf("a series of the forgotten sync remains: %s", line)
		}
	}
	if len(got) != 4+len(driftActions()) {
		t.Errorf("the other sync lost series: %v", got)
	}
	lint(t, m)
}
