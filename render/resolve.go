package render

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
)

// linkReader is what resolving a path needs from the checkout; *os.Root
// provides it, and so does any fake in a test.
type linkReader interface {
	Lstat(name string) (fs.FileInfo, error)
	Readlink(name string) (string, error)
}

// maxLinks bounds the symlinks followed while resolving one path, as
// Linux's MAXSYMLINKS does; it also ends symlink loops.
const maxLinks = 40

// escapeError says that resolving a path left the checkout, and how.
type escapeError struct {
	path   string // the path being resolved
	link   string // the symlink that led out, "" when ".." alone did
	target string // that symlink's target
}

func (e *escapeError) Error() string { return ErrEscape.Error() + ": " + e.detail() }

// detail says how the path left the checkout.
func (e *escapeError) detail() string {
	switch {
	case e.link == "" && (path.IsAbs(e.path) || filepath.IsAbs(e.path)):
		return fmt.Sprintf("%q is an absolute path", e.path)
	case e.link == "":
		return fmt.Sprintf("it resolves to %q, above the checkout root", e.path)
	case filepath.IsAbs(e.target):
		return fmt.Sprintf("symlink %q points to absolute path %q (symlinks must be relative and stay inside the checkout)", e.link, e.target)
	default:
		return fmt.Sprintf("through symlink %q -> %q", e.link, e.target)
	}
}

func (e *escapeError) Unwrap() error { return ErrEscape }

// resolve returns rel (slash-separated, relative to the checkout root) with
// every symlink in it resolved, as filepath.EvalSymlinks would, but inside
// the checkout: ".." never goes above the root and a symlink may not point
// outside it or to an absolute path (an absolute target names the host's
// file system, not the checkout, which can live anywhere). The result is
// slash-separated and relative ("" is the root). A missing component gives
// an error that wraps fs.ErrNotExist.
//
// filepath.EvalSymlinks cannot be used because it resolves against the
// host's root and would happily follow a link out of the checkout; os.Root
// refuses such links when opening but does not say what a path resolves to,
// which kustomize needs (its loader compares resolved directories).
func resolve(fsys linkReader, rel string) (string, error) {
	if path.IsAbs(rel) || filepath.IsAbs(rel) {
		return "", &escapeError{path: rel}
	}
	var done []string
	todo := strings.Split(rel, "/")
	links := 0
	var lastLink, lastTarget string
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", &escapeError{path: rel, link: lastLink, target: lastTarget}
			}
			done = done[:len(done)-1]
			continue
		}
		cand := strings.Join(append(done[:len(done):len(done)], c), "/")
		fi, err := fsys.Lstat(filepath.FromSlash(cand))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c)
			continue
		}
		links++
		if links > maxLinks {
			return "", fmt.Errorf("resolving %q: too many levels of symbolic links", rel)
		}
		target, err := fsys.Readlink(filepath.FromSlash(cand))
		if err != nil {
			return "", err
		}
		lastLink, lastTarget = cand, target
		if filepath.IsAbs(target) {
			return "", &escapeError{path: rel, link: cand, target: target}
		}
		todo = append(strings.Split(filepath.ToSlash(target), "/"), todo...)
	}
	return strings.Join(done, "/"), nil
}

// cleanRel cleans a slash path relative to the checkout root and refuses one
// that is absolute or climbs above the root. It is purely lexical, like the
// joins kustomize does; resolve handles symlinks.
func cleanRel(p string) (string, error) {
	if path.IsAbs(p) || filepath.IsAbs(p) {
		return "", &escapeError{path: p}
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", &escapeError{path: p}
	}
	if c == "." {
		c = ""
	}
	return c, nil
}

// isEscape reports whether err says a path left the checkout.
func isEscape(err error) bool {
	return errors.Is(err, ErrEscape)
}
