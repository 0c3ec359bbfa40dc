package render

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// vroot is where the checkout appears to kustomize. kustomize works with
// absolute paths; giving it a made-up root instead of the checkout's real
// location keeps host paths out of its error messages (they are rewritten
// to checkout-relative ones) and makes any path it builds outside the
// checkout obviously foreign. It must not be "/": kustomize's loader treats
// a root of "/" as containing every path.
const vroot = "/tether-checkout"

// vpath is the path kustomize sees for a resolved checkout path.
func vpath(rel string) string {
	if rel == "" {
		return vroot
	}
	return vroot + "/" + rel
}

// displayDir names a resolved folder in messages.
func displayDir(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// cleanMessage rewrites the sandbox's paths in a kustomize error message to
// checkout-relative ones.
func cleanMessage(msg string) string {
	msg = strings.ReplaceAll(msg, vroot+"/", "")
	return strings.ReplaceAll(msg, vroot, ".")
}

// errReadOnly answers every attempt to change the checkout.
var errReadOnly = errors.New("render: the checkout is read-only")

// sandbox is the file system kustomize builds on: the checkout, read-only,
// through build.readFile (so every read is confined, capped, screened and
// cached). It is a filesys.FileSystem; kustomize's loader uses CleanedAbs
// and ReadFile, and the rest is implemented for completeness.
type sandbox struct {
	b *build
	// track is the resolved path of the top kustomization file, served with
	// "originAnnotations" added to its buildMetadata; "" serves every file
	// as it is.
	track   string
	tracked []byte
	// refused is the first refusal: kustomize wraps (or, for kustomization
	// files, swallows) the errors of its file system, so the build reports
	// this one instead of what kustomize made of it.
	refused error
}

var _ filesys.FileSystem = (*sandbox)(nil)

func (s *sandbox) refuse(err error) error {
	if s.refused == nil {
		s.refused = err
	}
	return err
}

// rel maps a path kustomize uses back to a checkout path; anything outside
// the checkout is refused.
func (s *sandbox) rel(p string) (string, error) {
	c := filepath.ToSlash(filepath.Clean(p))
	if c == vroot {
		return "", nil
	}
	if !strings.HasPrefix(c, vroot+"/") {
		return "", s.refuse(refusal(p, "", ErrEscape, "kustomize asked for a path outside the checkout"))
	}
	return c[len(vroot)+1:], nil
}

// CleanedAbs resolves p (symlinks too, as kustomize's on-disk file system
// does) and splits it into its folder and, if p is a file, its name.
func (s *sandbox) CleanedAbs(p string) (filesys.ConfirmedDir, string, error) {
	rel, err := s.rel(p)
	if err != nil {
		return "", "", err
	}
	res, fi, err := s.b.stat(rel)
	if err != nil {
		if isEscape(err) {
			return "", "", s.refuse(pathError(rel, "", rel, err))
		}
		return "", "", fmt.Errorf("evalsymlink failure on '%s' : %w", p, err)
	}
	if fi.IsDir() {
		return filesys.ConfirmedDir(vpath(res)), "", nil
	}
	dir := path.Dir(res)
	if dir == "." {
		dir = ""
	}
	return filesys.ConfirmedDir(vpath(dir)), path.Base(res), nil
}

// ReadFile returns the content of the file at p. Kustomization files must
// have been vetted (read by the vetter before kustomize started): kustomize
// only reaches kustomizations through entries of kustomizations it read, so
// this holds unless vetting and kustomize disagree about a path, and then
// refusing is the safe answer.
func (s *sandbox) ReadFile(p string) ([]byte, error) {
	rel, err := s.rel(p)
	if err != nil {
		return nil, err
	}
	res, data, err := s.b.readFile(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
			return nil, err // kustomize probes for files; not a refusal
		}
		return nil, s.refuse(err)
	}
	if slices.Contains(konfig.RecognizedKustomizationFileNames(), path.Base(rel)) && !s.b.approved[res] {
		return nil, s.refuse(&Error{File: res, Reason: "kustomize asked for a kustomization file that was not vetted", Err: ErrEscape})
	}
	if res == s.track {
		if s.tracked == nil {
			if s.tracked, err = withOriginTracking(data); err != nil {
				return nil, s.refuse(&Error{File: res, Reason: "switching on origin tracking: " + err.Error(), Err: err})
			}
		}
		data = s.tracked
	}
	// kustomize gets its own copy: the cached bytes are what was vetted.
	return slices.Clone(data), nil
}

// withOriginTracking returns a kustomization with "originAnnotations" added
// to its buildMetadata, which makes kustomize record in an annotation on
// every object the file the object came from. Only the top kustomization
// needs it: kustomize gives every kustomization it reaches the
// buildMetadata of the top one.
func withOriginTracking(data []byte) ([]byte, error) {
	rn, err := kyaml.Parse(string(data))
	if err != nil {
		return nil, err
	}
	item := kyaml.NewScalarRNode("originAnnotations")
	field := rn.Field("buildMetadata")
	if field == nil || field.Value.YNode().Kind != kyaml.SequenceNode {
		// Absent or null (a non-list value fails vetting earlier).
		if err := rn.PipeE(kyaml.SetField("buildMetadata", kyaml.NewListRNode())); err != nil {
			return nil, err
		}
		field = rn.Field("buildMetadata")
	}
	field.Value.YNode().Content = append(field.Value.YNode().Content, item.YNode())
	s, err := rn.String()
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// IsDir reports whether p is a folder in the checkout.
func (s *sandbox) IsDir(p string) bool {
	rel, err := s.rel(p)
	if err != nil {
		return false
	}
	_, fi, err := s.b.stat(rel)
	return err == nil && fi.IsDir()
}

// Exists reports whether p exists in the checkout.
func (s *sandbox) Exists(p string) bool {
	rel, err := s.rel(p)
	if err != nil {
		return false
	}
	_, _, err = s.b.stat(rel)
	return err == nil
}

// ReadDir lists the names in folder p.
func (s *sandbox) ReadDir(p string) ([]string, error) {
	rel, err := s.rel(p)
	if err != nil {
		return nil, err
	}
	res, _, err := s.b.stat(rel)
	if err != nil {
		return nil, pathError(rel, "", rel, err)
	}
	entries, err := s.b.readDir(res)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

// Glob is not offered: kustomize's build does not glob, and globbing would
// walk the checkout outside the vetted paths.
func (s *sandbox) Glob(pattern string) ([]string, error) {
	return nil, fmt.Errorf("render: Glob(%q) is not supported in the sandbox", pattern)
}

// Walk is not offered, for the same reason as Glob.
func (s *sandbox) Walk(p string, _ filepath.WalkFunc) error {
	return fmt.Errorf("render: Walk(%q) is not supported in the sandbox", p)
}

// Open is not offered: kustomize's build reads files with ReadFile only.
func (s *sandbox) Open(p string) (filesys.File, error) {
	return nil, fmt.Errorf("render: Open(%q) is not supported in the sandbox", p)
}

// Create refuses: the checkout is read-only.
func (s *sandbox) Create(string) (filesys.File, error) { return nil, errReadOnly }

// Mkdir refuses: the checkout is read-only.
func (s *sandbox) Mkdir(string) error { return errReadOnly }

// MkdirAll refuses: the checkout is read-only.
func (s *sandbox) MkdirAll(string) error { return errReadOnly }

// RemoveAll refuses: the checkout is read-only.
func (s *sandbox) RemoveAll(string) error { return errReadOnly }

// WriteFile refuses: the checkout is read-only.
func (s *sandbox) WriteFile(string, []byte) error { return errReadOnly }
