package inventory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
)

// MaxBytes bounds the size of one inventory ConfigMap as Size estimates it.
// The API server's 1 MiB ConfigMap limit counts values only, and an
// inventory is mostly data keys, so the limit that matters is etcd's request
// limit (1.5 MiB by default) on the whole object. Every data key appears a
// second time in metadata.managedFields, but when that makes the object too
// large the API server drops managedFields and retries, so the object
// without them is what must fit (the e2e tests show both). Keeping its JSON
// (larger than the protobuf etcd stores: binaryData is base64 in JSON) under
// 1 MiB leaves 0.5 MiB of headroom. With typical names (about 60 characters
// per data key, 13 bytes of compressed provenance) that is about 13,000
// objects per sync.
const MaxBytes = 1 << 20

// TooLargeError is returned by Save when an inventory would not fit in one
// ConfigMap. Nothing is written: the inventory is never truncated.
type TooLargeError struct {
	// ConfigMap names the inventory: ConfigMap/<namespace>/<name>.
	ConfigMap string
	// Objects is the number of entries.
	Objects int
	// Bytes is the estimated stored size.
	Bytes int
	// Limit is MaxBytes.
	Limit int
}

// Error says what is too large and what to do about it.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("inventory %s: %d objects need about %d bytes, over the limit of %d bytes for one inventory ConfigMap; split the sync into smaller syncs",
		e.ConfigMap, e.Objects, e.Bytes, e.Limit)
}

// content is what tether stores in an inventory ConfigMap, decoded: two
// contents are equal exactly when writing one over the other would change
// nothing tether reads. Save compares contents, not gzip bytes.
type content struct {
	labels      map[string]string // tether's labels only
	annotations map[string]string // tether's annotations only
	data        map[string]string
	provenance  []byte // uncompressed JSON; nil when the key is missing
}

func (c *content) equal(o *content) bool {
	return maps.Equal(c.labels, o.labels) &&
		maps.Equal(c.annotations, o.annotations) &&
		maps.Equal(c.data, o.data) &&
		bytes.Equal(c.provenance, o.provenance) &&
		(c.provenance == nil) == (o.provenance == nil)
}

// ownLabels and ownAnnotations are the metadata keys tether writes on an
// inventory; any other key is left as it is.
func ownLabels() []string {
	return []string{contract.InventoryIDLabel, contract.ManagedByLabel, contract.SyncLabel}
}

func ownAnnotations() []string {
	return []string{contract.InventoryRevisionAnnotation, contract.InventoryAppliedAtAnnotation}
}

// encode returns the content inv should be stored as, after checking that
// every entry can be stored and read back by cli-utils.
func encode(inv *Inventory) (*content, error) {
	ref := configMapRef(inv.Namespace, inv.Name())
	if inv.Namespace == "" {
		return nil, fmt.Errorf("inventory %s: empty namespace", ref)
	}
	if err := validateSync(inv.Sync); err != nil {
		return nil, fmt.Errorf("inventory %s: %w", ref, err)
	}
	id := ID(inv.Namespace, inv.Sync)
	if inv.ID != "" && inv.ID != id {
		return nil, fmt.Errorf("inventory %s: id %q is not the id of sync %s/%s, %q", ref, inv.ID, inv.Namespace, inv.Sync, id)
	}
	data := make(map[string]string, len(inv.Entries))
	byKey := make(map[string]Entry, len(inv.Entries))
	for k, e := range inv.Entries {
		if k != e.ID {
			return nil, fmt.Errorf("inventory %s: entry for %s is keyed %s", ref, contract.ObjectRef(e.ID), contract.ObjectRef(k))
		}
		key, err := dataKey(k)
		if err != nil {
			return nil, fmt.Errorf("inventory %s: object %s: %w", ref, contract.ObjectRef(k), err)
		}
		data[key] = ""
		byKey[key] = e
	}
	prov, err := encodeProvenance(byKey)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: encoding provenance: %w", ref, err)
	}
	c := &content{
		labels: map[string]string{
			contract.InventoryIDLabel: id,
			contract.ManagedByLabel:   contract.ManagedByValue,
			contract.SyncLabel:        inv.Sync,
		},
		annotations: map[string]string{},
		data:        data,
		provenance:  prov,
	}
	if inv.Revision != "" {
		c.annotations[contract.InventoryRevisionAnnotation] = inv.Revision
	}
	if at := formatTime(inv.AppliedAt); at != "" {
		c.annotations[contract.InventoryAppliedAtAnnotation] = at
	}
	return c, nil
}

// dataKey returns an object's data key, checking that it is a valid
// ConfigMap key and that cli-utils parses it back to the same object.
func dataKey(id object.ObjMetadata) (string, error) {
	if id.Name == "" || id.GroupKind.Kind == "" {
		return "", fmt.Errorf("an inventory entry needs a kind and a name")
	}
	key := id.String()
	if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
		return "", fmt.Errorf("inventory key %q: %s", key, strings.Join(errs, "; "))
	}
	back, err := object.ParseObjMetadata(key)
	if err != nil {
		return "", fmt.Errorf("inventory key %q: %w", key, err)
	}
	if back != id {
		return "", fmt.Errorf("inventory key %q reads back as %s", key, contract.ObjectRef(back))
	}
	return key, nil
}

// storedContent extracts the content of a ConfigMap as it is stored.
func storedContent(cm *corev1.ConfigMap) (*content, error) {
	c := &content{
		labels:      map[string]string{},
		annotations: map[string]string{},
		data:        maps.Clone(cm.Data),
	}
	if c.data == nil {
		c.data = map[string]string{}
	}
	for _, k := range ownLabels() {
		if v, ok := cm.Labels[k]; ok {
			c.labels[k] = v
		}
	}
	for _, k := range ownAnnotations() {
		if v, ok := cm.Annotations[k]; ok {
			c.annotations[k] = v
		}
	}
	if gz, ok := cm.BinaryData[contract.InventoryProvenanceKey]; ok {
		raw, err := gunzipBytes(gz)
		if err != nil {
			return nil, err
		}
		c.provenance = raw
	}
	return c, nil
}

// decode reads the inventory of sync from its ConfigMap. The data keys are
// the object set (as for cli-utils); provenance fills in each entry, and
// provenance for an object missing from data is dropped (a cli-utils tool
// may have removed the object from the set). Every error names the
// ConfigMap.
func decode(cm *corev1.ConfigMap, namespace, sync string) (*Inventory, error) {
	ref := configMapRef(cm.Namespace, cm.Name)
	inv := New(namespace, sync)
	if got := cm.Labels[contract.InventoryIDLabel]; got != inv.ID {
		return nil, fmt.Errorf("%s is not the inventory of sync %s: label %s is %q, want %q", ref, sync, contract.InventoryIDLabel, got, inv.ID)
	}
	stored, err := storedContent(cm)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", ref, err)
	}
	for k := range cm.Data {
		id, err := object.ParseObjMetadata(k)
		if err != nil {
			return nil, fmt.Errorf("inventory %s: data key %q: %w", ref, k, err)
		}
		inv.Entries[id] = Entry{ID: id}
	}
	if stored.provenance != nil {
		prov, err := decodeProvenance(stored.provenance)
		if err != nil {
			return nil, fmt.Errorf("inventory %s: %w", ref, err)
		}
		for id := range inv.Entries {
			if e, ok := prov[id]; ok {
				inv.Entries[id] = e
			}
		}
	}
	inv.Revision = cm.Annotations[contract.InventoryRevisionAnnotation]
	if inv.AppliedAt, err = parseTime(cm.Annotations[contract.InventoryAppliedAtAnnotation]); err != nil {
		return nil, fmt.Errorf("inventory %s: annotation %s: %w", ref, contract.InventoryAppliedAtAnnotation, err)
	}
	inv.exists = true
	inv.live = cm
	inv.stored = stored
	return inv, nil
}

// configMap returns the ConfigMap to write for inv with content c: a copy
// of the live one when it exists (keeping its resourceVersion and whatever
// others added), else a new one.
func configMap(inv *Inventory, c *content) (*corev1.ConfigMap, error) {
	var cm *corev1.ConfigMap
	if inv.exists {
		if inv.live == nil || inv.live.ResourceVersion == "" {
			// Updating without a resourceVersion would overwrite blindly.
			return nil, fmt.Errorf("inventory %s: no resourceVersion to update with", configMapRef(inv.Namespace, inv.Name()))
		}
		cm = inv.live.DeepCopy()
		// Leave managedFields out of the request: the API server keeps and
		// updates them, and sending them back would double the request.
		cm.ManagedFields = nil
	} else {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: inv.Name(), Namespace: inv.Namespace}}
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	maps.Copy(cm.Labels, c.labels)
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	for _, k := range ownAnnotations() {
		if v, ok := c.annotations[k]; ok {
			cm.Annotations[k] = v
		} else {
			delete(cm.Annotations, k)
		}
	}
	cm.Data = maps.Clone(c.data)
	gz, err := gzipBytes(c.provenance)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: compressing provenance: %w", configMapRef(cm.Namespace, cm.Name), err)
	}
	if cm.BinaryData == nil {
		cm.BinaryData = map[string][]byte{}
	}
	cm.BinaryData[contract.InventoryProvenanceKey] = gz
	return cm, nil
}

// Size estimates the size in bytes of inv's ConfigMap once saved: its JSON
// without metadata.managedFields, plus room for the metadata the API server
// adds. Save refuses an inventory whose Size is over MaxBytes; metrics can
// report it.
func (inv *Inventory) Size() (int, error) {
	c, err := encode(inv)
	if err != nil {
		return 0, err
	}
	cm, err := configMap(inv, c)
	if err != nil {
		return 0, err
	}
	n, err := objectSize(cm)
	if err != nil {
		return 0, fmt.Errorf("inventory %s: measuring: %w", configMapRef(inv.Namespace, inv.Name()), err)
	}
	return n, nil
}

// serverMetadata is room for what the API server adds to a ConfigMap
// besides managedFields: uid, creationTimestamp, resourceVersion.
const serverMetadata = 1024

// objectSize estimates the size of cm as the API server stores it, leaving
// out managedFields (see MaxBytes): its JSON plus serverMetadata.
func objectSize(cm *corev1.ConfigMap) (int, error) {
	out := *cm
	out.ManagedFields = nil
	b, err := json.Marshal(&out)
	if err != nil {
		return 0, err
	}
	return len(b) + serverMetadata, nil
}
