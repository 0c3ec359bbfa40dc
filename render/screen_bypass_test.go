package render

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// lines returns n lines made by line(i), each with indent before it.
func lines(n int, indent string, line func(i int) string) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(indent)
		b.WriteString(line(i))
		b.WriteByte('\n')
	}
	return b.String()
}

// Every string kustomize parses as YAML and every generator input is
// screened: a mapping wider than MaxMappingKeys inside an inline patch, and
// a generator with more keys than that (from literals, files or env files)
// or more bytes than MaxGeneratorBytes, is refused before kustomize runs,
// naming the kustomization file and the entry. Each case takes kustomize
// seconds to minutes of CPU when it is not refused (or, for the bytes,
// renders a ConfigMap the API server refuses), so the builds run in a child
// with a CPU limit: without the screens they fail by that limit instead.
// The limit leaves room for the race detector on a loaded machine; the
// refusals take well under a second of CPU without it.
func TestScreenBypasses(t *testing.T) {
	wide := MaxMappingKeys * 2
	keys := func(indent string) string {
		return lines(wide, indent, func(i int) string { return fmt.Sprintf("k%06d: v", i) })
	}
	literals := func(indent string) string {
		return lines(wide, indent, func(i int) string { return fmt.Sprintf("- k%06d=v", i) })
	}
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n"
	env := lines(wide, "", func(i int) string { return fmt.Sprintf("K%06d=v", i) })
	big := strings.Repeat("x", MaxGeneratorBytes/4)
	for _, tc := range []struct {
		name  string
		files map[string]string
		file  string // the file the refusal names
		entry string // the start of the entry it names
		says  string
	}{
		{
			name:  "patches[].patch, strategic merge",
			files: map[string]string{"cm.yaml": cm, "kustomization.yaml": "resources: [cm.yaml]\npatches:\n- patch: |\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: cm}\n    data:\n" + keys("      ")},
			file:  "kustomization.yaml", entry: "patches[0].patch", says: fmt.Sprintf("%d keys", wide),
		},
		{
			name:  "patches[].patch, JSON 6902",
			files: map[string]string{"cm.yaml": cm, "kustomization.yaml": "resources: [cm.yaml]\npatches:\n- target: {kind: ConfigMap, name: cm}\n  patch: |\n    - op: add\n      path: /data\n      value:\n" + keys("        ")},
			file:  "kustomization.yaml", entry: "patches[0].patch", says: fmt.Sprintf("%d keys", wide),
		},
		{
			name:  "patchesStrategicMerge, inline",
			files: map[string]string{"cm.yaml": cm, "kustomization.yaml": "resources: [cm.yaml]\npatchesStrategicMerge:\n- |\n  apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: cm}\n  data:\n" + keys("    ")},
			file:  "kustomization.yaml", entry: "patchesStrategicMerge[0]", says: fmt.Sprintf("%d keys", wide),
		},
		{
			name:  "patchesJson6902, inline",
			files: map[string]string{"cm.yaml": cm, "kustomization.yaml": "resources: [cm.yaml]\npatchesJson6902:\n- target: {version: v1, kind: ConfigMap, name: cm}\n  patch: |\n    - op: add\n      path: /data\n      value:\n" + keys("        ")},
			file:  "kustomization.yaml", entry: "patchesJson6902[0].patch", says: fmt.Sprintf("%d keys", wide),
		},
		{
			name:  "a PatchTransformer's inline patch",
			files: map[string]string{"cm.yaml": cm, "kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- |\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata: {name: p}\n  patch: |\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: cm}\n    data:\n" + keys("      ")},
			file:  "kustomization.yaml", entry: "transformers[0]", says: fmt.Sprintf("%d keys", wide),
		},
		{
			name:  "configMapGenerator literals",
			files: map[string]string{"kustomization.yaml": "configMapGenerator:\n- name: g\n  literals:\n" + literals("  ")},
			file:  "kustomization.yaml", entry: `configMapGenerator[0] "g"`, says: fmt.Sprintf("%d keys", wide),
		},
		{
			name:  "secretGenerator literals",
			files: map[string]string{"kustomization.yaml": "secretGenerator:\n- name: g\n  literals:\n" + literals("  ")},
			file:  "kustomization.yaml", entry: `secretGenerator[0] "g"`, says: fmt.Sprintf("%d keys", wide),
		},
		{
			name:  "configMapGenerator envs",
			files: map[string]string{"e.env": env, "kustomization.yaml": "configMapGenerator:\n- name: g\n  envs: [e.env]\n"},
			file:  "kustomization.yaml", entry: `configMapGenerator[0] "g"`, says: fmt.Sprintf("%d keys", wide),
		},
		{
			name:  "configMapGenerator env (the old single field)",
			files: map[string]string{"e.env": "# comment\n\n" + env, "kustomization.yaml": "configMapGenerator:\n- name: g\n  env: e.env\n"},
			file:  "kustomization.yaml", entry: `configMapGenerator[0] "g"`, says: fmt.Sprintf("%d keys", wide),
		},
		{
			name:  "configMapGenerator files",
			files: map[string]string{"a.txt": "x", "kustomization.yaml": "configMapGenerator:\n- name: g\n  files:\n" + lines(wide, "  ", func(i int) string { return fmt.Sprintf("- k%06d=a.txt", i) })},
			file:  "kustomization.yaml", entry: `configMapGenerator[0] "g"`, says: fmt.Sprintf("%d keys", wide),
		},
		{
			name:  "an inline ConfigMapGenerator plugin's literals",
			files: map[string]string{"kustomization.yaml": "generators:\n- |\n  apiVersion: builtin\n  kind: ConfigMapGenerator\n  metadata: {name: g}\n  literals:\n" + literals("  ")},
			file:  "kustomization.yaml", entry: "generators[0] (inline)", says: fmt.Sprintf("%d keys", wide),
		},
		{
			name: "a ConfigMapGenerator plugin's env file, in a file of plugin configs",
			files: map[string]string{
				"gen/e.env":          env,
				"gen/g.yaml":         "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: g}\nenvs: [gen/e.env]\n",
				"kustomization.yaml": "generators: [gen/g.yaml]\n",
			},
			file: "kustomization.yaml", entry: `generators[0] "gen/g.yaml"`, says: fmt.Sprintf("%d keys", wide),
		},
		{
			name:  "generator bytes",
			files: map[string]string{"big.txt": big + big, "kustomization.yaml": "configMapGenerator:\n- name: g\n  files: [a=big.txt, b=big.txt, c=big.txt]\n"},
			file:  "kustomization.yaml", entry: `configMapGenerator[0] "g"`, says: fmt.Sprintf("more than %d", MaxGeneratorBytes),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iso := testIsolated(t)
			iso.CPULimit = 20 * time.Second
			_, err := iso.Build(context.Background(), Options{Root: tree{files: tc.files}.checkout(t)})
			var e *Error
			if !errors.Is(err, ErrTooLarge) || !errors.As(err, &e) || strings.Contains(err.Error(), "render CPU limit") {
				t.Fatalf("Isolated.Build: %v; want a screen's refusal", err)
			}
			if e.File != tc.file || !strings.HasPrefix(e.Entry, tc.entry) || !strings.Contains(e.Reason, tc.says) {
				t.Errorf("refusal %q names file %q, entry %q; want %q, %q..., saying %q", err, e.File, e.Entry, tc.file, tc.entry, tc.says)
			}
		})
	}
}

// Generators within the bounds render as before.
func TestGeneratorsWithinBounds(t *testing.T) {
	n := MaxMappingKeys / 4
	root := tree{files: map[string]string{
		"e.env": "# comment\n\n" + lines(n, "", func(i int) string { return fmt.Sprintf("E%06d=v", i) }),
		"a.txt": strings.Repeat("x", MaxGeneratorBytes/2),
		"kustomization.yaml": "configMapGenerator:\n- name: g\n  envs: [e.env]\n  files: [a.txt]\n  literals:\n" +
			lines(n, "  ", func(i int) string { return fmt.Sprintf("- l%06d=v", i) }),
	}}.checkout(t)
	rs, err := Build(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := unstructured.NestedMap(rs[0].Object.Object, "data")
	if len(rs) != 1 || len(data) != 2*n+1 {
		t.Fatalf("%d objects, %d keys; want 1 with %d", len(rs), len(data), 2*n+1)
	}
}
