package ui

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Masked replaces every value of a Secret on the page.
const Masked = "(masked)"

// lastAppliedAnnotation is kubectl's client-side apply record: on a Secret
// it holds the values in clear.
const lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// isSecret reports whether gk is the core Secret kind.
func isSecret(gk schema.GroupKind) bool { return gk.Group == "" && gk.Kind == "Secret" }

// maskSecret returns a deep copy of obj (an object of kind gk) in which,
// when gk is Secret, every value under data and stringData and kubectl's
// last-applied annotation are replaced by Masked; keys stay, so the page can
// say which keys exist. Other kinds are copied unchanged. The kind is given
// by the caller (from the inventory or the URL), never read from obj, so an
// object cannot talk its way out of masking.
func maskSecret(gk schema.GroupKind, obj map[string]any) map[string]any {
	if obj == nil {
		return nil
	}
	out := runtime.DeepCopyJSON(obj)
	if !isSecret(gk) {
		return out
	}
	for _, field := range []string{"data", "stringData"} {
		switch values := out[field].(type) {
		case map[string]any:
			for k := range values {
				values[k] = Masked
			}
		case nil:
		default:
			out[field] = Masked
		}
	}
	if meta, ok := out["metadata"].(map[string]any); ok {
		if ann, ok := meta["annotations"].(map[string]any); ok {
			if _, ok := ann[lastAppliedAnnotation]; ok {
				ann[lastAppliedAnnotation] = Masked
			}
		}
	}
	return out
}
