package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseProcStatCPU(t *testing.T) {
	// 52 fields as Linux writes them; utime 1500, stime 300, cutime 40,
	// cstime 2.
	tail := " S 1 1234 1234 0 -1 4194560 12345 0 0 0 1500 300 40 2 20 0 12 0 5678 1234567890 4321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0"
	for _, tc := range []struct {
		name, stat string
		want       int64
		wantErr    bool
	}{
		{"plain name", "1234 (tether)" + tail, 1842, false},
		{"name with spaces and parentheses", "1234 (a ) (b)" + tail, 1842, false},
		{"no name", "1234 tether" + tail, 0, true},
		{"cut short", "1234 (tether) S 1 1234", 0, true},
		{"not a number", "1234 (tether) S 1 1234 1234 0 -1 4194560 12345 0 0 0 x 300 40 2", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProcStatCPU(tc.stat)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseProcStatCPU = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestMetricSum(t *testing.T) {
	text := `# HELP tether_drift_events_total Drift events by sync and action.
# TYPE tether_drift_events_total counter
tether_drift_events_total{action="corrected",sync="bench-agent"} 1
tether_drift_events_total{action="detected",sync="bench-agent"} 2
tether_drift_events_total{action="detected",sync="bench-agent-2"} 5
tether_drift_events_total_extra{action="detected",sync="bench-agent"} 7
tether_reconcile_duration_seconds_count{outcome="skipped",sync="bench-agent"} 6
tether_leader 1
`
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tether_drift_events_total", map[string]string{"sync": "bench-agent", "action": "detected"}, 2},
		{"tether_drift_events_total", map[string]string{"action": "detected"}, 7},
		{"tether_drift_events_total", map[string]string{"sync": "bench-agent"}, 3},
		{"tether_drift_events_total", map[string]string{"sync": "bench"}, 0},
		{"tether_reconcile_duration_seconds_count", map[string]string{"outcome": "skipped"}, 6},
		{"tether_leader", nil, 1},
		{"tether_missing", nil, 0},
	} {
		if got := metricSum(text, tc.name, tc.labels); got != tc.want {
			t.Errorf("metricSum(%s, %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestWritesExcept(t *testing.T) {
	c := requestCounts{ByResource: map[string]int{
		"patch deployments":           1,
		"patch (dry-run) deployments": 1,
		"create events":               2,
		"update leases":               3,
		"get leases":                  3,
		"watch deployments":           1,
	}}
	n, summary := c.writesExcept("events", "leases")
	if n != 1 || summary != "patch deployments 1" {
		t.Errorf("writesExcept = %d, %q; want 1, %q", n, summary, "patch deployments 1")
	}
	if n, _ := c.writesExcept(); n != 6 {
		t.Errorf("writesExcept() = %d, want 6", n)
	}
}

// fakeLive is an agent that sent the given requests while idle and wrote
// writes to put drift back.
func fakeLive(byResource map[string]int, writes int) *agentLive {
	c := requestCounts{ByVerb: map[string]int{}, ByResource: byResource}
	for key, n := range byResource {
		verb := key[:strings.LastIndexByte(key, ' ')]
		c.ByVerb[verb] += n
		c.Requests += n
	}
	s := time.Second
	return &agentLive{objects: 1001, first: 12 * s,
		idle: idleRun{window: time.Minute, counts: c, cpu: 600 * time.Millisecond, polls: 6, skipped: 6},
		drift: driftRun{object: "Deployment/bench-agent/app-000", detected: 300 * time.Millisecond, event: 400 * time.Millisecond,
			corrected: 350 * time.Millisecond, restored: 360 * time.Millisecond, writes: writes, writeSummary: "patch deployments 1",
			message: "Deployment bench-agent/app-000: image changed by kubectl-edit", said: "put back 1 drifted objects (1 writes)"},
	}
}

func TestLiveReport(t *testing.T) {
	quiet := map[string]int{"get leases": 29, "update leases": 29, "watch deployments": 1}
	for _, tc := range []struct {
		name string
		live *agentLive
		want []string
	}{
		{"watches only", fakeLive(quiet, 1), []string{
			"PASS  agent idle for 1m00.0s sends no LIST and no dry run (watches only): 0 LISTs, 0 dry runs; 1 watch request, 58 for the leader lease, 59 in all",
			"PASS  drift put back with exactly one write: 1 write (patch deployments 1), 0.36s after the change",
			"requests idle:      59.0 per minute (59 in 1m00.0s): 0 LISTs, 0 dry runs, 1 watch request, 58 for the leader lease",
			"agent CPU idle:     0.60s in 1m00.0s (1.0% of one core)",
			`reported:         0.30s after the patch (its DriftDetected Event seen after 0.40s, tether_drift_events_total{action="detected"} after 0.30s):`,
			`"Deployment bench-agent/app-000: image changed by kubectl-edit"`,
		}},
		{"polling", fakeLive(map[string]int{"list configmaps": 6, "patch (dry-run) configmaps": 2, "get leases": 29}, 2), []string{
			"MISS  agent idle for 1m00.0s sends no LIST and no dry run (watches only): 6 LISTs, 2 dry runs; 0 watch requests, 29 for the leader lease, 37 in all",
			"MISS  drift put back with exactly one write: 2 writes",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			liveTargets(&out, tc.live)
			tc.live.report(&out)
			for _, want := range tc.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("the report lacks %q", want)
				}
			}
			if t.Failed() || testing.Verbose() {
				t.Log("\n" + out.String())
			}
		})
	}
}

func TestLiveReportFailed(t *testing.T) {
	live := fakeLive(nil, 1)
	live.drift.err = errors.New("no Event")
	var out bytes.Buffer
	liveTargets(&out, live)
	live.report(&out)
	got := out.String()
	for _, want := range []string{
		"PASS  agent idle for",
		"n/a   drift put back with exactly one write: not measured",
		"FAILED: no Event",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the report lacks %q:\n%s", want, got)
		}
	}
	live.err = errors.New("the agent did not become ready")
	out.Reset()
	liveTargets(&out, live)
	if strings.Count(out.String(), "n/a") != 2 {
		t.Errorf("with the agent failed, both targets should be n/a:\n%s", out.String())
	}
}
