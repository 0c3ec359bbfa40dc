package render

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// tree is a checkout to build in a test: files by slash path, and symlinks
// by slash path to their targets (created at test time, never committed).
type tree struct {
	files map[string]string
	links map[string]string
}

// write creates the tree in dir.
func (tr tree) write(t *testing.T, dir string) {
	t.Helper()
	for name, content := range tr.files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range tr.links {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.FromSlash(target), p); err != nil {
			t.Fatal(err)
		}
	}
}

// checkout writes the tree into a new temporary folder and returns it.
func (tr tree) checkout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tr.write(t, dir)
	return dir
}

// kustomizeBuild is the reference: kustomize's library on the real file
// system, unconfined, with the options `kustomize build` uses by default.
func kustomizeBuild(t *testing.T, dir string) []byte {
	t.Helper()
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionUnspecified
	m, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("reference kustomize build of %s: %v", dir, err)
	}
	y, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// sources maps each object's name (kind/namespace/name) to its source.
func sources(rs []Resource) map[string]string {
	out := make(map[string]string, len(rs))
	for _, r := range rs {
		out[objectName(r.Object)] = r.Source
	}
	return out
}
