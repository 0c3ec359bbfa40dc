package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// treeBuilder writes blobs and trees into an in-memory object store, in
// whatever order and shape the test wants (including ones git would never
// write, as a hostile server might send).
type treeBuilder struct {
	t  *testing.T
	st *memory.Storage
}

func (b treeBuilder) blob(content string) plumbing.Hash {
	o := b.st.NewEncodedObject()
	o.SetType(plumbing.BlobObject)
	w, err := o.Writer()
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := w.Write([]byte(content)); err != nil {
		b.t.Fatal(err)
	}
	_ = w.Close()
	h, err := b.st.SetEncodedObject(o)
	if err != nil {
		b.t.Fatal(err)
	}
	return h
}

func (b treeBuilder) tree(entries ...object.TreeEntry) *object.Tree {
	sort.Sort(object.TreeEntrySorter(entries))
	o := b.st.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(o); err != nil {
		b.t.Fatal(err)
	}
	h, err := b.st.SetEncodedObject(o)
	if err != nil {
		b.t.Fatal(err)
	}
	tree, err := object.GetTree(b.st, h)
	if err != nil {
		b.t.Fatal(err)
	}
	return tree
}

func (b treeBuilder) file(name, content string) object.TreeEntry {
	return object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: b.blob(content)}
}

func (b treeBuilder) link(name, target string) object.TreeEntry {
	return object.TreeEntry{Name: name, Mode: filemode.Symlink, Hash: b.blob(target)}
}

func (b treeBuilder) dir(name string, entries ...object.TreeEntry) object.TreeEntry {
	return object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: b.tree(entries...).Hash}
}

func checkoutTree(t *testing.T, st *memory.Storage, tree *object.Tree, lim limits) (string, error) {
	t.Helper()
	if _, err := measureTree(context.Background(), st, tree, lim); err != nil {
		return "", err
	}
	dst := filepath.Join(t.TempDir(), "checkout")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := writeTree(context.Background(), st, tree, lim, dst)
	return dst, err
}

// Files, an executable, a sub-folder, a submodule and symlinks (inside,
// outside, absolute, dangling) are checked out as they are in the tree;
// symlinks stay symlinks and are never followed.
func TestCheckoutTree(t *testing.T) {
	b := treeBuilder{t, memory.NewStorage()}
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 10000)), 0o600); err != nil {
		t.Fatal(err)
	}
	tree := b.tree(
		b.file("a.yaml", "a: 1\n"),
		b.dir("base", b.file("kustomization.yaml", "resources: []\n"), b.link("up", "../a.yaml")),
		object.TreeEntry{Name: "run.sh", Mode: filemode.Executable, Hash: b.blob("#!/bin/sh\n")},
		b.link("escape", "../../../../../../etc/passwd"),
		b.link("absolute", secret),
		b.link("dangling", "nowhere"),
		object.TreeEntry{Name: "sub", Mode: filemode.Submodule, Hash: plumbing.NewHash(strings.Repeat("5", 40))},
	)
	// The cap counts what the tree holds: the symlink to a 10000-byte file
	// costs its target's length, not the file's size.
	dst, err := checkoutTree(t, b.st, tree, limits{maxSize: 200, maxFiles: 10})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a.yaml": "a: 1\n", "base/kustomization.yaml": "resources: []\n", "run.sh": "#!/bin/sh\n"} {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("run.sh is not executable: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "a.yaml")); err != nil || fi.Mode().Perm()&0o111 != 0 {
		t.Errorf("a.yaml is executable: %v %v", fi.Mode(), err)
	}
	for name, target := range map[string]string{"base/up": "../a.yaml", "escape": "../../../../../../etc/passwd", "absolute": secret, "dangling": "nowhere"} {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is not a symlink: %v %v", name, fi, err)
			continue
		}
		if got, _ := os.Readlink(filepath.Join(dst, name)); got != target {
			t.Errorf("%s -> %q, want %q", name, got, target)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "sub")); err != nil || !fi.IsDir() {
		t.Errorf("submodule placeholder: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dst, ".git")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".git in the checkout: %v", err)
	}
}

func TestCheckoutLimits(t *testing.T) {
	b := treeBuilder{t, memory.NewStorage()}
	tree := b.tree(b.file("a", "12345"), b.dir("d", b.file("b", "67890"), b.link("l", "a")))
	for _, tc := range []struct {
		lim  limits
		want string
	}{
		{limits{maxSize: 11, maxFiles: 4}, ""},
		{limits{maxSize: 10, maxFiles: 4}, "more than 10 bytes of files (MaxSize)"},
		{limits{maxSize: 100, maxFiles: 3}, "more than 3 files and directories (MaxFiles)"},
	} {
		_, err := checkoutTree(t, b.st, tree, tc.lim)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.lim, err)
			}
			continue
		}
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrTooLarge %q", tc.lim, err, tc.want)
		}
	}
}

// Trees git would refuse (a hostile or broken server can send them) fail
// before anything is written, or at least never write outside the
// checkout.
func TestCheckoutUnsafeTrees(t *testing.T) {
	b := treeBuilder{t, memory.NewStorage()}
	outside := t.TempDir()
	lim := limits{maxSize: 1 << 20, maxFiles: 100}
	for _, tc := range []struct {
		name string
		tree *object.Tree
		want string
	}{
		{"dot-dot", b.tree(b.dir("..", b.file("x", "x"))), `path ".."`},
		{"dot", b.tree(b.file(".", "x")), `path "."`},
		{".git", b.tree(b.dir(".git", b.file("config", "x"))), `path ".git"`},
		{".GIT", b.tree(b.dir("sub", b.dir(".GIT", b.file("hooks", "x")))), `path "sub/.GIT"`},
		{"slash in a name", b.tree(b.file("a/../../x", "x")), `path "a/../../x"`},
		{"long symlink", b.tree(b.link("l", strings.Repeat("x", 5000))), "5000-byte target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkoutTree(t, b.st, tc.tree, lim)
			if !errors.Is(err, ErrUnsafeTree) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrUnsafeTree %q", err, tc.want)
			}
		})
	}
	// A symlink and a folder of the same name: writing through the link
	// would land outside. The folder cannot be created over the link, and
	// os.Root would refuse the escape anyway.
	tree := b.tree(b.link("d", outside), b.dir("d", b.file("pwned", "x")))
	if _, err := checkoutTree(t, b.st, tree, lim); err == nil {
		t.Error("duplicate name accepted")
	}
	if _, err := os.Stat(filepath.Join(outside, "pwned")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file was written outside the checkout: %v", err)
	}
	// The same with a relative link.
	tree = b.tree(b.link("e", "../../.."), b.dir("e", b.file("pwned2", "x")))
	dst, err := checkoutTree(t, b.st, tree, lim)
	if err == nil {
		t.Error("duplicate name accepted")
	}
	if dst != "" {
		if _, err := os.Stat(filepath.Join(dst, "../../..", "pwned2")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a file was written outside the checkout: %v", err)
		}
	}
}

func TestPeelCommit(t *testing.T) {
	st := memory.NewStorage()
	b := treeBuilder{t, st}
	tree := b.tree(b.file("a", "1"))
	c := &object.Commit{
		Author:   object.Signature{Name: "Ann", Email: "ann@example.com"},
		Message:  "  subject line\n\nbody\n",
		TreeHash: tree.Hash,
	}
	o := st.NewEncodedObject()
	if err := c.Encode(o); err != nil {
		t.Fatal(err)
	}
	ch, _ := st.SetEncodedObject(o)
	tag := &object.Tag{Name: "v1", Target: ch, TargetType: plumbing.CommitObject, Message: "t"}
	to := st.NewEncodedObject()
	if err := tag.Encode(to); err != nil {
		t.Fatal(err)
	}
	th, _ := st.SetEncodedObject(to)
	for _, h := range []plumbing.Hash{ch, th} {
		got, err := peelCommit(st, h)
		if err != nil || got.Hash != ch {
			t.Fatalf("peelCommit(%s) = %v, %v", h, got, err)
		}
		info := commitInfo(got)
		if info.Subject != "subject line" || info.Author != "Ann <ann@example.com>" || info.Hash != ch.String() {
			t.Errorf("commitInfo = %+v", info)
		}
	}
	if _, err := peelCommit(st, tree.Hash); err == nil || !strings.Contains(err.Error(), "not a commit") {
		t.Errorf("peeling a tree: %v", err)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		10: "10 bytes", 1 << 10: "1 KiB", 1536: "1.5 KiB", 256 << 20: "256 MiB",
		1<<20 + 1<<18 + 1<<20: "2.25 MiB", 3 << 30: "3 GiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
