package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// maxSymlinkTarget is the longest symlink target checked out (PATH_MAX).
const maxSymlinkTarget = 4095

// limits bound one checkout.
type limits struct {
	maxSize  int64 // bytes of file content, symlink targets included
	maxFiles int   // files and symlinks
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

// measureTree walks a tree without reading file contents and returns its
// entries in walk order (directories before their contents). It fails with
// ErrTooLarge as soon as the limits are passed and with ErrUnsafeTree on a
// name that cannot be checked out safely.
func measureTree(ctx context.Context, st objectSizer, tree *object.Tree, lim limits) ([]treeEntry, error) {
	var (
		out   []treeEntry
		files int
		size  int64
	)
	var walk func(t *object.Tree, dir string) error
	walk = func(t *object.Tree, dir string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, e := range t.Entries {
			if !safeName(e.Name) {
				raw := e.Name
				if dir != "" {
					raw = dir + "/" + e.Name
				}
				return fmt.Errorf("%w: path %q", ErrUnsafeTree, raw)
			}
			p := path.Join(dir, e.Name)
			switch e.Mode {
			case filemode.Dir:
				out = append(out, treeEntry{path: p, mode: e.Mode, hash: e.Hash})
				sub, err := object.GetTree(st, e.Hash)
				if err != nil {
					return fmt.Errorf("reading tree %s: %w", p, err)
				}
				if err := walk(sub, p); err != nil {
					return err
				}
			case filemode.Submodule:
				// Submodules are not fetched; an empty directory stands in,
				// as with git.
				out = append(out, treeEntry{path: p, mode: e.Mode, hash: e.Hash})
			case filemode.Regular, filemode.Deprecated, filemode.Executable, filemode.Symlink:
				n, err := st.EncodedObjectSize(e.Hash)
				if err != nil {
					return fmt.Errorf("reading %s: %w", p, err)
				}
				if e.Mode == filemode.Symlink && n > maxSymlinkTarget {
					return fmt.Errorf("%w: symlink %q has a %d-byte target", ErrUnsafeTree, p, n)
				}
				files++
				size += n
				if files > lim.maxFiles {
					return fmt.Errorf("%w: more than %d files (MaxFiles)", ErrTooLarge, lim.maxFiles)
				}
				if size > lim.maxSize {
					return fmt.Errorf("%w: more than %s of files (MaxSize)", ErrTooLarge, formatBytes(lim.maxSize))
				}
				out = append(out, treeEntry{path: p, mode: e.Mode, hash: e.Hash, size: n})
			default:
				// go-git maps every mode to one of the above when it
				// decodes a tree (as git does); this is a safety net.
				return fmt.Errorf("%w: %q has unsupported mode %o", ErrUnsafeTree, p, uint32(e.Mode))
			}
		}
		return nil
	}
	if err := walk(tree, ""); err != nil {
		return nil, err
	}
	return out, nil
}

// safeName reports whether a tree entry name can be created inside the
// checkout and nowhere else.
func safeName(name string) bool {
	return name != "" && name != "." && name != ".." &&
		!strings.EqualFold(name, ".git") &&
		!strings.ContainsAny(name, "/\x00")
}

// writeTree writes measured entries into dst, which must be empty.
// Symlinks are created as symlinks and never followed; every path is
// resolved inside dst (os.Root), so nothing is written outside it.
func writeTree(ctx context.Context, st storer.EncodedObjectStorer, entries []treeEntry, dst string) error {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
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
	}
	return nil
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
