package sync

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
)

// adjustForAutoscalers keeps tether from fighting a HorizontalPodAutoscaler
// over spec.replicas of a workload in the same revision.
//
// On creation the manifest's replicas are applied once. After that, while
// tether still owns spec.replicas (nobody else changed it), the applied value
// is the live one, so ownership stays and nothing is written; once the
// autoscaler has changed it (taking ownership through the scale
// subresource), spec.replicas is left out of tether's apply altogether.
// Dropping it while tether still owned it would make the API server remove
// the field and reset the workload to one replica.
func adjustForAutoscalers(changes, all []*Change) {
	targets := autoscaled(all)
	if len(targets) == 0 {
		return
	}
	for _, c := range changes {
		c.autoscaled = targets[c.ID]
		fitReplicas(c)
	}
}

// fitReplicas applies the rule of adjustForAutoscalers to one autoscaled
// change, against its Live object (nil: a new object keeps its replicas).
func fitReplicas(c *Change) {
	if !c.autoscaled || c.Live == nil {
		return
	}
	if ownsField(c.Live, contract.FieldManager, "f:spec", "f:replicas") {
		if live, found, _ := unstructured.NestedFieldCopy(c.Live.Object, "spec", "replicas"); found {
			_ = unstructured.SetNestedField(c.Desired.Object, live, "spec", "replicas")
			return
		}
	}
	unstructured.RemoveNestedField(c.Desired.Object, "spec", "replicas")
}

// autoscaled returns the workloads that autoscalers in the set scale.
func autoscaled(all []*Change) map[object.ObjMetadata]bool {
	out := map[object.ObjMetadata]bool{}
	for _, c := range all {
		if c.gvk.Group != "autoscaling" || c.gvk.Kind != "HorizontalPodAutoscaler" {
			continue
		}
		apiVersion, _, _ := unstructured.NestedString(c.Desired.Object, "spec", "scaleTargetRef", "apiVersion")
		kind, _, _ := unstructured.NestedString(c.Desired.Object, "spec", "scaleTargetRef", "kind")
		name, _, _ := unstructured.NestedString(c.Desired.Object, "spec", "scaleTargetRef", "name")
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err != nil || name == "" {
			continue
		}
		switch kind {
		case "Deployment", "StatefulSet", "ReplicaSet":
		default:
			continue
		}
		out[object.ObjMetadata{Namespace: c.ID.Namespace, Name: name, GroupKind: schema.GroupKind{Group: gv.Group, Kind: kind}}] = true
	}
	return out
}

// ownsField reports whether manager's apply owns the field at path (in
// managedFields' "f:" notation) of obj.
func ownsField(obj *unstructured.Unstructured, manager string, path ...string) bool {
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager != manager || mf.Operation != metav1.ManagedFieldsOperationApply || mf.FieldsV1 == nil || mf.Subresource != "" {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal(mf.FieldsV1.Raw, &fields); err != nil {
			continue
		}
		node := fields
		found := true
		for _, p := range path {
			next, ok := node[p].(map[string]any)
			if !ok {
				found = false
				break
			}
			node = next
		}
		if found {
			return true
		}
	}
	return false
}
