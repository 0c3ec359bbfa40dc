package images

import (
	"fmt"
	"strings"

	"github.com/tether-gitops/tether/contract"
)

// Field is the part of an image reference a marked value holds.
type Field string

// The fields a marker can name.
const (
	// FieldImage is the whole reference, name and tag: reg/app:1.2.3.
	FieldImage Field = "image"
	// FieldTag is the tag alone (a kustomization's newTag).
	FieldTag Field = "tag"
	// FieldName is the repository alone (a kustomization's newName).
	FieldName Field = "name"
	// FieldDigest is the digest of the tag's manifest (a kustomization's
	// digest): sha256:...
	FieldDigest Field = "digest"
)

// Marker is a parsed `# tether:image POLICY[:FIELD] [pin]` comment.
type Marker struct {
	// Policy names the image policy.
	Policy string
	// Field is what the marked value holds.
	Field Field
	// Pin keeps the value as it is: tether reports it and never changes it.
	Pin bool
}

// ParseMarker reads a marker from a YAML comment. ok is false when the
// comment holds no marker; err says what is wrong with one that is
// malformed. The syntax, after the comment's '#':
//
//	tether:image POLICY            the whole image reference (name:tag)
//	tether:image POLICY:tag        the tag alone
//	tether:image POLICY:name       the repository alone
//	tether:image POLICY:digest     the digest of the tag's manifest
//	tether:image POLICY[:FIELD] pin    never changed (reported as pinned)
func ParseMarker(comment string) (m Marker, ok bool, err error) {
	i := strings.Index(comment, contract.ImageMarker)
	if i < 0 {
		return Marker{}, false, nil
	}
	rest := comment[i+len(contract.ImageMarker):]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return Marker{}, true, fmt.Errorf("malformed marker %q: want %q followed by a space and a policy name", strings.TrimSpace(comment), contract.ImageMarker)
	}
	words := strings.Fields(rest)
	if len(words) == 0 {
		return Marker{}, true, fmt.Errorf("malformed marker %q: no policy named (want %s POLICY[:tag|:name|:digest] [pin])", strings.TrimSpace(comment), contract.ImageMarker)
	}
	name, field, hasField := strings.Cut(words[0], ":")
	m = Marker{Policy: name, Field: FieldImage}
	if !isPolicyName(name) {
		return Marker{}, true, fmt.Errorf("malformed marker: %q is not a policy name (lower case letters, digits and '-')", name)
	}
	if hasField {
		switch Field(field) {
		case FieldTag, FieldName, FieldDigest:
			m.Field = Field(field)
		default:
			return Marker{}, true, fmt.Errorf("malformed marker: %q is not a field: want %s:tag, %s:name or %s:digest (or no field for the whole image)", words[0], name, name, name)
		}
	}
	for _, w := range words[1:] {
		if w != "pin" || m.Pin {
			return Marker{}, true, fmt.Errorf("malformed marker: unexpected %q after %q: the only option is pin", w, words[0])
		}
		m.Pin = true
	}
	return m, true, nil
}

// isPolicyName accepts DNS labels, what the configuration allows.
func isPolicyName(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// Value is what a marked value becomes for a tag of image: the whole
// reference, the tag, the name or the digest (the digest is passed in:
// only FieldDigest needs one, and only it makes a scan fetch a manifest).
func (m Marker) Value(image, tag, digest string) string {
	switch m.Field {
	case FieldTag:
		return tag
	case FieldName:
		return image
	case FieldDigest:
		return digest
	}
	return image + ":" + tag
}

// CurrentTag is the tag a marked value holds now ("" when the field holds
// none: a name or a digest, or an image without a tag).
func (m Marker) CurrentTag(value string) string {
	switch m.Field {
	case FieldTag:
		return value
	case FieldImage:
		_, tag := SplitImage(value)
		return tag
	}
	return ""
}

// SplitImage splits "reg:5000/app:1.2@sha256:..." into its name
// ("reg:5000/app") and tag ("1.2"); the digest is dropped.
func SplitImage(ref string) (name, tag string) {
	ref, _, _ = strings.Cut(ref, "@")
	slash := strings.LastIndex(ref, "/")
	colon := strings.LastIndex(ref, ":")
	if colon > slash {
		return ref[:colon], ref[colon+1:]
	}
	return ref, ""
}
