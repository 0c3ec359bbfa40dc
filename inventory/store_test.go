package inventory

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tether-gitops/tether/contract"
)

func TestLoadMissingIsNewAndEmpty(t *testing.T) {
	client := fakeClient(t)
	s := NewStore(client.CoreV1(), testNS)
	inv, err := s.Load(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if inv.Exists() || len(inv.Entries) != 0 || inv.Revision != "" || inv.ID != ID(testNS, "web") || inv.Namespace != testNS || inv.Sync != "web" {
		t.Errorf("Load of a missing inventory = %+v, exists %v", inv, inv.Exists())
	}
	// Nothing to record: no request.
	client.ClearActions()
	if written, err := s.Save(t.Context(), inv); err != nil || written {
		t.Errorf("Save(empty new) = %v, %v", written, err)
	}
	if got := verbs(client); len(got) != 0 {
		t.Errorf("requests %v, want none", got)
	}
}

func TestLoadErrors(t *testing.T) {
	client := fakeClient(t)
	client.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "tether-inventory-web", errors.New("no"))
	})
	s := NewStore(client.CoreV1(), testNS)
	if _, err := s.Load(t.Context(), "web"); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "ConfigMap/"+testNS+"/tether-inventory-web") {
		t.Errorf("Load = %v, want a Forbidden error naming the ConfigMap", err)
	}
	if _, err := s.Load(t.Context(), "Bad_Name"); err == nil || !strings.Contains(err.Error(), "ConfigMap/"+testNS+"/tether-inventory-Bad_Name") {
		t.Errorf("Load(bad name) = %v", err)
	}
}

// Save writes once when something changed and never when nothing did.
func TestSaveWritesOnlyChanges(t *testing.T) {
	ctx := t.Context()
	client := fakeClient(t)
	s := NewStore(client.CoreV1(), testNS)

	inv := New(testNS, "web")
	inv.Revision, inv.AppliedAt = "r1", at(0)
	inv.Entries = entries(realistic(50)...)

	steps := []struct {
		name   string
		change func(inv *Inventory) *Inventory
		verbs  []string
	}{
		{"create", func(inv *Inventory) *Inventory { return inv }, []string{"create"}},
		{"same inventory again", func(inv *Inventory) *Inventory { return inv }, nil},
		{"reloaded, unchanged", func(*Inventory) *Inventory {
			got, err := s.Load(ctx, "web")
			if err != nil {
				t.Fatal(err)
			}
			client.ClearActions()
			return got
		}, nil},
		{"times differ below a second", func(inv *Inventory) *Inventory {
			inv.AppliedAt = inv.AppliedAt.Add(400_000_000)
			return inv
		}, nil},
		{"same content in a new map", func(inv *Inventory) *Inventory {
			out := inv.clone()
			out.Entries = entries(realistic(50)...)
			return out
		}, nil},
		{"advanced with nothing written", func(inv *Inventory) *Inventory {
			return Advance(inv, Outcome{Revision: "r1", AppliedAt: at(0), Desired: inv.SortedEntries()})
		}, nil},
		{"one source changed", func(inv *Inventory) *Inventory {
			id := inv.Set()[3]
			e := inv.Entries[id]
			e.Source = "moved/" + e.Source
			inv.Entries[id] = e
			return inv
		}, []string{"update"}},
		{"unchanged after the update", func(inv *Inventory) *Inventory { return inv }, nil},
		{"revision advanced", func(inv *Inventory) *Inventory {
			inv.Revision, inv.AppliedAt = "r2", at(5)
			return inv
		}, []string{"update"}},
		{"an object added", func(inv *Inventory) *Inventory {
			return Merge(inv, []Entry{{ID: deploy("new"), Revision: "r3", WrittenAt: at(6)}})
		}, []string{"update"}},
		{"an object dropped", func(inv *Inventory) *Inventory {
			return Advance(inv, Outcome{Revision: "r3", AppliedAt: at(6), Desired: inv.SortedEntries()[1:], Removed: inv.Set()[:1]})
		}, []string{"update"}},
		{"marked stale", func(inv *Inventory) *Inventory {
			return Advance(inv, Outcome{Revision: "r3", AppliedAt: at(6), Desired: inv.SortedEntries()[1:]})
		}, []string{"update"}},
	}
	for _, step := range steps {
		inv = step.change(inv)
		client.ClearActions()
		written, err := s.Save(ctx, inv)
		if err != nil {
			t.Fatalf("%s: Save: %v", step.name, err)
		}
		if got := verbs(client); !slices.Equal(got, step.verbs) || written != (len(step.verbs) > 0) {
			t.Fatalf("%s: Save wrote %v with requests %v, want %v", step.name, written, got, step.verbs)
		}
		// What is stored reads back as what was saved.
		got, err := s.Load(ctx, "web")
		if err != nil {
			t.Fatalf("%s: Load: %v", step.name, err)
		}
		want := inv.clone()
		want.AppliedAt = want.AppliedAt.Truncate(1e9)
		sameInventory(t, got, want)
	}
}

// A stale resourceVersion is a conflict, never a blind overwrite; so is a
// create racing another create, and an update of a deleted inventory.
func TestSaveConflicts(t *testing.T) {
	ctx := t.Context()
	client := fakeClient(t)
	s := NewStore(client.CoreV1(), testNS)
	first := New(testNS, "web")
	first.Entries = entries(Entry{ID: deploy("a"), Revision: "r1"})
	racing := New(testNS, "web")
	racing.Entries = entries(Entry{ID: deploy("b"), Revision: "r1"})
	if _, err := s.Save(ctx, first); err != nil {
		t.Fatal(err)
	}
	_, err := s.Save(ctx, racing)
	if !apierrors.IsAlreadyExists(err) || !strings.Contains(err.Error(), "ConfigMap/"+testNS+"/tether-inventory-web") {
		t.Fatalf("racing create: %v, want AlreadyExists naming the ConfigMap", err)
	}

	a, err := s.Load(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Load(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	a = Merge(a, []Entry{{ID: deploy("from-a"), Revision: "r2"}})
	if _, err := s.Save(ctx, a); err != nil {
		t.Fatal(err)
	}
	b = Merge(b, []Entry{{ID: deploy("from-b"), Revision: "r2"}})
	client.ClearActions()
	written, err := s.Save(ctx, b)
	if !apierrors.IsConflict(err) || written || !strings.Contains(err.Error(), "ConfigMap/"+testNS+"/tether-inventory-web") {
		t.Fatalf("stale save = %v, %v; want a Conflict naming the ConfigMap", written, err)
	}
	if got := verbs(client); !slices.Equal(got, []string{"update"}) {
		t.Errorf("requests %v, want one update", got)
	}
	got, err := s.Load(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Entries[deploy("from-a")]; !ok || len(got.Entries) != 2 {
		t.Errorf("after the conflict the inventory holds %v, want a's write", got.Set())
	}

	// The update carried the loaded resourceVersion.
	var sent *corev1.ConfigMap
	for _, act := range client.Actions() {
		if u, ok := act.(k8stesting.UpdateAction); ok {
			sent = u.GetObject().(*corev1.ConfigMap)
		}
	}
	if sent == nil || sent.ResourceVersion != b.live.ResourceVersion || sent.ResourceVersion == "" {
		t.Errorf("update sent resourceVersion %v, want the loaded %q", sent, b.live.ResourceVersion)
	}

	if err := s.Delete(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	got = Merge(got, []Entry{{ID: deploy("late"), Revision: "r3"}})
	if _, err := s.Save(ctx, got); !apierrors.IsNotFound(err) {
		t.Errorf("saving a deleted inventory: %v, want NotFound", err)
	}
}

// Save updates tether's keys and leaves what others added to the ConfigMap.
func TestSaveKeepsForeignMetadata(t *testing.T) {
	ctx := t.Context()
	inv := New(testNS, "web")
	inv.Revision, inv.AppliedAt = "r1", at(0)
	inv.Entries = entries(Entry{ID: deploy("a"), Revision: "r1"})
	cm := stored(t, inv)
	cm.Labels["team"] = "platform"
	cm.Annotations["note"] = "hands off"
	cm.BinaryData["other"] = []byte{1, 2, 3}
	cm.ResourceVersion = ""
	client := fakeClient(t)
	if _, err := client.CoreV1().ConfigMaps(testNS).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := NewStore(client.CoreV1(), testNS)
	loaded, err := s.Load(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	loaded.Revision = ""
	if _, err := s.Save(ctx, loaded); err != nil {
		t.Fatal(err)
	}
	got, err := client.CoreV1().ConfigMaps(testNS).Get(ctx, "tether-inventory-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["team"] != "platform" || got.Annotations["note"] != "hands off" || len(got.BinaryData["other"]) != 3 {
		t.Errorf("foreign metadata lost: labels %v annotations %v binaryData keys %d", got.Labels, got.Annotations, len(got.BinaryData))
	}
	if _, ok := got.Annotations[contract.InventoryRevisionAnnotation]; ok {
		t.Errorf("an empty revision should remove the annotation: %v", got.Annotations)
	}
}

func TestSaveRejectsAnotherNamespace(t *testing.T) {
	client := fakeClient(t)
	s := NewStore(client.CoreV1(), testNS)
	inv := New("elsewhere", "web")
	inv.Revision = "r"
	if _, err := s.Save(t.Context(), inv); err == nil || !strings.Contains(err.Error(), "ConfigMap/elsewhere/tether-inventory-web") {
		t.Errorf("Save = %v", err)
	}
	if got := verbs(client); len(got) != 0 {
		t.Errorf("requests %v", got)
	}
}

func TestListFindDelete(t *testing.T) {
	ctx := t.Context()
	client := fakeClient(t)
	s := NewStore(client.CoreV1(), testNS)
	shared := deploy("shared")
	for _, sync := range []string{"web", "api", "db"} {
		inv := New(testNS, sync)
		inv.Revision = "r-" + sync
		inv.Entries = entries(Entry{ID: deploy(sync), Revision: "r-" + sync, Source: sync + ".yaml"})
		if sync != "db" {
			inv.Entries[shared] = Entry{ID: shared, Revision: "r-" + sync, Source: sync + "/shared.yaml"}
		}
		if _, err := s.Save(ctx, inv); err != nil {
			t.Fatal(err)
		}
	}
	// Not inventories: an unrelated ConfigMap, a cli-utils inventory of
	// another tool, and tether's inventory in another namespace.
	others := []*corev1.ConfigMap{
		{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: testNS}},
		{ObjectMeta: metav1.ObjectMeta{Name: "kpt-inventory", Namespace: testNS, Labels: map[string]string{contract.InventoryIDLabel: "uuid"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "tether-inventory-web", Namespace: "elsewhere", Labels: map[string]string{
			contract.InventoryIDLabel: ID("elsewhere", "web"), contract.ManagedByLabel: contract.ManagedByValue, contract.SyncLabel: "web"}}},
	}
	for _, cm := range others {
		if _, err := client.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var syncs []string
	for _, inv := range list {
		syncs = append(syncs, inv.Sync+"@"+inv.Revision)
		if !inv.Exists() {
			t.Errorf("listed inventory %s does not exist", inv.Sync)
		}
	}
	if want := []string{"api@r-api", "db@r-db", "web@r-web"}; !slices.Equal(syncs, want) {
		t.Errorf("List = %v, want %v", syncs, want)
	}

	owners, err := s.Find(ctx, shared)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, o := range owners {
		found = append(found, o.Inventory.Sync+":"+o.Entry.Source)
	}
	if want := []string{"api:api/shared.yaml", "web:web/shared.yaml"}; !slices.Equal(found, want) {
		t.Errorf("Find = %v, want %v", found, want)
	}
	if owners, err := s.Find(ctx, deploy("nobody")); err != nil || len(owners) != 0 {
		t.Errorf("Find(unowned) = %v, %v", owners, err)
	}

	// A listed inventory can be saved (it carries its resourceVersion).
	list[0].Revision = "r-api-2"
	if written, err := s.Save(ctx, list[0]); err != nil || !written {
		t.Errorf("saving a listed inventory: %v, %v", written, err)
	}

	// One corrupt inventory does not hide the others.
	bad, err := client.CoreV1().ConfigMaps(testNS).Get(ctx, "tether-inventory-db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad.BinaryData[contract.InventoryProvenanceKey] = []byte("garbage")
	if _, err := client.CoreV1().ConfigMaps(testNS).Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err = s.List(ctx)
	if err == nil || !strings.Contains(err.Error(), "ConfigMap/"+testNS+"/tether-inventory-db") || len(list) != 2 {
		t.Errorf("List with a corrupt inventory = %d inventories, %v", len(list), err)
	}

	if err := s.Delete(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "web"); err != nil {
		t.Errorf("deleting a missing inventory: %v", err)
	}
	if inv, err := s.Load(ctx, "web"); err != nil || inv.Exists() {
		t.Errorf("Load after Delete = %v, %v", inv, err)
	}
}
