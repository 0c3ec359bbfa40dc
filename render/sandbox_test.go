package render

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/types"
)

func TestWithOriginTracking(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // buildMetadata after
	}{
		{name: "none", in: "resources: [a.yaml]\n", want: []string{"originAnnotations"}},
		{name: "other options", in: "resources: [a.yaml]\nbuildMetadata: [managedByLabel]\n", want: []string{"managedByLabel", "originAnnotations"}},
		{name: "block list", in: "buildMetadata:\n- transformerAnnotations\nresources:\n- a.yaml\n", want: []string{"transformerAnnotations", "originAnnotations"}},
		{name: "null", in: "resources: [a.yaml]\nbuildMetadata:\n", want: []string{"originAnnotations"}},
		{name: "JSON", in: `{"resources": ["a.yaml"], "namespace": "x"}`, want: []string{"originAnnotations"}},
		{name: "comments and a document marker", in: "# top\n---\nresources: [a.yaml] # here\n", want: []string{"originAnnotations"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := withOriginTracking([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			var before, after types.Kustomization
			if err := before.Unmarshal([]byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			if err := after.Unmarshal(out); err != nil {
				t.Fatalf("the result does not parse as a kustomization: %v\n%s", err, out)
			}
			if !slices.Equal(after.BuildMetadata, tt.want) {
				t.Errorf("buildMetadata %q, want %q", after.BuildMetadata, tt.want)
			}
			before.BuildMetadata, after.BuildMetadata = nil, nil
			if !reflect.DeepEqual(before, after) {
				t.Errorf("other fields changed: %+v -> %+v", before, after)
			}
		})
	}
}

func TestSandbox(t *testing.T) {
	dir := tree{
		files: map[string]string{
			"co/kustomization.yaml":     "resources: [a.yaml]\n",
			"co/a.yaml":                 configMap,
			"co/sub/kustomization.yaml": "resources: []\n",
			"outside.yaml":              configMap,
		},
		links: map[string]string{"co/out": "../outside.yaml", "co/sub/up": "..", "co/sub/esc": "../.."},
	}.checkout(t)
	root := filepath.Join(dir, "co")
	b, err := newBuild(context.Background(), Options{Root: root, MaxFileSize: DefaultMaxFileSize, MaxTotalSize: DefaultMaxTotalSize, MaxYAMLNodes: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if _, err := vet(b, ""); err != nil {
		t.Fatalf("vet: %v", err)
	}

	t.Run("refusals", func(t *testing.T) {
		for _, p := range []string{
			"/etc/passwd",
			vroot + "/../etc/passwd",
			vroot + "-other/a.yaml",
			vroot + "/out",
			vroot + "/sub/kustomization.yaml", // not vetted
		} {
			s := &sandbox{b: b}
			if _, err := s.ReadFile(p); err == nil || s.refused == nil || !errors.Is(s.refused, ErrEscape) {
				t.Errorf("ReadFile(%q): %v (refused %v), want a refusal", p, err, s.refused)
			}
		}
		s := &sandbox{b: b}
		if _, _, err := s.CleanedAbs(vroot + "/sub/esc"); err == nil || !errors.Is(s.refused, ErrEscape) {
			t.Errorf("CleanedAbs through a symlink above the root: %v", err)
		}
	})

	t.Run("missing files are not refusals", func(t *testing.T) {
		s := &sandbox{b: b}
		if _, err := s.ReadFile(vroot + "/kustomization.yml"); !errors.Is(err, fs.ErrNotExist) || s.refused != nil {
			t.Errorf("ReadFile of a missing file: %v (refused %v)", err, s.refused)
		}
	})

	t.Run("reads", func(t *testing.T) {
		s := &sandbox{b: b}
		data, err := s.ReadFile(vroot + "/a.yaml")
		if err != nil || string(data) != configMap {
			t.Fatalf("ReadFile: %q, %v", data, err)
		}
		data[0] = 'X' // kustomize's copy; the cache keeps what was vetted
		if again, _ := s.ReadFile(vroot + "/a.yaml"); string(again) != configMap {
			t.Errorf("the cached file changed: %q", again)
		}
		d, f, err := s.CleanedAbs(vroot + "/sub/up/a.yaml")
		if err != nil || d.String() != vroot || f != "a.yaml" {
			t.Errorf("CleanedAbs(file) = %q, %q, %v", d, f, err)
		}
		d, f, err = s.CleanedAbs(vroot + "/sub/up/sub")
		if err != nil || d.String() != vroot+"/sub" || f != "" {
			t.Errorf("CleanedAbs(folder) = %q, %q, %v", d, f, err)
		}
		if !s.IsDir(vroot+"/sub") || s.IsDir(vroot+"/a.yaml") || !s.Exists(vroot+"/a.yaml") || s.Exists(vroot+"/out") {
			t.Errorf("IsDir/Exists answer wrongly")
		}
		names, err := s.ReadDir(vroot + "/sub")
		if err != nil || !slices.Equal(names, []string{"esc", "kustomization.yaml", "up"}) {
			t.Errorf("ReadDir = %q, %v", names, err)
		}
	})

	t.Run("tracking", func(t *testing.T) {
		s := &sandbox{b: b, track: "kustomization.yaml"}
		data, err := s.ReadFile(vroot + "/kustomization.yaml")
		if err != nil || !strings.Contains(string(data), "originAnnotations") {
			t.Errorf("tracked kustomization: %q, %v", data, err)
		}
		plain := &sandbox{b: b}
		if data, _ := plain.ReadFile(vroot + "/kustomization.yaml"); strings.Contains(string(data), "originAnnotations") {
			t.Errorf("untracked sandbox serves %q", data)
		}
	})

	t.Run("read-only", func(t *testing.T) {
		s := &sandbox{b: b}
		_, cerr := s.Create(vroot + "/x")
		for _, err := range []error{cerr, s.Mkdir(vroot + "/x"), s.MkdirAll(vroot + "/x/y"), s.RemoveAll(vroot + "/sub"), s.WriteFile(vroot+"/a.yaml", nil)} {
			if !errors.Is(err, errReadOnly) {
				t.Errorf("write: %v, want errReadOnly", err)
			}
		}
		if _, err := s.Glob(vroot + "/*"); err == nil {
			t.Error("Glob succeeded")
		}
	})
}

func TestCleanMessage(t *testing.T) {
	in := "couldn't make target for path '" + vroot + "/base': file '" + vroot + "' missing"
	want := "couldn't make target for path 'base': file '.' missing"
	if got := cleanMessage(in); got != want {
		t.Errorf("cleanMessage = %q, want %q", got, want)
	}
}
