package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/tether-gitops/tether/webhook"
)

// clusterCheckTTL is how long a successful check that the API server
// answers stays good for /readyz.
const clusterCheckTTL = 10 * time.Second

// Handler serves the agent's endpoints:
//
//	/healthz  200 while the process runs
//	/readyz   200 once the configuration is loaded and the API server
//	          answers, as leader or standby; 503 otherwise, with the reason
//	/status   JSON (type Status): every sync's revisions, last attempt,
//	          failing phase and error, counts and unhealthy objects
//	/metrics  Prometheus metrics
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if err := a.ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		role := "standby"
		if a.Leading() {
			role = "leader"
		}
		fmt.Fprintln(w, "ok:", role)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a.Status())
	})
	mux.Handle("GET /metrics", a.metrics.Handler())
	return mux
}

// ready reports why the agent is not ready, or nil.
func (a *Agent) ready() error {
	a.mu.Lock()
	loaded := a.cfg != nil
	checked := a.clusterOK
	a.mu.Unlock()
	if !loaded {
		return fmt.Errorf("configuration not loaded")
	}
	if time.Since(checked) < clusterCheckTTL {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.clients.Typed.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Error(); err != nil {
		return fmt.Errorf("API server unreachable: %v", err)
	}
	a.mu.Lock()
	a.clusterOK = time.Now()
	a.mu.Unlock()
	return nil
}

// WebhookHandler is the webhook receiver with its requests counted in the
// metrics.
func (a *Agent) WebhookHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		a.hooks.ServeHTTP(rec, r)
		endpoint := "other"
		if r.URL.Path == webhook.GitHubPath || r.URL.Path == webhook.GenericPath || r.URL.Path == webhook.RegistryPath {
			endpoint = r.URL.Path
		}
		a.metrics.Webhook(endpoint, rec.code)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}
