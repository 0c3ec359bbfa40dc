package ui

import (
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/tether-gitops/tether/contract"
)

// Masked replaces every value of a Secret on the page.
const Masked = "(masked)"

// isSecret reports whether gk is the core Secret kind.
func isSecret(gk schema.GroupKind) bool { return gk.Group == "" && gk.Kind == "Secret" }

// provenanceAnnotations are the annotations tether itself writes on the
// objects it applies; their values (a file path, a revision, an inventory
// id) are shown on a Secret too. Every other annotation of a Secret may
// hold a value (kubectl's last-applied record does), so it is masked.
func provenanceAnnotations() []string {
	return []string{contract.SourceAnnotation, contract.RevisionAnnotation, contract.OwningInventoryAnnotation}
}

// maskSecret returns a deep copy of obj (an object of kind gk) in which,
// when gk is Secret, every value under data and stringData and every
// annotation value except tether's provenance annotations are replaced by
// Masked; keys stay, so the page can say which keys exist. Other kinds are
// copied unchanged. The kind is given by the caller (from the inventory or
// the URL), never read from obj, so an object cannot talk its way out of
// masking.
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
		switch ann := meta["annotations"].(type) {
		case map[string]any:
		next:
			for k := range ann {
				for _, keep := range provenanceAnnotations() {
					if k == keep {
						if _, isString := ann[k].(string); isString {
							continue next
						}
					}
				}
				ann[k] = Masked
			}
		case nil:
		default:
			meta["annotations"] = Masked
		}
	}
	return out
}

// maskDrift returns drift with the values of Secrets' fields masked, the
// field paths kept: whatever the agent masked already, no value of a
// Secret reaches the page.
func maskDrift(drift []Drift) []Drift {
	if drift == nil {
		return nil
	}
	out := make([]Drift, len(drift))
	for i, d := range drift {
		if isSecret(d.Object.GroupKind) && !d.Deleted {
			d.Git, d.Live = Masked, Masked
		}
		out[i] = d
	}
	return out
}
