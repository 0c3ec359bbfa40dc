package sync

import (
	"encoding/json"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
)

// adjustForAutoscalers keeps tether from fighting an autoscaler over
// spec.replicas: a HorizontalPodAutoscaler in the same revision, or any
// autoscaler outside git (an HPA someone created, KEDA's) whose writes the
// live object shows (see scaledByAutoscaler).
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
	for _, c := range changes {
		c.autoscaled = targets[c.ID]
		fitReplicas(c)
	}
}

// fitReplicas applies the rule of adjustForAutoscalers to one change,
// against its Live object (nil: a new object keeps its replicas): when an
// autoscaler in the revision targets it, or when an autoscaler outside git
// owns its spec.replicas.
func fitReplicas(c *Change) {
	if c.Live == nil || !c.autoscaled && !scaledByAutoscaler(c.Live) {
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

// scaledByAutoscaler reports whether an autoscaler owns spec.replicas of
// obj: a field manager that wrote it through the scale subresource with a
// plain update and is not a kubectl command. That is how autoscalers
// write, whether git has them or not: Kubernetes' HorizontalPodAutoscaler
// controller as kube-controller-manager (Update, scale), KEDA through the
// HPA it creates, others under their own names. `kubectl scale` writes the
// same way as kubectl (Update, scale), but that is a person changing the
// object by hand: drift, not an autoscaler.
func scaledByAutoscaler(obj *unstructured.Unstructured) bool {
	for _, mf := range obj.GetManagedFields() {
		if mf.Subresource == "scale" && mf.Operation == metav1.ManagedFieldsOperationUpdate &&
			!isKubectlCommand(mf.Manager) && fieldsHave(mf.FieldsV1, "f:spec", "f:replicas") {
			return true
		}
	}
	return false
}

// isKubectlCommand reports whether a field manager is kubectl: its
// commands write as "kubectl" (the name it was run as: kubectl.exe,
// kubectl1.35) or "kubectl-NAME" (kubectl-edit, kubectl-set, ...).
func isKubectlCommand(manager string) bool {
	return strings.HasPrefix(manager, "kubectl")
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
		if mf.Manager == manager && mf.Operation == metav1.ManagedFieldsOperationApply && mf.Subresource == "" && fieldsHave(mf.FieldsV1, path...) {
			return true
		}
	}
	return false
}

// fieldsHave reports whether a managedFields entry's field set holds the
// field at path (in the "f:" notation).
func fieldsHave(fields *metav1.FieldsV1, path ...string) bool {
	if fields == nil {
		return false
	}
	var node map[string]any
	if err := json.Unmarshal(fields.Raw, &node); err != nil {
		return false
	}
	for _, p := range path {
		next, ok := node[p].(map[string]any)
		if !ok {
			return false
		}
		node = next
	}
	return true
}
