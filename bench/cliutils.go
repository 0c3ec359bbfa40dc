package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"sigs.k8s.io/cli-utils/pkg/apply"
	"sigs.k8s.io/cli-utils/pkg/apply/event"
	"sigs.k8s.io/cli-utils/pkg/common"
	"sigs.k8s.io/cli-utils/pkg/inventory"
	"sigs.k8s.io/cli-utils/pkg/manifestreader"
)

// cliUtilsCommand is the subcommand that runs the stock cli-utils Applier
// once, the way its own kapply command does, as a process of its own so the
// bench times and measures it like the other tools.
const cliUtilsCommand = "cliutils-apply"

// cliUtilsOptions describes what the stock Applier is given besides its
// defaults; the bench prints it.
const cliUtilsOptions = "apply.ApplierOptions{} (all defaults: client-side apply, prune on, " +
	"wait for Current with no timeout, inventory policy MustMatch), " +
	"inventory.ClusterClientFactory{} (ConfigMap inventory), a kubectl factory from the " +
	"ServiceAccount's kubeconfig with client-go's default rate limits (QPS 5, burst 10); " +
	"given only what it needs to run: the kubeconfig and an inventory ConfigMap " +
	"(name, namespace, inventory-id label, as `kapply init` writes)"

// runCLIUtils is `bench cliutils-apply --inventory-namespace NS
// --inventory-name NAME DIR`: it reads DIR with cli-utils' manifest reader
// and runs the Applier with its default options. The kubeconfig comes from
// $KUBECONFIG, as for kubectl.
func runCLIUtils(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(cliUtilsCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	invNamespace := fs.String("inventory-namespace", "", "namespace of the inventory ConfigMap (required)")
	invName := fs.String("inventory-name", "", "name of the inventory ConfigMap (required)")
	invID := fs.String("inventory-id", "", "inventory id (default: the name)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *invNamespace == "" || *invName == "" {
		return errors.New("usage: cliutils-apply --inventory-namespace NS --inventory-name NAME [--inventory-id ID] DIR")
	}
	if *invID == "" {
		*invID = *invName
	}
	dir := fs.Arg(0)

	// What kapply does: kubectl's factory over the kubeconfig flags.
	// kapply itself turns client-side rate limiting off when the server
	// has priority and fairness; the stock library does not, and that
	// library is what this measures.
	factory := cmdutil.NewFactory(genericclioptions.NewConfigFlags(true))
	reader, err := manifestreader.NewManifestLoader(factory).ManifestReader(nil, dir)
	if err != nil {
		return fmt.Errorf("cli-utils: %w", err)
	}
	objs, err := reader.Read()
	if err != nil {
		return fmt.Errorf("cli-utils: reading %s: %w", dir, err)
	}
	invClient, err := inventory.ClusterClientFactory{}.NewClient(factory)
	if err != nil {
		return fmt.Errorf("cli-utils: inventory client: %w", err)
	}
	applier, err := apply.NewApplierBuilder().WithFactory(factory).WithInventoryClient(invClient).Build()
	if err != nil {
		return fmt.Errorf("cli-utils: building the applier: %w", err)
	}
	inv := inventory.WrapInventoryInfoObj(inventoryConfigMap(*invNamespace, *invName, *invID))

	var applied, applyFailed, applySkipped, prunedN, pruneFailed, pruneSkipped, waitFailed int
	var errs []error
	for ev := range applier.Run(ctx, inv, objs, apply.ApplierOptions{}) {
		switch ev.Type {
		case event.ErrorType:
			errs = append(errs, ev.ErrorEvent.Err)
		case event.ValidationType:
			errs = append(errs, fmt.Errorf("validation: %w", ev.ValidationEvent.Error))
		case event.ApplyType:
			switch ev.ApplyEvent.Status {
			case event.ApplySuccessful:
				applied++
			case event.ApplyFailed:
				applyFailed++
				errs = append(errs, fmt.Errorf("applying %s: %w", ev.ApplyEvent.Identifier, ev.ApplyEvent.Error))
			case event.ApplySkipped:
				applySkipped++
				fmt.Fprintf(stderr, "skipped %s: %v\n", ev.ApplyEvent.Identifier, ev.ApplyEvent.Error)
			}
		case event.PruneType:
			switch ev.PruneEvent.Status {
			case event.PruneSuccessful:
				prunedN++
			case event.PruneFailed:
				pruneFailed++
				errs = append(errs, fmt.Errorf("pruning %s: %w", ev.PruneEvent.Identifier, ev.PruneEvent.Error))
			case event.PruneSkipped:
				pruneSkipped++
				fmt.Fprintf(stderr, "prune skipped %s: %v\n", ev.PruneEvent.Identifier, ev.PruneEvent.Error)
			}
		case event.WaitType:
			if ev.WaitEvent.Status == event.ReconcileFailed || ev.WaitEvent.Status == event.ReconcileTimeout {
				waitFailed++
			}
		}
	}
	fmt.Fprintf(stdout, "cli-utils %s: %d applied, %d apply failed, %d apply skipped, %d pruned, %d prune failed, %d prune skipped, %d not reconciled\n",
		cliUtilsVersion(), applied, applyFailed, applySkipped, prunedN, pruneFailed, pruneSkipped, waitFailed)
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Errorf("and %d more errors", len(errs)-5))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cli-utils: %w", err)
	}
	if applySkipped+pruneSkipped+waitFailed > 0 {
		return fmt.Errorf("cli-utils: %d applies and %d prunes skipped, %d objects not reconciled", applySkipped, pruneSkipped, waitFailed)
	}
	return nil
}

// inventoryConfigMap is the inventory object `kapply init` would write.
func inventoryConfigMap(namespace, name, id string) *unstructured.Unstructured {
	cm := &unstructured.Unstructured{}
	cm.SetAPIVersion("v1")
	cm.SetKind("ConfigMap")
	cm.SetNamespace(namespace)
	cm.SetName(name)
	cm.SetLabels(map[string]string{common.InventoryLabel: id})
	return cm
}

// cliUtilsVersion is the version of sigs.k8s.io/cli-utils built into this
// binary.
func cliUtilsVersion() string { return moduleVersion("sigs.k8s.io/cli-utils") }
