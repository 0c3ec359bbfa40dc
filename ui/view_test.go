package ui

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/health"
)

func TestObjectPathRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		id   object.ObjMetadata
		path string
	}{
		{object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "ConfigMap"}, Namespace: "shop", Name: "settings"}, "ConfigMap/shop/settings"},
		{object.ObjMetadata{GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}, Namespace: "shop", Name: "web"}, "Deployment.apps/shop/web"},
		{object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "Namespace"}, Name: "shop"}, "Namespace/shop"},
		{object.ObjMetadata{GroupKind: schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}, Name: "system:viewer"}, "ClusterRole.rbac.authorization.k8s.io/system:viewer"},
		{object.ObjMetadata{GroupKind: schema.GroupKind{Group: "example.com", Kind: "Widget"}, Namespace: "a", Name: "odd name?#"}, "Widget.example.com/a/odd%20name%3F%23"},
	} {
		if got := objectPath(tc.id); got != tc.path {
			t.Errorf("objectPath(%v) = %q, want %q", tc.id, got, tc.path)
		}
	}
	for _, tc := range []struct {
		path string
		want object.ObjMetadata
		bad  bool
	}{
		{path: "Deployment.apps/shop/web", want: object.ObjMetadata{GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}, Namespace: "shop", Name: "web"}},
		{path: "ClusterRole.rbac.authorization.k8s.io/x", want: object.ObjMetadata{GroupKind: schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}, Name: "x"}},
		{path: "Secret/shop/creds", want: object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "Secret"}, Namespace: "shop", Name: "creds"}},
		{path: "Secret", bad: true},
		{path: "Secret/a/b/c", bad: true},
		{path: "Secret//b", bad: true},
		{path: ".apps/a/b", bad: true},
	} {
		got, err := parseObjectPath(tc.path)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("parseObjectPath(%q) = %v, %v", tc.path, got, err)
		}
	}
}

func TestSyncState(t *testing.T) {
	for _, tc := range []struct {
		s    agent.SyncStatus
		want string
	}{
		{agent.SyncStatus{Suspended: true, LastAttempt: &agent.Attempt{Outcome: "failure"}}, StateSuspended},
		{agent.SyncStatus{}, StatePending},
		{agent.SyncStatus{LastAttempt: &agent.Attempt{Outcome: "failure"}, Health: health.Healthy}, StateFailing},
		{agent.SyncStatus{LastAttempt: &agent.Attempt{Outcome: "success"}, Health: health.Degraded}, StateDegraded},
		{agent.SyncStatus{LastAttempt: &agent.Attempt{Outcome: "skipped"}, Health: health.Healthy}, StateHealthy},
		{agent.SyncStatus{LastAttempt: &agent.Attempt{Outcome: "failure"}}, StateFailing},
		{agent.SyncStatus{LastAttempt: &agent.Attempt{Outcome: "success"}}, StatePending},
	} {
		if got := syncState(tc.s); got != tc.want {
			t.Errorf("syncState(%+v) = %s, want %s", tc.s, got, tc.want)
		}
		if stateClass(tc.want) == "st-none" {
			t.Errorf("state %s has no colour", tc.want)
		}
	}
}

func TestShortRevisionAndAgo(t *testing.T) {
	for in, want := range map[string]string{
		"main@sha1:0123456789abcdef0123456789abcdef01234567":   "main@0123456789ab",
		"v1.2.0@sha1:0123456789abcdef0123456789abcdef01234567": "v1.2.0@0123456789ab",
		"local@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa":          "local@aaaaaaaaaaaa",
		"deleted": "deleted",
		"":        "",
	} {
		if got := shortRevision(in); got != want {
			t.Errorf("shortRevision(%q) = %q, want %q", in, got, want)
		}
	}
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		5 * time.Second: "5s ago", 3 * time.Minute: "3m ago", 5 * time.Hour: "5h ago", 72 * time.Hour: "3d ago", -time.Minute: "in 1m",
	} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
	if ago(now, time.Time{}) != "" {
		t.Error("the zero time has an age")
	}
}

func TestFingerprint(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	base := agent.SyncStatus{Name: "a", Health: health.Healthy, Applied: &agent.RevisionStatus{Revision: "r1"}, LastAttempt: &agent.Attempt{Outcome: "success", At: at}}
	fp := func(change func(*agent.SyncStatus)) string {
		s := base
		a := *base.LastAttempt
		s.LastAttempt = &a
		change(&s)
		return fingerprint(agent.Status{Leader: true}, []agent.SyncStatus{s})
	}
	same := fp(func(*agent.SyncStatus) {})
	for name, change := range map[string]func(*agent.SyncStatus){
		"applied":  func(s *agent.SyncStatus) { s.Applied = &agent.RevisionStatus{Revision: "r2"} },
		"fetched":  func(s *agent.SyncStatus) { s.Fetched = &agent.RevisionStatus{Revision: "r2"} },
		"health":   func(s *agent.SyncStatus) { s.Health = health.Degraded },
		"outcome":  func(s *agent.SyncStatus) { s.LastAttempt.Outcome = "failure" },
		"error":    func(s *agent.SyncStatus) { s.LastAttempt.Error = "boom" },
		"attempt":  func(s *agent.SyncStatus) { s.History = []agent.Attempt{{At: at.Add(time.Minute)}} },
		"failures": func(s *agent.SyncStatus) { s.ConsecutiveFailures = 2 },
		"drift": func(s *agent.SyncStatus) {
			s.Drift = []agent.DriftStatus{{Object: "ConfigMap app/a", Policy: "warn", Fields: []string{"data.k: 1 → 2 by kubectl-edit (Update)"}}}
		},
	} {
		if fp(change) == same {
			t.Errorf("a change of %s keeps the fingerprint", name)
		}
	}
	for name, change := range map[string]func(*agent.SyncStatus){
		"a skipped poll's time": func(s *agent.SyncStatus) { s.LastAttempt.At = at.Add(time.Minute) },
		"next attempt":          func(s *agent.SyncStatus) { s.NextAttempt = at.Add(time.Hour) },
	} {
		if fp(change) != same {
			t.Errorf("a change of %s changes the fingerprint", name)
		}
	}
}

// The image automation's state is part of the fingerprint too.
func TestFingerprintImages(t *testing.T) {
	syncs := []agent.SyncStatus{{Name: "a"}}
	without := fingerprint(agent.Status{Leader: true}, syncs)
	with := fingerprint(agent.Status{Leader: true, Images: &agent.ImagesStatus{}}, syncs)
	if with == without {
		t.Error("image state keeps the fingerprint")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"syncs/shop":                         "syncs/shop",
		"objects/Deployment.apps/shop/web":   "objects/Deployment.apps/shop/web",
		"objects/Widget.example.com/a/b%20c": "objects/Widget.example.com/a/b%20c",
		"":                                   "",
		"//evil.example/":                    "",
		"https://evil.example/":              "",
		"syncs/../../../etc":                 "",
		"syncs/%2e%2e/%2E%2e/api":            "",
		"objects/.%2e/x":                     "",
		"syncs//evil.example":                "",
		"syncs/a?x=1":                        "",
		"events":                             "",
		"syncs/a\\evil":                      "",
		"objects/javascript:alert(1)":        "",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
