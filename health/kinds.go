package health

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// kindRule decides an object's health where kstatus alone is not enough;
// decided false falls through to kstatus.
type kindRule func(obj *unstructured.Unstructured) (r Result, decided bool)

// ruleFor returns the per-kind rule for a GroupKind (as
// schema.GroupKind.String prints it), if there is one. Each rule lives in a
// file of its own.
func ruleFor(groupKind string) kindRule {
	switch groupKind {
	case "HorizontalPodAutoscaler.autoscaling":
		return hpaHealth
	}
	return nil
}
