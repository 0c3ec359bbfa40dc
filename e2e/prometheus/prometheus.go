// Package prometheus runs Debian's Prometheus server for tests: on a free
// loopback port, scraping given targets every second and evaluating given
// rule files every second, with its data in a temporary folder. Tests ask
// it what a user's Prometheus would say through its HTTP API
// (/api/v1/alerts, /api/v1/query) with client_golang's API client.
//
// The server is started with a parent-death signal from a thread that
// lives as long as the test binary, so a killed test leaves nothing behind.
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/tether-gitops/tether/e2e/cluster"
)

// Binary is where Debian's prometheus package installs the server.
const Binary = "/usr/bin/prometheus"

// Options configure a Prometheus.
type Options struct {
	// Targets are host:port addresses scraped at /metrics every second,
	// as job Job.
	Targets []string
	// Job is the job label of the targets; default "tether".
	Job string
	// RuleFiles are rule files (alerting and recording) evaluated every
	// second.
	RuleFiles []string
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	// URL is its base URL, http://127.0.0.1:PORT.
	URL string
	// API is a client of its HTTP API.
	API promv1.API

	dir     string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	stopped gosync.Once
}

// Start writes a configuration into a temporary folder, starts Prometheus
// and waits until it is ready.
func Start(opts Options) (_ *Prometheus, err error) {
	if _, err := os.Stat(Binary); err != nil {
		return nil, fmt.Errorf("prometheus not found at %s (install it: `make deps`): %w", Binary, err)
	}
	dir, err := os.MkdirTemp("", "tether-prometheus-")
	if err != nil {
		return nil, err
	}
	p := &Prometheus{dir: dir, logPath: filepath.Join(dir, "prometheus.log")}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	port, err := cluster.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p.URL = "http://" + addr
	cfg, err := config(opts)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(Binary,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cluster.Spawn(cmd); err != nil {
		return nil, fmt.Errorf("starting prometheus: %w", err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(p.done) }()
	client, err := promapi.NewClient(promapi.Config{Address: p.URL})
	if err != nil {
		return nil, err
	}
	p.API = promv1.NewAPI(client)
	if err := p.waitReady(time.Minute); err != nil {
		return nil, err
	}
	return p, nil
}

// StartT starts Prometheus for a test and stops it when the test ends,
// logging what it wrote if the test failed.
func StartT(t testing.TB, opts Options) *Prometheus {
	t.Helper()
	p, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prometheus %s log:\n%s", p.URL, p.Logs())
		}
		p.Close()
	})
	return p
}

// config is the server's configuration: one job scraping the targets and
// the rule files, everything every second.
func config(opts Options) ([]byte, error) {
	if len(opts.Targets) == 0 {
		return nil, errors.New("prometheus: no targets to scrape")
	}
	job := opts.Job
	if job == "" {
		job = "tether"
	}
	rules := make([]string, 0, len(opts.RuleFiles))
	for _, f := range opts.RuleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("prometheus: rule file: %w", err)
		}
		rules = append(rules, abs)
	}
	return yaml.Marshal(map[string]any{
		"global": map[string]any{
			"scrape_interval":     "1s",
			"scrape_timeout":      "1s",
			"evaluation_interval": "1s",
		},
		"rule_files": rules,
		"scrape_configs": []any{map[string]any{
			"job_name":       job,
			"static_configs": []any{map[string]any{"targets": opts.Targets}},
		}},
	})
}

func (p *Prometheus) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 5 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("prometheus exited: %s", p.Logs())
		default:
		}
		resp, err := client.Get(p.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("prometheus did not become ready within %s: %s", timeout, p.Logs())
}

// Alerts are the pending and firing alerts named name (all when name is
// empty), from /api/v1/alerts.
func (p *Prometheus) Alerts(ctx context.Context, name string) ([]promv1.Alert, error) {
	res, err := p.API.Alerts(ctx)
	if err != nil {
		return nil, fmt.Errorf("prometheus /api/v1/alerts: %w", err)
	}
	var out []promv1.Alert
	for _, a := range res.Alerts {
		if name == "" || string(a.Labels[model.AlertNameLabel]) == name {
			out = append(out, a)
		}
	}
	return out, nil
}

// Query evaluates an instant vector expression now, through /api/v1/query.
func (p *Prometheus) Query(ctx context.Context, expr string) (model.Vector, error) {
	v, _, err := p.API.Query(ctx, expr, time.Now())
	if err != nil {
		return nil, fmt.Errorf("prometheus query %q: %w", expr, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("prometheus query %q: a %s, want a vector", expr, v.Type())
	}
	return vec, nil
}

// Close stops Prometheus and removes its folder.
func (p *Prometheus) Close() {
	p.stopped.Do(func() {
		if p.cmd != nil && p.cmd.Process != nil {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		_ = os.RemoveAll(p.dir)
	})
}

// Logs is what Prometheus wrote (warnings and errors; its log level is
// warn), the last 64 KiB.
func (p *Prometheus) Logs() string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(data) > 64<<10 {
		data = data[len(data)-64<<10:]
	}
	return string(data)
}
