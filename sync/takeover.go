package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/tether-gitops/tether/contract"
)

// needsTakeOver reports whether live was last written by client-side
// `kubectl apply`: it carries kubectl's last-applied annotation or field
// managers (contract.KubectlManagers). Server-side apply leaves such
// managers as co-owners of every field they applied, so a field later
// deleted from git would stay in the cluster, kept by kubectl's entry.
func needsTakeOver(live *unstructured.Unstructured) bool {
	if live == nil {
		return false
	}
	if _, ok := live.GetAnnotations()[contract.LastAppliedAnnotation]; ok {
		return true
	}
	for _, mf := range live.GetManagedFields() {
		if slices.Contains(contract.KubectlManagers(), mf.Manager) {
			return true
		}
	}
	return false
}

// jsonPatchOp is one RFC 6902 operation.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// takeOverPatch builds the JSON patch that takes live over from kubectl:
// kubectl's managed-field entries are merged into tether's apply entry
// (created when tether has none yet), and the last-applied annotation is
// removed. A test of the resourceVersion makes the patch fail rather than
// overwrite a change made since live was read.
func takeOverPatch(live *unstructured.Unstructured, apiVersion string) ([]byte, error) {
	var keep []metav1.ManagedFieldsEntry
	taken := &fieldpath.Set{}
	var tether *metav1.ManagedFieldsEntry
	for _, mf := range live.GetManagedFields() {
		switch {
		case slices.Contains(contract.KubectlManagers(), mf.Manager) && mf.Subresource == "":
			if mf.FieldsV1 == nil {
				continue
			}
			s := &fieldpath.Set{}
			if err := s.FromJSON(bytes.NewReader(mf.FieldsV1.Raw)); err != nil {
				return nil, fmt.Errorf("managedFields of %s: %w", mf.Manager, err)
			}
			taken = taken.Union(s)
		case mf.Manager == contract.FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply && mf.Subresource == "":
			e := mf
			tether = &e
		default:
			keep = append(keep, mf)
		}
	}
	// kubectl's record of its own annotation goes with the annotation.
	taken = taken.Difference(fieldpath.NewSet(fieldpath.MakePathOrDie("metadata", "annotations", contract.LastAppliedAnnotation)))
	if tether == nil {
		now := metav1.Now()
		tether = &metav1.ManagedFieldsEntry{Manager: contract.FieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: apiVersion, Time: &now, FieldsType: "FieldsV1"}
	} else if tether.FieldsV1 != nil {
		s := &fieldpath.Set{}
		if err := s.FromJSON(bytes.NewReader(tether.FieldsV1.Raw)); err != nil {
			return nil, fmt.Errorf("managedFields of %s: %w", contract.FieldManager, err)
		}
		taken = taken.Union(s)
	}
	raw, err := taken.ToJSON()
	if err != nil {
		return nil, err
	}
	tether.FieldsV1 = &metav1.FieldsV1{Raw: raw}
	keep = append(keep, *tether)
	ops := []jsonPatchOp{
		{Op: "test", Path: "/metadata/resourceVersion", Value: live.GetResourceVersion()},
		{Op: "replace", Path: "/metadata/managedFields", Value: keep},
	}
	if _, ok := live.GetAnnotations()[contract.LastAppliedAnnotation]; ok {
		ops = append(ops, jsonPatchOp{Op: "remove", Path: "/metadata/annotations/" + escapePointer(contract.LastAppliedAnnotation)})
	}
	return json.Marshal(ops)
}

// escapePointer escapes a JSON pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// takeOverTries bounds the attempts of a take-over whose object keeps
// changing under it (a controller updating status).
const takeOverTries = 3

// takeOver sends takeOverPatch for c. When the object changed since it was
// read (the patch's resourceVersion test fails), it reads it again and
// retries, a few times.
func (r *run) takeOver(ctx context.Context, c *Change) error {
	client := r.resource(c.GVR, c.ID.Namespace)
	live := c.Live
	for try := 1; ; try++ {
		patch, err := takeOverPatch(live, c.Desired.GetAPIVersion())
		if err != nil {
			return fmt.Errorf("taking over from kubectl: %w", err)
		}
		_, err = client.Patch(ctx, c.ID.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: contract.FieldManager})
		if err == nil {
			r.s.log.Info("took over from kubectl", "sync", r.opts.Name, "object", c.Ref())
			return nil
		}
		if try == takeOverTries || !(apierrors.IsInvalid(err) || apierrors.IsConflict(err)) {
			return fmt.Errorf("taking over from kubectl (removing its field managers and %s): %w", contract.LastAppliedAnnotation, apiMessage(err))
		}
		fresh, gerr := client.Get(ctx, c.ID.Name, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("taking over from kubectl: reading it again: %w", apiMessage(gerr))
		}
		if !needsTakeOver(fresh) {
			return nil
		}
		live = fresh
	}
}
