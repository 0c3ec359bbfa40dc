package health

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// hpaHealth: kstatus calls every HorizontalPodAutoscaler Current, since it
// has no Ready condition. An autoscaler that cannot reach its target
// (AbleToScale=False, for example because the Deployment is missing) is
// broken, so that is Degraded. ScalingActive=False is not: it also means
// "no metrics yet" or "scaled to zero", which is normal on clusters without
// a metrics server.
func hpaHealth(obj *unstructured.Unstructured) (Result, bool) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		if m["type"] == "AbleToScale" && m["status"] == "False" {
			msg, _ := m["message"].(string)
			return Result{Status: Degraded, Message: "cannot scale its target: " + msg}, true
		}
	}
	return Result{}, false
}
