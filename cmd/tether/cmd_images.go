package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/images"
)

func (a *app) imagesCommand() *cobra.Command {
	var server, output string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "images [--server URL] [-o table|json|yaml]",
		Short: "Show every image policy: tags seen, in git, running, holds and failures",
		Long: `Ask a running agent (its /status endpoint) for its image automation: per
policy the newest scan (latest tag, tags seen, error), and per sync the tag in
git, the tag running in the cluster, the newest rollout, holds after a manual
rollback and tags whose rollout failed; then each sync's newest write-back
commit and the markers that cannot be used (file:line).

Exits 1 when a scan or a write-back fails, a rollout failed or an image is
held, 2 when the agent cannot be asked.`,
		Args: cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			st, err := fetchStatus(cmd.Context(), server, timeout)
			if err != nil {
				return asCode2(err)
			}
			img := st.Images
			if img == nil {
				img = &agent.ImagesStatus{Policies: []agent.ImagePolicyStatus{}}
			}
			if err := writeAs(a.stdout, output, img, func() { printImages(a.stdout, img, time.Now()) }); err != nil {
				return err
			}
			if img.Failing() {
				return &exitError{code: exitFailure}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&server, "server", "http://127.0.0.1:8080", "the agent's --listen address")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	cmd.Flags().DurationVar(&timeout, "request-timeout", 10*time.Second, "time limit for the request")
	cmd.AddCommand(a.imagesReleaseCommand())
	return cmd
}

func (a *app) imagesReleaseCommand() *cobra.Command {
	var invNamespace, sync string
	cmd := &cobra.Command{
		Use:   "release POLICY [--sync NAME]",
		Short: "Clear the hold a manual rollback put on an image policy",
		Long: `After a commit set an image back to an older tag than tether had written,
tether holds that image policy: it proposes no update until a tag newer than
the one rolled back from appears. release clears the hold (in every sync, or
in --sync only) and makes tether forget the tag it last wrote, so updates
resume from what git holds now at the next round.

It edits the image records in the cluster (ConfigMaps tether-images-SYNC in
--inventory-namespace) with your kubeconfig's permissions, so it works
without reaching the agent. Exits 1 when no hold was found, 2 on errors.`,
		Example: `  tether images release webapp
  tether images release webapp --sync webapp-prod`,
		Args: cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			clients, err := a.clients()
			if err != nil {
				return asCode2(err)
			}
			released, err := releaseHold(cmd.Context(), images.NewStore(clients.Typed.CoreV1(), invNamespace), args[0], sync)
			for _, r := range released {
				fmt.Fprintf(a.stdout, "released %s in sync %s (held at %s, rolled back from %s)\n", args[0], r.sync, r.hold.Tag, r.hold.From)
			}
			if err != nil {
				return asCode2(err)
			}
			if len(released) == 0 {
				fmt.Fprintf(a.stdout, "no hold on image policy %s\n", args[0])
				return &exitError{code: exitFailure}
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&invNamespace, "inventory-namespace", "tether-system", "namespace of the inventories and image records")
	cmd.Flags().StringVar(&sync, "sync", "", "release in this sync only")
	return cmd
}

type releasedHold struct {
	sync string
	hold images.Hold
}

// releaseHold clears the hold on policy in every sync's records (or one
// sync's), and the tag tether last wrote, so the rollback is not seen
// again.
func releaseHold(ctx context.Context, store *images.Store, policy, only string) ([]releasedHold, error) {
	all, listErr := store.List(ctx)
	if listErr != nil && len(all) == 0 {
		return nil, listErr
	}
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []releasedHold
	for _, name := range names {
		if only != "" && name != only {
			continue
		}
		if pr := all[name].Policies[policy]; pr == nil || pr.Hold == nil {
			continue
		}
		var hold images.Hold
		_, err := store.Update(ctx, name, func(r *images.Records) error {
			pr := r.Policies[policy]
			if pr == nil || pr.Hold == nil {
				return images.ErrUnchanged
			}
			hold = *pr.Hold
			pr.Hold, pr.LastWritten = nil, nil
			return nil
		})
		if err != nil {
			return out, err
		}
		if hold.Tag != "" || hold.From != "" {
			out = append(out, releasedHold{sync: name, hold: hold})
		}
	}
	// Records that could not be read are reported after the others were
	// released.
	return out, listErr
}

// printImages prints the images section as tables.
func printImages(w io.Writer, img *agent.ImagesStatus, now time.Time) {
	if len(img.Policies) == 0 {
		fmt.Fprintln(w, "no image policies configured")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tIMAGE\tLATEST\tTAGS\tLAST SCAN\tSYNC\tIN GIT\tRUNNING\tROLLOUT\tSTATE")
	for _, p := range img.Policies {
		latest := orDash(p.Latest)
		scan := ago(now, p.LastScan)
		if p.LastScanError != "" {
			scan += " (failed)"
		}
		tags := fmt.Sprintf("%d", p.TagsSeen)
		if len(p.Syncs) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t%s\n", p.Name, p.Image, latest, tags, scan, scanState(p))
			continue
		}
		for _, s := range p.Syncs {
			rollout := "-"
			if s.Rollout != nil {
				rollout = s.Rollout.Tag + " " + s.Rollout.Outcome
			}
			running := orDash(s.Running)
			if s.RunningApplied && s.Running != "" {
				running += " (applied)" // the live workload could not be read
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Image, latest, tags, scan, s.Sync,
				orDash(s.InGit), running, rollout, syncState(p, s))
		}
	}
	tw.Flush()
	for _, p := range img.Policies {
		if p.LastScanError != "" {
			fmt.Fprintf(w, "\npolicy %s: scan failed: %s\n", p.Name, p.LastScanError)
		}
		for _, s := range p.Syncs {
			if s.Hold != nil {
				fmt.Fprintf(w, "\npolicy %s in %s: held: %s was rolled back from %s to %s; waiting for a tag newer than %s (tether images release %s)\n",
					p.Name, s.Sync, s.Hold.Location, s.Hold.From, s.Hold.Tag, s.Hold.From, p.Name)
			}
			for _, f := range s.Failed {
				fmt.Fprintf(w, "\npolicy %s in %s: tag %s failed its rollout (never proposed again): %s\n", p.Name, s.Sync, f.Tag, f.Reason)
			}
			if s.RollingBack != "" {
				fmt.Fprintf(w, "\npolicy %s in %s: going back from %s (tether's tag, failed its rollout) to %s\n", p.Name, s.Sync, s.RollingBack, s.Target)
			}
		}
	}
	if len(img.WriteBacks) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SYNC\tBRANCH\tLAST ROUND\tCOMMIT\tCHANGES\tRESULT")
	for _, r := range img.WriteBacks {
		result := "ok"
		switch {
		case r.Refused:
			result = "push refused: " + firstLine(r.Error)
		case r.Error != "":
			result = "failed: " + firstLine(r.Error)
		case r.Commit == "":
			result = "nothing to change"
		case r.Start == string(images.BaseMerge):
			result = "ok, merged the sync's branch in"
		case r.Start == string(images.BaseForward):
			result = "ok, from the sync's branch again (merged)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.Sync, orDash(r.Branch), ago(now, r.At), orDash(shortSHA(r.Commit)), len(r.Changes), result)
	}
	tw.Flush()
	for _, r := range img.WriteBacks {
		if r.BranchNote != "" {
			fmt.Fprintf(w, "sync %s: branch %s: %s\n", r.Sync, r.Branch, r.BranchNote)
		}
		for _, p := range r.Problems {
			fmt.Fprintf(w, "sync %s: marker problem: %s\n", r.Sync, p)
		}
	}
}

func scanState(p agent.ImagePolicyStatus) string {
	if p.LastScanError != "" {
		return "scan failed"
	}
	if p.LastScan.IsZero() {
		return "not scanned yet"
	}
	return "ok"
}

func syncState(p agent.ImagePolicyStatus, s agent.ImagePolicySyncStatus) string {
	switch {
	case s.Hold != nil:
		return "held (rolled back to " + s.Hold.Tag + ")"
	case s.RollingBack != "":
		return "rolling back from " + s.RollingBack
	case s.Rollout != nil && s.Rollout.Outcome == images.RolloutFailed:
		return "rollout failed"
	case p.LastScanError != "":
		return "scan failed"
	case s.Pinned > 0 && s.Target == "":
		return "pinned"
	case s.Reason != "":
		return s.Reason
	case s.InGit != "" && s.InGit == p.Latest:
		return "up to date"
	}
	var parts []string
	if s.Pinned > 0 {
		parts = append(parts, fmt.Sprintf("%d pinned", s.Pinned))
	}
	if len(s.Failed) > 0 {
		parts = append(parts, fmt.Sprintf("%d failed tags", len(s.Failed)))
	}
	if len(parts) == 0 {
		return "ok"
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// writeAs prints v as JSON or YAML, or as a table with table (-o).
func writeAs(w io.Writer, output string, v any, table func()) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	case "table", "":
		table()
		return nil
	}
	return usageError("-o: %q is not one of table, json, yaml", output)
}
