package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// floorCommand is the subcommand that measures the raw floor: what the API
// server needs to store the same objects with nothing else asked, at the
// same concurrency as tether.
const floorCommand = "raw-floor"

// tetherConcurrency is tether's default --concurrency, which the floor
// uses so that the two compare at equal parallelism.
const tetherConcurrency = 16

// floorResource maps the kinds the bench generates to their resources;
// the floor sends no discovery request, so it knows them by heart.
func floorResource(u *unstructured.Unstructured) (schema.GroupVersionResource, bool) {
	gvk := u.GroupVersionKind()
	switch gvk {
	case schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}:
		return schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}, true
	case schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}:
		return schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, true
	case schema.GroupVersionKind{Version: "v1", Kind: "Service"}:
		return schema.GroupVersionResource{Version: "v1", Resource: "services"}, true
	case schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}:
		return schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, true
	}
	return schema.GroupVersionResource{}, false
}

// runFloor is `bench raw-floor --record FILE [--concurrency N] DIR`: it
// creates (plain POST, no dry run, no GET) every object of DIR the record
// lacks, Namespaces first, and deletes (plain DELETE) every object the
// record has and DIR lacks, each with N requests in flight and no
// client-side rate limit; then it records DIR's objects. The kubeconfig
// comes from $KUBECONFIG.
func runFloor(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(floorCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	record := fs.String("record", "", "file recording what the previous run created (required)")
	concurrency := fs.Int("concurrency", tetherConcurrency, "requests in flight")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *record == "" || *concurrency < 1 {
		return errors.New("usage: raw-floor --record FILE [--concurrency N] DIR")
	}
	objs, old, cfg, err := loadRun(fs.Arg(0), *record, getenv)
	if err != nil {
		return fmt.Errorf("raw floor: %w", err)
	}
	cfg.QPS = -1 // no client-side rate limiter
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("raw floor: %w", err)
	}

	known := make(map[objectRef]bool, len(old))
	for _, r := range old {
		known[r] = true
	}
	var namespaces, rest []*unstructured.Unstructured
	for _, o := range objs {
		if known[refOf(o)] {
			continue
		}
		if o.GetKind() == "Namespace" && o.GetAPIVersion() == "v1" {
			namespaces = append(namespaces, o)
		} else {
			rest = append(rest, o)
		}
	}
	resource := func(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
		gvr, ok := floorResource(o)
		if !ok {
			return nil, fmt.Errorf("%s: the raw floor knows no resource for this kind", refOf(o))
		}
		return client.Resource(gvr).Namespace(o.GetNamespace()), nil
	}
	create := func(ctx context.Context, o *unstructured.Unstructured) error {
		r, err := resource(o)
		if err != nil {
			return err
		}
		if _, err := r.Create(ctx, o, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating %s: %w", refOf(o), err)
		}
		return nil
	}
	for _, batch := range [][]*unstructured.Unstructured{namespaces, rest} {
		if err := inParallel(ctx, *concurrency, batch, create); err != nil {
			return fmt.Errorf("raw floor: %w", err)
		}
	}
	stubs := stale(old, objs)
	background := metav1.DeletePropagationBackground
	if err := inParallel(ctx, *concurrency, stubs, func(ctx context.Context, o *unstructured.Unstructured) error {
		r, err := resource(o)
		if err != nil {
			return err
		}
		if err := r.Delete(ctx, o.GetName(), metav1.DeleteOptions{PropagationPolicy: &background}); err != nil {
			return fmt.Errorf("deleting %s: %w", refOf(o), err)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("raw floor: %w", err)
	}
	if err := writeRecord(*record, objs); err != nil {
		return fmt.Errorf("raw floor: %w", err)
	}
	fmt.Fprintf(stdout, "raw floor: %d created, %d deleted, %d in flight\n", len(namespaces)+len(rest), len(stubs), *concurrency)
	return nil
}

// inParallel calls do for every object, n at a time, and returns the first
// error (the others are cancelled).
func inParallel(ctx context.Context, n int, objs []*unstructured.Unstructured, do func(context.Context, *unstructured.Unstructured) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for _, o := range objs {
		g.Go(func() error { return do(ctx, o) })
	}
	return g.Wait()
}
