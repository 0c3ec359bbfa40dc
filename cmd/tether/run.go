package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"

	"github.com/tether-gitops/tether/kube"
	"github.com/tether-gitops/tether/render"
	tsync "github.com/tether-gitops/tether/sync"
)

// app is what every command shares: the process environment, the output
// streams, the logger, the kubeconfig flags and the render limits.
type app struct {
	getenv    func(string) string
	stdout    io.Writer
	stderr    io.Writer
	log       *slog.Logger
	logFormat string
	logLevel  string
	kube      kube.Flags
	renderMem string
	renderCPU time.Duration
	// renderBudget is the memory all renders may use together.
	renderBudget string
}

// renderChildCommand is the hidden first argument that makes the binary
// the confined render child (see render.Isolated).
const renderChildCommand = "__render"

// renderer renders in confined child processes of this binary (memory,
// CPU, no network, no programs), as many at once as the memory budget
// allows for the memory limit of each, fairly between syncs, and never
// again for a revision that failed by a limit (render.Scheduler).
// clients connects to the cluster the kubeconfig flags name.
func (a *app) clients() (*kube.Clients, error) {
	cfg, err := a.kube.RESTConfig(a.getenv)
	if err != nil {
		return nil, err
	}
	return kube.NewClients(cfg)
}

func (a *app) renderer() (tsync.Renderer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the tether binary for rendering: %w", err)
	}
	mem, err := resource.ParseQuantity(a.renderMem)
	if err != nil || mem.Value() < 64<<20 {
		return nil, usageError("--render-memory-limit: %q is not a size of at least 64Mi", a.renderMem)
	}
	budget, err := resource.ParseQuantity(a.renderBudget)
	if err != nil || budget.Sign() <= 0 {
		return nil, usageError("--render-memory-budget: %q is not a positive size", a.renderBudget)
	}
	parallel, err := render.Parallelism(budget.Value(), mem.Value())
	if err != nil {
		return nil, usageError("--render-memory-budget %s, --render-memory-limit %s: %v", a.renderBudget, a.renderMem, err)
	}
	if a.renderCPU < time.Second {
		return nil, usageError("--render-cpu-limit: %v is less than 1s", a.renderCPU)
	}
	iso := render.Isolated{Command: []string{exe, renderChildCommand}, MemoryLimit: mem.Value(), CPULimit: a.renderCPU}
	if a.log != nil {
		a.log.Debug("rendering in child processes", "parallel", parallel, "memoryLimit", a.renderMem, "cpuLimit", a.renderCPU)
	}
	limits := fmt.Sprintf("memory %d bytes, CPU %v", iso.MemoryLimit, iso.CPULimit)
	s := render.NewScheduler(iso.Build, parallel, limits)
	// A render whose reconcile timed out goes on to its CPU limit (twice
	// the hard one, against a loaded machine), so a failure by a limit is
	// remembered.
	s.Overrun = 2 * render.HardCPULimit(a.renderCPU)
	return s.Build, nil
}

// run is the whole binary: main only adds the process environment and turns
// the error into an exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	a := &app{getenv: getenv, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	var re *runError
	if errors.As(err, &re) {
		return re.err
	}
	// Anything cobra itself returned (unknown command or flag, wrong number
	// of arguments) is a usage error.
	return &exitError{code: exitUsage, err: fmt.Errorf("%w (see 'tether --help')", err)}
}

// runError marks an error returned by a command's own code, as opposed to
// one cobra returned while parsing the command line.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// action adapts a command body to cobra, marking its errors as runtime errors.
func action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := fn(cmd, args); err != nil {
			var ee *exitError
			if errors.As(err, &ee) {
				return err
			}
			return &runError{err: err}
		}
		return nil
	}
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "tether",
		Short: "GitOps sync agent for Kubernetes",
		Long: `tether follows a git repository, renders the kustomize output at a path,
applies it to the cluster with server-side apply, prunes what it applied before
and is gone now, reports the health of every object and exports metrics.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(a.logFormat, a.logLevel, a.stderr, a.getenv)
			if err != nil {
				return usageError("%v", err)
			}
			a.log = log
			klog.SetSlogLogger(log.With("source", "client-go"))
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	root.PersistentFlags().StringVar(&a.logFormat, "log-format", "auto", "log format: text, json, or auto (json in a cluster, text otherwise)")
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&a.renderMem, "render-memory-limit", "768Mi", "memory limit of the process that renders a revision")
	root.PersistentFlags().DurationVar(&a.renderCPU, "render-cpu-limit", 2*time.Minute, "CPU time limit of the process that renders a revision (at least 1s)")
	root.PersistentFlags().StringVar(&a.renderBudget, "render-memory-budget", "1536Mi", "memory all renders may use together: renders run in parallel as many times as the memory limit fits in it")
	a.kube.Register(root.PersistentFlags())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError("%v", err)
	})
	root.AddCommand(
		a.versionCommand(),
		a.buildCommand(),
		a.diffCommand(),
		a.syncCommand(),
		a.runCommand(),
		a.statusCommand(),
		a.whyCommand(),
		a.imagesCommand(),
	)
	return root
}
