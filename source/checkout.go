package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Limits on names and paths, as Linux has them (NAME_MAX, PATH_MAX less
// the terminating NUL): a tree that needs more cannot be checked out, and
// bounding them bounds the memory of a walk (at most ~2,000 levels deep).
const (
	maxSymlinkTarget = 4095
	maxNameLen       = 255
	maxPathLen       = 4095
)

// limits bound one checkout.
type limits struct {
	maxSize  int64 // bytes of file content, symlink targets included
	maxFiles int   // entries: files, symlinks, directories and submodules
}

// objectSizer is the part of go-git's filesystem storage used to measure a
// tree without reading blobs.
type objectSizer interface {
	storer.EncodedObjectStorer
	EncodedObjectSize(plumbing.Hash) (int64, error)
}

// treeEntry is one file, symlink, directory or submodule of a tree walk.
type treeEntry struct {
	path string // slash-separated, relative to the root
	mode filemode.FileMode
	hash plumbing.Hash
	size int64 // blobs only
}

// treeStats is what a tree walk counted.
type treeStats struct {
	entries int   // files, symlinks, directories and submodules
	size    int64 // bytes of file content and symlink targets
}

// walkTree walks a tree depth first, each directory before its contents,
// and calls visit (when not nil) for every entry. It reads trees, never
// blobs: a blob's size comes from its header. Every entry counts against
// lim.maxFiles, directories and submodules included, and every blob
// against lim.maxSize; the walk fails with ErrTooLarge at the first entry
// over a limit and with ErrUnsafeTree at the first name that cannot be
// checked out safely, in both cases before visit sees that entry. Only the
// names on the current path are held, never a list of the tree.
func walkTree(ctx context.Context, st objectSizer, tree *object.Tree, lim limits, visit func(treeEntry) error) (treeStats, error) {
	var stats treeStats
	var walk func(t *object.Tree, dir string) error
	walk = func(t *object.Tree, dir string) error {
		for _, e := range t.Entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			raw := e.Name
			if dir != "" {
				raw = dir + "/" + e.Name
			}
			if !safeName(e.Name) {
				return fmt.Errorf("%w: path %q", ErrUnsafeTree, truncate(raw, 200))
			}
			if len(e.Name) > maxNameLen {
				return fmt.Errorf("%w: path %q has a name longer than %d bytes", ErrUnsafeTree, truncate(raw, 200), maxNameLen)
			}
			if len(raw) > maxPathLen {
				return fmt.Errorf("%w: path %q is longer than %d bytes", ErrUnsafeTree, truncate(raw, 200), maxPathLen)
			}
			stats.entries++
			if stats.entries > lim.maxFiles {
				return fmt.Errorf("%w: more than %d files and directories (MaxFiles)", ErrTooLarge, lim.maxFiles)
			}
			entry := treeEntry{path: raw, mode: e.Mode, hash: e.Hash}
			switch e.Mode {
			case filemode.Dir:
				sub, err := object.GetTree(st, e.Hash)
				if err != nil {
					return fmt.Errorf("reading tree %s: %w", raw, err)
				}
				if visit != nil {
					if err := visit(entry); err != nil {
						return err
					}
				}
				if err := walk(sub, raw); err != nil {
					return err
				}
				continue
			case filemode.Submodule:
				// Submodules are not fetched; an empty directory stands in,
				// as with git.
			case filemode.Regular, filemode.Deprecated, filemode.Executable, filemode.Symlink:
				n, err := st.EncodedObjectSize(e.Hash)
				if err != nil {
					return fmt.Errorf("reading %s: %w", raw, err)
				}
				if e.Mode == filemode.Symlink && n > maxSymlinkTarget {
					return fmt.Errorf("%w: symlink %q has a %d-byte target", ErrUnsafeTree, raw, n)
				}
				stats.size += n
				if stats.size > lim.maxSize {
					return fmt.Errorf("%w: more than %s of files (MaxSize)", ErrTooLarge, formatBytes(lim.maxSize))
				}
				entry.size = n
			default:
				// go-git maps every mode to one of the above when it
				// decodes a tree (as git does); this is a safety net.
				return fmt.Errorf("%w: %q has unsupported mode %o", ErrUnsafeTree, raw, uint32(e.Mode))
			}
			if visit != nil {
				if err := visit(entry); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(tree, ""); err != nil {
		return stats, err
	}
	return stats, nil
}

// measureTree checks a tree against the limits and its names for safety
// without writing or reading any file content (see walkTree).
func measureTree(ctx context.Context, st objectSizer, tree *object.Tree, lim limits) (treeStats, error) {
	return walkTree(ctx, st, tree, lim, nil)
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// safeName reports whether a tree entry name can be created inside the
// checkout and nowhere else.
func safeName(name string) bool {
	return name != "" && name != "." && name != ".." &&
		!strings.EqualFold(name, ".git") &&
		!strings.ContainsAny(name, "/\x00")
}

// writeTree writes a tree into dst, which must be empty, walking it again
// with the same checks as measureTree (call that first, so that nothing is
// written for a tree over the limits). Symlinks are created as symlinks
// and never followed; every path is resolved inside dst (os.Root), so
// nothing is written outside it. File contents are streamed.
func writeTree(ctx context.Context, st objectSizer, tree *object.Tree, lim limits, dst string) (treeStats, error) {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return treeStats{}, err
	}
	defer root.Close()
	return walkTree(ctx, st, tree, lim, func(e treeEntry) error {
		switch e.mode {
		case filemode.Dir, filemode.Submodule:
			if err := root.Mkdir(e.path, 0o755); err != nil {
				return fmt.Errorf("checking out %s: %w", e.path, err)
			}
		case filemode.Symlink:
			target, err := readBlob(st, e.hash, e.size)
			if err != nil {
				return fmt.Errorf("checking out %s: %w", e.path, err)
			}
			if strings.ContainsRune(string(target), 0) || len(target) == 0 {
				return fmt.Errorf("%w: symlink %q has an invalid target", ErrUnsafeTree, e.path)
			}
			if err := root.Symlink(string(target), e.path); err != nil {
				return fmt.Errorf("checking out %s: %w", e.path, err)
			}
		default:
			perm := os.FileMode(0o644)
			if e.mode == filemode.Executable {
				perm = 0o755
			}
			if err := writeBlob(st, e, root, perm); err != nil {
				return fmt.Errorf("checking out %s: %w", e.path, err)
			}
		}
		return nil
	})
}

func readBlob(st storer.EncodedObjectStorer, h plumbing.Hash, size int64) ([]byte, error) {
	o, err := st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("blob %s has %d bytes, its header says %d", h, len(b), size)
	}
	return b, nil
}

func writeBlob(st storer.EncodedObjectStorer, e treeEntry, root *os.Root, perm os.FileMode) (err error) {
	o, err := st.EncodedObject(plumbing.BlobObject, e.hash)
	if err != nil {
		return err
	}
	r, err := o.Reader()
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := root.OpenFile(e.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	n, err := io.Copy(f, io.LimitReader(r, e.size+1))
	if err != nil {
		return err
	}
	if n != e.size {
		return fmt.Errorf("blob %s has %d bytes, its header says %d", e.hash, n, e.size)
	}
	return nil
}

// peelCommit follows tags from h to a commit.
func peelCommit(st storer.EncodedObjectStorer, h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		o, err := st.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", h, err)
		}
		switch o.Type() {
		case plumbing.CommitObject:
			return object.DecodeCommit(st, o)
		case plumbing.TagObject:
			tag, err := object.DecodeTag(st, o)
			if err != nil {
				return nil, fmt.Errorf("tag %s: %w", h, err)
			}
			h = tag.Target
		default:
			return nil, fmt.Errorf("object %s is a %s, not a commit", h, o.Type())
		}
	}
	return nil, errors.New("tag chain longer than 10")
}

// commitInfo is the artifact's view of a commit.
func commitInfo(c *object.Commit) Commit {
	subject, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	return Commit{
		Hash:    c.Hash.String(),
		Author:  strings.TrimSpace(fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email)),
		Subject: strings.TrimSpace(subject),
		Time:    c.Author.When,
	}
}

func formatBytes(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size {
			v := strconv.FormatFloat(float64(n)/float64(u.size), 'f', 2, 64)
			v = strings.TrimRight(strings.TrimRight(v, "0"), ".")
			return v + " " + u.name
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
