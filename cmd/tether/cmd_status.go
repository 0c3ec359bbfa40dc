package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tether-gitops/tether/agent"
)

func (a *app) statusCommand() *cobra.Command {
	var server, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "status [--server URL] [-o table|json|yaml]",
		Short: "Show the state of every sync the agent runs",
		Long: `Ask a running agent (its /status endpoint) for the state of every sync: the
revision fetched and applied, the last attempt and its outcome, the failing
phase and error, each object that is not Healthy, whether its live state
comes from watches or from polling (and why), and its open drift.

Exits 1 when any sync is failing or Degraded, 2 when the agent cannot be
asked, so scripts can use it.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			st, err := fetchStatus(cmd.Context(), server, timeout)
			if err != nil {
				return asCode2(err)
			}
			if err := writeAs(a.stdout, output, st, func() { printStatus(a.stdout, st, time.Now()) }); err != nil {
				return err
			}
			for _, s := range st.Syncs {
				if s.Failing() {
					return &exitError{code: exitFailure}
				}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&server, "server", "http://127.0.0.1:8080", "the agent's --listen address")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	cmd.Flags().DurationVar(&timeout, "request-timeout", 10*time.Second, "time limit for the request")
	return cmd
}

func fetchStatus(ctx context.Context, server string, timeout time.Duration) (*agent.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := strings.TrimRight(server, "/") + "/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, usageError("--server: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the agent at %s: %w", server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("the agent at %s answered %s: %s", server, resp.Status, strings.TrimSpace(string(body)))
	}
	var st agent.Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&st); err != nil {
		return nil, fmt.Errorf("reading the agent's status: %w", err)
	}
	return &st, nil
}

func printStatus(w io.Writer, st *agent.Status, now time.Time) {
	role := "standby"
	if st.Leader {
		role = "leader"
	}
	fmt.Fprintf(w, "agent %s (%s, tether %s), configuration %s\n", st.Identity, role, st.Version, st.ConfigFile)
	if st.ConfigError != "" {
		fmt.Fprintf(w, "newest configuration REJECTED (the previous one runs): %s\n", st.ConfigError)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SYNC\tAPPLIED\tCOMMIT\tHEALTH\tLIVE\tLAST ATTEMPT\tOUTCOME\tMESSAGE")
	for _, s := range st.Syncs {
		applied, commit := "-", "-"
		if s.Applied != nil {
			applied = shortRevision(s.Applied.Revision)
			if c := s.Applied.Commit; c != nil {
				commit = fmt.Sprintf("%q by %s", c.Subject, c.Author)
			}
		}
		last, outcome, msg := "-", "-", ""
		if at := s.LastAttempt; at != nil {
			last = ago(now, at.At)
			outcome = at.Outcome
			if at.Error != "" {
				msg = at.Phase + ": " + firstLine(at.Error)
			}
		}
		if s.Suspended {
			outcome = "suspended"
		}
		if msg == "" && len(s.Unhealthy) > 0 {
			msg = fmt.Sprintf("%s %s: %s", s.Unhealthy[0].Object, s.Unhealthy[0].Status, s.Unhealthy[0].Message)
		}
		health := string(s.Health)
		if health == "" {
			health = "-"
		}
		liveState := "-"
		if s.Live != nil {
			liveState = s.Live.Source
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, applied, commit, health, liveState, last, outcome, msg)
	}
	tw.Flush()
	printPolling(w, st)
	printDrift(w, st, now)
	if st.Images != nil {
		fmt.Fprintln(w) // cmd_images.go
		printImages(w, st.Images, now)
	}
}

// printDrift lists the open drift of every sync: each object, its fields
// with old and new values, and who changed them.
func printDrift(w io.Writer, st *agent.Status, now time.Time) {
	for _, s := range st.Syncs {
		for _, d := range s.Drift {
			state := "kept (policy warn)"
			switch {
			case d.Policy != "warn" && d.CorrectionError != "":
				state = "correction failed: " + firstLine(d.CorrectionError)
			case d.Policy != "warn":
				state = "being corrected"
			}
			fmt.Fprintf(w, "\ndrift in sync %s: %s, since %s, %s\n", s.Name, d.Object, ago(now, d.Since), state)
			if d.Deleted {
				fmt.Fprintln(w, "  deleted")
			}
			for _, f := range d.Fields {
				fmt.Fprintf(w, "  %s\n", f)
			}
		}
	}
}

// printPolling says, for every sync whose live state comes from polling,
// why: the request the API server refuses, or what the watches wait for.
func printPolling(w io.Writer, st *agent.Status) {
	for _, s := range st.Syncs {
		l := s.Live
		if l == nil || l.Source != agent.LivePolling {
			continue
		}
		why := firstLine(l.Reason)
		if r := l.Refused; r != nil {
			why = fmt.Sprintf("the API server refuses to %s %s: %s", r.Verb, r.Resource, firstLine(r.Error))
		}
		fmt.Fprintf(w, "\nsync %s polls for its live state (a LIST per resource and namespace each interval): %s\n", s.Name, why)
	}
}

func shortRevision(rev string) string {
	if i := strings.Index(rev, "@sha1:"); i >= 0 && len(rev) > i+6+12 {
		return rev[:i+6+12]
	}
	if strings.HasPrefix(rev, "sha256:") && len(rev) > 7+12 {
		return rev[:7+12]
	}
	return rev
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
