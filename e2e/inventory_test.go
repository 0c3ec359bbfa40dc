//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	cliinventory "sigs.k8s.io/cli-utils/pkg/inventory"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/e2e/cluster"
	"github.com/tether-gitops/tether/inventory"
	"github.com/tether-gitops/tether/kube"
)

// inventoryAgent is the identity the inventory tests run as: a
// ServiceAccount whose Role manages ConfigMaps in its namespace and nothing
// else, with every request it sends counted.
type inventoryAgent struct {
	sa       *cluster.ServiceAccount
	client   kubernetes.Interface
	requests *kube.RequestCounter
	store    *inventory.Store
}

func newInventoryAgent(ctx context.Context, t *testing.T, c *cluster.Cluster, ns string) *inventoryAgent {
	t.Helper()
	sa, err := c.ServiceAccount(ctx, ns, "tether", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "tether-inventory"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""},
			Resources: []string{"configmaps"},
			Verbs:     []string{"get", "list", "create", "update", "delete"}, // all the Store needs
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tether-inventory"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "tether-inventory"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "tether"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := &inventoryAgent{sa: sa, requests: kube.NewRequestCounter()}
	cfg := rest.CopyConfig(sa.Config)
	cfg.Wrap(a.requests.Wrap)
	if a.client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	a.store = inventory.NewStore(a.client.CoreV1(), ns)
	// RBAC takes effect asynchronously; wait until the Role applies.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := a.client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			break
		}
		if !apierrors.IsForbidden(err) || time.Now().After(deadline) {
			t.Fatalf("listing ConfigMaps as %s/%s: %v", ns, sa.Name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return a
}

// inventoryEntries returns n entries with realistic names, kinds and file
// paths, rendered from revision rev and written at written.
func inventoryEntries(n int, rev string, written time.Time) []inventory.Entry {
	namespaces := []string{"payments-prod", "checkout-prod", "catalog-prod", "search-prod", "identity-prod",
		"notifications-prod", "shipping-prod", "platform-observability"}
	kinds := []struct{ group, kind, file string }{
		{"apps", "Deployment", "deployment.yaml"},
		{"", "Service", "service.yaml"},
		{"", "ConfigMap", "configmap.yaml"},
		{"", "ServiceAccount", "rbac.yaml"},
		{"rbac.authorization.k8s.io", "RoleBinding", "rbac.yaml"},
		{"autoscaling", "HorizontalPodAutoscaler", "hpa.yaml"},
		{"networking.k8s.io", "Ingress", "ingress.yaml"},
		{"policy", "PodDisruptionBudget", "pdb.yaml"},
	}
	out := make([]inventory.Entry, 0, n)
	for i := 0; i < n; i++ {
		ns := namespaces[i%len(namespaces)]
		k := kinds[(i/len(namespaces))%len(kinds)]
		app := fmt.Sprintf("%s-service-%04d", strings.TrimSuffix(ns, "-prod"), i/(len(namespaces)*len(kinds)))
		e := inventory.Entry{
			ID:       object.ObjMetadata{Namespace: ns, Name: app, GroupKind: schema.GroupKind{Group: k.group, Kind: k.kind}},
			Revision: rev,
			Source:   "clusters/production/apps/" + ns + "/" + app + "/" + k.file,
		}
		if i%7 != 0 {
			e.WrittenAt = written.Add(time.Duration(i) * time.Second)
		}
		out = append(out, e)
	}
	return out
}

// sameInventoryEntries fails unless got holds exactly want.
func sameInventoryEntries(t *testing.T, got *inventory.Inventory, want []inventory.Entry) {
	t.Helper()
	if len(got.Entries) != len(want) {
		t.Errorf("inventory %s has %d entries, want %d", got.Sync, len(got.Entries), len(want))
	}
	bad := 0
	for _, w := range want {
		g, ok := got.Entries[w.ID]
		if !ok || g.Revision != w.Revision || g.Source != w.Source || !g.WrittenAt.Equal(w.WrittenAt.Truncate(time.Second)) || g.Stale != w.Stale {
			if bad++; bad <= 5 {
				t.Errorf("inventory %s entry %s = %+v (present %v), want %+v", got.Sync, contract.ObjectRef(w.ID), g, ok, w)
			}
		}
	}
}

// cliUtilsSet reads an inventory's object set the way cli-utils does, from
// the ConfigMap as the admin sees it.
func cliUtilsSet(ctx context.Context, t *testing.T, c *cluster.Cluster, ns, name string) (object.ObjMetadataSet, string) {
	t.Helper()
	cm, err := c.Client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cm)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	set, err := cliinventory.WrapInventoryObj(u).Load()
	if err != nil {
		t.Fatalf("cli-utils reading ConfigMap/%s/%s: %v", ns, name, err)
	}
	return set, cliinventory.WrapInventoryInfoObj(u).ID()
}

// inventoryKubectl runs the repository's kubectl.
func inventoryKubectl(ctx context.Context, t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	dir := os.Getenv("TETHER_BIN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "bin")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Save, load, list, find and delete against the real API server as a
// ServiceAccount that may only manage ConfigMaps in its namespace; an
// unchanged inventory costs no request at all; a stale resourceVersion is a
// conflict; cli-utils and kubectl find the inventory by its label.
func TestInventoryAsServiceAccount(t *testing.T) {
	c := sharedCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "inventory-e2e"
	a := newInventoryAgent(ctx, t, c, ns)
	if _, err := a.client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing ConfigMaps in another namespace: %v, want Forbidden", err)
	}
	if _, err := a.client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing Secrets: %v, want Forbidden", err)
	}

	inv, err := a.store.Load(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Exists() || len(inv.Entries) != 0 {
		t.Fatalf("first Load: exists %v, %d entries", inv.Exists(), len(inv.Entries))
	}
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	web := inventoryEntries(20, "main@sha1:1111111111111111111111111111111111111111", t0)
	inv = inventory.Advance(inv, inventory.Outcome{Revision: web[0].Revision, AppliedAt: t0, Desired: web})
	before := a.requests.Total()
	if written, err := a.store.Save(ctx, inv); err != nil || !written {
		t.Fatalf("first Save = %v, %v", written, err)
	}
	if got := a.requests.Snapshot(); got[kube.Request{Verb: kube.VerbCreate}] != 1 || a.requests.Total()-before != 1 {
		t.Errorf("first Save sent %s, want one create", a.requests)
	}

	// A fresh load reads the same record; saving it unchanged sends nothing.
	loaded, err := a.store.Load(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Exists() || loaded.Revision != web[0].Revision || !loaded.AppliedAt.Equal(t0) || loaded.ID != inventory.ID(ns, "web") {
		t.Errorf("loaded exists %v revision %q applied %v id %q", loaded.Exists(), loaded.Revision, loaded.AppliedAt, loaded.ID)
	}
	sameInventoryEntries(t, loaded, web)
	before = a.requests.Total()
	for i := 0; i < 3; i++ {
		same := inventory.Advance(loaded, inventory.Outcome{Revision: web[0].Revision, AppliedAt: t0, Desired: web})
		if written, err := a.store.Save(ctx, same); err != nil || written {
			t.Fatalf("unchanged Save = %v, %v", written, err)
		}
	}
	if n := a.requests.Total() - before; n != 0 {
		t.Fatalf("saving an unchanged inventory sent %d requests, want none", n)
	}

	// A failed apply of the next revision records what it applied; the
	// inventory's revision stays.
	extra := inventory.Entry{
		ID:       object.ObjMetadata{Namespace: "payments-prod", Name: "payments-canary", GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}},
		Revision: "main@sha1:2222222222222222222222222222222222222222", Source: "apps/canary.yaml", WrittenAt: t0.Add(time.Hour),
	}
	merged := inventory.Merge(loaded, []inventory.Entry{extra})
	before = a.requests.Total()
	if written, err := a.store.Save(ctx, merged); err != nil || !written {
		t.Fatalf("Save after a failed apply = %v, %v", written, err)
	}
	if got := a.requests.Snapshot(); a.requests.Total()-before != 1 || got[kube.Request{Verb: kube.VerbUpdate}] != 1 {
		t.Errorf("Save of a change sent %s, want one update", a.requests)
	}
	reloaded, err := a.store.Load(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if reloaded.Revision != web[0].Revision {
		t.Errorf("revision moved to %q on a failed apply", reloaded.Revision)
	}
	sameInventoryEntries(t, reloaded, append(slices.Clone(web), extra))

	// Optimistic concurrency on the real server: the second of two writers
	// that loaded the same version gets a Conflict and changes nothing.
	first, err := a.store.Load(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	second, err := a.store.Load(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	first.Revision = "first-writer"
	second.Revision = "second-writer"
	if _, err := a.store.Save(ctx, first); err != nil {
		t.Fatal(err)
	}
	_, err = a.store.Save(ctx, second)
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "ConfigMap/"+ns+"/tether-inventory-web") {
		t.Fatalf("stale Save: %v, want a Conflict naming ConfigMap/%s/tether-inventory-web", err, ns)
	}
	if got, err := a.store.Load(ctx, "web"); err != nil || got.Revision != "first-writer" {
		t.Fatalf("after the conflict: revision %q, %v", got.Revision, err)
	}
	recreated := inventory.New(ns, "web")
	recreated.Revision = "blind"
	if _, err := a.store.Save(ctx, recreated); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating over an existing inventory: %v, want AlreadyExists", err)
	}

	// A second sync; List and Find see both.
	api := inventoryEntries(25, "main@sha1:3333333333333333333333333333333333333333", t0)[20:] // not in web
	api = append(api, web[0])                                                                  // claimed by both syncs
	apiInv := inventory.Advance(inventory.New(ns, "api"), inventory.Outcome{Revision: api[0].Revision, AppliedAt: t0, Desired: api})
	if _, err := a.store.Save(ctx, apiInv); err != nil {
		t.Fatal(err)
	}
	list, err := a.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, fmt.Sprintf("%s:%d", l.Sync, len(l.Entries)))
	}
	if want := []string{"api:6", fmt.Sprintf("web:%d", len(web)+1)}; !slices.Equal(names, want) {
		t.Errorf("List = %v, want %v", names, want)
	}
	owners, err := a.store.Find(ctx, web[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != 2 || owners[0].Inventory.Sync != "api" || owners[1].Inventory.Sync != "web" || owners[1].Entry.Source != web[0].Source {
		t.Errorf("Find(%s) = %+v", contract.ObjectRef(web[0].ID), owners)
	}

	// cli-utils reads the same set and id.
	set, id := cliUtilsSet(ctx, t, c, ns, "tether-inventory-web")
	if want := reloaded.Set(); !set.Equal(want) || id != inventory.ID(ns, "web") {
		t.Errorf("cli-utils read %d objects with id %q, want %d with id %q", len(set), id, len(want), inventory.ID(ns, "web"))
	}

	// kubectl finds the inventories by the cli-utils label, as the
	// ServiceAccount.
	out := inventoryKubectl(ctx, t, a.sa.Kubeconfig, "get", "configmap", "-n", ns, "-l", contract.InventoryIDLabel, "-o", "name")
	if got := strings.Fields(out); !slices.Equal(got, []string{"configmap/tether-inventory-api", "configmap/tether-inventory-web"}) {
		t.Errorf("kubectl get configmap -l %s: %q", contract.InventoryIDLabel, out)
	}
	out = inventoryKubectl(ctx, t, a.sa.Kubeconfig, "get", "configmap", "-n", ns, "-l", contract.InventoryIDLabel+"="+inventory.ID(ns, "web"), "-o", "name")
	if strings.TrimSpace(out) != "configmap/tether-inventory-web" {
		t.Errorf("kubectl by inventory id: %q", out)
	}

	// Delete removes the record, and is idempotent.
	if err := a.store.Delete(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := a.store.Delete(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if got, err := a.store.Load(ctx, "web"); err != nil || got.Exists() {
		t.Fatalf("Load after Delete: exists %v, %v", got.Exists(), err)
	}
}

// 5,000 entries go to the real API server as one ConfigMap and come back
// whole; the object as stored is no larger than the Size that Save checks.
func TestInventoryFiveThousandObjects(t *testing.T) {
	c := sharedCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "inventory-e2e-big"
	a := newInventoryAgent(ctx, t, c, ns)
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	want := inventoryEntries(5000, "main@sha1:4f2c9e1d7a8b3c6e5f0a1b2c3d4e5f60718293a4", t0)
	inv := inventory.Advance(inventory.New(ns, "production"), inventory.Outcome{Revision: want[0].Revision, AppliedAt: t0, Desired: want})
	estimate, err := inv.Size()
	if err != nil {
		t.Fatal(err)
	}
	if written, err := a.store.Save(ctx, inv); err != nil || !written {
		t.Fatalf("Save = %v, %v", written, err)
	}

	fresh := inventory.NewStore(a.client.CoreV1(), ns)
	got, err := fresh.Load(ctx, "production")
	if err != nil {
		t.Fatal(err)
	}
	sameInventoryEntries(t, got, want)
	before := a.requests.Total()
	if written, err := fresh.Save(ctx, got); err != nil || written {
		t.Fatalf("unchanged Save = %v, %v", written, err)
	}
	if n := a.requests.Total() - before; n != 0 {
		t.Errorf("unchanged Save of 5,000 entries sent %d requests", n)
	}

	set, _ := cliUtilsSet(ctx, t, c, ns, "tether-inventory-production")
	if len(set) != 5000 || !set.Equal(got.Set()) {
		t.Errorf("cli-utils read %d objects", len(set))
	}

	withFields, without := inventoryStoredSize(ctx, t, c, ns, "tether-inventory-production")
	t.Logf("5,000 objects: the stored ConfigMap is %d bytes of JSON (%.0f KiB), %d with managedFields; Size %d; MaxBytes %d",
		without, float64(without)/1024, withFields, estimate, inventory.MaxBytes)
	if without > estimate {
		t.Errorf("the stored ConfigMap (%d bytes) is larger than Size (%d)", without, estimate)
	}
	if estimate >= 512<<10 {
		t.Errorf("Size %d, want under 512 KiB for 5,000 objects", estimate)
	}
}

// inventoryStoredSize returns the size of a ConfigMap's JSON as the API
// server returns it, with and without metadata.managedFields.
func inventoryStoredSize(ctx context.Context, t *testing.T, c *cluster.Cluster, ns, name string) (withFields, without int) {
	t.Helper()
	raw, err := c.Client.CoreV1().RESTClient().Get().Namespace(ns).Resource("configmaps").Name(name).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	cm.ManagedFields = nil
	b, err := json.Marshal(&cm)
	if err != nil {
		t.Fatal(err)
	}
	return len(raw), len(b)
}

// The largest inventory that Save accepts, built of the longest keys (the
// worst case: every data key is stored twice once managedFields count), is
// created and updated by the real API server and etcd; one entry more is
// refused by Save without a request.
func TestInventoryLimitFitsTheRealAPIServer(t *testing.T) {
	c := sharedCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns = "inventory-e2e-limit"
	a := newInventoryAgent(ctx, t, c, ns)
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	desired := func(n int) []inventory.Entry {
		out := make([]inventory.Entry, n)
		for i := range out {
			name := fmt.Sprintf("%s-%05d", strings.Repeat("very-long-generated-name-", 7), i)
			out[i] = inventory.Entry{
				ID:        object.ObjMetadata{Namespace: "platform-observability", Name: name, GroupKind: schema.GroupKind{Group: "monitoring.coreos.com", Kind: "PrometheusRule"}},
				Source:    "clusters/production/platform/observability/rules/" + name + ".yaml",
				WrittenAt: t0.Add(time.Duration(i) * time.Second),
			}
		}
		return out
	}
	build := func(n int) *inventory.Inventory {
		return inventory.Advance(inventory.New(ns, "limit"), inventory.Outcome{Revision: "main@sha1:5555555555555555555555555555555555555555", AppliedAt: t0, Desired: desired(n)})
	}
	size := func(n int) int {
		s, err := build(n).Size()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Size grows almost linearly: interpolate, then step to the boundary.
	s1, s2 := size(1000), size(2000)
	n := 1000 + (inventory.MaxBytes-s1)*1000/(s2-s1)
	for size(n) > inventory.MaxBytes {
		n--
	}
	for size(n+1) <= inventory.MaxBytes {
		n++
	}

	fits := build(n)
	if written, err := a.store.Save(ctx, fits); err != nil || !written {
		t.Fatalf("Save of %d entries (Size %d, limit %d): %v, %v", n, size(n), inventory.MaxBytes, written, err)
	}
	withFields, without := inventoryStoredSize(ctx, t, c, ns, "tether-inventory-limit")
	t.Logf("largest inventory with %d-character keys: %d entries, Size %d, stored JSON %d bytes (%d with managedFields)",
		len(fits.Set()[0].String()), n, size(n), without, withFields)
	if without > size(n) {
		t.Errorf("the stored ConfigMap (%d bytes) is larger than Size (%d)", without, size(n))
	}
	back, err := a.store.Load(ctx, "limit")
	if err != nil || len(back.Entries) != n {
		t.Fatalf("Load: %v, %d entries, want %d", err, len(back.Entries), n)
	}
	// An update near the limit works too (one object fewer leaves room for
	// the metadata the server added, which Size counts once more).
	back = inventory.Advance(back, inventory.Outcome{Revision: "main@sha1:6666666666666666666666666666666666666666", AppliedAt: t0.Add(time.Hour), Desired: desired(n - 1),
		Removed: []object.ObjMetadata{desired(n)[n-1].ID}})
	if written, err := a.store.Save(ctx, back); err != nil || !written {
		t.Fatalf("updating the inventory at the limit: %v, %v", written, err)
	}

	over := inventory.Advance(back, inventory.Outcome{Revision: "next", AppliedAt: t0, Desired: desired(n + 1)})
	before := a.requests.Total()
	_, err = a.store.Save(ctx, over)
	var tooLarge *inventory.TooLargeError
	if !errors.As(err, &tooLarge) || !strings.Contains(err.Error(), "ConfigMap/"+ns+"/tether-inventory-limit") {
		t.Fatalf("Save of %d entries: %v, want a *TooLargeError naming the ConfigMap", n+1, err)
	}
	if n := a.requests.Total() - before; n != 0 {
		t.Errorf("a too large Save sent %d requests", n)
	}
	got, err := a.store.Load(ctx, "limit")
	if err != nil || len(got.Entries) != n-1 || got.Revision != "main@sha1:6666666666666666666666666666666666666666" {
		t.Errorf("after the refused Save: %d entries, revision %q, %v", len(got.Entries), got.Revision, err)
	}
}
