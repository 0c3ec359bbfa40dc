package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/health"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// statusNow is the time the golden status is printed at.
var statusNow = time.Date(2026, 12, 7, 14, 5, 0, 0, time.UTC)

// fakeStatus is what a fake agent serves on /status: a sync correcting
// drift, one keeping it (warn) and polling because the API server refuses
// a watch, one whose correction failed.
func fakeStatus() agent.Status {
	at := func(d time.Duration) time.Time { return statusNow.Add(-d) }
	corrected := at(5 * time.Second)
	since := at(10 * time.Minute)
	return agent.Status{Identity: "tether-0", Leader: true, Version: "v1.2.3", ConfigFile: "/etc/tether/tether.yaml",
		Syncs: []agent.SyncStatus{
			{Name: "webapp-dev", Path: "overlays/dev", Health: health.Healthy,
				Applied:     &agent.RevisionStatus{Revision: "main@sha1:0123456789abcdef0123", Commit: &agent.Commit{Subject: "webapp 1.1.0", Author: "Ada"}, At: at(time.Hour)},
				LastAttempt: &agent.Attempt{At: at(3 * time.Second), Outcome: "skipped"},
				Live:        &agent.LiveStatus{Source: agent.LiveWatch, Watches: []agent.WatchStatus{{Resource: "deployments.apps/v1 in webapp-dev", Listed: true, Since: &since}}},
				Drift: []agent.DriftStatus{{Object: "Deployment.apps/webapp-dev/webapp", Policy: "correct", Managers: "kubectl-set", Since: at(6 * time.Second), Corrected: &corrected,
					Fields: []string{"spec.template.spec.containers[name=web].image: registry.example.com/webapp:1.1.0 → registry.example.com/webapp:debug by kubectl-set (Update) at 14:04:54"}}}},
			{Name: "webapp-prod", Path: "overlays/prod", Health: health.Degraded,
				Applied:     &agent.RevisionStatus{Revision: "main@sha1:fedcba9876543210fedc", At: at(2 * time.Hour)},
				LastAttempt: &agent.Attempt{At: at(20 * time.Second), Outcome: "skipped"},
				Unhealthy:   []agent.ObjectHealth{{Object: "Deployment.apps/webapp-prod/webapp", Status: health.Degraded, Message: "Progress deadline exceeded"}},
				Live: &agent.LiveStatus{Source: agent.LivePolling, Reason: "the API server refuses to watch deployments.apps/v1 in webapp-prod: forbidden",
					Refused: &agent.Refusal{Verb: "watch", Resource: "deployments.apps/v1 in webapp-prod", Error: `deployments.apps is forbidden: User "system:serviceaccount:tether-system:tether" cannot watch resource "deployments" in API group "apps" in the namespace "webapp-prod"`}},
				Drift: []agent.DriftStatus{
					{Object: "ConfigMap/webapp-prod/settings", Policy: "warn", Managers: "kubectl-edit", Since: at(2 * time.Minute),
						Fields: []string{"data.mode: normal → debug by kubectl-edit (Update) at 14:03:00"}},
					{Object: "Service/webapp-prod/webapp", Policy: "correct", Deleted: true, Since: at(30 * time.Second),
						CorrectionError: "correct failed: Service/webapp-prod/webapp: admission webhook \"policy.example.com\" denied the request\nsecond line"}}},
			{Name: "tools", Path: "tools", Suspended: true},
		}}
}

// serveStatus starts a fake agent answering /status with st.
func serveStatus(t *testing.T, st agent.Status) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// tether status prints the table, why a sync polls, and every open drift
// with its fields, managers and state.
func TestStatusGolden(t *testing.T) {
	st, err := fetchStatus(context.Background(), serveStatus(t, fakeStatus()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printStatus(&out, st, statusNow)
	golden(t, "status.golden", out.Bytes())
	out.Reset()
	printDrift(&out, st, statusNow)
	golden(t, "status-drift.golden", out.Bytes())
}

// tether why --server adds the object's open drift, "none" without, and
// says so when the agent cannot be asked.
func TestWhyDriftGolden(t *testing.T) {
	server := serveStatus(t, fakeStatus())
	var out bytes.Buffer
	for _, ref := range []string{"Deployment.apps/webapp-dev/webapp", "ConfigMap/webapp-prod/settings", "Service/webapp-prod/webapp", "ConfigMap/webapp-dev/untouched"} {
		out.WriteString(ref + "\n")
		whyDrift(context.Background(), &out, server, ref)
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	out.WriteString("agent unreachable\n")
	whyDrift(context.Background(), &out, gone.URL, "Deployment.apps/webapp-dev/webapp")
	got := bytes.ReplaceAll(out.Bytes(), []byte(strings.TrimPrefix(gone.URL, "http://")), []byte("AGENT"))
	golden(t, "why-drift.golden", got)
}
