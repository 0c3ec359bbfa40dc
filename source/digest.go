package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// contentHash hashes a tree of files the way Local revisions and checkout
// digests are computed: for each entry in lexical path order (as
// filepath.WalkDir visits them), a kind ("d " directory, "l " symlink,
// "f " file, "x " executable file), the slash-separated path, a NUL and the
// SHA-256 of the content (of a symlink its target, of a directory nothing).
type contentHash struct{ h hash.Hash }

func newContentHash() *contentHash { return &contentHash{h: sha256.New()} }

func (c *contentHash) add(kind, rel string, sum []byte) {
	c.h.Write([]byte(kind))
	c.h.Write([]byte(rel))
	c.h.Write([]byte{0})
	c.h.Write(sum)
}

// sum is "sha256:<64 hex>".
func (c *contentHash) sum() string { return "sha256:" + hex.EncodeToString(c.h.Sum(nil)) }

// fileKind is the contentHash kind of a regular file with mode m.
func fileKind(m fs.FileMode) string {
	if m&0o111 != 0 {
		return "x "
	}
	return "f "
}

// digestTree hashes the tree under dir with contentHash, reading files as
// a stream. With sync set, it also calls sync on every file and directory
// (dir included) as it goes, so that one pass makes a written checkout
// durable and records what it holds.
func digestTree(ctx context.Context, dir string, sync func(*os.File) error) (string, error) {
	c := newContentHash()
	syncPath := func(p string) error {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return sync(f)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch mode := d.Type(); {
		case mode.IsDir():
			if p != dir {
				c.add("d ", rel, nil)
			}
			if sync != nil {
				return syncPath(p)
			}
			return nil
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256([]byte(target))
			c.add("l ", rel, sum[:])
			return nil
		case mode.IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			h := sha256.New()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
			if sync != nil {
				if err := sync(f); err != nil {
					return err
				}
			}
			c.add(fileKind(fi.Mode()), rel, h.Sum(nil))
			return nil
		default:
			return fmt.Errorf("%s: unsupported file type %s", p, mode)
		}
	})
	if err != nil {
		return "", err
	}
	return c.sum(), nil
}
