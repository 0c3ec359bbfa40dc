package source

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Ref says which revision of a repository to follow. Exactly one field is
// set; ParseRef builds one from the command line form.
type Ref struct {
	// Branch follows the tip of refs/heads/<Branch>.
	Branch string
	// Tag follows refs/tags/<Tag> (lightweight or annotated).
	Tag string
	// Commit pins a full 40-hex commit SHA. It never changes, so once
	// fetched, Fetch does not contact the remote again.
	Commit string
	// SemVer follows the highest tag that parses as a semantic version
	// (a leading "v" is allowed) and satisfies this range, e.g.
	// ">=1.2.0 <2.0.0". Pre-releases match only ranges that name one.
	SemVer string
	// Name is a ref name: a full one ("refs/pull/1/head") is used as is;
	// a short one ("main") is a branch if the remote has that branch, else
	// a tag.
	Name string
}

// ParseRef reads the command line form of a ref: "main" (a branch, else a
// tag), "refs/heads/x", "refs/tags/x", any other "refs/..." name, a full
// 40-hex commit SHA, or "semver:<range>" such as "semver:>=1.2.0 <2.0.0".
func ParseRef(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Ref{}, errors.New("empty ref: want a branch, tag, commit SHA, refs/... name or semver:<range>")
	case strings.HasPrefix(s, "semver:"):
		r := Ref{SemVer: strings.TrimSpace(strings.TrimPrefix(s, "semver:"))}
		return r, r.Validate()
	case strings.HasPrefix(s, "refs/heads/"):
		r := Ref{Branch: strings.TrimPrefix(s, "refs/heads/")}
		return r, r.Validate()
	case strings.HasPrefix(s, "refs/tags/"):
		r := Ref{Tag: strings.TrimPrefix(s, "refs/tags/")}
		return r, r.Validate()
	case isFullSHA(s):
		r := Ref{Commit: strings.ToLower(s)}
		return r, r.Validate()
	}
	r := Ref{Name: s}
	return r, r.Validate()
}

// Validate reports whether exactly one field is set and it is well formed.
func (r Ref) Validate() error {
	set := 0
	for _, f := range []string{r.Branch, r.Tag, r.Commit, r.SemVer, r.Name} {
		if f != "" {
			set++
		}
	}
	switch {
	case set == 0:
		return errors.New("no ref given: set one of branch, tag, commit, semver or name")
	case set > 1:
		return fmt.Errorf("ref %s sets more than one of branch, tag, commit, semver and name", r)
	case r.Commit != "" && !isFullSHA(r.Commit):
		return fmt.Errorf("commit %q is not a full 40-hex SHA-1", r.Commit)
	case r.SemVer != "":
		if _, err := semver.NewConstraint(r.SemVer); err != nil {
			return fmt.Errorf("semver range %q: %w", r.SemVer, err)
		}
		return nil
	}
	for _, name := range []string{r.Branch, r.Tag, r.Name} {
		if name != "" && !validRefName(name) {
			return fmt.Errorf("%q is not a valid git ref name", name)
		}
	}
	return nil
}

// String is the ref in ParseRef's form, for messages and logs.
func (r Ref) String() string {
	switch {
	case r.Branch != "":
		return "refs/heads/" + r.Branch
	case r.Tag != "":
		return "refs/tags/" + r.Tag
	case r.Commit != "":
		return r.Commit
	case r.SemVer != "":
		return "semver:" + r.SemVer
	}
	return r.Name
}

// describe names the ref for an error message: `branch "main"`.
func (r Ref) describe() string {
	switch {
	case r.Branch != "":
		return fmt.Sprintf("branch %q", r.Branch)
	case r.Tag != "":
		return fmt.Sprintf("tag %q", r.Tag)
	case r.Commit != "":
		return fmt.Sprintf("commit %s", r.Commit)
	case r.SemVer != "":
		return fmt.Sprintf("semver range %q", r.SemVer)
	}
	return fmt.Sprintf("ref %q", r.Name)
}

func isFullSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// validRefName applies the parts of git-check-ref-format that matter for
// names we put on the wire and in revisions.
func validRefName(s string) bool {
	if s == "" || s == "@" || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") ||
		strings.HasSuffix(s, ".") || strings.HasSuffix(s, ".lock") ||
		strings.Contains(s, "..") || strings.Contains(s, "//") || strings.Contains(s, "@{") {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(" ~^:?*[\\", c) {
			return false
		}
	}
	for _, part := range strings.Split(s, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	return true
}

// remoteRefs is what a ref listing says: full ref name → object id (hex),
// and for annotated tags, ref name → the commit the tag peels to.
type remoteRefs struct {
	refs   map[string]string
	peeled map[string]string
}

// target is a resolved ref: what to ask the server for and how to name it.
type target struct {
	// Name is the ref's name in the revision ("main", "v1.2.3",
	// "refs/pull/1/head"); empty for a commit.
	Name string
	// RefName is the full ref name ("refs/heads/main"); empty for a commit.
	RefName string
	// Object is the advertised object id to fetch: a commit, or the tag
	// object of an annotated tag.
	Object string
	// Commit is the commit Object peels to, when the listing says so
	// (empty when the server did not advertise the peeled value).
	Commit string
}

// resolve picks the object ref points at in a ref listing. It is pure: the
// same listing and ref give the same target.
func resolve(r Ref, rr remoteRefs) (target, error) {
	lookup := func(full, name string) (target, bool) {
		obj, ok := rr.refs[full]
		if !ok {
			return target{}, false
		}
		commit := rr.peeled[full]
		if commit == "" && !strings.HasPrefix(full, "refs/tags/") {
			commit = obj // branches point at commits
		}
		return target{Name: name, RefName: full, Object: obj, Commit: commit}, true
	}
	switch {
	case r.Branch != "":
		if t, ok := lookup("refs/heads/"+r.Branch, r.Branch); ok {
			return t, nil
		}
	case r.Tag != "":
		if t, ok := lookup("refs/tags/"+r.Tag, r.Tag); ok {
			return t, nil
		}
	case r.Commit != "":
		c := strings.ToLower(r.Commit)
		return target{Object: c, Commit: c}, nil
	case r.SemVer != "":
		tag, err := selectSemver(r.SemVer, tagNames(rr))
		if err != nil {
			return target{}, err
		}
		if tag == "" {
			return target{}, &kindError{kind: ErrRefNotFound,
				msg: fmt.Sprintf("no tag satisfies %s (%s)", r.describe(), summarizeRefs(rr))}
		}
		t, _ := lookup("refs/tags/"+tag, tag)
		return t, nil
	case strings.HasPrefix(r.Name, "refs/"):
		if t, ok := lookup(r.Name, shortRefName(r.Name)); ok {
			return t, nil
		}
	case r.Name != "":
		if t, ok := lookup("refs/heads/"+r.Name, r.Name); ok {
			return t, nil
		}
		if t, ok := lookup("refs/tags/"+r.Name, r.Name); ok {
			return t, nil
		}
	}
	return target{}, fmt.Errorf("%s %w on the remote (%s)", r.describe(), ErrRefNotFound, summarizeRefs(rr))
}

// shortRefName drops refs/heads/ and refs/tags/; other names stay whole.
func shortRefName(full string) string {
	for _, p := range []string{"refs/heads/", "refs/tags/"} {
		if strings.HasPrefix(full, p) {
			return strings.TrimPrefix(full, p)
		}
	}
	return full
}

func tagNames(rr remoteRefs) []string {
	var tags []string
	for name := range rr.refs {
		if t, ok := strings.CutPrefix(name, "refs/tags/"); ok {
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return tags
}

// summarizeRefs lists a few branches and tags for a "not found" message.
func summarizeRefs(rr remoteRefs) string {
	var heads, tags []string
	for name := range rr.refs {
		if h, ok := strings.CutPrefix(name, "refs/heads/"); ok {
			heads = append(heads, h)
		} else if t, ok := strings.CutPrefix(name, "refs/tags/"); ok {
			tags = append(tags, t)
		}
	}
	list := func(kind string, names []string) string {
		sort.Strings(names)
		if len(names) == 0 {
			return "no " + kind
		}
		more := ""
		if len(names) > 8 {
			more = fmt.Sprintf(" and %d more", len(names)-8)
			names = names[:8]
		}
		return kind + ": " + strings.Join(names, ", ") + more
	}
	return list("branches", heads) + "; " + list("tags", tags)
}

// selectSemver returns the tag with the highest version that satisfies the
// range, or "" when none does. Tags that are not versions are ignored. Two
// tags with the same precedence ("v1.2.3" and "1.2.3", or differing build
// metadata) are ordered by name, the greater name winning, so the choice
// does not depend on listing order.
func selectSemver(rng string, tags []string) (string, error) {
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return "", fmt.Errorf("semver range %q: %w", rng, err)
	}
	var best *semver.Version
	bestTag := ""
	for _, tag := range tags {
		v, err := semver.NewVersion(tag)
		if err != nil || !c.Check(v) {
			continue
		}
		if best == nil {
			best, bestTag = v, tag
			continue
		}
		switch cmp := v.Compare(best); {
		case cmp > 0, cmp == 0 && tag > bestTag:
			best, bestTag = v, tag
		}
	}
	return bestTag, nil
}

// FormatRevision is the revision string of a commit reached through a ref:
// "<name>@sha1:<40 hex>", or "sha1:<40 hex>" when name is empty (a pinned
// commit).
func FormatRevision(name, commit string) string {
	if name == "" {
		return "sha1:" + commit
	}
	return name + "@sha1:" + commit
}
