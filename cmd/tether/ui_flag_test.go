package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	gosync "sync"
	"testing"
	"time"
)

// lockedBuffer collects a process's log lines from several goroutines.
type lockedBuffer struct {
	mu  gosync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// `tether run` serves the web page under /ui/ by default, and --ui=false
// turns it off while /status and the other endpoints stay.
func TestRunWithoutTheWebPage(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tether.yaml")
	if err := os.WriteFile(cfg, []byte("apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\nsyncs:\n  - name: a\n    source:\n      localPath: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A kubeconfig of an API server that is not there: the agent keeps
	// retrying, its HTTP endpoints answer meanwhile.
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag   string
		wantUI int
	}{
		{"--ui=true", http.StatusUnauthorized}, // the page, asking for a token
		{"--ui=false", http.StatusNotFound},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var logs lockedBuffer
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, []string{"run", "--config", cfg, "--kubeconfig", kubeconfig, "--listen", "127.0.0.1:0", "--webhook-listen", "",
					"--leader-elect=false", "--data-dir", filepath.Join(dir, "data"), tc.flag}, func(string) string { return "" }, io.Discard, &logs)
			}()
			defer func() {
				cancel()
				select {
				case <-done:
				case <-time.After(time.Minute):
					t.Error("tether run did not stop within a minute of its context ending")
				}
			}()
			addr := regexp.MustCompile(`listening.*?address"?[=:]"?(127\.0\.0\.1:\d+)`)
			var base string
			for deadline := time.Now().Add(time.Minute); base == ""; time.Sleep(20 * time.Millisecond) {
				if m := addr.FindStringSubmatch(logs.String()); m != nil {
					base = "http://" + m[1]
				}
				select {
				case err := <-done:
					t.Fatalf("tether run ended: %v\n%s", err, logs.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no listening address logged within a minute:\n%s", logs.String())
				}
			}
			for path, want := range map[string]int{"/ui/": tc.wantUI, "/ui/syncs/a": tc.wantUI, "/status": 200, "/healthz": 200} {
				resp, err := http.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("%s %s: status %d, want %d:\n%s", tc.flag, path, resp.StatusCode, want, body)
				}
				if path == "/status" && !strings.Contains(string(body), `"syncs"`) {
					t.Errorf("%s: /status is not the agent's status:\n%s", tc.flag, body)
				}
			}
		})
	}
}
