// Command bench compares tether with the tools users would otherwise pick,
// in one run on one local control plane (package e2e/cluster):
//
//	bench [--bin-dir bin] [--cliutils cold|full|off] [--scale] [--keep]
//
// It is a Go module of its own (bench/go.mod), so that Flux's apply engine
// and the kubectl libraries cli-utils needs, with their own k8s.io
// versions, stay out of tether's module; `make bench` builds it into bin/.
//
// Each tool applies its own copy of 1,001 objects (a Namespace, 100
// Deployments with replicas 0, 100 Services, 800 ConfigMaps) as its own
// ServiceAccount, never as system:masters: tether (bin/tether sync --once)
// bound to the ClusterRole of manifests/rbac.yaml; Flux's apply engine
// (github.com/fluxcd/pkg/ssa, this binary's flux-apply subcommand, driven
// like kustomize-controller), `kubectl apply --server-side --prune
// --applyset`, the raw floor (plain parallel POSTs and DELETEs, this
// binary's raw-floor subcommand) and the stock cli-utils Applier (its
// cliutils-apply subcommand), all bound to cluster-admin. Four steps per
// tool: cold apply, unchanged re-apply, one ConfigMap changed, 500
// ConfigMaps removed and pruned. Before the first step an admin applies a
// warm-up copy of the objects (untimed), and before each step the
// controllers catch up; then the step is timed wall-clock around the tool's
// process, and its requests and writes are counted from the API server's
// audit log. It prints a table, the peak RSS, the ratios and PASS or MISS
// against the targets; it exits non-zero only when something failed, never
// for a missed target.
//
// The cli-utils Applier takes minutes per step at client-go's default rate
// limits, so by default only its cold apply runs; BENCH_CLIUTILS=full (or
// --cliutils full) runs all four steps.
//
// --scale (BENCH_SCALE=1) adds the long steps: tether's four steps on 5,000
// objects in one sync (beside the raw floor) and the agent's memory after
// syncing them; one agent running 100 syncs of 50 objects from one git
// repository (a push touching every folder, then a webhook: time until all
// 100 are applied; requests per minute while idle; memory); and `tether
// build` of a 4,000-document kustomization beside the kustomize CLI.
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

// run is the whole program: the benchmark, or one of the subcommands the
// benchmark runs as child processes.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case cliUtilsCommand:
			return runCLIUtils(ctx, args[1:], stdout, stderr)
		case fluxCommand:
			return runFlux(ctx, args[1:], getenv, stdout, stderr)
		case floorCommand:
			return runFloor(ctx, args[1:], getenv, stdout, stderr)
		case imagesCommand: // images.go
			return runImagesScan(ctx, args[1:], stdout)
		}
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin-dir", orDefault(getenv("TETHER_BIN_DIR"), "bin"), "folder with tether, kubectl, kustomize and the control plane binaries")
	rbac := fs.String("rbac", "manifests/rbac.yaml", "the ClusterRole and ClusterRoleBinding tether runs with")
	cliMode := fs.String("cliutils", orDefault(getenv("BENCH_CLIUTILS"), "cold"), "cli-utils steps: cold (cold apply only), full (all four steps) or off; default $BENCH_CLIUTILS")
	scale := fs.Bool("scale", getenv("BENCH_SCALE") == "1", "also the long steps: 5,000 objects, 100 syncs, a 4,000-document build; default $BENCH_SCALE=1")
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
		return fmt.Errorf("locating this binary (to run its subcommands): %w", err)
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
	if err := b.setup(ctx, *rbac); err != nil {
		return err
	}
	defaults, err := b.defaultSuite(ctx)
	if err != nil {
		return err
	}
	if err := b.warmUp(ctx); err != nil {
		return err
	}
	failed := b.runSuite(ctx, defaults)
	if ctx.Err() == nil {
		failed = b.imagesStep(ctx) || failed // images.go
	}
	var live *agentLive
	if ctx.Err() == nil {
		a := b.agentLive(ctx) // agentlive.go
		live = &a
		failed = failed || a.err != nil || a.drift.err != nil
	}
	var sc *scaleResults
	if *scale && ctx.Err() == nil {
		sc = b.runScale(ctx)
		failed = failed || sc.failed()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Fprintln(stdout)
	b.report(stdout, defaults, live, sc)
	if *keep {
		fmt.Fprintf(stdout, "\nlogs: %s (tool output: <tool>/step<N>.log; audit log: cluster/audit.log)\n", work)
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
