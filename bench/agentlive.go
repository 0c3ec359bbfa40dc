package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/e2e/gitserver"
)

// The agent steps of issue 12, in the default run: one agent (`tether
// run`) holding the default set of 1,001 objects from a git repository,
// idle for a minute while it polls every agentPollInterval, then one of
// its objects changed by another field manager: how fast tether reports
// the drift and puts it back, and with how many writes.
const (
	agentLiveSync      = "bench-agent"
	agentLiveNamespace = "bench-agent"
	// agentPollInterval is short, so several polls of the unchanged
	// revision fall into the idle window.
	agentPollInterval = 10 * time.Second
	// driftManager is the field manager of the change made behind
	// tether's back, as `kubectl edit` names itself.
	driftManager = "kubectl-edit"
	// driftObject is the Deployment the drift step changes, and
	// driftImage the image it gets.
	driftObject = "app-000"
	driftImage  = "registry.example.com/bench/app:hotfix"
	// driftTimeout bounds waiting for tether to report and correct it.
	driftTimeout = 2 * time.Minute
	// driftQuiet is how long the bench keeps counting tether's writes
	// after the object is back, so a late or repeated correction counts.
	driftQuiet = 3 * time.Second
	// samplePeriod is how often the drift step looks at the agent's
	// metrics, the Events and the object.
	samplePeriod = 100 * time.Millisecond
	// refListing is the git server's name for a ref listing: one poll.
	refListing = "info/refs upload-pack"
	// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat:
	// 100 on every Linux architecture Go supports.
	clockTicks = 100
	// Drift actions of contract.MetricDriftEvents (package metrics'
	// DriftDetected and DriftCorrected; the bench does not link metrics).
	driftDetected  = "detected"
	driftCorrected = "corrected"
)

// agentLive is what the agent steps measured.
type agentLive struct {
	objects int
	// first is from starting the agent to the sync applied.
	first time.Duration
	// watches are the watch requests the agent sent from its start until
	// the idle window: the watches it holds open (or reopened).
	watches int
	idle    idleRun
	drift   driftRun
	err     error
}

// idleRun is an agent's cost while nothing changes.
type idleRun struct {
	window time.Duration
	// counts are the agent's requests to the API server (audit log).
	counts requestCounts
	// cpu is the agent's user and system time in the window, with that of
	// the children it waited for (renders; none are expected).
	cpu time.Duration
	// polls are the ref listings the git server answered.
	polls int64
	// skipped counts the reconciles the agent skipped (unchanged revision,
	// nothing drifted), by its own metrics.
	skipped float64
}

// driftRun is one object changed by another field manager.
type driftRun struct {
	object string
	// detected: the detected metric counted it; event: its DriftDetected
	// Event was there; corrected: the corrected metric counted it;
	// restored: the object was as git has it again. Each from just before
	// the patch, sampled every samplePeriod.
	detected, event, corrected, restored time.Duration
	// message is the DriftDetected Event's and said the DriftCorrected
	// Event's.
	message, said string
	// writes are tether's writes from the patch until driftQuiet after
	// the object was back, Events and the leader lease left out.
	writes int
	// writeSummary lists them by verb and resource, and requests every
	// request of tether's in the window.
	writeSummary, requests string
	// detections and corrections are how many times the agent's metrics
	// counted the drift found and put back over the same window.
	detections, corrections float64
	err                     error
}

// reported is when tether first reported the drift: its Event or its
// metric, whichever the bench saw first.
func (d driftRun) reported() time.Duration { return min(d.detected, d.event) }

// perMinute is the idle requests per minute.
func (r idleRun) perMinute() float64 {
	if r.window <= 0 {
		return 0
	}
	return float64(r.counts.Requests) / r.window.Minutes()
}

// lists counts the LISTs.
func (c requestCounts) lists() int { return c.ByVerb["list"] }

// watches counts the watch requests.
func (c requestCounts) watches() int { return c.ByVerb["watch"] }

// leaseRequests counts the requests for leases (leader election).
func (c requestCounts) leaseRequests() int {
	n := 0
	for key, count := range c.ByResource {
		if strings.HasSuffix(key, " leases") {
			n += count
		}
	}
	return n
}

// writesExcept counts the writes (dry runs left out) to resources other
// than those named, and lists them by verb and resource.
func (c requestCounts) writesExcept(resources ...string) (int, string) {
	n, kept := 0, map[string]int{}
	for key, count := range c.ByResource {
		i := strings.LastIndexByte(key, ' ')
		verb, resource := key[:i], key[i+1:]
		if !isWrite(verb) || slices.Contains(resources, resource) {
			continue
		}
		n += count
		kept[key] = count
	}
	return n, summary(kept)
}

// summary is "61.0 per minute (61 in 1m00.0s): 0 LISTs, 0 dry runs,
// 2 watches, 59 for the leader lease".
func (r idleRun) summary() string {
	c := r.counts
	return fmt.Sprintf("%.1f per minute (%d in %s): %s, %s, %s, %d for the leader lease",
		r.perMinute(), c.Requests, formatDuration(r.window), plural(c.lists(), "LIST"), plural(c.dryRuns(), "dry run"), plural(c.watches(), "watch request"), c.leaseRequests())
}

// agentLive serves the default set from a git repository, runs one agent
// syncing it every agentPollInterval, and measures it idle and drifted.
func (b *bench) agentLive(ctx context.Context) (a agentLive) {
	set := defaultSet()
	a.objects = set.total()
	fmt.Fprintf(b.out, "bench: agent: one sync of %s objects from git, polled every %s: idle, then drift\n", thousands(a.objects), agentPollInterval)
	defer func() {
		if a.err != nil {
			fmt.Fprintf(b.out, "bench: agent idle and drift: FAILED: %v\n", a.err)
		}
	}()
	srv, err := gitserver.Start(gitserver.Options{})
	if err != nil {
		a.err = err
		return a
	}
	defer srv.Close()
	repo, err := srv.CreateRepo("agent")
	if err != nil {
		a.err = err
		return a
	}
	// A plain folder of YAML files (no kustomization): the render is not
	// what these steps measure.
	files := map[string]string{}
	for name, body := range set.files(agentLiveNamespace) {
		files["app/"+name] = body
	}
	rev, err := repo.Commit("the default set", files)
	if err != nil {
		a.err = err
		return a
	}
	dir := filepath.Join(b.work, "agent")
	if a.err = os.MkdirAll(dir, 0o755); a.err != nil {
		return a
	}
	cfg := filepath.Join(dir, "tether.yaml")
	syncYAML := fmt.Sprintf("  - name: %s\n    source:\n      url: %s\n      interval: %s\n    path: app\n", agentLiveSync, repo.URL, agentPollInterval)
	if a.err = os.WriteFile(cfg, []byte(agentConfig("", syncYAML)), 0o644); a.err != nil {
		return a
	}

	b.settle(ctx)
	offset, err := b.audit.offset()
	if err != nil {
		a.err = err
		return a
	}
	start := time.Now()
	p, err := b.startAgent(ctx, dir, cfg, agentLiveSync)
	if err != nil {
		a.err = err
		return a
	}
	defer p.stop()
	applied, err := p.waitApplied(ctx, agentTimeout, map[string]string{agentLiveSync: rev})
	if err != nil {
		a.err = fmt.Errorf("agent: %w (log: %s)", err, p.logPath)
		return a
	}
	a.first = applied.Sub(start)
	if a.err = b.verify(ctx, set, agentLiveNamespace, step{name: "the agent's sync", wantConfigMaps: set.configMaps}, false); a.err != nil {
		return a
	}
	fmt.Fprintf(b.out, "bench: agent: %s objects applied %s after its start\n", thousands(a.objects), formatDuration(a.first))

	// Idle: the controllers have caught up and the agent has skipped a
	// poll since (its watches are running), then a minute of nothing.
	b.settle(ctx)
	if a.err = p.waitSkipped(ctx, agentLiveSync, time.Now()); a.err != nil {
		return a
	}
	before, err := b.audit.count(offset, saUser(b.ids.tether), start, time.Now())
	if err != nil {
		a.err = err
		return a
	}
	a.watches = before.watches()
	if a.idle, a.err = b.measureIdle(ctx, p, srv, []string{agentLiveSync}); a.err != nil {
		return a
	}
	fmt.Fprintf(b.out, "bench: agent: idle: %s; %d polls; CPU %s\n", a.idle.summary(), a.idle.polls, formatDuration(a.idle.cpu))

	a.drift = b.driftStep(ctx, p)
	return a
}

// measureIdle counts an agent's requests (audit log), CPU time and polls
// over idleWindow in which nothing changes; syncs are the agent's syncs,
// whose skipped reconciles it counts.
func (b *bench) measureIdle(ctx context.Context, p *agentProc, srv *gitserver.Server, syncs []string) (idleRun, error) {
	r := idleRun{window: idleWindow}
	pid := p.cmd.Process.Pid
	skipped := func() (float64, error) {
		text, err := p.metrics()
		if err != nil {
			return 0, err
		}
		total := 0.0
		for _, s := range syncs {
			total += metricSum(text, contract.MetricReconcileDuration+"_count", map[string]string{"sync": s, "outcome": "skipped"})
		}
		return total, nil
	}
	skipped0, err := skipped()
	if err != nil {
		return r, err
	}
	cpu0, err := procCPU(pid)
	if err != nil {
		return r, err
	}
	polls0 := srv.Count(refListing)
	var cpu1 time.Duration
	r.counts, err = b.countWhile(ctx, b.ids.tether, func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.window):
		}
		var err error
		cpu1, err = procCPU(pid)
		return err
	})
	if err != nil {
		return r, err
	}
	r.cpu, r.polls = cpu1-cpu0, srv.Count(refListing)-polls0
	skipped1, err := skipped()
	r.skipped = skipped1 - skipped0
	return r, err
}

// waitSkipped waits until the sync's last attempt is a skipped one that
// began after since.
func (p *agentProc) waitSkipped(ctx context.Context, sync string, since time.Time) error {
	return poll(ctx, 3*agentPollInterval+time.Minute, func() error {
		s, err := p.syncStatus(sync)
		if err != nil {
			return err
		}
		if a := s.LastAttempt; a == nil || a.Outcome != "skipped" || a.At.Before(since) {
			return fmt.Errorf("sync %s has not skipped a poll since %s", sync, since.Format(time.TimeOnly))
		}
		return nil
	})
}

// driftStep changes the image of one of the agent's Deployments as another
// field manager, and times until tether reports and corrects it.
func (b *bench) driftStep(ctx context.Context, p *agentProc) (d driftRun) {
	d.object = "Deployment/" + agentLiveNamespace + "/" + driftObject
	fmt.Fprintf(b.out, "bench: agent: drift: %s's image changed by %s\n", d.object, driftManager)
	defer func() {
		if d.err != nil {
			fmt.Fprintf(b.out, "bench: agent: drift: FAILED: %v\n", d.err)
		}
	}()
	deployments := b.cluster.Client.AppsV1().Deployments(agentLiveNamespace)
	live, err := deployments.Get(ctx, driftObject, metav1.GetOptions{})
	if err != nil {
		d.err = err
		return d
	}
	want := live.Spec.Template.Spec.Containers[0].Image
	counter := func(text, action string) float64 {
		return metricSum(text, contract.MetricDriftEvents, map[string]string{"sync": agentLiveSync, "action": action})
	}
	text, err := p.metrics()
	if err != nil {
		d.err = err
		return d
	}
	detected0, corrected0 := counter(text, driftDetected), counter(text, driftCorrected)
	inventory := contract.InventoryNamePrefix + agentLiveSync

	b.settle(ctx)
	offset, err := b.audit.offset()
	if err != nil {
		d.err = err
		return d
	}
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, driftImage)
	start := time.Now()
	if _, err := deployments.Patch(ctx, driftObject, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: driftManager}); err != nil {
		d.err = fmt.Errorf("patching %s as %s: %w", d.object, driftManager, err)
		return d
	}
	since := func(t *time.Duration) {
		if *t == 0 {
			*t = time.Since(start)
		}
	}
	deadline := start.Add(driftTimeout)
	for d.detected == 0 || d.event == 0 || d.corrected == 0 || d.restored == 0 || d.said == "" {
		if time.Now().After(deadline) {
			d.err = fmt.Errorf("after %s: reported %v, Event %v, corrected %v, restored %v (log: %s)",
				driftTimeout, d.detected > 0, d.event > 0, d.corrected > 0, d.restored > 0, p.logPath)
			return d
		}
		if text, err := p.metrics(); err == nil {
			if counter(text, driftDetected) > detected0 {
				since(&d.detected)
			}
			if counter(text, driftCorrected) > corrected0 {
				since(&d.corrected)
			}
		}
		if obj, err := deployments.Get(ctx, driftObject, metav1.GetOptions{}); err == nil && obj.Spec.Template.Spec.Containers[0].Image == want {
			since(&d.restored)
		}
		if evs, err := b.cluster.Client.CoreV1().Events(config.DefaultInventoryNamespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + inventory}); err == nil {
			if msg := eventMessage(evs.Items, contract.EventDriftDetected, driftObject); msg != "" {
				since(&d.event)
				d.message = msg
			}
			d.said = eventMessage(evs.Items, contract.EventDriftCorrected, driftObject)
		}
		select {
		case <-ctx.Done():
			d.err = ctx.Err()
			return d
		case <-time.After(samplePeriod):
		}
	}
	select {
	case <-ctx.Done():
		d.err = ctx.Err()
		return d
	case <-time.After(driftQuiet):
	}
	end := time.Now()
	if text, err := p.metrics(); err == nil {
		d.detections, d.corrections = counter(text, driftDetected)-detected0, counter(text, driftCorrected)-corrected0
	}
	select {
	case <-ctx.Done():
	case <-time.After(auditGrace):
	}
	counts, err := b.audit.count(offset, saUser(b.ids.tether), start, end)
	if err != nil {
		d.err = err
		return d
	}
	d.writes, d.writeSummary = counts.writesExcept("events", "leases")
	d.requests = counts.resourceSummary()
	fmt.Fprintf(b.out, "bench: agent: drift reported %s after the change, put back %s after it, %s (%s)\n",
		formatDuration(d.reported()), formatDuration(d.restored), plural(d.writes, "write"), d.writeSummary)
	return d
}

// eventMessage is the message of the newest Event with reason that names
// object, or "".
func eventMessage(events []corev1.Event, reason, object string) string {
	var newest *corev1.Event
	for i := range events {
		e := &events[i]
		if e.Reason != reason || !strings.Contains(e.Message, object) {
			continue
		}
		if newest == nil || e.LastTimestamp.After(newest.LastTimestamp.Time) {
			newest = e
		}
	}
	if newest == nil {
		return ""
	}
	return newest.Message
}

// metrics reads the agent's /metrics.
func (p *agentProc) metrics() (string, error) {
	if err := p.exited(); err != nil {
		return "", err
	}
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/metrics answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return string(body), err
}

// metricSum adds up the samples of metric name in Prometheus' text format
// whose labels include every pair of labels. Label values are matched
// exactly as written (the bench's are plain names).
func metricSum(text, name string, labels map[string]string) float64 {
	total := 0.0
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		set, value := "", strings.TrimSpace(rest)
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			set, value = rest[1:end], strings.TrimSpace(rest[end+1:])
		}
		if !hasLabels(set, labels) {
			continue
		}
		if f := strings.Fields(value); len(f) > 0 {
			if v, err := strconv.ParseFloat(f[0], 64); err == nil {
				total += v
			}
		}
	}
	return total
}

// hasLabels reports whether the label set `a="1",b="2"` has every pair.
func hasLabels(set string, labels map[string]string) bool {
	pairs := map[string]bool{}
	for _, p := range strings.Split(set, ",") {
		pairs[p] = true
	}
	for k, v := range labels {
		if !pairs[k+"="+strconv.Quote(v)] {
			return false
		}
	}
	return true
}

// procCPU is a process's user and system time, with that of the children
// it waited for, from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	ticks, err := parseProcStatCPU(string(data))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// parseProcStatCPU adds utime, stime, cutime and cstime (fields 14 to 17)
// of a /proc/PID/stat line, in clock ticks. The command name (field 2) is
// in parentheses and may hold spaces and parentheses itself, so fields
// are counted from the last ')'.
func parseProcStatCPU(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name in %q", stat)
	}
	fields := strings.Fields(stat[i+1:]) // fields[0] is field 3, the state
	if len(fields) < 15 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 15", len(fields))
	}
	var total int64
	for _, f := range fields[11:15] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("CPU times: %w", err)
		}
		total += n
	}
	return total, nil
}

// report prints what the agent steps measured.
func (a *agentLive) report(w io.Writer) {
	fmt.Fprintf(w, "agent (tether run), one sync of %s objects from git, polled every %s (issue 12):\n", thousands(a.objects), agentPollInterval)
	if a.err != nil {
		fmt.Fprintf(w, "  FAILED: %v\n", a.err)
		return
	}
	i := a.idle
	fmt.Fprintf(w, "  start to applied:   %s; %s from its start until idle (the watches it holds open)\n", formatDuration(a.first), plural(a.watches, "watch request"))
	fmt.Fprintf(w, "  requests idle:      %s\n", i.summary())
	fmt.Fprintf(w, "                      (%s); %d polls (ref listings), %.0f skipped reconciles\n", i.counts.resourceSummary(), i.polls, i.skipped)
	fmt.Fprintf(w, "  agent CPU idle:     %s in %s (%.1f%% of one core)\n", formatDuration(i.cpu), formatDuration(i.window), 100*i.cpu.Seconds()/i.window.Seconds())
	d := a.drift
	fmt.Fprintf(w, "  drift:              %s's image set by %s (a strategic merge patch as admin)\n", d.object, driftManager)
	if d.err != nil {
		fmt.Fprintf(w, "                      FAILED: %v\n", d.err)
		return
	}
	fmt.Fprintf(w, "    reported:         %s after the patch (its %s Event seen after %s, %s{action=%q} after %s):\n",
		formatDuration(d.reported()), contract.EventDriftDetected, formatDuration(d.event), contract.MetricDriftEvents, driftDetected, formatDuration(d.detected))
	fmt.Fprintf(w, "                      %q\n", d.message)
	fmt.Fprintf(w, "    put back:         %s after the patch (the object as git has it; the %q metric after %s)\n",
		formatDuration(d.restored), driftCorrected, formatDuration(d.corrected))
	fmt.Fprintf(w, "    writes:           %s (%s); Events and the leader lease left out; by its metrics found %.0f and put back %.0f times\n",
		plural(d.writes, "write"), d.writeSummary, d.detections, d.corrections)
	fmt.Fprintf(w, "    all requests:     %s\n", d.requests)
	fmt.Fprintf(w, "    tether says:      %q\n", d.said)
}

// liveTargets prints the targets of issue 12.
func liveTargets(w io.Writer, a *agentLive) {
	fmt.Fprintln(w, "  "+target(fmt.Sprintf("agent idle for %s sends no LIST and no dry run (watches only)", formatDuration(a.idle.window)), func() (bool, string, bool) {
		c := a.idle.counts
		return c.lists() == 0 && c.dryRuns() == 0,
			fmt.Sprintf("%s, %s; %s, %d for the leader lease, %d in all", plural(c.lists(), "LIST"), plural(c.dryRuns(), "dry run"), plural(c.watches(), "watch request"), c.leaseRequests(), c.Requests),
			a.err == nil
	}))
	fmt.Fprintln(w, "  "+target("drift put back with exactly one write", func() (bool, string, bool) {
		d := a.drift
		return d.writes == 1, fmt.Sprintf("%s (%s), %s after the change", plural(d.writes, "write"), d.writeSummary, formatDuration(d.restored)), a.err == nil && d.err == nil
	}))
}
