package main

import (
	"bytes"
	"context"
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
