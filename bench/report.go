package main

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Step indexes, for the ratios and targets.
const (
	stepCold = iota
	stepUnchanged
	stepChange
	stepPrune
)

// Targets of issue 13, printed as PASS or MISS (never asserted).
const (
	maxUnchangedRequests = 10
	maxChangeDryRuns     = 1
	// shares of the other tool's time
	maxUnchangedVsKubectl = 0.2
	maxUnchangedVsFlux    = 0.05
	maxChangeVsKubectl    = 0.2
	maxColdVsFloor        = 1.5
	maxPruneVsFloor       = 1.5
	maxBuildVsKustomize   = 1.0
	// memory, MiB
	maxLargeRSSMiB = 150
	maxManyRSSMiB  = 300
	// minColdVsCLIUtils is how many times faster than the stock cli-utils
	// Applier tether's cold apply should be.
	minColdVsCLIUtils = 10
)

// report prints the tables, the ratios, PASS or MISS for each target and
// how each number was measured.
func (b *bench) report(w io.Writer, su suite, live *agentLive, sc *scaleResults) {
	tools := su.tools
	fmt.Fprintf(w, "%s objects per tool: %s; one control plane, tools run one after another; %d cores\n",
		thousands(su.set.total()), su.set.describe(), runtime.NumCPU())
	for _, t := range tools {
		fmt.Fprintf(w, "  %-9s = %s\n", t.name, t.version)
	}
	fmt.Fprintln(w)
	printSuite(w, su)

	tether, kubectl, flux, floor, cli := byName(tools, "tether"), byName(tools, "kubectl"), byName(tools, "Flux"), byName(tools, "raw floor"), byName(tools, "cli-utils")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "tether's time as a share of the other's (below 1 is faster):")
	others := []*tool{kubectl, flux, floor, cli}
	rows := [][]string{append([]string{"step"}, mapTools(others, func(o *tool) string { return "tether/" + o.name })...)}
	for i, s := range su.steps() {
		row := []string{s.name}
		for _, o := range others {
			if r, ok := share(tether, o, i); ok {
				row = append(row, formatShare(r))
			} else {
				row = append(row, "-")
			}
		}
		rows = append(rows, row)
	}
	printTable(w, rows)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "targets (issue 13; printed, not asserted):")
	unchanged, change := tether.results[stepUnchanged], tether.results[stepChange]
	fmt.Fprintln(w, "  "+target("unchanged re-sync writes nothing", func() (bool, string, bool) {
		return unchanged.counts.Writes == 0, plural(unchanged.counts.Writes, "write"), unchanged.ok()
	}))
	fmt.Fprintln(w, "  "+target(fmt.Sprintf("unchanged re-sync sends at most %d requests", maxUnchangedRequests), func() (bool, string, bool) {
		return unchanged.counts.Requests <= maxUnchangedRequests, plural(unchanged.counts.Requests, "request"), unchanged.ok()
	}))
	fmt.Fprintln(w, "  "+shareTarget("unchanged re-sync", tether, kubectl, stepUnchanged, maxUnchangedVsKubectl))
	fmt.Fprintln(w, "  "+shareTarget("unchanged re-sync", tether, flux, stepUnchanged, maxUnchangedVsFlux))
	fmt.Fprintln(w, "  "+target("one ConfigMap changed is exactly one write", func() (bool, string, bool) {
		return change.counts.Writes == 1, plural(change.counts.Writes, "write"), change.ok()
	}))
	fmt.Fprintln(w, "  "+target(fmt.Sprintf("one ConfigMap changed takes at most %d dry run", maxChangeDryRuns), func() (bool, string, bool) {
		n := change.counts.dryRuns()
		return n <= maxChangeDryRuns, plural(n, "dry run"), change.ok()
	}))
	fmt.Fprintln(w, "  "+shareTarget("one ConfigMap changed", tether, kubectl, stepChange, maxChangeVsKubectl))
	fmt.Fprintln(w, "  "+shareTarget("cold apply", tether, floor, stepCold, maxColdVsFloor))
	fmt.Fprintln(w, "  "+target("cold apply faster than kubectl", func() (bool, string, bool) {
		r, ok := share(tether, kubectl, stepCold)
		return r < 1, shareDetail(tether, kubectl, stepCold, r), ok
	}))
	fmt.Fprintln(w, "  "+shareTarget(fmt.Sprintf("prune of %s", thousands(su.set.pruned)), tether, floor, stepPrune, maxPruneVsFloor))
	fmt.Fprintln(w, "  "+target(fmt.Sprintf("cold apply at least %dx faster than the stock cli-utils Applier", minColdVsCLIUtils), func() (bool, string, bool) {
		r, ok := share(tether, cli, stepCold)
		return ok && r <= 1.0/minColdVsCLIUtils, shareDetail(tether, cli, stepCold, r), ok
	}))
	scaleTargets(w, sc)
	if live != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "targets (issue 12; printed, not asserted):")
		liveTargets(w, live)
		fmt.Fprintln(w)
		live.report(w)
	}

	if sc != nil {
		fmt.Fprintln(w)
		sc.report(w)
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "how it was measured:")
	fmt.Fprintln(w, "  time: wall clock from starting the tool's process to its exit (nothing else waited for); before each step, untimed, the cluster settles")
	fmt.Fprintln(w, "        (controllers caught up with every Deployment, then 2s), and before the first an admin applies a warm-up copy of the objects")
	fmt.Fprintln(w, "  requests: the tool's ServiceAccount's requests in the API server's audit log within that window (distinct audit IDs)")
	fmt.Fprintln(w, "  writes: those with verb create, update, patch, delete or deletecollection whose requestURI lacks dryRun=All")
	fmt.Fprintln(w, "  peak RSS: ru_maxrss of the tool's process from wait4, which covers the descendants it waited for (tether's renderer):")
	fmt.Fprintln(w, "        the largest of them, not their sum; Flux, the raw floor and cli-utils run as subcommands of the bench binary")
	fmt.Fprintln(w, "  agent memory: VmRSS (now) and VmHWM (peak) of the `tether run` process from /proc; its render children are not included")
	fmt.Fprintln(w, "  agent CPU: utime+stime (+cutime+cstime: render children it waited for) of the `tether run` process from /proc/PID/stat,")
	fmt.Fprintln(w, "        read at the start and the end of the idle window; polls are the ref listings the git server answered meanwhile")
	fmt.Fprintln(w, "  drift: from just before the patch, the bench samples every 100ms the agent's /metrics, the inventory's Events and the object")
	for _, n := range b.notes {
		fmt.Fprintln(w, "  "+n)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "requests by verb (from the audit log):")
	printVerbs(w, su)
	if sc != nil && sc.largeErr == nil {
		printVerbs(w, sc.large)
	}
}

// printSuite prints one suite's table: per step and tool the time,
// requests and writes, and per tool the peak RSS.
func printSuite(w io.Writer, su suite) {
	fmt.Fprintln(w, "each cell: time, requests, writes (requests and writes from the API server's audit log)")
	rows := [][]string{append([]string{"step"}, mapTools(su.tools, func(t *tool) string { return t.name })...)}
	for i, s := range su.steps() {
		rows = append(rows, append([]string{s.name}, mapTools(su.tools, func(t *tool) string { return t.cell(i) })...))
	}
	rows = append(rows, append([]string{"peak RSS"}, mapTools(su.tools, func(t *tool) string {
		if kib := t.peakRSS(); kib > 0 {
			return formatKiB(kib)
		}
		return "-"
	})...))
	printTable(w, rows)
}

// printVerbs prints every step's requests by verb, what the tool said it
// did and why a step failed.
func printVerbs(w io.Writer, su suite) {
	for _, t := range su.tools {
		for i, s := range su.steps() {
			r := t.results[i]
			if !r.ran {
				continue
			}
			fmt.Fprintf(w, "  %-9s %-32s %s\n", t.name, s.name+":", r.counts.verbSummary())
			if r.counts.Failed > 0 {
				fmt.Fprintf(w, "  %-9s %-32s %d answered with an error status\n", "", "", r.counts.Failed)
			}
			if r.self != "" {
				fmt.Fprintf(w, "  %-9s %-32s it says: %s\n", "", "", r.self)
			}
			if r.err != nil {
				fmt.Fprintf(w, "  %-9s %-32s FAILED: %v\n", "", "", r.err)
			}
		}
	}
}

// report prints what the long steps measured.
func (sc *scaleResults) report(w io.Writer) {
	fmt.Fprintln(w, "at scale (BENCH_SCALE=1):")
	if sc.largeErr != nil {
		fmt.Fprintf(w, "%s objects in one sync: FAILED: %v\n", thousands(sc.large.set.total()), sc.largeErr)
	} else {
		fmt.Fprintf(w, "%s objects in one sync: %s\n", thousands(sc.large.set.total()), sc.large.set.describe())
		printSuite(w, sc.large)
	}
	fmt.Fprintln(w)
	if a := sc.agent; a.err != nil {
		fmt.Fprintf(w, "agent, one sync of %s objects: FAILED: %v\n", thousands(a.objects), a.err)
	} else {
		fmt.Fprintf(w, "agent, one sync of %s objects: applied %s after the agent started; RSS after the sync %s, peak %s\n",
			thousands(a.objects), formatDuration(a.wall), formatKiB(a.rssKiB), formatKiB(a.peakKiB))
		if a.phases != "" {
			fmt.Fprintf(w, "  its reconcile's phases: %s\n", a.phases)
		}
	}
	fmt.Fprintln(w)
	if m := sc.many; m.err != nil {
		fmt.Fprintf(w, "agent, %d syncs x %d objects from one repository: FAILED: %v\n", m.syncs, m.objectsEach, m.err)
	} else {
		fmt.Fprintf(w, "agent, %d syncs x %d objects from one repository (a folder each):\n", m.syncs, m.objectsEach)
		fmt.Fprintf(w, "  start to all %d applied:                    %s\n", m.syncs, formatDuration(m.first))
		fmt.Fprintf(w, "  push touching every folder to all applied:  %s (one webhook, which triggered %d syncs)\n", formatDuration(m.push), m.webhookTriggered)
		fmt.Fprintf(w, "  requests while idle:                        %s\n", m.idle.summary())
		fmt.Fprintf(w, "                                              (%s); %d polls (ref listings), %.0f skipped reconciles, agent CPU %s\n", m.idle.counts.resourceSummary(), m.idle.polls, m.idle.skipped, formatDuration(m.idle.cpu))
		fmt.Fprintf(w, "  agent memory after the push:                RSS %s, peak %s\n", formatKiB(m.rssKiB), formatKiB(m.peakKiB))
		fmt.Fprintf(w, "  renders at once (--render-memory-budget; the default gives 2), the push to all applied:\n")
		fmt.Fprintf(w, "    2: %s (above)\n", formatDuration(m.push))
		for _, r := range m.parallel {
			if r.err != nil {
				fmt.Fprintf(w, "    %d: FAILED: %v\n", r.renders, r.err)
				continue
			}
			fmt.Fprintf(w, "    %d: %s, %.2f of the default's time; agent peak RSS %s\n", r.renders, formatDuration(r.push), r.push.Seconds()/m.push.Seconds(), formatKiB(r.peakKiB))
		}
	}
	fmt.Fprintln(w)
	if bd := sc.build; bd.err != nil {
		fmt.Fprintf(w, "build of %s documents: FAILED: %v\n", thousands(bd.documents), bd.err)
	} else {
		fmt.Fprintf(w, "build of a kustomization of %s documents (one file each, a namespace and a label transformer):\n", thousands(bd.documents))
		rows := [][]string{{"", "time", "peak RSS", "CPU (user+sys)"}}
		for _, r := range []struct {
			name string
			run  buildRun
		}{{"tether build", bd.tether}, {"kustomize " + bd.kustomizeVersion + " build", bd.kustomize}} {
			rows = append(rows, []string{r.name, formatDuration(r.run.wall), formatKiB(r.run.rssKiB), formatDuration(r.run.cpu)})
		}
		printTable(w, rows)
		fmt.Fprintf(w, "  tether/kustomize: %s of the time; the same output byte for byte: %v\n", formatShare(float64(bd.tether.wall)/float64(bd.kustomize.wall)), bd.identical)
	}
}

// scaleTargets prints the targets of the long steps, or says they were
// not run.
func scaleTargets(w io.Writer, sc *scaleResults) {
	if sc == nil {
		fmt.Fprintln(w, "  n/a   5,000 objects, 100 syncs and the 4,000-document build: not run (BENCH_SCALE=1 runs them)")
		return
	}
	large := sc.large.tools[0]
	fmt.Fprintln(w, "  "+target(fmt.Sprintf("%s objects: peak RSS of tether sync --once at most %d MiB", thousands(sc.large.set.total()), maxLargeRSSMiB), func() (bool, string, bool) {
		kib := large.peakRSS()
		return kib <= maxLargeRSSMiB*1024, formatKiB(kib), sc.largeErr == nil && kib > 0
	}))
	fmt.Fprintln(w, "  "+target(fmt.Sprintf("%s objects: peak RSS of the agent at most %d MiB", thousands(sc.agent.objects), maxLargeRSSMiB), func() (bool, string, bool) {
		return sc.agent.peakKiB <= maxLargeRSSMiB*1024, fmt.Sprintf("%s (after the sync %s)", formatKiB(sc.agent.peakKiB), formatKiB(sc.agent.rssKiB)), sc.agent.err == nil
	}))
	m := sc.many
	fmt.Fprintln(w, "  "+target(fmt.Sprintf("%d syncs x %d objects: peak RSS of the agent at most %d MiB", m.syncs, m.objectsEach, maxManyRSSMiB), func() (bool, string, bool) {
		return m.peakKiB <= maxManyRSSMiB*1024, fmt.Sprintf("%s; push to all applied %s, %.1f requests per minute idle", formatKiB(m.peakKiB), formatDuration(m.push), m.idle.perMinute()), m.err == nil
	}))
	bd := sc.build
	fmt.Fprintln(w, "  "+target(fmt.Sprintf("build of %s documents at most %.1fx the kustomize CLI's time", thousands(bd.documents), maxBuildVsKustomize), func() (bool, string, bool) {
		r := float64(bd.tether.wall) / float64(bd.kustomize.wall)
		return r <= maxBuildVsKustomize, fmt.Sprintf("%sx (%s vs %s)", formatShare(r), formatDuration(bd.tether.wall), formatDuration(bd.kustomize.wall)), bd.err == nil
	}))
}

// cell is "2.36s, 2,025, 1,002", or why the step did not run.
func (t *tool) cell(i int) string {
	r := t.results[i]
	if !r.ran {
		if ok, why := t.runs(i); !ok {
			return why
		}
		return "not run"
	}
	tm := formatDuration(r.wall)
	if r.err != nil {
		tm += " FAILED"
	}
	return fmt.Sprintf("%s, %s, %s", tm, thousands(r.counts.Requests), thousands(r.counts.Writes))
}

func (r stepResult) ok() bool { return r.ran && r.err == nil }

func (t *tool) peakRSS() int64 {
	var max int64
	for _, r := range t.results {
		if r.rssKiB > max {
			max = r.rssKiB
		}
	}
	return max
}

// byName is the suite's tool of that name; the bench always builds it.
func byName(tools []*tool, name string) *tool {
	for _, t := range tools {
		if t.name == name {
			return t
		}
	}
	panic("bench: no tool " + name)
}

func mapTools(tools []*tool, f func(*tool) string) []string {
	out := make([]string, len(tools))
	for i, t := range tools {
		out[i] = f(t)
	}
	return out
}

// share is t's time for step i divided by other's, and whether both ran
// without error.
func share(t, other *tool, i int) (float64, bool) {
	a, o := t.results[i], other.results[i]
	if !a.ok() || !o.ok() || o.wall <= 0 {
		return 0, false
	}
	return float64(a.wall) / float64(o.wall), true
}

func shareDetail(t, other *tool, i int, r float64) string {
	return fmt.Sprintf("%sx (%s vs %s)", formatShare(r), formatDuration(t.results[i].wall), formatDuration(other.results[i].wall))
}

// formatShare is a ratio with two decimals, three below 0.1.
func formatShare(r float64) string {
	if r < 0.1 {
		return fmt.Sprintf("%.3f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// shareTarget is the target "WHAT at most MAXx OTHER's time".
func shareTarget(what string, t, other *tool, i int, max float64) string {
	return target(fmt.Sprintf("%s at most %gx %s's time", what, max, other.name), func() (bool, string, bool) {
		r, ok := share(t, other, i)
		return r <= max, shareDetail(t, other, i, r), ok
	})
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

// printTable prints rows as aligned columns, the first row a header.
func printTable(w io.Writer, rows [][]string) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%s %ss", thousands(n), word)
}

func formatKiB(kib int64) string {
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// formatDuration is "1.92s" under a minute and "4m38.2s" above.
func formatDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	m := int(d / time.Minute)
	return fmt.Sprintf("%dm%04.1fs", m, (d - time.Duration(m)*time.Minute).Seconds())
}

// thousands is n with commas: 1,001.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
