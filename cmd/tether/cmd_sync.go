package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/sync"
)

// syncFlags are the options of one sync shared by diff and sync.
type syncFlags struct {
	opts         sync.Options
	deleteBudget string
}

func (f *syncFlags) register(fs *pflag.FlagSet, forSync bool) {
	fs.StringVar(&f.opts.Name, "name", "", "name of the sync (required): names its inventory and labels its objects")
	fs.StringVarP(&f.opts.Namespace, "namespace", "n", "", "namespace for namespaced objects that have none (default: the kubeconfig context's)")
	fs.StringVar(&f.opts.InventoryNamespace, "inventory-namespace", "tether-system", "namespace of the sync's inventory ConfigMap")
	fs.BoolVar(&f.opts.Prune, "prune", false, "delete objects the sync applied before that are gone from the revision")
	fs.BoolVar(&f.opts.AllowEmpty, "allow-empty", false, "let a revision that renders nothing prune everything the sync owns")
	fs.StringVar(&f.deleteBudget, "delete-budget", "50", "most deletes per sync: a count, a percentage of the owned objects (10%), or unlimited")
	fs.StringSliceVar(&f.opts.PruneProtected, "prune-protected", nil, "protected kinds that may be pruned: Namespace, CustomResourceDefinition, PersistentVolumeClaim")
	fs.IntVar(&f.opts.Concurrency, "concurrency", 16, "parallel API requests")
	if forSync {
		fs.BoolVar(&f.opts.Wait, "wait", false, "wait until every object is Healthy (or --timeout)")
		fs.DurationVar(&f.opts.Timeout, "timeout", 5*time.Minute, "time limit for --wait and for new CRDs to become established")
	}
}

func (f *syncFlags) options(a *app) (sync.Options, error) {
	opts := f.opts
	if opts.Name == "" {
		return opts, usageError("--name is required")
	}
	if opts.Concurrency < 1 {
		return opts, usageError("--concurrency: %d is not a positive number", opts.Concurrency)
	}
	if opts.Timeout < 0 {
		return opts, usageError("--timeout: %v is negative", opts.Timeout)
	}
	budget, err := sync.ParseBudget(f.deleteBudget)
	if err != nil {
		return opts, usageError("--delete-budget: %v", err)
	}
	opts.DeleteBudget = budget
	if opts.Namespace == "" {
		opts.Namespace = a.kube.Namespace(a.getenv)
	}
	return opts, nil
}

// syncer connects to the cluster and renders in a confined child process.
func (a *app) syncer() (*sync.Syncer, error) {
	clients, err := a.clients()
	if err != nil {
		return nil, err
	}
	renderer, err := a.renderer()
	if err != nil {
		return nil, err
	}
	return sync.New(clients, a.log).WithRenderer(renderer), nil
}

func (a *app) syncCommand() *cobra.Command {
	var src sourceFlags
	var sf syncFlags
	var once bool
	cmd := &cobra.Command{
		Use:   "sync --name NAME (DIR | --repo URL [--ref REF] [--path PATH]) --once",
		Short: "Run one reconcile: build, plan, apply, prune, wait",
		Long: `Run one full reconcile of a sync and print a summary:

  build    render the revision (sandboxed kustomize)
  plan     server-side dry run of every object; unchanged objects are not sent
  apply    server-side apply: Namespaces and CRDs first, then the rest in parallel
  inventory record what the sync owns (ConfigMap tether-inventory-NAME)
  prune    with --prune, delete what the sync applied before and is gone now,
           within the guards (empty revision, delete budget, protected kinds)
  health   kstatus of every object; with --wait, until all are Healthy

Exits non-zero when any phase fails. The agent ('tether run') runs the same
reconcile in a loop.`,
		Example: `  tether sync --once --name webapp-dev examples/webapp/overlays/dev --prune --wait
  tether sync --once --name webapp --repo https://git.example.com/app.git --path deploy --prune`,
		Args: cobra.MaximumNArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			if !once {
				return usageError("only --once is supported here; run the agent with 'tether run'")
			}
			opts, err := sf.options(a)
			if err != nil {
				return err
			}
			in, cleanup, err := src.resolve(cmd.Context(), a, args)
			if err != nil {
				return err
			}
			defer cleanup()
			syncer, err := a.syncer()
			if err != nil {
				return err
			}
			res, err := syncer.Reconcile(cmd.Context(), opts, in)
			printSummary(a.stdout, res)
			return err
		}),
	}
	cmd.Flags().BoolVar(&once, "once", false, "run one reconcile and exit (required)")
	src.register(cmd.Flags())
	sf.register(cmd.Flags(), true)
	return cmd
}

func (a *app) diffCommand() *cobra.Command {
	var src sourceFlags
	var sf syncFlags
	var showUnchanged, verbose bool
	cmd := &cobra.Command{
		Use:   "diff --name NAME (DIR | --repo URL [--ref REF] [--path PATH])",
		Short: "Show what a sync would change, using a server-side dry run",
		Long: `Plan a sync without writing anything: every object is sent to the API server
as a server-side apply dry run and compared with the live object. Prints per
object create | update | unchanged | recreate | conflict | failed, what prune
would do, and a unified diff of each changed object (server bookkeeping and
status left out).

Exit code: 0 no changes, 1 changes, 2 error (like 'kubectl diff').`,
		Args: cobra.MaximumNArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			changed, err := a.diff(cmd.Context(), &src, &sf, args, showUnchanged || verbose, verbose)
			if err != nil {
				return asCode2(err)
			}
			if changed {
				return &exitError{code: exitFailure}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&showUnchanged, "show-unchanged", false, "also list unchanged objects")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list unchanged objects, and say how each was decided: proven locally from the live object, or by a dry run (and why)")
	src.register(cmd.Flags())
	sf.register(cmd.Flags(), false)
	return cmd
}

// diff plans a sync without writing and prints the plan; it reports
// whether anything would change.
func (a *app) diff(ctx context.Context, src *sourceFlags, sf *syncFlags, args []string, showUnchanged, verbose bool) (bool, error) {
	opts, err := sf.options(a)
	if err != nil {
		return false, err
	}
	opts.DryRun = true
	in, cleanup, err := src.resolve(ctx, a, args)
	if err != nil {
		return false, err
	}
	defer cleanup()
	syncer, err := a.syncer()
	if err != nil {
		return false, err
	}
	res, err := syncer.Reconcile(ctx, opts, in)
	if err != nil {
		if res != nil && res.Phase == "plan" {
			// Show what was planned: the failing objects are among the
			// lines.
			printPlan(a.stdout, res, showUnchanged, verbose)
		}
		return false, err
	}
	printPlan(a.stdout, res, showUnchanged, verbose)
	return res.Changed(), nil
}

// printPlan prints one line per object and the diffs of changed ones.
func printPlan(w io.Writer, res *sync.Result, showUnchanged, verbose bool) {
	for _, c := range res.Changes {
		if c.Action == sync.ActionUnchanged && !showUnchanged {
			continue
		}
		line := fmt.Sprintf("%-10s %s", c.Action, c.Ref())
		switch {
		case c.Deferred:
			line += "  (not validated yet: its Namespace or CRD is created by this sync)"
		case len(c.Conflicts) > 0:
			line += "  " + strings.Join(c.Conflicts, ", ")
		case c.Err != nil:
			line += "  " + c.Err.Error()
		case c.TakeOver:
			line += "  (taking over from kubectl apply: its field managers and last-applied annotation are removed)"
		}
		if verbose && c.Decision != "" {
			line += "  (" + c.Decision
			if c.DryRunReason != "" {
				line += ": " + c.DryRunReason
			}
			line += ")"
		}
		fmt.Fprintln(w, line)
		if c.Action == sync.ActionUpdate || c.Action == sync.ActionRecreate {
			if d, err := c.Diff(); err == nil && d != "" {
				fmt.Fprint(w, indent(d))
			}
		}
	}
	printPruned(w, res)
	fmt.Fprintf(w, "%s: %s\n", res.Revision, countLine(res))
}

// printPruned prints one line per object gone from the revision.
func printPruned(w io.Writer, res *sync.Result) {
	for _, p := range res.Pruned {
		line := fmt.Sprintf("%-10s %s", p.Action, contract.ObjectRef(p.ID))
		if p.Reason != "" {
			line += "  (" + p.Reason + ")"
		}
		fmt.Fprintln(w, line)
	}
}

// printSummary prints what a sync did.
func printSummary(w io.Writer, res *sync.Result) {
	if res == nil {
		return
	}
	for _, c := range res.Changes {
		// A change without an action was never planned (a phase before
		// the plan failed): nothing to say about it.
		if c.Action != sync.ActionUnchanged && c.Action != "" {
			line := fmt.Sprintf("%-10s %s", c.Action, c.Ref())
			if c.Err != nil {
				line += "  " + c.Err.Error()
			}
			fmt.Fprintln(w, line)
		}
	}
	printPruned(w, res)
	fmt.Fprintf(w, "sync %s at %s: %s; %d writes, %d requests, %s (%s)\n",
		res.Sync, res.Revision, countLine(res), res.Writes, res.Requests, res.Duration.Round(time.Millisecond), phaseLine(res))
	if res.Health != nil {
		unhealthy := make([]string, 0)
		for id, h := range res.Health {
			if h.Status != health.Healthy {
				unhealthy = append(unhealthy, fmt.Sprintf("  %s: %s: %s", contract.ObjectRef(id), h.Status, h.Message))
			}
		}
		sort.Strings(unhealthy)
		fmt.Fprintf(w, "health: %s (%d objects)\n", res.Status, len(res.Health))
		for _, u := range unhealthy {
			fmt.Fprintln(w, u)
		}
	}
	if res.Phase != "" {
		fmt.Fprintf(w, "failed in phase %s\n", res.Phase)
	}
}

// phaseLine lists the phases' durations in order: "build 12ms, plan 0.9s, ...".
func phaseLine(res *sync.Result) string {
	var parts []string
	for _, p := range []string{"build", "plan", "apply", "prune", "health"} {
		if d, ok := res.Phases[p]; ok {
			parts = append(parts, p+" "+d.Round(time.Millisecond).String())
		}
	}
	return strings.Join(parts, ", ")
}

func countLine(res *sync.Result) string {
	counts := res.Counts()
	order := []sync.Action{sync.ActionCreate, sync.ActionUpdate, sync.ActionUnchanged, sync.ActionRecreate, sync.ActionConflict, sync.ActionFailed, sync.ActionPrune, sync.ActionOrphan, sync.ActionKeep}
	parts := make([]string, 0, len(order))
	for _, a := range order {
		if n := counts[a]; n > 0 || a == sync.ActionCreate || a == sync.ActionUpdate || a == sync.ActionUnchanged {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	return strings.Join(parts, ", ")
}

func indent(s string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString("    " + l)
		}
	}
	return b.String()
}
