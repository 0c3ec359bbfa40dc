package inventory

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	cliinventory "sigs.k8s.io/cli-utils/pkg/inventory"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
)

// stored encodes inv the way Save would write it and gives it a
// resourceVersion, as the API server would.
func stored(t *testing.T, inv *Inventory) *corev1.ConfigMap {
	t.Helper()
	c, err := encode(inv)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	cm, err := configMap(inv, c)
	if err != nil {
		t.Fatalf("configMap: %v", err)
	}
	cm.ResourceVersion = "1"
	return cm
}

// sameInventory fails unless got and want hold the same record.
func sameInventory(t *testing.T, got, want *Inventory) {
	t.Helper()
	if got.Sync != want.Sync || got.Namespace != want.Namespace || got.ID != want.ID ||
		got.Revision != want.Revision || !got.AppliedAt.Equal(want.AppliedAt) {
		t.Errorf("inventory header = {%s %s %s %q %v}, want {%s %s %s %q %v}",
			got.Sync, got.Namespace, got.ID, got.Revision, got.AppliedAt,
			want.Sync, want.Namespace, want.ID, want.Revision, want.AppliedAt)
	}
	if len(got.Entries) != len(want.Entries) {
		t.Errorf("%d entries, want %d", len(got.Entries), len(want.Entries))
	}
	n := 0
	for id, w := range want.Entries {
		g, ok := got.Entries[id]
		if !ok || g.ID != w.ID || g.Revision != w.Revision || g.Source != w.Source || !g.WrittenAt.Equal(w.WrittenAt) || g.Stale != w.Stale {
			if n++; n <= 5 {
				t.Errorf("entry %s = %+v (present %v), want %+v", contract.ObjectRef(id), g, ok, w)
			}
		}
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		inv  func() *Inventory
	}{
		{"empty, never applied", func() *Inventory { return New(testNS, "web") }},
		{"empty set applied", func() *Inventory {
			inv := New(testNS, "web")
			inv.Revision, inv.AppliedAt = "main@sha1:aaaa", at(1)
			return inv
		}},
		{"mixed kinds and provenance", func() *Inventory {
			inv := New(testNS, "web")
			inv.Revision, inv.AppliedAt = "main@sha1:bbbb", at(2)
			inv.Entries = entries(
				Entry{ID: deploy("web"), Revision: "main@sha1:bbbb", Source: "apps/web/deployment.yaml", WrittenAt: at(2)},
				Entry{ID: objID("", "Namespace", "", "shop"), Revision: "main@sha1:aaaa", Source: "apps/namespace.yaml"},
				Entry{ID: objID("rbac.authorization.k8s.io", "ClusterRole", "", "system:shop-reader"), Revision: "main@sha1:bbbb", Source: "rbac/reader.yaml", WrittenAt: at(1)},
				Entry{ID: objID("", "ConfigMap", "shop", "old"), Revision: "main@sha1:aaaa", Source: "apps/old.yaml", WrittenAt: at(0), Stale: true},
				Entry{ID: objID("example.com", "Widget", "shop", "w"), Source: "apps/ünïcode path/widget.yaml"},
			)
			return inv
		}},
		{"hashed id", func() *Inventory {
			inv := New(testNS, strings.Repeat("long-sync-name-", 4)+"x")
			inv.Entries = entries(Entry{ID: deploy("web"), Revision: "r"})
			return inv
		}},
		{"5,000 objects", func() *Inventory {
			inv := New(testNS, "big")
			inv.Revision, inv.AppliedAt = "main@sha1:4f2c9e1d7a8b3c6e5f0a1b2c3d4e5f60718293a4", at(3)
			inv.Entries = entries(realistic(5000)...)
			return inv
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.inv()
			cm := stored(t, want)
			got, err := decode(cm, testNS, want.Sync)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			sameInventory(t, got, want)
			if !got.Exists() {
				t.Error("a decoded inventory should exist")
			}
			// What was read back encodes to what is stored: Save would
			// make no request.
			again, err := encode(got)
			if err != nil {
				t.Fatal(err)
			}
			if !again.equal(got.stored) {
				t.Error("re-encoding a decoded inventory changed its content")
			}
			if cm.Labels[contract.InventoryIDLabel] != want.ID || cm.Labels[contract.SyncLabel] != want.Sync ||
				cm.Labels[contract.ManagedByLabel] != contract.ManagedByValue {
				t.Errorf("labels = %v", cm.Labels)
			}
			if cm.Name != contract.InventoryNamePrefix+want.Sync || cm.Namespace != testNS {
				t.Errorf("ConfigMap %s/%s", cm.Namespace, cm.Name)
			}
		})
	}
}

func TestTimesAreStoredInUTCSeconds(t *testing.T) {
	inv := New(testNS, "web")
	local := time.FixedZone("CET", 3600)
	inv.AppliedAt = time.Date(2025, 1, 2, 4, 4, 5, 999_999_999, local)
	inv.Entries = entries(Entry{ID: deploy("web"), WrittenAt: time.Date(2025, 1, 2, 4, 4, 6, 1, local)})
	cm := stored(t, inv)
	if got := cm.Annotations[contract.InventoryAppliedAtAnnotation]; got != "2025-01-02T03:04:05Z" {
		t.Errorf("applied-at annotation = %q, want 2025-01-02T03:04:05Z", got)
	}
	if _, ok := cm.Annotations[contract.InventoryRevisionAnnotation]; ok {
		t.Errorf("revision annotation set for an empty revision: %v", cm.Annotations)
	}
	got, err := decode(cm, testNS, "web")
	if err != nil {
		t.Fatal(err)
	}
	if w := got.Entries[deploy("web")].WrittenAt; !w.Equal(time.Date(2025, 1, 2, 3, 4, 6, 0, time.UTC)) || w.Location() != time.UTC {
		t.Errorf("WrittenAt = %v", w)
	}
}

// The same inventory always produces the same bytes, whatever the order
// entries were added in.
func TestEncodingIsDeterministic(t *testing.T) {
	es := realistic(300)
	var first *corev1.ConfigMap
	for round := 0; round < 5; round++ {
		inv := New(testNS, "web")
		inv.Revision, inv.AppliedAt = "main@sha1:cafe", at(5)
		for i := range es {
			// a different insertion order each round
			e := es[(i+round*37)%len(es)]
			if round%2 == 1 {
				e = es[len(es)-1-i]
			}
			inv.Entries[e.ID] = e
		}
		if len(inv.Entries) != len(es) {
			t.Fatalf("round %d built %d entries", round, len(inv.Entries))
		}
		cm := stored(t, inv)
		if first == nil {
			first = cm
			continue
		}
		a, _ := json.Marshal(first)
		b, _ := json.Marshal(cm)
		if !bytes.Equal(a, b) {
			t.Fatalf("round %d encoded differently", round)
		}
	}
	// Revisions are stored once each.
	raw := gunzip(t, first.BinaryData[contract.InventoryProvenanceKey])
	var doc provenance
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Revisions) != 3 || len(doc.Objects) != 300 {
		t.Errorf("provenance has %d revisions and %d objects, want 3 and 300", len(doc.Revisions), len(doc.Objects))
	}
	if n := bytes.Count(raw, []byte(doc.Revisions[0])); n != 1 {
		t.Errorf("revision %s appears %d times in the provenance", doc.Revisions[0], n)
	}
}

func gunzip(t *testing.T, gz []byte) []byte {
	t.Helper()
	out, err := gunzipBytes(gz)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func toUnstructured(t *testing.T, cm *corev1.ConfigMap) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cm)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	return u
}

// cli-utils reads the object set back from tether's ConfigMap, and its own
// writer produces exactly tether's data from that set.
func TestCLIUtilsReadsTheInventory(t *testing.T) {
	for _, n := range []int{0, 1, 7, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			inv := New(testNS, "web")
			inv.Entries = entries(realistic(n)...)
			inv.Entries[objID("rbac.authorization.k8s.io", "ClusterRoleBinding", "", "system:tether:reader")] =
				Entry{ID: objID("rbac.authorization.k8s.io", "ClusterRoleBinding", "", "system:tether:reader"), Revision: "r"}
			cm := stored(t, inv)
			u := toUnstructured(t, cm)

			info := cliinventory.WrapInventoryInfoObj(u)
			if info.ID() != inv.ID || info.Name() != cm.Name || info.Namespace() != testNS {
				t.Errorf("cli-utils sees id %q name %q namespace %q", info.ID(), info.Name(), info.Namespace())
			}
			storage := cliinventory.WrapInventoryObj(u)
			set, err := storage.Load()
			if err != nil {
				t.Fatalf("cli-utils Load: %v", err)
			}
			if !set.Equal(inv.Set()) || len(set) != len(inv.Entries) {
				t.Fatalf("cli-utils read %d objects, want the %d of the inventory", len(set), len(inv.Entries))
			}

			// cli-utils' writer (StatusPolicyNone: no status) from the same set.
			if err := storage.Store(inv.Set(), nil); err != nil {
				t.Fatal(err)
			}
			written, err := storage.GetObject()
			if err != nil {
				t.Fatal(err)
			}
			theirs, _, err := unstructured.NestedStringMap(written.Object, "data")
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(theirs, cm.Data) {
				t.Errorf("cli-utils writes different data for the same set (%d keys vs %d)", len(theirs), len(cm.Data))
			}
		})
	}
}

// cli-utils may write actuation status as data values, and a cli-utils tool
// may drop objects from data; tether reads data as the object set either way.
func TestDecodeToleratesCLIUtilsWrites(t *testing.T) {
	inv := New(testNS, "web")
	inv.Entries = entries(
		Entry{ID: deploy("a"), Revision: "r1", Source: "a.yaml"},
		Entry{ID: deploy("b"), Revision: "r1", Source: "b.yaml"},
	)
	cm := stored(t, inv)
	cm.Data[deploy("a").String()] = `{"actuation":"Succeeded","reconcile":"Succeeded","strategy":"Apply"}`
	delete(cm.Data, deploy("b").String())
	cm.Data[deploy("c").String()] = ""
	got, err := decode(cm, testNS, "web")
	if err != nil {
		t.Fatal(err)
	}
	want := New(testNS, "web")
	want.Entries = entries(Entry{ID: deploy("a"), Revision: "r1", Source: "a.yaml"}, Entry{ID: deploy("c")})
	sameInventory(t, got, want)
	c, err := encode(got)
	if err != nil {
		t.Fatal(err)
	}
	if c.equal(got.stored) {
		t.Error("a non-canonical ConfigMap should be rewritten on the next Save")
	}
}

func TestDecodeRejectsCorruptInventories(t *testing.T) {
	good := New(testNS, "web")
	good.Revision, good.AppliedAt = "r1", at(0)
	good.Entries = entries(Entry{ID: deploy("web"), Revision: "r1", Source: "web.yaml", WrittenAt: at(0)})
	gz := func(s string) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.Bytes()
	}
	tests := []struct {
		name   string
		mutate func(cm *corev1.ConfigMap)
		want   string
	}{
		{"provenance not gzip", func(cm *corev1.ConfigMap) {
			cm.BinaryData[contract.InventoryProvenanceKey] = []byte(`{"version":1}`)
		}, "decompressing"},
		{"provenance truncated", func(cm *corev1.ConfigMap) {
			b := cm.BinaryData[contract.InventoryProvenanceKey]
			cm.BinaryData[contract.InventoryProvenanceKey] = b[:len(b)/2]
		}, "decompressing"},
		{"provenance not JSON", func(cm *corev1.ConfigMap) {
			cm.BinaryData[contract.InventoryProvenanceKey] = gz("not json")
		}, "parsing"},
		{"provenance with trailing data", func(cm *corev1.ConfigMap) {
			cm.BinaryData[contract.InventoryProvenanceKey] = gz(`{"version":1,"revisions":[],"objects":{}} {}`)
		}, "trailing"},
		{"provenance from a newer tether", func(cm *corev1.ConfigMap) {
			cm.BinaryData[contract.InventoryProvenanceKey] = gz(`{"version":2,"revisions":[],"objects":{}}`)
		}, "version 2"},
		{"revision index out of range", func(cm *corev1.ConfigMap) {
			cm.BinaryData[contract.InventoryProvenanceKey] = gz(`{"version":1,"revisions":["r1"],"objects":{"shop_web_apps_Deployment":{"revision":1}}}`)
		}, "out of range"},
		{"bad writtenAt", func(cm *corev1.ConfigMap) {
			cm.BinaryData[contract.InventoryProvenanceKey] = gz(`{"version":1,"revisions":["r1"],"objects":{"shop_web_apps_Deployment":{"revision":0,"writtenAt":"yesterday"}}}`)
		}, "writtenAt"},
		{"bad provenance key", func(cm *corev1.ConfigMap) {
			cm.BinaryData[contract.InventoryProvenanceKey] = gz(`{"version":1,"revisions":["r1"],"objects":{"nonsense":{"revision":0}}}`)
		}, "nonsense"},
		{"bad data key", func(cm *corev1.ConfigMap) { cm.Data["nonsense"] = "" }, "nonsense"},
		{"bad applied-at", func(cm *corev1.ConfigMap) {
			cm.Annotations[contract.InventoryAppliedAtAnnotation] = "last tuesday"
		}, contract.InventoryAppliedAtAnnotation},
		{"another inventory id", func(cm *corev1.ConfigMap) {
			cm.Labels[contract.InventoryIDLabel] = "6f1b4c3e-kpt-uuid"
		}, "is not the inventory of sync web"},
		{"no inventory id: not an inventory", func(cm *corev1.ConfigMap) {
			delete(cm.Labels, contract.InventoryIDLabel)
		}, "is not the inventory of sync web"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cm := stored(t, good)
			tt.mutate(cm)
			inv, err := decode(cm, testNS, "web")
			if err == nil {
				t.Fatalf("decode succeeded: %+v", inv)
			}
			if !strings.Contains(err.Error(), "ConfigMap/"+testNS+"/tether-inventory-web") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q should name ConfigMap/%s/tether-inventory-web and say %q", err, testNS, tt.want)
			}
		})
	}
}

// A ConfigMap without provenance (written by cli-utils, say) is a valid
// inventory whose entries carry no provenance.
func TestDecodeWithoutProvenance(t *testing.T) {
	cm := stored(t, func() *Inventory {
		inv := New(testNS, "web")
		inv.Entries = entries(Entry{ID: deploy("web"), Revision: "r1", Source: "web.yaml"})
		return inv
	}())
	delete(cm.BinaryData, contract.InventoryProvenanceKey)
	got, err := decode(cm, testNS, "web")
	if err != nil {
		t.Fatal(err)
	}
	if e := got.Entries[deploy("web")]; len(got.Entries) != 1 || e != (Entry{ID: deploy("web")}) {
		t.Errorf("entries = %+v", got.Entries)
	}
}

func TestEncodeRejectsUnstorableEntries(t *testing.T) {
	tests := []struct {
		name  string
		inv   func() *Inventory
		wants []string
	}{
		{"name with an underscore", func() *Inventory {
			inv := New(testNS, "web")
			inv.Entries = entries(Entry{ID: objID("example.com", "Widget", "shop", "a_b")})
			return inv
		}, []string{"Widget.example.com/shop/a_b", "inventory key"}},
		{"RBAC name that reads back with a colon", func() *Inventory {
			inv := New(testNS, "web")
			inv.Entries = entries(Entry{ID: objID("rbac.authorization.k8s.io", "Role", "shop", "a__b")})
			return inv
		}, []string{"reads back as Role.rbac.authorization.k8s.io/shop/a:b"}},
		{"no kind", func() *Inventory {
			inv := New(testNS, "web")
			inv.Entries = entries(Entry{ID: objID("", "", "shop", "a")})
			return inv
		}, []string{"kind and a name"}},
		{"key over 253 characters", func() *Inventory {
			inv := New(testNS, "web")
			inv.Entries = entries(Entry{ID: objID("example.com", "Widget", "shop", strings.Repeat("n", 250))})
			return inv
		}, []string{"must be no more than 253"}},
		{"entry under another key", func() *Inventory {
			inv := New(testNS, "web")
			inv.Entries = map[object.ObjMetadata]Entry{deploy("a"): {ID: deploy("b")}}
			return inv
		}, []string{"keyed Deployment.apps/shop/a"}},
		{"sync name not a ConfigMap name", func() *Inventory { return New(testNS, "Web_App") }, []string{"does not make a valid ConfigMap name"}},
		{"sync name too long for a label", func() *Inventory { return New(testNS, strings.Repeat("s", 64)) }, []string{"not a valid label value"}},
		{"wrong id", func() *Inventory {
			inv := New(testNS, "web")
			inv.ID = "something-else"
			return inv
		}, []string{"is not the id of sync"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := tt.inv()
			_, err := encode(inv)
			if err == nil {
				t.Fatal("encode succeeded")
			}
			for _, w := range append(tt.wants, "ConfigMap/"+testNS+"/"+inv.Name()) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// 5,000 objects with realistic names and paths fit well under the 1 MiB
// object limit.
func TestSizeOfFiveThousandObjects(t *testing.T) {
	inv := New(testNS, "production-apps")
	inv.Revision, inv.AppliedAt = "main@sha1:4f2c9e1d7a8b3c6e5f0a1b2c3d4e5f60718293a4", at(60)
	inv.Entries = entries(realistic(5000)...)
	if len(inv.Entries) != 5000 {
		t.Fatalf("%d entries", len(inv.Entries))
	}
	cm := stored(t, inv)
	b, err := json.Marshal(cm)
	if err != nil {
		t.Fatal(err)
	}
	size, err := inv.Size()
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for k := range cm.Data {
		keys += len(k)
	}
	gz := len(cm.BinaryData[contract.InventoryProvenanceKey])
	raw := len(gunzip(t, cm.BinaryData[contract.InventoryProvenanceKey]))
	t.Logf("5,000 objects: ConfigMap JSON %d bytes (%.0f KiB), Size %d bytes, limit %d; data keys %d bytes (%.1f per object); provenance %d bytes of JSON, %d gzipped (%.1f per object)",
		len(b), float64(len(b))/1024, size, MaxBytes, keys, float64(keys)/5000, raw, gz, float64(gz)/5000)
	if size >= 512<<10 {
		t.Errorf("the ConfigMap for 5,000 objects is %d bytes, want under 512 KiB", size)
	}
	if size < len(b) {
		t.Errorf("Size %d is smaller than the ConfigMap's JSON, %d bytes", size, len(b))
	}
	if gz > 100<<10 {
		t.Errorf("compressed provenance is %d bytes, want under 100 KiB", gz)
	}
	t.Logf("at this rate about %d such objects fit under MaxBytes", MaxBytes*5000/size)
}

// Save stores the largest inventory whose Size fits and refuses the next
// larger one with a *TooLargeError, without a request: never a truncation.
func TestSaveLimit(t *testing.T) {
	// Long names (241-character keys) keep the count, and the test, small.
	build := func(n int) *Inventory {
		inv := New(testNS, "huge")
		inv.Revision = "r"
		for i := range n {
			name := fmt.Sprintf("%s-%05d", strings.Repeat("very-long-generated-name-", 7), i)
			id := objID("monitoring.coreos.com", "PrometheusRule", "platform-observability", name)
			inv.Entries[id] = Entry{ID: id, Revision: "r", Source: "rules/" + name + ".yaml", WrittenAt: at(i)}
		}
		return inv
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
	n := 1000 + (MaxBytes-s1)*1000/(s2-s1)
	for size(n) > MaxBytes {
		n--
	}
	for size(n+1) <= MaxBytes {
		n++
	}
	t.Logf("at most %d entries with 241-character keys fit (%d bytes)", n, size(n))

	client := fakeClient(t)
	s := NewStore(client.CoreV1(), testNS)
	written, err := s.Save(t.Context(), build(n+1))
	var tl *TooLargeError
	if !errors.As(err, &tl) || written {
		t.Fatalf("Save(%d entries) = %v, %v; want a *TooLargeError", n+1, written, err)
	}
	if tl.Objects != n+1 || tl.Bytes <= MaxBytes || tl.Limit != MaxBytes || tl.ConfigMap != "ConfigMap/"+testNS+"/tether-inventory-huge" {
		t.Errorf("error = %+v", tl)
	}
	if !strings.Contains(err.Error(), "ConfigMap/"+testNS+"/tether-inventory-huge") || !strings.Contains(err.Error(), fmt.Sprintf("%d objects", n+1)) {
		t.Errorf("error %q", err)
	}
	if got := verbs(client); len(got) != 0 {
		t.Errorf("requests %v, want none", got)
	}
	if written, err := s.Save(t.Context(), build(n)); err != nil || !written {
		t.Errorf("Save(%d entries) = %v, %v", n, written, err)
	}
}
