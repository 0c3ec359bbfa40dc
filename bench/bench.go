package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tether-gitops/tether/e2e/cluster"
)

const (
	// tokenTTL outlives the longest run (BENCH_CLIUTILS=full).
	tokenTTL = 3 * time.Hour
	// auditGrace lets the API server finish logging the last requests of a
	// process that has exited (a closed watch logs when the server notices).
	auditGrace = time.Second
	// settlePause follows the controllers' catching up before each step,
	// so one step's background work (ReplicaSets, EndpointSlices) does not
	// land in the next one's time.
	settlePause = 2 * time.Second
	// identityNamespace holds the ServiceAccounts of the tools other than
	// tether.
	identityNamespace = "bench-system"
)

// bench is one run: the control plane, its audit log and the binaries.
type bench struct {
	cluster *cluster.Cluster
	audit   *auditLog
	binDir  string
	self    string
	work    string
	cliMode string
	out     io.Writer
	// ids are the ServiceAccounts the tools run as.
	ids identities
	// notes are printed under the table: who runs as what, with which
	// options.
	notes []string
}

// identities are the ServiceAccounts the tools run as: tether's bound by
// manifests/rbac.yaml, the others to cluster-admin.
type identities struct {
	tether, kubectl, flux, floor, cliUtils *cluster.ServiceAccount
	// tetherRole is the ClusterRole tether's is bound to.
	tetherRole string
}

// tool is one contender in one suite: how to run it and what it measured.
type tool struct {
	name      string
	version   string
	namespace string // its objects' namespace
	user      string // its audit user name
	env       []string
	command   func(dir string) []string
	runs      func(step int) (bool, string)
	// selfReport extracts what the tool says it did from its output.
	selfReport func(stdout string) string
	objects    string // its objects' folder
	results    [4]stepResult
}

// stepResult is one step of one tool.
type stepResult struct {
	ran    bool
	wall   time.Duration
	rssKiB int64
	counts requestCounts
	self   string
	err    error
}

// step is one of the four things every tool does.
type step struct {
	name    string
	prepare func(dir, ns string) error
	// wantConfigMaps is how many of the set's ConfigMaps exist after it.
	wantConfigMaps int
	// changed: config-000 carries the changed data after it (if the tool
	// ran the one-change step).
	changed bool
}

// suite is one object set applied by some tools, four steps each.
type suite struct {
	set   objectSet
	tools []*tool
}

func (su suite) steps() []step {
	set := su.set
	return []step{
		{name: fmt.Sprintf("1 cold apply (%s objects)", thousands(set.total())), prepare: set.write, wantConfigMaps: set.configMaps},
		{name: "2 re-apply, unchanged", wantConfigMaps: set.configMaps},
		{name: "3 one ConfigMap changed", prepare: changeOneConfigMap, wantConfigMaps: set.configMaps, changed: true},
		{name: fmt.Sprintf("4 prune %s ConfigMaps", thousands(set.pruned)), prepare: func(dir, _ string) error { return set.removePruned(dir) }, wantConfigMaps: set.configMaps - set.pruned, changed: true},
	}
}

// runSuite runs every tool's steps, one tool after another, and reports
// whether any step failed.
func (b *bench) runSuite(ctx context.Context, su suite) (failed bool) {
	for _, t := range su.tools {
		for i, s := range su.steps() {
			if ok, _ := t.runs(i); !ok {
				continue
			}
			r := b.runStep(ctx, su.set, t, i, s)
			t.results[i] = r
			if r.err != nil {
				failed = true
				fmt.Fprintf(b.out, "bench: %s, step %d: FAILED: %v\n", t.name, i+1, r.err)
			}
			if ctx.Err() != nil {
				return true
			}
		}
	}
	return failed
}

// setup applies tether's RBAC and mints the ServiceAccounts.
func (b *bench) setup(ctx context.Context, rbacPath string) error {
	c := b.cluster
	if _, err := os.Stat(filepath.Join(b.binDir, "tether")); err != nil {
		return fmt.Errorf("%w (run `make build`)", err)
	}
	// tether: the ServiceAccount that manifests/rbac.yaml binds.
	subject, role, err := rbacSubject(rbacPath)
	if err != nil {
		return err
	}
	// The ServiceAccount (and its namespace) first: the file may hold
	// namespaced objects there too.
	b.ids.tether, err = c.ServiceAccount(ctx, subject.Namespace, subject.Name, tokenTTL)
	if err != nil {
		return err
	}
	b.ids.tetherRole = role
	if err := b.adminKubectl(ctx, "apply", "--server-side", "--field-manager", "tether-bench", "-f", rbacPath); err != nil {
		return err
	}
	for _, id := range []struct {
		sa   **cluster.ServiceAccount
		name string
	}{{&b.ids.kubectl, "kubectl"}, {&b.ids.flux, "flux"}, {&b.ids.floor, "raw-floor"}, {&b.ids.cliUtils, "cli-utils"}} {
		if *id.sa, err = b.adminServiceAccount(ctx, id.name); err != nil {
			return err
		}
	}
	b.notes = append(b.notes,
		fmt.Sprintf("tether    runs as %s, bound to ClusterRole %s by %s; inventory in %s", saName(b.ids.tether), role, rbacPath, b.ids.tether.Namespace),
		fmt.Sprintf("kubectl   runs as %s, bound to cluster-admin; KUBECTL_APPLYSET=true; its namespace is made beforehand (the ApplySet parent lives there)", saName(b.ids.kubectl)),
		fmt.Sprintf("Flux      runs as %s, bound to cluster-admin; %s", saName(b.ids.flux), fluxOptions()),
		fmt.Sprintf("raw floor runs as %s, bound to cluster-admin; plain POSTs (cold) and DELETEs (prune), %d in flight (tether's --concurrency), no dry run, no GET, no client-side rate limit; it has no unchanged or one-change step", saName(b.ids.floor), tetherConcurrency),
		fmt.Sprintf("cli-utils runs as %s, bound to cluster-admin; %s", saName(b.ids.cliUtils), cliUtilsOptions),
		"no tool runs as system:masters; every tool has its own namespace of objects and its own ServiceAccount",
	)
	return nil
}

// defaultSuite is `make bench`: the 1,001 objects, every tool.
func (b *bench) defaultSuite(ctx context.Context) (suite, error) {
	kubectlNS := "bench-kubectl"
	// kubectl's ApplySet parent (a ConfigMap) lives in the namespace of
	// the objects, which therefore has to exist before its first apply;
	// the other tools create theirs.
	if _, err := b.cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubectlNS}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return suite{}, fmt.Errorf("creating namespace %s: %w", kubectlNS, err)
	}
	kubectl := filepath.Join(b.binDir, "kubectl")
	kubectlVersion := "kubectl"
	if out, err := exec.CommandContext(ctx, kubectl, "version", "--client", "-o", "json").Output(); err == nil {
		var v struct {
			ClientVersion struct {
				GitVersion string `json:"gitVersion"`
			} `json:"clientVersion"`
		}
		if json.Unmarshal(out, &v) == nil && v.ClientVersion.GitVersion != "" {
			kubectlVersion = "kubectl " + v.ClientVersion.GitVersion
		}
	}
	tools := []*tool{
		b.tetherTool(ctx, "tether", "bench-tether", "bench"),
		{
			name:      "kubectl",
			version:   kubectlVersion + " apply --server-side --prune --applyset",
			namespace: kubectlNS,
			user:      saUser(b.ids.kubectl),
			env:       []string{"KUBECONFIG=" + b.ids.kubectl.Kubeconfig, "KUBECTL_APPLYSET=true"},
			command: func(dir string) []string {
				return []string{kubectl, "apply", "--server-side", "--prune", "--applyset=configmaps/bench-applyset", "-n", kubectlNS, "-f", dir}
			},
			runs: always,
		},
		{
			name:      "Flux",
			version:   "github.com/fluxcd/pkg/ssa " + fluxVersion() + " (kustomize-controller's apply engine)",
			namespace: "bench-flux",
			user:      saUser(b.ids.flux),
			env:       []string{"KUBECONFIG=" + b.ids.flux.Kubeconfig},
			command: func(dir string) []string {
				return []string{b.self, fluxCommand, "--inventory", filepath.Join(filepath.Dir(dir), "inventory.json"), dir}
			},
			runs:       always,
			selfReport: lineStarting("flux "),
		},
		b.floorTool("raw floor", "bench-floor"),
		{
			name:      "cli-utils",
			version:   "cli-utils " + cliUtilsVersion() + " Applier",
			namespace: "bench-cliutils",
			user:      saUser(b.ids.cliUtils),
			env:       []string{"KUBECONFIG=" + b.ids.cliUtils.Kubeconfig},
			command: func(dir string) []string {
				return []string{b.self, cliUtilsCommand, "--inventory-namespace", "bench-cliutils", "--inventory-name", "inventory", dir}
			},
			runs: func(i int) (bool, string) {
				switch {
				case b.cliMode == "off":
					return false, "skipped (BENCH_CLIUTILS=off)"
				case b.cliMode == "cold" && i > 0:
					return false, "skipped (BENCH_CLIUTILS=full)"
				}
				return true, ""
			},
			selfReport: lineStarting("cli-utils "),
		},
	}
	return suite{set: defaultSet(), tools: tools}, b.prepareTools("", tools)
}

// tetherTool is `tether sync --once` as sync NAME over namespace ns.
func (b *bench) tetherTool(ctx context.Context, label, ns, name string) *tool {
	tether := filepath.Join(b.binDir, "tether")
	version := "tether"
	if out, err := exec.CommandContext(ctx, tether, "version").Output(); err == nil {
		version = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
	}
	return &tool{
		name:      label,
		version:   version + " sync --once",
		namespace: ns,
		user:      saUser(b.ids.tether),
		env:       []string{"KUBECONFIG=" + b.ids.tether.Kubeconfig},
		command: func(dir string) []string {
			return []string{tether, "sync", "--once", "--name", name, dir, "--prune", "--delete-budget", "unlimited"}
		},
		runs:       always,
		selfReport: tetherSelfReport,
	}
}

// floorTool is the raw floor over namespace ns: the cold and prune steps.
func (b *bench) floorTool(label, ns string) *tool {
	return &tool{
		name:      label,
		version:   fmt.Sprintf("plain parallel POST and DELETE (client-go dynamic client, %d in flight)", tetherConcurrency),
		namespace: ns,
		user:      saUser(b.ids.floor),
		env:       []string{"KUBECONFIG=" + b.ids.floor.Kubeconfig},
		command: func(dir string) []string {
			return []string{b.self, floorCommand, "--record", filepath.Join(filepath.Dir(dir), "record.json"), "--concurrency", fmt.Sprint(tetherConcurrency), dir}
		},
		runs: func(i int) (bool, string) {
			if i == stepCold || i == stepPrune {
				return true, ""
			}
			return false, "-"
		},
		selfReport: lineStarting("raw floor: "),
	}
}

// prepareTools gives every tool of a suite its folders (under suiteDir
// in the work folder): objects, and a fresh HOME, so kubectl's and
// cli-utils' discovery cache (~/.kube/cache) starts empty, as on a new
// machine, and the user's own is left alone.
func (b *bench) prepareTools(suiteDir string, tools []*tool) error {
	for _, t := range tools {
		base := filepath.Join(b.work, suiteDir, strings.ReplaceAll(t.name, " ", "-"))
		t.objects = filepath.Join(base, "objects")
		home := filepath.Join(base, "home")
		if err := os.MkdirAll(home, 0o755); err != nil {
			return err
		}
		t.env = append(t.env, "HOME="+home)
	}
	return nil
}

func always(int) (bool, string) { return true, "" }

// lineStarting is a selfReport: the first output line with this prefix.
func lineStarting(prefix string) func(string) string {
	return func(stdout string) string {
		for _, l := range strings.Split(stdout, "\n") {
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(l)
			}
		}
		return ""
	}
}

// warmUp applies, as admin and untimed, a copy of the object set with
// server-side apply and a server-side dry run, so that no tool pays for the
// API server's first use of these kinds and code paths (the first tool to
// run would otherwise). Its requests are the admin's, not counted.
func (b *bench) warmUp(ctx context.Context) error {
	const ns = "bench-warmup"
	fmt.Fprintln(b.out, "bench: warming up the API server (as admin, untimed, not counted)")
	if _, err := b.cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("warm-up: creating namespace %s: %w", ns, err)
	}
	dir := filepath.Join(b.work, "warmup")
	if err := defaultSet().write(dir, ns); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	for _, extra := range [][]string{nil, {"--dry-run=server"}} {
		if err := b.adminKubectl(ctx, append([]string{"apply", "--server-side", "--field-manager", "tether-bench-warmup", "-f", dir}, extra...)...); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	return nil
}

// adminKubectl runs bin/kubectl as the cluster's admin, with a HOME of its
// own so that the user's discovery cache is left alone.
func (b *bench) adminKubectl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(b.binDir, "kubectl"), append([]string{"--kubeconfig", b.cluster.Kubeconfig}, args...)...)
	cmd.Env = append(childEnv(), "HOME="+filepath.Join(b.work, "admin-home"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, lastLines(string(out), 5))
	}
	return nil
}

// adminServiceAccount mints a ServiceAccount in identityNamespace bound to
// cluster-admin.
func (b *bench) adminServiceAccount(ctx context.Context, name string) (*cluster.ServiceAccount, error) {
	sa, err := b.cluster.ServiceAccount(ctx, identityNamespace, name, tokenTTL)
	if err != nil {
		return nil, err
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: identityNamespace, Name: name}},
	}
	if _, err := b.cluster.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("binding %s/%s to cluster-admin: %w", identityNamespace, name, err)
	}
	return sa, nil
}

func saUser(sa *cluster.ServiceAccount) string {
	return "system:serviceaccount:" + saName(sa)
}

func saName(sa *cluster.ServiceAccount) string { return sa.Namespace + ":" + sa.Name }

// rbacSubject finds, in the RBAC manifest, the ServiceAccount its
// ClusterRoleBinding binds and the ClusterRole it binds it to.
func rbacSubject(path string) (rbacv1.Subject, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return rbacv1.Subject{}, "", fmt.Errorf("reading tether's RBAC: %w", err)
	}
	defer f.Close()
	type doc struct {
		Kind    string `yaml:"kind"`
		RoleRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"roleRef"`
		Subjects []struct {
			Kind      string `yaml:"kind"`
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"subjects"`
	}
	dec := yaml.NewDecoder(f)
	for {
		var d doc
		if err := dec.Decode(&d); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return rbacv1.Subject{}, "", fmt.Errorf("parsing %s: %w", path, err)
		}
		if d.Kind != "ClusterRoleBinding" || d.RoleRef.Kind != "ClusterRole" {
			continue
		}
		for _, s := range d.Subjects {
			if s.Kind == rbacv1.ServiceAccountKind {
				return rbacv1.Subject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace}, d.RoleRef.Name, nil
			}
		}
	}
	return rbacv1.Subject{}, "", fmt.Errorf("%s binds no ServiceAccount to a ClusterRole", path)
}

// runStep prepares the folder, lets the cluster settle, then runs the tool
// once and measures it: wall time from start to exit, the child's peak
// RSS, and from the audit log the requests its user sent meanwhile. Then it
// checks that the cluster holds what the step asked for.
func (b *bench) runStep(ctx context.Context, set objectSet, t *tool, i int, s step) stepResult {
	var r stepResult
	fmt.Fprintf(b.out, "bench: %s: %s\n", t.name, s.name)
	if s.prepare != nil {
		if r.err = s.prepare(t.objects, t.namespace); r.err != nil {
			return r
		}
	}
	b.settle(ctx)
	offset, err := b.audit.offset()
	if err != nil {
		r.err = err
		return r
	}
	argv := t.command(t.objects)
	logPath := filepath.Join(filepath.Dir(t.objects), fmt.Sprintf("step%d.log", i+1))
	logFile, err := os.Create(logPath)
	if err != nil {
		r.err = err
		return r
	}
	defer logFile.Close()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(childEnv(), t.env...)
	cmd.Stdout = io.MultiWriter(logFile, &stdout)
	cmd.Stderr = io.MultiWriter(logFile, &stderr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	start := time.Now()
	runErr := cmd.Run()
	end := time.Now()
	r.ran = true
	r.wall = end.Sub(start)
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.rssKiB = ru.Maxrss // KiB on Linux
		}
	}
	if t.selfReport != nil {
		r.self = t.selfReport(stdout.String())
	}
	if runErr != nil {
		r.err = fmt.Errorf("%s exited: %w: %s (log: %s)", t.name, runErr, lastLines(stdout.String()+stderr.String(), 5), logPath)
	}

	select {
	case <-ctx.Done():
	case <-time.After(auditGrace):
	}
	counts, err := b.audit.count(offset, t.user, start, end)
	if err != nil {
		r.err = errors.Join(r.err, err)
		return r
	}
	r.counts = counts
	if counts.Requests == 0 && r.err == nil {
		r.err = fmt.Errorf("the audit log shows no requests from %s", t.user)
	}
	if r.err == nil {
		changed := s.changed && (i == stepChange || t.results[stepChange].ran)
		r.err = b.verify(ctx, set, t.namespace, s, changed)
	}
	fmt.Fprintf(b.out, "bench: %s: %s in %s, %d requests, %d writes\n", t.name, s.name, formatDuration(r.wall), counts.Requests, counts.Writes)
	return r
}

// childEnv is this process's environment without what each tool gets its
// own value of.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "KUBECONFIG", "HOME", "KUBECTL_APPLYSET", "KUBECACHEDIR":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// settle waits (untimed) until the controllers have caught up with every
// bench Deployment, then a little longer for the rest of their work.
func (b *bench) settle(ctx context.Context) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		list, err := b.cluster.Client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: partOfLabel + "=" + partOfValue})
		if err == nil {
			done := true
			for _, d := range list.Items {
				if d.Status.ObservedGeneration < d.Generation {
					done = false
					break
				}
			}
			if done {
				break
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	select {
	case <-ctx.Done():
	case <-time.After(settlePause):
	}
}

// verify checks, as admin, that the tool left the namespace as the step
// asked: every Deployment and Service of the set, the right number of
// ConfigMaps, and config-000's data (changed if the tool changed it).
func (b *bench) verify(ctx context.Context, set objectSet, ns string, s step, changed bool) error {
	sel := metav1.ListOptions{LabelSelector: partOfLabel + "=" + partOfValue}
	cs := b.cluster.Client
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("checking the result: %w", err)
	}
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("checking the result: %w", err)
	}
	svcs, err := cs.CoreV1().Services(ns).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("checking the result: %w", err)
	}
	cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, sel)
	if err != nil {
		return fmt.Errorf("checking the result: %w", err)
	}
	if len(deps.Items) != set.deployments || len(svcs.Items) != set.services || len(cms.Items) != s.wantConfigMaps {
		return fmt.Errorf("after %q the cluster holds %d Deployments, %d Services, %d ConfigMaps in %s; want %d, %d, %d",
			s.name, len(deps.Items), len(svcs.Items), len(cms.Items), ns, set.deployments, set.services, s.wantConfigMaps)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, changedConfigMap, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("checking the result: %w", err)
	}
	if got := strings.HasSuffix(cm.Data["greeting"], changedSuffix); got != changed {
		return fmt.Errorf("after %q ConfigMap %s/%s has greeting %q", s.name, ns, changedConfigMap, cm.Data["greeting"])
	}
	return nil
}

// tetherSelfReport is what tether's summary line says it did; the line is
// "sync NAME at REV: COUNTS; N writes, M requests, DURATION (PHASES)".
func tetherSelfReport(stdout string) string {
	summary := regexp.MustCompile(`(?m)^sync \S+ at \S+: (.*); (\d+) writes, (\d+) requests, (\S+)(?: \((.*)\))?$`)
	m := summary.FindStringSubmatch(stdout)
	if m == nil {
		return ""
	}
	out := fmt.Sprintf("%s; %s writes, %s requests by its own count, %s", m[1], m[2], m[3], m[4])
	if m[5] != "" {
		out += " (" + m[5] + ")"
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
