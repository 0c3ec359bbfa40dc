package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Step indexes, for the ratios and targets.
const (
	stepCold = iota
	stepUnchanged
	stepChange
	stepPrune
)

// report prints the table, the peak RSS, the ratios, PASS or MISS for each
// target, and how each number was measured.
func (b *bench) report(w io.Writer, tools []*tool) {
	steps := benchSteps()
	fmt.Fprintf(w, "%s objects per tool: 1 Namespace, %d Deployments (replicas 0), %d Services, %d ConfigMaps; one control plane, tools run one after another\n",
		thousands(totalObjects), deployments, services, configMaps)
	for _, t := range tools {
		fmt.Fprintf(w, "  %-9s = %s\n", t.name, t.version)
	}
	fmt.Fprintln(w)

	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	head1 := []string{""}
	head2 := []string{"step"}
	for _, t := range tools {
		head1 = append(head1, t.name, "", "")
		head2 = append(head2, "time", "requests", "writes")
	}
	fmt.Fprintln(tw, strings.Join(head1, "\t")+"\t")
	fmt.Fprintln(tw, strings.Join(head2, "\t")+"\t")
	for i, s := range steps {
		row := []string{s.name}
		for _, t := range tools {
			row = append(row, t.cells(i)...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	rss := []string{"peak RSS"}
	for _, t := range tools {
		if kib := t.peakRSS(); kib > 0 {
			rss = append(rss, formatKiB(kib), "", "")
		} else {
			rss = append(rss, "-", "", "")
		}
	}
	fmt.Fprintln(tw, strings.Join(rss, "\t")+"\t")
	tw.Flush()
	for _, line := range strings.Split(strings.TrimRight(table.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}

	tether, kubectl, cli := tools[0], tools[1], tools[2]
	fmt.Fprintln(w)
	fmt.Fprintf(w, "tether peak RSS: %s (largest of its %d runs)\n", formatKiB(tether.peakRSS()), tether.ranCount())
	parts := []string{
		"tether vs cli-utils cold apply: " + speedup(cli, tether, stepCold),
		"vs kubectl: " + speedup(kubectl, tether, stepCold),
		"unchanged re-apply writes: " + writesList(tools, stepUnchanged),
		"one-object change writes: " + writesList(tools, stepChange),
		fmt.Sprintf("prune of %d: tether vs kubectl %s", pruned, speedup(kubectl, tether, stepPrune)),
	}
	if r := cli.results[stepPrune]; r.ran && r.err == nil {
		parts[len(parts)-1] += ", vs cli-utils " + speedup(cli, tether, stepPrune)
	}
	fmt.Fprintf(w, "ratios: %s\n", strings.Join(parts, "; "))

	fmt.Fprintln(w)
	fmt.Fprintln(w, "targets:")
	fmt.Fprintln(w, "  "+target("cold apply at least 10x faster than the stock cli-utils Applier", func() (bool, string, bool) {
		r, ok := ratio(cli, tether, stepCold)
		return r >= 10, fmt.Sprintf("%.1fx (%s vs %s)", r, formatDuration(tether.results[stepCold].wall), formatDuration(cli.results[stepCold].wall)), ok
	}))
	fmt.Fprintln(w, "  "+target("cold apply faster than kubectl", func() (bool, string, bool) {
		r, ok := ratio(kubectl, tether, stepCold)
		return r > 1, fmt.Sprintf("%.1fx (%s vs %s)", r, formatDuration(tether.results[stepCold].wall), formatDuration(kubectl.results[stepCold].wall)), ok
	}))
	fmt.Fprintln(w, "  "+target("unchanged re-apply writes nothing", func() (bool, string, bool) {
		r := tether.results[stepUnchanged]
		return r.counts.Writes == 0, plural(r.counts.Writes, "write"), r.ran && r.err == nil
	}))
	fmt.Fprintln(w, "  "+target("one-object change is exactly one write", func() (bool, string, bool) {
		r := tether.results[stepChange]
		return r.counts.Writes == 1, plural(r.counts.Writes, "write"), r.ran && r.err == nil
	}))

	fmt.Fprintln(w)
	fmt.Fprintln(w, "how it was measured:")
	fmt.Fprintln(w, "  time: wall clock from starting the tool's process to its exit (nothing else waited for); before each step, untimed, the cluster settles")
	fmt.Fprintln(w, "        (controllers caught up with every Deployment, then 2s), and before the first an admin applies a warm-up copy of the objects")
	fmt.Fprintln(w, "  requests: the tool's ServiceAccount's requests in the API server's audit log within that window (distinct audit IDs)")
	fmt.Fprintln(w, "  writes: those with verb create, update, patch, delete or deletecollection whose requestURI lacks dryRun=All")
	fmt.Fprintln(w, "  peak RSS: the child's rusage ru_maxrss; cli-utils runs as this binary's cliutils-apply subcommand")
	for _, n := range b.notes {
		fmt.Fprintln(w, "  "+n)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "requests by verb (from the audit log):")
	for _, t := range tools {
		for i, s := range steps {
			r := t.results[i]
			if !r.ran {
				continue
			}
			fmt.Fprintf(w, "  %-9s %-30s %s\n", t.name, s.name+":", r.counts.verbSummary())
			if r.counts.Failed > 0 {
				fmt.Fprintf(w, "  %-9s %-30s %d answered with an error status\n", "", "", r.counts.Failed)
			}
			if r.self != "" {
				fmt.Fprintf(w, "  %-9s %-30s it says: %s\n", "", "", r.self)
			}
			if r.err != nil {
				fmt.Fprintf(w, "  %-9s %-30s FAILED: %v\n", "", "", r.err)
			}
		}
	}
}

// cells are the time, requests and writes of one step.
func (t *tool) cells(i int) []string {
	r := t.results[i]
	if !r.ran {
		if ok, why := t.runs(i); !ok {
			return []string{why, "", ""}
		}
		return []string{"not run", "", ""}
	}
	tm := formatDuration(r.wall)
	if r.err != nil {
		tm += " FAILED"
	}
	return []string{tm, fmt.Sprint(r.counts.Requests), fmt.Sprint(r.counts.Writes)}
}

func (t *tool) peakRSS() int64 {
	var max int64
	for _, r := range t.results {
		if r.rssKiB > max {
			max = r.rssKiB
		}
	}
	return max
}

func (t *tool) ranCount() int {
	n := 0
	for _, r := range t.results {
		if r.ran {
			n++
		}
	}
	return n
}

// ratio is how many times longer other took than t for step i, and whether
// both ran without error.
func ratio(other, t *tool, i int) (float64, bool) {
	a, b := other.results[i], t.results[i]
	if !a.ran || !b.ran || a.err != nil || b.err != nil || b.wall <= 0 {
		return 0, false
	}
	return float64(a.wall) / float64(b.wall), true
}

// speedup is "63.1x faster", "1.3x slower" or why there is no number.
func speedup(other, t *tool, i int) string {
	r, ok := ratio(other, t, i)
	switch {
	case !ok:
		return "n/a (" + other.name + " or " + t.name + " did not complete this step)"
	case r >= 1:
		return fmt.Sprintf("%.1fx faster", r)
	default:
		return fmt.Sprintf("%.1fx slower", 1/r)
	}
}

// writesList is "tether 0, kubectl 1001" for the tools that ran step i.
func writesList(tools []*tool, i int) string {
	var parts []string
	for _, t := range tools {
		if r := t.results[i]; r.ran {
			parts = append(parts, fmt.Sprintf("%s %d", t.name, r.counts.Writes))
		}
	}
	if len(parts) == 0 {
		return "n/a"
	}
	return strings.Join(parts, ", ")
}

// target is "PASS  what: detail", "MISS  ..." or "n/a   ..." when the
// numbers are missing.
func target(what string, check func() (pass bool, detail string, measured bool)) string {
	pass, detail, measured := check()
	switch {
	case !measured:
		return "n/a   " + what + ": not measured (a step failed or was skipped)"
	case pass:
		return "PASS  " + what + ": " + detail
	default:
		return "MISS  " + what + ": " + detail
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func formatKiB(kib int64) string {
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// thousands is n with commas: 1,001.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
