package inventory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
)

// Store reads and writes inventories. It needs only ConfigMap access (get,
// list, create, update, delete) in one namespace. It is safe for concurrent
// use; the Inventories it returns are not.
type Store struct {
	client    corev1client.ConfigMapsGetter
	namespace string
}

// NewStore returns a Store for the inventories in namespace.
func NewStore(client corev1client.ConfigMapsGetter, namespace string) *Store {
	return &Store{client: client, namespace: namespace}
}

// listPageSize bounds one List page: inventories can be up to 1 MiB each.
const listPageSize = 50

// Load reads the inventory of sync. When its ConfigMap does not exist, Load
// returns New(namespace, sync) (Exists() == false) and no error. A
// ConfigMap that is not this sync's inventory (another inventory id) or
// whose content cannot be read is an error naming it, never an empty
// inventory: an inventory read as empty would let a sync forget, and never
// prune, what it owns.
func (s *Store) Load(ctx context.Context, sync string) (*Inventory, error) {
	name := ConfigMapName(sync)
	ref := configMapRef(s.namespace, name)
	if err := validateSync(sync); err != nil {
		return nil, fmt.Errorf("loading inventory %s: %w", ref, err)
	}
	cm, err := s.client.ConfigMaps(s.namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return New(s.namespace, sync), nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading inventory %s: %w", ref, err)
	}
	return decode(cm, s.namespace, sync)
}

// Save stores inv and reports whether it wrote anything. It makes no
// request at all when the stored content (labels, annotations, object set
// and decoded provenance) would not change, and none for an inventory that
// does not exist and would be empty. Otherwise it creates the ConfigMap, or
// updates it with the resourceVersion it was loaded with: if it changed in
// between, was deleted, or was created by someone else, Save fails with an
// error for which apierrors.IsConflict, IsNotFound or IsAlreadyExists holds,
// and never overwrites blindly; load again and recompute. An inventory that would not
// fit in one ConfigMap is a *TooLargeError and nothing is written.
//
// On success inv records the new resourceVersion, so it can be saved again.
func (s *Store) Save(ctx context.Context, inv *Inventory) (written bool, err error) {
	ref := configMapRef(inv.Namespace, inv.Name())
	if inv.Namespace != s.namespace {
		return false, fmt.Errorf("saving inventory %s: the store manages namespace %s", ref, s.namespace)
	}
	want, err := encode(inv)
	if err != nil {
		return false, err
	}
	if inv.exists && inv.stored != nil && want.equal(inv.stored) {
		return false, nil
	}
	if !inv.exists && len(inv.Entries) == 0 && inv.Revision == "" && inv.AppliedAt.IsZero() {
		return false, nil
	}
	cm, err := configMap(inv, want)
	if err != nil {
		return false, err
	}
	size, err := objectSize(cm)
	if err != nil {
		return false, fmt.Errorf("saving inventory %s: measuring: %w", ref, err)
	}
	if size > MaxBytes {
		return false, &TooLargeError{ConfigMap: ref, Objects: len(inv.Entries), Bytes: size, Limit: MaxBytes}
	}
	var out *corev1.ConfigMap
	if inv.exists {
		out, err = s.client.ConfigMaps(s.namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: contract.FieldManager})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return false, fmt.Errorf("saving inventory %s: it changed or was deleted since it was loaded at resourceVersion %s (another tether writing it?): %w", ref, cm.ResourceVersion, err)
		}
	} else {
		out, err = s.client.ConfigMaps(s.namespace).Create(ctx, cm, metav1.CreateOptions{FieldManager: contract.FieldManager})
		if apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("saving inventory %s: it was created since it was loaded (another tether writing it?): %w", ref, err)
		}
	}
	if err != nil {
		return false, fmt.Errorf("saving inventory %s: %w", ref, err)
	}
	inv.ID = want.labels[contract.InventoryIDLabel]
	inv.exists = true
	inv.live = out
	inv.stored = want
	return true, nil
}

// Delete removes the inventory of sync. A missing inventory is not an
// error. Delete removes only the record: the objects stay.
func (s *Store) Delete(ctx context.Context, sync string) error {
	name := ConfigMapName(sync)
	ref := configMapRef(s.namespace, name)
	if err := validateSync(sync); err != nil {
		return fmt.Errorf("deleting inventory %s: %w", ref, err)
	}
	err := s.client.ConfigMaps(s.namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting inventory %s: %w", ref, err)
	}
	return nil
}

// List returns every tether inventory in the namespace (ConfigMaps labeled
// managed-by tether with a sync and an inventory id), sorted by sync name.
// An inventory that cannot be read does not hide the others: they are
// returned along with an error naming each unreadable ConfigMap.
func (s *Store) List(ctx context.Context) ([]*Inventory, error) {
	selector, err := listSelector()
	if err != nil {
		return nil, fmt.Errorf("listing inventories in namespace %s: %w", s.namespace, err)
	}
	var (
		out  []*Inventory
		errs []error
		opts = metav1.ListOptions{LabelSelector: selector, Limit: listPageSize}
	)
	for {
		list, err := s.client.ConfigMaps(s.namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing inventories in namespace %s: %w", s.namespace, err)
		}
		for i := range list.Items {
			cm := &list.Items[i]
			sync, ok := strings.CutPrefix(cm.Name, contract.InventoryNamePrefix)
			if !ok || cm.Labels[contract.SyncLabel] != sync {
				// Labeled like an inventory but not named like one: not ours
				// to interpret.
				continue
			}
			inv, err := decode(cm, s.namespace, sync)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, inv)
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	slices.SortFunc(out, func(a, b *Inventory) int { return strings.Compare(a.Sync, b.Sync) })
	return out, errors.Join(errs...)
}

// listSelector selects tether's inventories.
func listSelector() (string, error) {
	var reqs []labels.Requirement
	for _, r := range []struct {
		key    string
		op     selection.Operator
		values []string
	}{
		{contract.ManagedByLabel, selection.Equals, []string{contract.ManagedByValue}},
		{contract.InventoryIDLabel, selection.Exists, nil},
		{contract.SyncLabel, selection.Exists, nil},
	} {
		req, err := labels.NewRequirement(r.key, r.op, r.values)
		if err != nil {
			return "", err
		}
		reqs = append(reqs, *req)
	}
	return labels.NewSelector().Add(reqs...).String(), nil
}

// Owner is an inventory that lists an object, with the object's entry.
type Owner struct {
	// Inventory is the owning inventory.
	Inventory *Inventory
	// Entry is the object's entry in it.
	Entry Entry
}

// Find returns the inventories in the namespace that list the object (more
// than one means two syncs claim it), sorted by sync name, for `tether why`.
// Like List, it returns what it could read along with an error naming any
// unreadable inventory.
func (s *Store) Find(ctx context.Context, id object.ObjMetadata) ([]Owner, error) {
	invs, err := s.List(ctx)
	var out []Owner
	for _, inv := range invs {
		if e, ok := inv.Entries[id]; ok {
			out = append(out, Owner{Inventory: inv, Entry: e})
		}
	}
	return out, err
}
