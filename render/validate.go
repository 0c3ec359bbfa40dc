package render

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
)

// maxNameLength is the longest metadata.name any kind accepts (a DNS
// subdomain); kinds with stricter rules are left to the API server's
// dry-run.
const maxNameLength = 253

// objectName names an object in messages as kind/namespace/name, or
// kind/name when it has no namespace.
func objectName(u *unstructured.Unstructured) string {
	if u == nil {
		return "<nil>"
	}
	kind := u.GetKind()
	if kind == "" {
		kind = "<no kind>"
	}
	name := u.GetName()
	if name == "" {
		name = "<no name>"
	}
	if ns := u.GetNamespace(); ns != "" {
		return kind + "/" + ns + "/" + name
	}
	return kind + "/" + name
}

// objectProblems returns what is wrong with an object's identity: missing
// apiVersion, kind or name, a name that cannot be a path segment of the API
// (or is too long), a namespace that is not a DNS label.
func objectProblems(u *unstructured.Unstructured) []string {
	var problems []string
	if av := u.GetAPIVersion(); av == "" {
		problems = append(problems, "apiVersion is missing")
	} else if _, err := schema.ParseGroupVersion(av); err != nil {
		problems = append(problems, fmt.Sprintf("apiVersion %q is not group/version", av))
	}
	if u.GetKind() == "" {
		problems = append(problems, "kind is missing")
	}
	name := u.GetName()
	switch {
	case name == "" && u.GetGenerateName() != "":
		problems = append(problems, "metadata.name is missing (generateName is not enough: a sync needs a stable name to find the object again)")
	case name == "":
		problems = append(problems, "metadata.name is missing")
	case len(name) > maxNameLength:
		problems = append(problems, fmt.Sprintf("metadata.name is %d characters long, more than %d", len(name), maxNameLength))
	default:
		for _, msg := range path.ValidatePathSegmentName(name, false) {
			problems = append(problems, fmt.Sprintf("metadata.name %q: %s", name, msg))
		}
	}
	if ns := u.GetNamespace(); ns != "" {
		for _, msg := range validation.IsDNS1123Label(ns) {
			problems = append(problems, fmt.Sprintf("metadata.namespace %q: %s", ns, msg))
		}
	}
	return problems
}

// objectKey identifies an object for duplicate detection: API versions of
// the same group and kind are the same object.
type objectKey struct {
	group, kind, namespace, name string
}

// validate checks every object's identity and that no object comes twice.
// Errors name the file and the object.
func validate(rs []Resource) error {
	seen := make(map[objectKey]string, len(rs))
	for _, r := range rs {
		u := r.Object
		if problems := objectProblems(u); len(problems) > 0 {
			return refusal(r.Source, objectName(u), ErrInvalid, strings.Join(problems, "; "))
		}
		gv, _ := schema.ParseGroupVersion(u.GetAPIVersion())
		k := objectKey{group: gv.Group, kind: u.GetKind(), namespace: u.GetNamespace(), name: u.GetName()}
		if first, ok := seen[k]; ok {
			return refusal(r.Source, objectName(u), ErrDuplicate, "the same object also comes from "+first)
		}
		seen[k] = r.Source
	}
	return nil
}
