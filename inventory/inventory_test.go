package inventory

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
)

func TestID(t *testing.T) {
	long := strings.Repeat("a", 60)
	tests := []struct {
		name, namespace, sync string
		want                  string // "" checks only the shape
		hashed                bool
	}{
		{name: "short", namespace: "tether-system", sync: "web", want: "tether.tether-system.web"},
		{name: "dotted sync", namespace: "flux", sync: "apps.prod", want: "tether.flux.apps.prod"},
		{name: "exactly 63", namespace: "ns", sync: strings.Repeat("s", 63-len("tether.ns.")), want: "tether.ns." + strings.Repeat("s", 63-len("tether.ns."))},
		{name: "64 is hashed", namespace: "ns", sync: strings.Repeat("s", 64-len("tether.ns.")), hashed: true},
		{name: "long namespace and sync", namespace: long, sync: long, hashed: true},
		{name: "sync with characters a label cannot hold", namespace: "ns", sync: "Web_App:1", hashed: true},
		{name: "namespace with a dot", namespace: "a.b", sync: "c", hashed: true},
		{name: "empty", namespace: "", sync: "", hashed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ID(tt.namespace, tt.sync)
			if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
				t.Fatalf("ID(%q, %q) = %q is not a label value: %v", tt.namespace, tt.sync, got, errs)
			}
			if got != ID(tt.namespace, tt.sync) {
				t.Fatalf("ID is not deterministic")
			}
			if !strings.HasPrefix(got, "tether") {
				t.Errorf("ID(%q, %q) = %q, want the tether prefix", tt.namespace, tt.sync, got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("ID(%q, %q) = %q, want %q", tt.namespace, tt.sync, got, tt.want)
			}
			if hashed := strings.Contains(got, "_"); hashed != tt.hashed {
				t.Errorf("ID(%q, %q) = %q, hashed form %v, want %v", tt.namespace, tt.sync, got, hashed, tt.hashed)
			}
		})
	}
}

// Pairs that a naive concatenation would confuse get different ids.
func TestIDDistinguishesSyncs(t *testing.T) {
	long := strings.Repeat("x", 70)
	pairs := [][2]string{
		{"ab", "c"}, {"a", "bc"}, {"a-b", "c"}, {"a", "b-c"}, {"a", "b.c"},
		{"ns", long}, {"ns", long + "y"}, {"ns2", long}, {long[:63], "s"}, {long[:62], "xs"},
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		id := ID(p[0], p[1])
		if prev, ok := seen[id]; ok {
			t.Errorf("ID(%q, %q) = ID(%q, %q) = %q", p[0], p[1], prev[0], prev[1], id)
		}
		seen[id] = p
	}
}

func TestSetIsSorted(t *testing.T) {
	inv := New(testNS, "web")
	ids := []object.ObjMetadata{
		objID("apps", "Deployment", "b", "x"),
		objID("", "Service", "a", "y"),
		objID("apps", "Deployment", "a", "z"),
		objID("", "Namespace", "", "a"),
		objID("apps", "Deployment", "a", "y"),
	}
	for _, id := range ids {
		inv.Entries[id] = Entry{ID: id}
	}
	want := object.ObjMetadataSet{
		objID("", "Namespace", "", "a"),
		objID("", "Service", "a", "y"),
		objID("apps", "Deployment", "a", "y"),
		objID("apps", "Deployment", "a", "z"),
		objID("apps", "Deployment", "b", "x"),
	}
	for i := 0; i < 5; i++ { // map order varies between calls
		if got := inv.Set(); !slices.Equal(got, want) {
			t.Fatalf("Set() = %v, want %v", got, want)
		}
	}
	sorted := inv.SortedEntries()
	for i, e := range sorted {
		if e.ID != want[i] {
			t.Fatalf("SortedEntries()[%d] = %v, want %v", i, e.ID, want[i])
		}
	}
}

func TestNewAndObjectName(t *testing.T) {
	inv := New("tether-system", "web")
	if inv.Exists() || inv.Name() != "tether-inventory-web" || inv.ID != "tether.tether-system.web" || inv.Entries == nil {
		t.Fatalf("New = %+v (exists %v, name %s)", inv, inv.Exists(), inv.Name())
	}
	for id, want := range map[object.ObjMetadata]string{
		deploy("web"):                       "Deployment.apps/shop/web",
		objID("", "ConfigMap", "shop", "c"): "ConfigMap/shop/c",
		objID("rbac.authorization.k8s.io", "ClusterRole", "", "view"): "ClusterRole.rbac.authorization.k8s.io/view",
	} {
		if got := contract.ObjectRef(id); got != want {
			t.Errorf("contract.ObjectRef(%v) = %q, want %q", id, got, want)
		}
	}
}
