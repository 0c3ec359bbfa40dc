package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"version"}, noEnv, &out, &errOut); err != nil {
		t.Fatalf("version: %v", err)
	}
	for _, want := range []string{"tether " + version, "commit: " + commit, "built: " + date, runtime.Version()} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output %q lacks %q", out.String(), want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"version", "--nope"}, "unknown flag: --nope"},
		{"extra argument", []string{"version", "extra"}, `unknown command "extra"`},
		{"bad log level", []string{"version", "--log-level", "loud"}, `--log-level: "loud"`},
		{"bad log format", []string{"version", "--log-format", "xml"}, `--log-format: "xml"`},
		{"negative checkout size", []string{"build", "--repo", "https://git.example.com/x", "--max-checkout-size", "-5"}, `--max-checkout-size: "-5" is not a size`},
		{"checkout size over the limit", []string{"build", "--repo", "https://git.example.com/x", "--max-checkout-size", "5Gi"}, `--max-checkout-size: "5Gi" is not a size`},
		{"negative fetch timeout", []string{"build", "--repo", "https://git.example.com/x", "--fetch-timeout", "-1s"}, "--fetch-timeout: -1s is not a positive duration"},
		{"zero concurrency", []string{"sync", "--once", "--name", "x", ".", "--concurrency", "0"}, "--concurrency: 0 is not a positive number"},
		{"agent concurrency", []string{"run", "--config", "x.yaml", "--concurrency", "-1"}, "--concurrency: -1 is not a positive number"},
		{"lease shorter than renewal", []string{"run", "--config", "x.yaml", "--leader-elect-lease-duration", "5s"}, "must be shorter than --leader-elect-lease-duration"},
		{"render budget below one render", []string{"build", ".", "--render-memory-budget", "512Mi"}, "the render memory budget (512 MiB) is smaller than the memory limit of one render (768 MiB)"},
		{"render budget not a size", []string{"build", ".", "--render-memory-budget", "lots"}, `--render-memory-budget: "lots" is not a positive size`},
		{"render CPU limit under a second", []string{"build", ".", "--render-cpu-limit", "500ms"}, "--render-cpu-limit: 500ms is less than 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, noEnv, &out, &errOut)
			if err == nil {
				t.Fatal("expected an error")
			}
			if got := exitCode(err); got != exitUsage {
				t.Errorf("exit code %d, want %d (err: %v)", got, exitUsage, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			var stderr bytes.Buffer
			if code := report(err, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("report printed %q with code %d", stderr.String(), code)
			}
		})
	}
}

// Commands whose exit code 1 means "changes" or "failing" exit 2 when they
// cannot do their job at all.
func TestErrorsExitTwo(t *testing.T) {
	env := func(k string) string {
		if k == "KUBECONFIG" {
			return "/nonexistent/kubeconfig"
		}
		return ""
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"diff without a cluster", []string{"diff", "--name", "x", dir}, "no kubeconfig found"},
		{"diff of a folder that is not there", []string{"diff", "--name", "x", dir + "/missing"}, "is not a folder"},
		{"status of an agent that is not there", []string{"status", "--server", "http://127.0.0.1:1"}, "asking the agent"},
		{"why without a cluster", []string{"why", "deployment/a/b"}, "no kubeconfig found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, env, &out, &errOut)
			if code := exitCode(err); code != exitUsage {
				t.Errorf("exit code %d, want %d (err %v)", code, exitUsage, err)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v does not say %q", err, tc.want)
			}
		})
	}
}

// TestRunChecksConfigFirst: `tether run` reports the configuration's
// problems (file:line) before it looks for a kubeconfig or opens a
// listener, and --check validates without running.
func TestRunChecksConfigFirst(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\nsyncs:\n  - name: a\n    prun: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte("apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\nsyncs:\n  - name: a\n    source:\n      localPath: /srv\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	slow := filepath.Join(dir, "slow.yaml")
	if err := os.WriteFile(slow, []byte("apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\nsyncs:\n  - name: a\n    timeout: 30s\n    source:\n      localPath: /srv\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A kubeconfig that would work, and the listen address already taken:
	// had tether opened a listener (or reached for the cluster) before
	// checking the file, the error would be about those.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	noKube := func(k string) string {
		if k == "KUBECONFIG" {
			return filepath.Join(dir, "no-kubeconfig")
		}
		return ""
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"bad file, a kubeconfig and a taken address", []string{"run", "--config", bad, "--kubeconfig", kubeconfig, "--listen", taken.Addr().String(), "--webhook-listen", taken.Addr().String()}, exitFailure, bad + ":5: syncs[0].prun: unknown field"},
		{"timeout shorter than the render CPU limit", []string{"run", "--config", slow, "--check"}, exitFailure, slow + ":5: syncs[0].timeout: 30s is not longer than a render may take (--render-cpu-limit 2m0s"},
		{"timeout longer than the render CPU limit", []string{"run", "--config", slow, "--check", "--render-cpu-limit", "20s"}, 0, slow + ": valid, 1 syncs"},
		{"default timeout shorter than the render CPU limit", []string{"run", "--config", good, "--check", "--render-cpu-limit", "10m"}, exitFailure, good + ":1: defaults.timeout: not set, so 5m0s"},
		{"bad file, no kubeconfig", []string{"run", "--config", bad, "--listen", "127.0.0.1:0"}, exitFailure, bad + ":5: syncs[0].prun: unknown field"},
		{"bad file, --check", []string{"run", "--config", bad, "--check"}, exitFailure, bad + ":5: syncs[0].prun: unknown field"},
		{"missing file, --check", []string{"run", "--config", filepath.Join(dir, "nope.yaml"), "--check"}, exitFailure, "no such file"},
		{"good file, --check", []string{"run", "--config", good, "--check"}, 0, good + ": valid, 1 syncs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, noKube, &out, &errOut)
			var stderr bytes.Buffer
			code := report(err, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d (err: %v)", code, tc.wantCode, err)
			}
			if got := stderr.String() + out.String(); !strings.Contains(got, tc.want) {
				t.Errorf("output %q does not mention %q", got, tc.want)
			}
			if strings.Contains(stderr.String(), "kubeconfig") || strings.Contains(stderr.String(), "listen") {
				t.Errorf("the configuration's problems come after the kubeconfig's: %q", stderr.String())
			}
		})
	}
}
