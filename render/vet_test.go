package render

import (
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/provider"
	"sigs.k8s.io/kustomize/api/resmap"
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

func TestBuiltinPaths(t *testing.T) {
	v := &vetter{b: &build{rmf: resmap.NewFactory(provider.NewDepProvider().GetResourceFactory())}}
	tests := []struct {
		name, kind, config string
		want               []string // field=path
		unknown            bool
	}{
		{name: "patch transformer", kind: "PatchTransformer", config: "path: p.yaml\ntarget: {kind: x}\n", want: []string{"path=p.yaml"}},
		{name: "keys match as encoding/json matches them", kind: "PatchTransformer", config: "Path: p.yaml\n", want: []string{"path=p.yaml"}},
		{name: "upper case", kind: "PatchJson6902Transformer", config: "PATH: http://example.com/p\n", want: []string{"path=http://example.com/p"}},
		{name: "strategic merge paths and inline patches", kind: "PatchStrategicMergeTransformer", config: "paths: [a.yaml, \"apiVersion: v1\\nkind: X\\nmetadata: {name: x}\\n\"]\n", want: []string{"paths[0]=a.yaml"}},
		{name: "generator sources", kind: "ConfigMapGenerator", config: "files: [k=f.txt, g.txt, a=b=c]\nEnvs: [e.env]\nenv: old.env\nliterals: [x=y]\n",
			want: []string{"files[0]=f.txt", "files[1]=g.txt", "files[2]=a=b=c", "envs[0]=e.env", "env=old.env"}},
		{name: "secret generator", kind: "SecretGenerator", config: "fILES: [id_rsa]\n", want: []string{"files[0]=id_rsa"}},
		{name: "replacements", kind: "ReplacementTransformer", config: "replacements: [{path: r.yaml}, {source: {fieldPath: a.b}}]\n", want: []string{"replacements[0].path=r.yaml"}},
		{name: "value add target file", kind: "ValueAddTransformer", config: "value: x\nTargetFilePath: t.yaml\n", want: []string{"targetFilePath=t.yaml"}},
		{name: "an annotation called path is not a file", kind: "AnnotationsTransformer", config: "annotations: {path: https://example.com}\nfieldSpecs: [{path: metadata/annotations}]\n"},
		{name: "a kind this kustomize does not have", kind: "FutureTransformer", config: "path: x\n", unknown: true},
	}
	for _, tt := range tests {
		paths, known, err := v.builtinPaths(tt.kind, []byte("apiVersion: builtin\nkind: "+tt.kind+"\nmetadata: {name: x}\n"+tt.config))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if known == tt.unknown {
			t.Errorf("%s: known = %v", tt.name, known)
		}
		var got []string
		for _, p := range paths {
			got = append(got, p.field+"="+p.path)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: builtinPaths = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLooksLikeURL(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"https://example.com/p.yaml", true},
		{" HTTP://EXAMPLE.COM ", true},
		{"https:example.com/x", true},
		{"key=http://example.com/f", true},
		{"git::https://example.com/r", true},
		{"git@github.com:org/repo.git", true},
		{"ssh://git@example.com/r", true},
		{"file:///etc/passwd", true},
		{"sa@project.iam.gserviceaccount.com", false},
		{"github.com/org/image", false},
		{"registry.example.com:5000/web", false},
		{"metadata/annotations", false},
		{"apiVersion: v1\nkind: X\nmetadata: {annotations: {a: https://x}}", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := looksLikeURL(tt.in); got != tt.want {
			t.Errorf("looksLikeURL(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
