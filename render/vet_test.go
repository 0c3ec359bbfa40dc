package render

import (
	"strings"
	"testing"
)

func TestIsRemote(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"https://github.com/org/repo", true},
		{"http://example.com/cm.yaml", true},
		{"HTTPS://EXAMPLE.COM/x.yaml", true},
		{"https:example.com/x.yaml", true},
		{"ssh://git@example.com/org/repo.git", true},
		{"file:///srv/repo.git", true},
		{"git::https://example.com/org/repo", true},
		{"git@github.com:org/repo.git", true},
		{"git@gitlab.example.com:org/repo//deploy?ref=v1", true},
		{"github.com/org/repo//deploy?ref=v1.0.0", true},
		{"GitHub.com:org/repo", true},
		{"s3://bucket/key", true},
		{"../base", false},
		{"base", false},
		{"deployment.yaml", false},
		{"./github.com.yaml", false},
		{"dir/with@sign.yaml", false},
		{"app.properties", false},
		{"key=value.txt", false},
	}
	for _, tt := range tests {
		if got := isRemote(tt.in); got != tt.want {
			t.Errorf("isRemote(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestJoinRel(t *testing.T) {
	tests := []struct {
		dir, p, want string
		escape       bool
	}{
		{dir: "overlays/dev", p: "../../base", want: "base"},
		{dir: "overlays/dev", p: "./hpa.yaml", want: "overlays/dev/hpa.yaml"},
		{dir: "", p: "a", want: "a"},
		{dir: "overlays/dev", p: "../../../x", escape: true},
		{dir: "a", p: "/etc/passwd", escape: true},
	}
	for _, tt := range tests {
		got, err := joinRel(tt.dir, tt.p)
		if tt.escape != isEscape(err) || (!tt.escape && (err != nil || got != tt.want)) {
			t.Errorf("joinRel(%q, %q) = %q, %v; want %q, escape %v", tt.dir, tt.p, got, err, tt.want, tt.escape)
		}
	}
}

func TestPluginPaths(t *testing.T) {
	tests := []struct {
		name string
		cfg  map[string]any
		want []string
	}{
		{name: "patch transformer", cfg: map[string]any{"path": "p.yaml", "target": map[string]any{"kind": "x"}}, want: []string{"p.yaml"}},
		{name: "strategic merge paths and inline patches", cfg: map[string]any{"paths": []any{"a.yaml", "apiVersion: v1\nkind: X\n"}}, want: []string{"a.yaml"}},
		{name: "generator sources", cfg: map[string]any{"files": []any{"k=f.txt", "g.txt", "a=b=c"}, "envs": []any{"e.env"}, "env": "old.env", "literals": []any{"x=y"}}, want: []string{"old.env", "f.txt", "g.txt", "a=b=c", "e.env"}},
		{name: "replacements", cfg: map[string]any{"replacements": []any{map[string]any{"path": "r.yaml"}, map[string]any{"source": map[string]any{"fieldPath": "a.b"}}}}, want: []string{"r.yaml"}},
		{name: "an annotation called path is not a file", cfg: map[string]any{"annotations": map[string]any{"path": "https://example.com"}, "fieldSpecs": []any{map[string]any{"path": "metadata/annotations"}}}},
	}
	for _, tt := range tests {
		var got []string
		for _, p := range pluginPaths(tt.cfg) {
			got = append(got, p.path)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: pluginPaths = %q, want %q", tt.name, got, tt.want)
		}
	}
}
