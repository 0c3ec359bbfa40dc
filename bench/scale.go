package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/tether-gitops/tether/e2e/gitserver"
	"github.com/tether-gitops/tether/webhook"
)

// The many-syncs step: one agent, one repository, a folder per sync.
const (
	manySyncCount = 100
	// idleWindow is how long the agent's requests are counted while
	// nothing changes.
	idleWindow = time.Minute
	// agentTimeout bounds waiting for an agent to apply everything.
	agentTimeout = 15 * time.Minute
	// webhookSecret signs the many-syncs step's webhook (a bench value,
	// not a credential).
	webhookSecret = "bench-webhook-secret"
)

// scaleResults is what --scale (BENCH_SCALE=1) measured.
type scaleResults struct {
	// large is tether and the raw floor on 5,000 objects.
	large suite
	// largeErr is why the large suite could not start.
	largeErr error
	largeBad bool
	agent    agentAtScale
	many     manySyncs
	build    buildAtScale
}

func (r *scaleResults) failed() bool {
	return r.largeErr != nil || r.largeBad || r.agent.err != nil || r.many.err != nil || r.build.err != nil
}

// agentAtScale is `tether run` syncing the 5,000 objects once.
type agentAtScale struct {
	objects int
	// wall is from starting the agent to the sync applied (its own
	// clock's time of the apply).
	wall time.Duration
	// rssKiB and peakKiB are the agent's VmRSS after the sync and its
	// VmHWM.
	rssKiB, peakKiB int64
	// phases is how long each phase of the agent's reconcile took.
	phases string
	err    error
}

// manySyncs is one agent with manySyncCount syncs of one repository.
type manySyncs struct {
	syncs, objectsEach int
	// first is from starting the agent to every sync applied.
	first time.Duration
	// push is from the end of a push touching every folder (a webhook
	// sent at once) to every sync applied.
	push time.Duration
	// webhookTriggered is how many syncs the webhook's answer named.
	webhookTriggered int
	// idle is the agent's cost over idleWindow with nothing to do.
	idle            idleRun
	rssKiB, peakKiB int64
	// parallel is the same kind of push with other numbers of renders at
	// once (the default memory budget gives 2), each in an agent started
	// afresh.
	parallel []parallelPush
	err      error
}

// parallelPush is one push to every folder with renders renders at once.
type parallelPush struct {
	renders int
	push    time.Duration
	peakKiB int64
	err     error
}

// sweptRenders are the numbers of renders at once the many-syncs step
// also measures, besides the default.
var sweptRenders = []int{1, 3}

// buildAtScale is `tether build` beside `kustomize build` of one
// kustomization.
type buildAtScale struct {
	documents         int
	tether, kustomize buildRun
	// identical: both printed the same bytes.
	identical bool
	// kustomizeVersion is what `kustomize version` says.
	kustomizeVersion string
	err              error
}

// buildRun is one build process: wall time, and from wait4's rusage
// (the process and every descendant it waited for, such as tether's
// sandboxed renderer) the largest peak RSS and the CPU time.
type buildRun struct {
	wall      time.Duration
	rssKiB    int64
	cpu       time.Duration
	documents int
	output    []byte
}

// runScale runs the long steps one after another; a failing one does not
// stop the others.
func (b *bench) runScale(ctx context.Context) *scaleResults {
	r := &scaleResults{}
	r.large = suite{set: largeSet(), tools: []*tool{
		b.tetherTool(ctx, "tether", "bench-large-tether", "bench-large"),
		b.floorTool("raw floor", "bench-large-floor"),
	}}
	if r.largeErr = b.prepareTools("large", r.large.tools); r.largeErr == nil {
		r.largeBad = b.runSuite(ctx, r.large)
	}
	for _, f := range []func(){
		func() { r.agent = b.agentAtScale(ctx) },
		func() { r.many = b.manySyncs(ctx) },
		func() { r.build = b.buildAtScale(ctx) },
	} {
		if ctx.Err() != nil {
			break
		}
		f()
	}
	return r
}

// agentAtScale starts an agent with one sync of the 5,000 objects (a local
// folder, in a namespace of its own), waits until it applied them and
// reads its memory.
func (b *bench) agentAtScale(ctx context.Context) (a agentAtScale) {
	const name, ns = "bench-large-agent", "bench-large-agent"
	set := largeSet()
	a.objects = set.total()
	fmt.Fprintf(b.out, "bench: agent: one sync of %s objects\n", thousands(a.objects))
	defer func() {
		if a.err != nil {
			fmt.Fprintf(b.out, "bench: agent at scale: FAILED: %v\n", a.err)
		}
	}()
	dir := filepath.Join(b.work, "large-agent")
	objects := filepath.Join(dir, "objects")
	if a.err = set.write(objects, ns); a.err != nil {
		return a
	}
	cfg := filepath.Join(dir, "tether.yaml")
	// wait: false, as `sync --once` runs without --wait: otherwise the
	// agent's time is mostly the controller manager bringing 500
	// Deployments to Available, not tether's.
	if a.err = os.WriteFile(cfg, []byte(agentConfig("", fmt.Sprintf("  - name: %s\n    source:\n      localPath: %s\n    wait: false\n", name, objects))), 0o644); a.err != nil {
		return a
	}
	b.settle(ctx)
	start := time.Now()
	p, err := b.startAgent(ctx, dir, cfg, name)
	if err != nil {
		a.err = err
		return a
	}
	defer p.stop()
	applied, err := p.waitApplied(ctx, agentTimeout, map[string]string{name: ""})
	if err != nil {
		a.err = fmt.Errorf("agent: %w (log: %s)", err, p.logPath)
		return a
	}
	a.wall = applied.Sub(start)
	if a.rssKiB, a.peakKiB, a.err = p.memory(); a.err != nil {
		return a
	}
	if st, err := p.syncStatus(name); err == nil {
		a.phases = st.phases()
	}
	a.err = b.verify(ctx, set, ns, step{name: "the agent's sync", wantConfigMaps: set.configMaps}, false)
	fmt.Fprintf(b.out, "bench: agent: %s objects applied %s after its start (%s); RSS %s, peak %s\n",
		thousands(a.objects), formatDuration(a.wall), a.phases, formatKiB(a.rssKiB), formatKiB(a.peakKiB))
	return a
}

// manySyncs serves one repository with a folder of 50 objects per sync
// (a kustomization each, objects in a namespace per folder), starts one
// agent with every sync, waits until all are applied, counts its requests
// while idle, then pushes one commit that changes a ConfigMap in every
// folder, sends one signed webhook, and times until every sync applied
// that commit.
func (b *bench) manySyncs(ctx context.Context) (m manySyncs) {
	set := folderSet()
	m.syncs, m.objectsEach = manySyncCount, set.total()
	fmt.Fprintf(b.out, "bench: agent: %d syncs of %d objects from one repository\n", m.syncs, m.objectsEach)
	defer func() {
		if m.err != nil {
			fmt.Fprintf(b.out, "bench: many syncs: FAILED: %v\n", m.err)
		}
	}()
	srv, err := gitserver.Start(gitserver.Options{})
	if err != nil {
		m.err = err
		return m
	}
	defer srv.Close()
	repo, err := srv.CreateRepo("many")
	if err != nil {
		m.err = err
		return m
	}
	folder := func(i int) string { return fmt.Sprintf("sync-%03d", i) }
	namespace := func(i int) string { return fmt.Sprintf("bench-many-%03d", i) }
	files := map[string]string{}
	var syncs strings.Builder
	for i := 0; i < m.syncs; i++ {
		objs := set.files(namespace(i))
		for name, body := range objs {
			files[folder(i)+"/"+name] = body
		}
		files[folder(i)+"/kustomization.yaml"] = kustomization(objs, "")
		fmt.Fprintf(&syncs, "  - name: %s\n    source:\n      url: %s\n    path: %s\n", folder(i), repo.URL, folder(i))
	}
	first, err := repo.Commit(fmt.Sprintf("%d folders", m.syncs), files)
	if err != nil {
		m.err = err
		return m
	}
	dir := filepath.Join(b.work, "many-syncs")
	if m.err = os.MkdirAll(dir, 0o755); m.err != nil {
		return m
	}
	secretFile := filepath.Join(dir, "webhook-secret")
	if m.err = os.WriteFile(secretFile, []byte(webhookSecret), 0o600); m.err != nil {
		return m
	}
	cfg := filepath.Join(dir, "tether.yaml")
	if m.err = os.WriteFile(cfg, []byte(agentConfig(secretFile, syncs.String())), 0o644); m.err != nil {
		return m
	}
	want := func(rev string) map[string]string {
		w := make(map[string]string, m.syncs)
		for i := 0; i < m.syncs; i++ {
			w[folder(i)] = rev
		}
		return w
	}

	b.settle(ctx)
	start := time.Now()
	p, err := b.startAgent(ctx, dir, cfg, "bench-many-syncs")
	if err != nil {
		m.err = err
		return m
	}
	defer p.stop()
	applied, err := p.waitApplied(ctx, agentTimeout, want(first))
	if err != nil {
		m.err = fmt.Errorf("first sync of every folder: %w (log: %s)", err, p.logPath)
		return m
	}
	m.first = applied.Sub(start)
	fmt.Fprintf(b.out, "bench: agent: all %d syncs applied %s after its start\n", m.syncs, formatDuration(m.first))

	// Idle: nothing changes in git or in the cluster.
	b.settle(ctx)
	names := make([]string, m.syncs)
	for i := range names {
		names[i] = folder(i)
	}
	if m.idle, m.err = b.measureIdle(ctx, p, srv, names); m.err != nil {
		return m
	}
	fmt.Fprintf(b.out, "bench: agent: idle: %s; %d polls; CPU %s (%s)\n", m.idle.summary(), m.idle.polls, formatDuration(m.idle.cpu), m.idle.counts.resourceSummary())

	// One push that touches every folder, and the webhook a git host
	// would send for it.
	changes := map[string]string{}
	for i := 0; i < m.syncs; i++ {
		changes[folder(i)+"/"+configMapFile(0)] = configMapYAML(namespace(i), 0, changedSuffix)
	}
	second, err := repo.Commit("change a ConfigMap in every folder", changes)
	if err != nil {
		m.err = err
		return m
	}
	pushed := time.Now()
	if m.webhookTriggered, m.err = sendPushWebhook(p.hookURL, repo.URL, second); m.err != nil {
		return m
	}
	applied, err = p.waitApplied(ctx, agentTimeout, want(second))
	if err != nil {
		m.err = fmt.Errorf("after the push: %w (log: %s)", err, p.logPath)
		return m
	}
	m.push = applied.Sub(pushed)
	if m.rssKiB, m.peakKiB, m.err = p.memory(); m.err != nil {
		return m
	}
	fmt.Fprintf(b.out, "bench: agent: push to all %d applied in %s; RSS %s, peak %s\n", m.syncs, formatDuration(m.push), formatKiB(m.rssKiB), formatKiB(m.peakKiB))
	for i := 0; i < m.syncs && m.err == nil; i++ {
		m.err = b.verify(ctx, set, namespace(i), step{name: "the push", wantConfigMaps: set.configMaps}, true)
	}
	if m.err != nil {
		return m
	}

	// The same push with other numbers of renders at once: an agent
	// started afresh with the memory budget for that many, which first
	// reconciles every sync (nothing to write), then gets a push touching
	// every folder (another ConfigMap each time).
	p.stop()
	rev := second
	for n, renders := range sweptRenders {
		r := parallelPush{renders: renders}
		r.err = func() error {
			q, err := b.startAgent(ctx, dir, cfg, "bench-many-syncs", "--render-memory-budget", fmt.Sprintf("%dMi", renders*768))
			if err != nil {
				return err
			}
			defer q.stop()
			if _, err := q.waitApplied(ctx, agentTimeout, want(rev)); err != nil {
				return fmt.Errorf("restarted with %d renders at once: %w (log: %s)", renders, err, q.logPath)
			}
			b.settle(ctx)
			changes := map[string]string{}
			for i := 0; i < m.syncs; i++ {
				changes[folder(i)+"/"+configMapFile(1+n)] = configMapYAML(namespace(i), 1+n, fmt.Sprintf("-renders-%d", renders))
			}
			next, err := repo.Commit(fmt.Sprintf("change another ConfigMap in every folder (%d renders at once)", renders), changes)
			if err != nil {
				return err
			}
			pushed := time.Now()
			if _, err := sendPushWebhook(q.hookURL, repo.URL, next); err != nil {
				return err
			}
			applied, err := q.waitApplied(ctx, agentTimeout, want(next))
			if err != nil {
				return fmt.Errorf("after the push with %d renders at once: %w (log: %s)", renders, err, q.logPath)
			}
			r.push, rev = applied.Sub(pushed), next
			_, r.peakKiB, err = q.memory()
			return err
		}()
		if r.err == nil {
			fmt.Fprintf(b.out, "bench: agent: with %d renders at once, push to all %d applied in %s; peak %s\n", renders, m.syncs, formatDuration(r.push), formatKiB(r.peakKiB))
		} else {
			fmt.Fprintf(b.out, "bench: agent: with %d renders at once: FAILED: %v\n", renders, r.err)
		}
		m.parallel = append(m.parallel, r)
		if r.err != nil {
			break
		}
	}
	return m
}

// sendPushWebhook sends a signed GitHub push event for repoURL at sha and
// returns how many syncs the agent says it triggered.
func sendPushWebhook(hookURL, repoURL, sha string) (int, error) {
	body := fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"repository":{"clone_url":%q}}`, sha, repoURL)
	req, err := http.NewRequest(http.MethodPost, hookURL+webhook.GitHubPath, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.GitHubEventHeader, "push")
	req.Header.Set(webhook.GitHubSignatureHeader, webhook.Sign([]byte(webhookSecret), []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	var answer struct {
		Triggered []string `json:"triggered"`
		Error     string   `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("webhook answered %s: %s", resp.Status, answer.Error)
	}
	return len(answer.Triggered), nil
}

// buildAtScale renders a kustomization of 4,000 documents with `tether
// build` and with the kustomize CLI, once each, and compares their output.
func (b *bench) buildAtScale(ctx context.Context) (r buildAtScale) {
	set := buildSet()
	r.documents = set.total()
	fmt.Fprintf(b.out, "bench: build: a kustomization of %s documents, tether build and kustomize build\n", thousands(r.documents))
	defer func() {
		if r.err != nil {
			fmt.Fprintf(b.out, "bench: build: FAILED: %v\n", r.err)
		}
	}()
	dir := filepath.Join(b.work, "build", "app")
	files := set.files("bench-build")
	files["kustomization.yaml"] = kustomization(files, "bench-build")
	if r.err = writeFiles(dir, files); r.err != nil {
		return r
	}
	kustomize := filepath.Join(b.binDir, "kustomize")
	out, err := exec.CommandContext(ctx, kustomize, "version").Output()
	if err != nil {
		r.err = fmt.Errorf("%s version: %w (run `make bench`, which builds it)", kustomize, err)
		return r
	}
	r.kustomizeVersion = strings.TrimSpace(string(out))
	if r.kustomize, r.err = b.timeBuild(ctx, kustomize, "build", dir); r.err != nil {
		return r
	}
	if r.tether, r.err = b.timeBuild(ctx, filepath.Join(b.binDir, "tether"), "build", dir); r.err != nil {
		return r
	}
	r.identical = bytes.Equal(r.tether.output, r.kustomize.output)
	for _, run := range []buildRun{r.kustomize, r.tether} {
		if run.documents != r.documents {
			r.err = fmt.Errorf("a build printed %d documents, want %d", run.documents, r.documents)
		}
	}
	fmt.Fprintf(b.out, "bench: build: kustomize %s (peak RSS %s), tether %s (peak RSS %s); same output: %v\n",
		formatDuration(r.kustomize.wall), formatKiB(r.kustomize.rssKiB), formatDuration(r.tether.wall), formatKiB(r.tether.rssKiB), r.identical)
	return r
}

// timeBuild runs one build command and measures it.
func (b *bench) timeBuild(ctx context.Context, bin string, args ...string) (buildRun, error) {
	var run buildRun
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(childEnv(), "HOME="+filepath.Join(b.work, "build"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err := cmd.Run()
	run.wall = time.Since(start)
	if err != nil {
		return run, fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, lastLines(stderr.String(), 5))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		run.rssKiB = ru.Maxrss
		run.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	run.output = stdout.Bytes()
	run.documents = countDocuments(run.output)
	return run, nil
}

// countDocuments counts the YAML documents of a stream that separates them
// with "---" lines.
func countDocuments(out []byte) int {
	if len(bytes.TrimSpace(out)) == 0 {
		return 0
	}
	n := 1
	for _, line := range bytes.Split(out, []byte("\n")) {
		if string(line) == "---" {
			n++
		}
	}
	if bytes.HasPrefix(out, []byte("---\n")) {
		n--
	}
	return n
}

// kustomization lists the YAML files of files as resources, sorted, with
// a namespace transformer when ns is set and a label on every object.
func kustomization(files map[string]string, ns string) string {
	names := make([]string, 0, len(files))
	for name := range files {
		if strings.HasSuffix(name, ".yaml") && name != "kustomization.yaml" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var k strings.Builder
	k.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n")
	if ns != "" {
		fmt.Fprintf(&k, "namespace: %s\n", ns)
	}
	k.WriteString("labels:\n  - pairs:\n      tier: bench\n")
	k.WriteString("resources:\n")
	for _, name := range names {
		fmt.Fprintf(&k, "  - %s\n", name)
	}
	return k.String()
}

// agentConfig is an agent configuration with prune on, no delete budget,
// and the given syncs (YAML list items); secretFile, when set, is the
// webhook secret of every sync.
func agentConfig(secretFile, syncs string) string {
	var c strings.Builder
	c.WriteString("apiVersion: tether.dev/v1alpha1\nkind: AgentConfig\n")
	c.WriteString("defaults:\n  prune: true\n  deleteBudget: unlimited\n  timeout: 10m\n")
	if secretFile != "" {
		fmt.Fprintf(&c, "webhook:\n  secretFile: %s\n", secretFile)
	}
	c.WriteString("syncs:\n")
	c.WriteString(syncs)
	return c.String()
}
