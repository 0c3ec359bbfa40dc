// Command bench compares tether with the tools users would otherwise pick,
// in one run on one local control plane (package e2e/cluster):
//
//	go run ./bench [--bin-dir bin] [--cliutils cold|full|off] [--keep]
//
// Each tool applies its own copy of 1,001 objects (a Namespace, 100
// Deployments with replicas 0, 100 Services, 800 ConfigMaps) as its own
// ServiceAccount, never as system:masters: tether (bin/tether sync --once)
// bound to the ClusterRole of manifests/rbac.yaml; `kubectl apply
// --server-side --prune --applyset`; and the stock cli-utils Applier (this
// binary's cliutils-apply subcommand), both bound to cluster-admin. Four
// steps per tool: cold apply, unchanged re-apply, one ConfigMap changed,
// 500 ConfigMaps removed and pruned. Before the first step an admin applies
// a warm-up copy of the objects (untimed), and before each step the
// controllers catch up; then the step is timed wall-clock around the tool's
// process, and its requests and writes are counted from the API server's
// audit log. It prints a table, tether's peak RSS, the ratios and
// PASS or MISS against the targets; it exits non-zero only when something
// failed, never for a missed target.
//
// The cli-utils Applier takes minutes per step at client-go's default rate
// limits, so by default only its cold apply runs; BENCH_CLIUTILS=full (or
// --cliutils full) runs all four steps.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tether-gitops/tether/e2e/cluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run is the whole program: the benchmark, or the cli-utils subcommand the
// benchmark runs as a child process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == cliUtilsCommand {
		return runCLIUtils(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin-dir", orDefault(getenv("TETHER_BIN_DIR"), "bin"), "folder with tether, kubectl and the control plane binaries")
	rbac := fs.String("rbac", "manifests/rbac.yaml", "the ClusterRole and ClusterRoleBinding tether runs with")
	cliMode := fs.String("cliutils", orDefault(getenv("BENCH_CLIUTILS"), "cold"), "cli-utils steps: cold (cold apply only), full (all four steps) or off; default $BENCH_CLIUTILS")
	keep := fs.Bool("keep", false, "keep the work folder (objects, tool logs, audit log) and print its path")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch *cliMode {
	case "cold", "full", "off":
	default:
		return fmt.Errorf("--cliutils (or BENCH_CLIUTILS) must be cold, full or off, not %q", *cliMode)
	}
	bins, err := filepath.Abs(*binDir)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locating this binary (to run the cli-utils Applier): %w", err)
	}
	work, err := os.MkdirTemp("", "tether-bench-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(stdout, "bench: work folder %s (kept)\n", work)
	} else {
		defer os.RemoveAll(work)
	}

	fmt.Fprintln(stdout, "bench: starting the control plane (audit log on)")
	c, err := cluster.Start(ctx, cluster.Options{
		BinDir: bins,
		Dir:    filepath.Join(work, "cluster"),
		Audit:  true,
		Log:    prefixWriter{w: stdout, prefix: "bench: "},
	})
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer c.Stop()

	b := &bench{
		cluster: c,
		audit:   &auditLog{path: c.AuditLog},
		binDir:  bins,
		self:    self,
		work:    work,
		cliMode: *cliMode,
		out:     stdout,
	}
	tools, err := b.setup(ctx, *rbac)
	if err != nil {
		return err
	}
	if err := b.warmUp(ctx); err != nil {
		return err
	}
	failed := false
	for _, t := range tools {
		for i, s := range benchSteps() {
			if ok, _ := t.runs(i); !ok {
				continue
			}
			r := b.runStep(ctx, t, i, s)
			t.results[i] = r
			if r.err != nil {
				failed = true
				fmt.Fprintf(stdout, "bench: %s, step %d: FAILED: %v\n", t.name, i+1, r.err)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	fmt.Fprintln(stdout)
	b.report(stdout, tools)
	if *keep {
		fmt.Fprintf(stdout, "\nlogs: %s (tool output: <tool>-step<N>.log; audit log: cluster/audit.log)\n", work)
	}
	if failed {
		return errors.New("some steps failed (see FAILED above); the numbers of the others are shown")
	}
	return nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// prefixWriter prefixes each write (the cluster logs whole lines).
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// formatDuration is "1.92s" under a minute and "4m38.2s" above.
func formatDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	m := int(d / time.Minute)
	return fmt.Sprintf("%dm%04.1fs", m, (d - time.Duration(m)*time.Minute).Seconds())
}
