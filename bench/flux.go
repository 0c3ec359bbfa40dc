package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/normalize"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// fluxCommand is the subcommand that runs Flux's apply engine
// (github.com/fluxcd/pkg/ssa) once, the way kustomize-controller drives it
// for one Kustomization, as a process of its own so the bench times and
// measures it like the other tools.
const fluxCommand = "flux-apply"

// kustomize-controller's defaults: --concurrent-ssa 4, --kube-api-qps 50,
// --kube-api-burst 300, its field manager and its API group (which names
// the owner labels).
const (
	fluxConcurrentSSA = 4
	fluxQPS           = 50
	fluxBurst         = 300
	fluxFieldManager  = "kustomize-controller"
	fluxGroup         = "kustomize.toolkit.fluxcd.io"
)

// fluxOptions describes how the bench drives Flux; it prints it.
func fluxOptions() string {
	return fmt.Sprintf("ssa.ResourceManager as kustomize-controller drives it: %d concurrent server-side apply operations, "+
		"client QPS %d, burst %d, field manager %s, owner labels %s/name and /namespace, normalize.UnstructuredList, ApplyAllStaged "+
		"with kustomize-controller's apply options (selectors, cleanup of kubectl's field managers), then DeleteAll (background "+
		"propagation, owner labels as inclusions) of what the previous run applied and this one lacks; that list, kept by "+
		"kustomize-controller in the Kustomization's status, is kept in a file", fluxConcurrentSSA, fluxQPS, fluxBurst, fluxFieldManager, fluxGroup)
}

// runFlux is `bench flux-apply --inventory FILE [--name N --namespace NS]
// DIR`: it reads DIR's objects and reconciles them with Flux's apply
// engine. NAME and NS are the Kustomization's, for the owner labels; the
// kubeconfig comes from $KUBECONFIG.
func runFlux(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(fluxCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	inventory := fs.String("inventory", "", "file recording what the previous run applied (required)")
	name := fs.String("name", "bench", "the Kustomization's name")
	namespace := fs.String("namespace", "flux-system", "the Kustomization's namespace")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *inventory == "" {
		return errors.New("usage: flux-apply --inventory FILE [--name NAME --namespace NS] DIR")
	}
	// controller-runtime complains on stderr, with a stack, when nothing
	// takes its logs; kustomize-controller gives it its logger.
	ctrllog.SetLogger(logr.Discard())

	objs, old, cfg, err := loadRun(fs.Arg(0), *inventory, getenv)
	if err != nil {
		return fmt.Errorf("flux: %w", err)
	}
	cfg.QPS, cfg.Burst = fluxQPS, fluxBurst
	kube, mapper, err := fluxClient(cfg)
	if err != nil {
		return fmt.Errorf("flux: %w", err)
	}
	poller := polling.NewStatusPoller(kube, mapper, polling.Options{})
	manager := ssa.NewResourceManager(kube, poller, ssa.Owner{Field: fluxFieldManager, Group: fluxGroup})
	manager.SetOwnerLabels(objs, *name, *namespace)
	manager.SetConcurrency(fluxConcurrentSSA)

	if err := normalize.UnstructuredList(objs); err != nil {
		return fmt.Errorf("flux: %w", err)
	}
	applied, err := manager.ApplyAllStaged(ctx, objs, fluxApplyOptions())
	if err != nil {
		return fmt.Errorf("flux: apply: %w", err)
	}
	stubs := stale(old, objs)
	deleted := ssa.NewChangeSet()
	if len(stubs) > 0 {
		deleted, err = manager.DeleteAll(ctx, stubs, ssa.DeleteOptions{
			PropagationPolicy: metav1.DeletePropagationBackground,
			Inclusions:        manager.GetOwnerLabels(*name, *namespace),
			Exclusions: map[string]string{
				fluxGroup + "/prune":     "disabled",
				fluxGroup + "/reconcile": "disabled",
				fluxGroup + "/ssa":       "Ignore",
			},
		})
		if err != nil {
			return fmt.Errorf("flux: prune: %w", err)
		}
	}
	if err := writeRecord(*inventory, objs); err != nil {
		return fmt.Errorf("flux: %w", err)
	}
	fmt.Fprintf(stdout, "flux ssa %s: %s; prune: %s\n", fluxVersion(), actionCounts(applied), actionCounts(deleted))
	return nil
}

// fluxClient is a controller-runtime client without a cache (it reads
// unstructured objects from the API server, as kustomize-controller's
// does) over a lazily discovering REST mapper.
func fluxClient(cfg *rest.Config) (client.Client, meta.RESTMapper, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(cfg, client.Options{HTTPClient: httpClient, Mapper: mapper})
	if err != nil {
		return nil, nil, err
	}
	return c, mapper, nil
}

// fluxApplyOptions are kustomize-controller's for a Kustomization with no
// force, no ignore rules and no extra disallowed field managers.
func fluxApplyOptions() ssa.ApplyOptions {
	opts := ssa.DefaultApplyOptions()
	opts.ExclusionSelector = map[string]string{
		fluxGroup + "/reconcile": "disabled",
		fluxGroup + "/ssa":       "Ignore",
	}
	opts.IfNotPresentSelector = map[string]string{fluxGroup + "/ssa": "IfNotPresent"}
	opts.ForceSelector = map[string]string{fluxGroup + "/force": "enabled"}
	opts.Cleanup = ssa.ApplyCleanupOptions{
		Annotations: []string{corev1.LastAppliedConfigAnnotation, fluxGroup + "/checksum", "fluxcd.io/sync-checksum"},
		Labels:      []string{"fluxcd.io/sync-gc-mark"},
		FieldManagers: []ssa.FieldManager{
			{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationApply},
			{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationUpdate},
			{Name: "before-first-apply", OperationType: metav1.ManagedFieldsOperationUpdate},
			{Name: fluxFieldManager, OperationType: metav1.ManagedFieldsOperationUpdate},
		},
		Exclusions: map[string]string{fluxGroup + "/ssa": "Merge"},
	}
	return opts
}

// actionCounts is "1001 created" or "1000 unchanged, 1 configured".
func actionCounts(cs *ssa.ChangeSet) string {
	counts := map[string]int{}
	for _, e := range cs.Entries {
		counts[e.Action.String()]++
	}
	if len(counts) == 0 {
		return "nothing"
	}
	parts := make([]string, 0, len(counts))
	for a, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, a))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// fluxVersion is the version of github.com/fluxcd/pkg/ssa built into this
// binary.
func fluxVersion() string { return moduleVersion("github.com/fluxcd/pkg/ssa") }

// moduleVersion is the version of module path built into this binary.
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return d.Version
			}
		}
	}
	return "(unknown version)"
}
