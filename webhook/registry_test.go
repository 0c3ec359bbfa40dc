package webhook

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestRegistryNotifications(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	var syncs []string
	var logs bytes.Buffer
	r := New(Options{
		Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Trigger: func(s string) { syncs = append(syncs, s) },
		TriggerImages: func(host, repo string) []string {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, host+"/"+repo)
			if repo == "team/app" {
				return []string{"app"}
			}
			return nil
		},
	})
	r.SetRegistryTargets([]RegistryTarget{{Host: "reg.example.com", Secret: []byte("s3cret")}, {Host: "other:5000", Secret: []byte("0ther")}, {Host: "nosecret"}})
	distribution := `{"events":[
	  {"action":"push","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","repository":"team/app","tag":"1.1.0"}},
	  {"action":"push","target":{"mediaType":"application/octet-stream","repository":"team/layers-only"}},
	  {"action":"pull","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","repository":"team/pulled","tag":"1"}},
	  {"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"team/app","tag":"1.1.0"}}]}`
	hub := `{"push_data":{"tag":"1.1.0"},"repository":{"repo_name":"team/app"}}`
	tests := []struct {
		name, auth, body string
		status           int
		triggered        []string
		asked            []string
		// query is added to the URL.
		query string
	}{
		// Docker Hub cannot send a header: its secret may come in the URL,
		// for its payload only.
		{name: "docker hub, secret in the URL", body: hub, query: "?token=s3cret", status: http.StatusOK, triggered: []string{"app"}, asked: []string{"reg.example.com/team/app"}},
		{name: "docker hub, wrong secret in the URL", body: hub, query: "?token=wrong", status: http.StatusUnauthorized},
		{name: "the URL's secret is not taken for a distribution envelope", body: distribution, query: "?token=s3cret", status: http.StatusUnauthorized},
		{name: "the URL's secret is not taken for Harbor", body: `{"type":"PUSH_ARTIFACT","event_data":{"repository":{"repo_full_name":"team/app"}}}`, query: "?token=0ther", status: http.StatusUnauthorized},
		{name: "the URL's secret is not taken beside a wrong header", auth: "Bearer wrong", body: hub, query: "?token=s3cret", status: http.StatusUnauthorized},
		{"distribution envelope", "Bearer s3cret", distribution, http.StatusOK, []string{"app"}, []string{"reg.example.com/team/app"}, ""},
		{"harbor, bare secret", "0ther", `{"type":"PUSH_ARTIFACT","event_data":{"repository":{"repo_full_name":"team/app"}}}`, http.StatusOK, []string{"app"}, []string{"other:5000/team/app"}, ""},
		{"docker hub", "Bearer s3cret", `{"push_data":{"tag":"x"},"repository":{"repo_name":"team/unfollowed"}}`, http.StatusAccepted, []string{}, []string{"reg.example.com/team/unfollowed"}, ""},
		{"wrong secret", "Bearer wrong", distribution, http.StatusUnauthorized, nil, nil, ""},
		{"no secret", "", distribution, http.StatusUnauthorized, nil, nil, ""},
		{"a target without a secret is never matched", "Bearer ", distribution, http.StatusUnauthorized, nil, nil, ""},
		{"bad JSON", "Bearer s3cret", `{"events":`, http.StatusBadRequest, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked = nil
			req := httptest.NewRequest(http.MethodPost, RegistryPath+tt.query, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v1+json")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if !slices.Equal(asked, tt.asked) {
				t.Errorf("scans asked for %q, want %q", asked, tt.asked)
			}
			if tt.triggered != nil {
				var res response
				if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || !slices.Equal(res.Triggered, tt.triggered) {
					t.Errorf("answer %s, want triggered %q", rec.Body, tt.triggered)
				}
			}
			if strings.Contains(rec.Body.String(), "s3cret") {
				t.Errorf("the answer repeats the secret: %s", rec.Body)
			}
		})
	}
	if len(syncs) > 0 {
		t.Errorf("registry notifications triggered syncs %q", syncs)
	}
	if strings.Contains(logs.String(), "s3cret") || !strings.Contains(logs.String(), "scans triggered") {
		t.Errorf("the log holds the secret, or nothing:\n%s", logs.String())
	}
}
