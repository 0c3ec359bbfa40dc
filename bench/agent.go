package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tether-gitops/tether/e2e/cluster"
)

// agentProc is a running `tether run`.
type agentProc struct {
	cmd     *exec.Cmd
	url     string // /status, /readyz
	hookURL string // webhooks
	logPath string
	done    chan struct{}
}

// agentStatus holds the fields of the agent's /status the bench reads.
type agentStatus struct {
	Syncs []agentSync `json:"syncs"`
}

type agentSync struct {
	Name    string `json:"name"`
	Applied *struct {
		Revision string    `json:"revision"`
		At       time.Time `json:"at"`
		Commit   *struct {
			Hash string `json:"hash"`
		} `json:"commit"`
	} `json:"applied"`
	LastAttempt *struct {
		At      time.Time `json:"at"`
		Outcome string    `json:"outcome"`
		Error   string    `json:"error"`
		Phases  []struct {
			Phase    string `json:"phase"`
			Duration string `json:"duration"`
		} `json:"phases"`
	} `json:"lastAttempt"`
	Objects int `json:"objects"`
}

// appliedCommit is the commit (or revision) the sync applied last, or "".
func (s agentSync) appliedCommit() string {
	switch {
	case s.Applied == nil:
		return ""
	case s.Applied.Commit != nil && s.Applied.Commit.Hash != "":
		return s.Applied.Commit.Hash
	}
	return s.Applied.Revision
}

// startAgent runs `tether run --config configPath` as tether's
// ServiceAccount, with leader election as installed (a Lease of its own,
// so it never waits for an earlier agent's to expire), its log in dir, and
// waits until it answers /readyz.
func (b *bench) startAgent(ctx context.Context, dir, configPath, lease string, extra ...string) (*agentProc, error) {
	port, err := cluster.FreePort()
	if err != nil {
		return nil, err
	}
	hookPort, err := cluster.FreePort()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	p := &agentProc{
		url:     fmt.Sprintf("http://127.0.0.1:%d", port),
		hookURL: fmt.Sprintf("http://127.0.0.1:%d", hookPort),
		logPath: filepath.Join(dir, "agent.log"),
		done:    make(chan struct{}),
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(filepath.Join(b.binDir, "tether"), "run",
		"--config", configPath,
		"--data-dir", filepath.Join(dir, "data"),
		"--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--webhook-listen", fmt.Sprintf("127.0.0.1:%d", hookPort),
		"--namespace", b.ids.tether.Namespace,
		"--leader-elect-lease", lease,
		"--log-format", "text")
	p.cmd.Args = append(p.cmd.Args, extra...)
	p.cmd.Env = append(childEnv(), "KUBECONFIG="+b.ids.tether.Kubeconfig, "HOME="+dir)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting tether run: %w", err)
	}
	go func() { _ = p.cmd.Wait(); logFile.Close(); close(p.done) }()
	err = poll(ctx, time.Minute, func() error {
		if err := p.exited(); err != nil {
			return err
		}
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("the agent did not become ready: %w", err)
	}
	return p, nil
}

// exited is an error once the agent has exited.
func (p *agentProc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("the agent exited (log: %s): %s", p.logPath, lastLinesOfFile(p.logPath, 5))
	default:
		return nil
	}
}

// status reads /status.
func (p *agentProc) status() (agentStatus, error) {
	var st agentStatus
	if err := p.exited(); err != nil {
		return st, err
	}
	resp, err := http.Get(p.url + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("/status answered %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("decoding /status: %w", err)
	}
	return st, nil
}

// phases is "build 1.2s, plan 3.4s, ..." of the sync's last attempt, or "".
func (s agentSync) phases() string {
	if s.LastAttempt == nil {
		return ""
	}
	parts := make([]string, 0, len(s.LastAttempt.Phases))
	for _, p := range s.LastAttempt.Phases {
		parts = append(parts, p.Phase+" "+p.Duration)
	}
	return strings.Join(parts, ", ")
}

// syncStatus is one sync's entry in /status.
func (p *agentProc) syncStatus(name string) (agentSync, error) {
	st, err := p.status()
	if err != nil {
		return agentSync{}, err
	}
	for _, s := range st.Syncs {
		if s.Name == name {
			return s, nil
		}
	}
	return agentSync{}, fmt.Errorf("/status has no sync %s", name)
}

// waitApplied polls /status until every sync in want has applied the
// revision want gives it ("" for any) and returns when the last of them
// was applied, by the agent's own clock (the same machine's). The last
// error of a sync not applied yet is reported; the agent retries.
func (p *agentProc) waitApplied(ctx context.Context, timeout time.Duration, want map[string]string) (time.Time, error) {
	var last time.Time
	err := poll(ctx, timeout, func() error {
		st, err := p.status()
		if err != nil {
			return err
		}
		done, lastErr := 0, ""
		last = time.Time{}
		for _, s := range st.Syncs {
			rev, ok := want[s.Name]
			if !ok {
				continue
			}
			if got := s.appliedCommit(); got == "" || (rev != "" && got != rev) {
				if s.LastAttempt != nil && s.LastAttempt.Error != "" {
					lastErr = "; last error: " + s.Name + ": " + s.LastAttempt.Error
				}
				continue
			}
			done++
			if s.Applied.At.After(last) {
				last = s.Applied.At
			}
		}
		if done < len(want) {
			return fmt.Errorf("%d of %d syncs applied%s", done, len(want), lastErr)
		}
		return nil
	})
	return last, err
}

// memory is the agent's resident set now and its peak so far (VmRSS and
// VmHWM of /proc/PID/status), in KiB. Its render children are processes
// of their own and not included.
func (p *agentProc) memory() (rssKiB, peakKiB int64, err error) {
	return procMemory(p.cmd.Process.Pid)
}

// stop ends the agent (SIGTERM, then SIGKILL after 15s) and waits for it.
func (p *agentProc) stop() {
	if p.exited() != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// procMemory reads VmRSS and VmHWM of a process, in KiB.
func procMemory(pid int) (rssKiB, peakKiB int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, key, err)
		}
		if key == "VmRSS" {
			rssKiB = n
		} else {
			peakKiB = n
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if rssKiB == 0 || peakKiB == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmRSS or VmHWM", pid)
	}
	return rssKiB, peakKiB, nil
}

// poll calls check every half second until it returns nil, the timeout
// passes (the last error is returned) or ctx ends.
func poll(ctx context.Context, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// lastLinesOfFile is the last n lines of a file, joined with " | ".
func lastLinesOfFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(data), n)
}
