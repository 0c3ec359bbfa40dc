package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/inventory"
	"github.com/tether-gitops/tether/kube"
	tsync "github.com/tether-gitops/tether/sync"
)

func (a *app) whyCommand() *cobra.Command {
	var invNamespace, server string
	cmd := &cobra.Command{
		Use:   "why KIND/NAMESPACE/NAME | KIND/NAME",
		Short: "Tell which sync owns an object, from which revision and file",
		Long: `Explain an object: which sync owns it (from the inventories in the cluster, so
it works without the agent), the file it came from, the revision that last
changed it, when tether last applied it, its health, and who else wrote to it
(field managers other than tether, with the fields they own). With --server,
the agent's open drift of the object: each changed field, old and new value,
and the field manager that changed it.

KIND is a kind or resource name as kubectl takes it (Deployment, deploy,
deployments.apps, cm, ...). Exits 1 when no sync owns the object, 2 on
errors.`,
		Example: `  tether why deployment/webapp-dev/webapp
  tether why Namespace/webapp-dev`,
		Args: cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			clients, err := a.clients()
			if err != nil {
				return asCode2(err)
			}
			id, mapping, err := resolveObject(clients, args[0])
			if err != nil {
				return asCode2(err)
			}
			if err := why(cmd.Context(), a.stdout, clients, invNamespace, id, mapping); err != nil {
				return asCode2(err)
			}
			if server != "" {
				whyDrift(cmd.Context(), a.stdout, server, contract.ObjectRef(id))
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&invNamespace, "inventory-namespace", "tether-system", "namespace of the inventories")
	cmd.Flags().StringVar(&server, "server", "", "the agent's --listen address, to show the object's open drift (e.g. http://127.0.0.1:8080)")
	return cmd
}

// resolveObject reads KIND/NAMESPACE/NAME or KIND/NAME, resolving KIND
// with the cluster's discovery the way kubectl does.
func resolveObject(clients *kube.Clients, arg string) (object.ObjMetadata, *meta.RESTMapping, error) {
	parts := strings.Split(arg, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return object.ObjMetadata{}, nil, usageError("%q: want KIND/NAMESPACE/NAME or KIND/NAME", arg)
	}
	resource, group, _ := strings.Cut(parts[0], ".")
	mapper := restmapper.NewShortcutExpander(clients.Mapper, clients.Discovery, nil)
	gvk, err := mapper.KindFor(schema.GroupVersionResource{Group: group, Resource: strings.ToLower(resource)})
	if err != nil {
		return object.ObjMetadata{}, nil, fmt.Errorf("unknown kind %q: %w", parts[0], err)
	}
	mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return object.ObjMetadata{}, nil, err
	}
	id := object.ObjMetadata{GroupKind: gvk.GroupKind(), Name: parts[len(parts)-1]}
	namespaced := mapping.Scope.Name() == meta.RESTScopeNameNamespace
	switch {
	case namespaced && len(parts) == 2:
		return id, nil, usageError("%s is namespaced: give %s/NAMESPACE/%s", gvk.Kind, parts[0], id.Name)
	case !namespaced && len(parts) == 3:
		return id, nil, usageError("%s is cluster-scoped: give %s/%s", gvk.Kind, parts[0], id.Name)
	case namespaced:
		id.Namespace = parts[1]
	}
	return id, mapping, nil
}

func why(ctx context.Context, w io.Writer, clients *kube.Clients, invNamespace string, id object.ObjMetadata, mapping *meta.RESTMapping) error {
	owners, err := inventory.NewStore(clients.Typed.CoreV1(), invNamespace).Find(ctx, id)
	if err != nil && len(owners) == 0 {
		return err
	}
	res := clients.Dynamic.Resource(mapping.Resource)
	var live *unstructured.Unstructured
	if id.Namespace != "" {
		live, err = res.Namespace(id.Namespace).Get(ctx, id.Name, metav1.GetOptions{})
	} else {
		live, err = res.Get(ctx, id.Name, metav1.GetOptions{})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading %s: %w", contract.ObjectRef(id), err)
	}
	fmt.Fprintln(w, contract.ObjectRef(id))
	if len(owners) == 0 {
		if live != nil {
			if s := live.GetLabels()[contract.SyncLabel]; s != "" {
				fmt.Fprintf(w, "  not in any inventory in %s, although labelled %s=%s\n", invNamespace, contract.SyncLabel, s)
				return &exitError{code: exitFailure}
			}
		}
		fmt.Fprintf(w, "  not managed by tether (no inventory in %s lists it)\n", invNamespace)
		return &exitError{code: exitFailure}
	}
	for _, o := range owners {
		inv, e := o.Inventory, o.Entry
		fmt.Fprintf(w, "  sync:          %s (inventory ConfigMap/%s/%s)\n", inv.Sync, inv.Namespace, inv.Name())
		if e.Stale {
			fmt.Fprintln(w, "  state:         gone from git, waiting to be pruned (a guard or an error kept it)")
		}
		if e.Source != "" {
			fmt.Fprintf(w, "  source file:   %s\n", e.Source)
		}
		fmt.Fprintf(w, "  recorded:      revision %s%s\n", e.Revision, at(e.WrittenAt))
	}
	if live == nil {
		fmt.Fprintln(w, "  live:          not found in the cluster")
		return nil
	}
	ann := live.GetAnnotations()
	if rev := ann[contract.RevisionAnnotation]; rev != "" {
		fmt.Fprintf(w, "  last changed:  revision %s\n", rev)
	}
	if src := ann[contract.SourceAnnotation]; src != "" && src != owners[0].Entry.Source {
		fmt.Fprintf(w, "  file (object): %s\n", src)
	}
	for _, mf := range live.GetManagedFields() {
		if mf.Manager == contract.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply && mf.Time != nil {
			fmt.Fprintf(w, "  last applied:  %s (%s ago)\n", mf.Time.UTC().Format(time.RFC3339), time.Since(mf.Time.Time).Round(time.Second))
		}
	}
	h := health.Object(live, time.Time{}, time.Now())
	fmt.Fprintf(w, "  health:        %s: %s\n", h.Status, h.Message)
	for _, o := range tsync.OtherWriters(live) {
		fmt.Fprintf(w, "  also written:  by %s%s: %s\n", o.Manager, at(o.At), strings.Join(o.Fields, ", "))
	}
	return nil
}

// whyDrift prints the agent's open drift for the object, when the agent
// answers at server.
func whyDrift(ctx context.Context, w io.Writer, server string, ref string) {
	st, err := fetchStatus(ctx, server, 5*time.Second)
	if err != nil {
		fmt.Fprintf(w, "  drift:         unknown (%v)\n", err)
		return
	}
	found := false
	for _, s := range st.Syncs {
		for _, d := range s.Drift {
			if d.Object != ref {
				continue
			}
			found = true
			fmt.Fprintf(w, "  drift:         open since %s in sync %s (policy %s)\n", d.Since.UTC().Format(time.RFC3339), s.Name, d.Policy)
			if d.Deleted {
				fmt.Fprintln(w, "                 deleted")
			}
			for _, f := range d.Fields {
				fmt.Fprintf(w, "                 %s\n", f)
			}
			if d.CorrectionError != "" {
				fmt.Fprintf(w, "                 correction: %s\n", firstLine(d.CorrectionError))
			} else if d.Corrected != nil {
				fmt.Fprintf(w, "                 put back at %s\n", d.Corrected.UTC().Format(time.RFC3339))
			}
		}
	}
	if !found {
		fmt.Fprintln(w, "  drift:         none")
	}
}

func at(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " at " + t.UTC().Format(time.RFC3339)
}
