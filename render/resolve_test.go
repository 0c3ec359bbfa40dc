package render

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

func TestResolve(t *testing.T) {
	dir := tree{
		files: map[string]string{"co/a/b/file.yaml": "x: 1\n", "outside.yaml": "x: 1\n"},
		links: map[string]string{
			"co/a/sib":     "b",
			"co/a/chain":   "sib/file.yaml",
			"co/a/up":      "..",
			"co/a/out":     "../../outside.yaml",
			"co/a/abs":     "/etc/passwd",
			"co/a/loop":    "loop",
			"co/a/dangles": "nowhere",
		},
	}.checkout(t)
	root, err := os.OpenRoot(dir + "/co")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	tests := []struct {
		rel      string
		want     string
		escape   bool
		notExist bool
		fails    bool
	}{
		{rel: "", want: ""},
		{rel: ".", want: ""},
		{rel: "a/b/file.yaml", want: "a/b/file.yaml"},
		{rel: "a/./b//file.yaml", want: "a/b/file.yaml"},
		{rel: "a/b/../b/file.yaml", want: "a/b/file.yaml"},
		{rel: "a/sib/file.yaml", want: "a/b/file.yaml"},
		{rel: "a/chain", want: "a/b/file.yaml"},
		{rel: "a/up/a/b", want: "a/b"},
		{rel: "a/sib/..", want: "a"}, // ".." after a symlink goes to the parent of its target
		{rel: "../co/a", escape: true},
		{rel: "a/../../x", escape: true},
		{rel: "a/up/..", escape: true},
		{rel: "a/out", escape: true},
		{rel: "a/abs", escape: true},
		{rel: "/etc/passwd", escape: true},
		{rel: "a/loop", fails: true},
		{rel: "a/missing", notExist: true},
		{rel: "a/dangles", notExist: true},
	}
	for _, tt := range tests {
		got, err := resolve(root, tt.rel)
		switch {
		case tt.escape:
			if !errors.Is(err, ErrEscape) {
				t.Errorf("resolve(%q) = %q, %v; want ErrEscape", tt.rel, got, err)
			}
		case tt.notExist:
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("resolve(%q) = %q, %v; want fs.ErrNotExist", tt.rel, got, err)
			}
		case tt.fails:
			if err == nil || errors.Is(err, ErrEscape) {
				t.Errorf("resolve(%q) = %q, %v; want an error", tt.rel, got, err)
			}
		case err != nil || got != tt.want:
			t.Errorf("resolve(%q) = %q, %v; want %q", tt.rel, got, err, tt.want)
		}
	}
}

func TestCleanRel(t *testing.T) {
	tests := []struct {
		in, want string
		escape   bool
	}{
		{in: "", want: ""},
		{in: ".", want: ""},
		{in: "a/../b/", want: "b"},
		{in: "a/..", want: ""},
		{in: "..", escape: true},
		{in: "a/../../b", escape: true},
		{in: "/a", escape: true},
	}
	for _, tt := range tests {
		got, err := cleanRel(tt.in)
		if tt.escape != errors.Is(err, ErrEscape) || (!tt.escape && (err != nil || got != tt.want)) {
			t.Errorf("cleanRel(%q) = %q, %v; want %q, escape %v", tt.in, got, err, tt.want, tt.escape)
		}
	}
}
