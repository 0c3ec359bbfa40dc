package render

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example.com/web:1.0.0
`

const configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  LEVEL: info
`

// layered is a tree that uses every way kustomize has of bringing an
// object in: resources in bases and overlays, a component, generators
// configured in a kustomization, in a component and in a generator config
// file, a merged generator, and a base reached through a symlinked folder.
var layered = tree{
	files: map[string]string{
		"app/base/kustomization.yaml": `resources:
- deployment.yaml
- settings.yaml
configMapGenerator:
- name: base-generated
  literals: [A=b]
`,
		"app/base/deployment.yaml": deployment,
		"app/base/settings.yaml":   configMap,
		"app/components/extra/kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources:
- extra.yaml
secretGenerator:
- name: extra-secret
  literals: [token=x]
`,
		"app/components/extra/extra.yaml": `apiVersion: v1
kind: ServiceAccount
metadata:
  name: extra
`,
		"shared/real/kustomization.yaml": "resources: [shared.yaml]\n",
		"shared/real/shared.yaml": `apiVersion: v1
kind: Service
metadata:
  name: shared
spec:
  ports: [{port: 80}]
`,
		"app/overlays/prod/kustomization.yaml": `namespace: prod
namePrefix: prod-
resources:
- namespace.yaml
- ../../base
- ../../links/shared
components:
- ../../components/extra
generators:
- generator.yaml
configMapGenerator:
- name: settings
  behavior: merge
  literals: [LEVEL=warn]
- name: overlay-generated
  files: [app.properties]
patches:
- path: replicas.yaml
images:
- name: registry.example.com/web
  newTag: 2.0.0
`,
		"app/overlays/prod/namespace.yaml": `apiVersion: v1
kind: Namespace
metadata:
  name: prod
`,
		"app/overlays/prod/generator.yaml": `apiVersion: builtin
kind: ConfigMapGenerator
metadata:
  name: from-plugin
literals: [k=v]
`,
		"app/overlays/prod/app.properties": "greeting=hello\n",
		"app/overlays/prod/replicas.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
`,
	},
	links: map[string]string{"app/links/shared": "../../shared/real"},
}

// TestBuildMatchesKustomize checks that Build's output is byte for byte
// what an unconfined kustomize build prints, and that every object is
// traced to the file it came from.
func TestBuildMatchesKustomize(t *testing.T) {
	examples, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		tree    *tree  // nil: the repository's examples folder
		path    string // relative to the checkout
		sources map[string]string
	}{
		{
			name: "example dev overlay",
			path: "webapp/overlays/dev",
			sources: map[string]string{
				"Namespace/webapp-dev":                      "webapp/overlays/dev/namespace.yaml",
				"ConfigMap/webapp-dev/webapp-config":        "webapp/base/configmap.yaml", // merged by the overlay's generator, defined in the base
				"Service/webapp-dev/webapp":                 "webapp/base/service.yaml",
				"Deployment/webapp-dev/webapp":              "webapp/base/deployment.yaml",
				"HorizontalPodAutoscaler/webapp-dev/webapp": "webapp/base/hpa.yaml",
				"Ingress/webapp-dev/webapp":                 "webapp/base/ingress.yaml",
			},
		},
		{
			name: "example prod overlay",
			path: "webapp/overlays/prod",
			sources: map[string]string{
				"Namespace/webapp-prod":                      "webapp/overlays/prod/namespace.yaml",
				"ConfigMap/webapp-prod/webapp-config":        "webapp/base/configmap.yaml",
				"Service/webapp-prod/webapp":                 "webapp/base/service.yaml",
				"Deployment/webapp-prod/webapp":              "webapp/base/deployment.yaml",
				"HorizontalPodAutoscaler/webapp-prod/webapp": "webapp/base/hpa.yaml",
				"Ingress/webapp-prod/webapp":                 "webapp/base/ingress.yaml",
			},
		},
		{
			name: "example base",
			path: "webapp/base",
			sources: map[string]string{
				"ConfigMap/webapp-config":        "webapp/base/configmap.yaml",
				"Service/webapp":                 "webapp/base/service.yaml",
				"Deployment/webapp":              "webapp/base/deployment.yaml",
				"HorizontalPodAutoscaler/webapp": "webapp/base/hpa.yaml",
				"Ingress/webapp":                 "webapp/base/ingress.yaml",
			},
		},
		{
			name: "bases, overlays, components, generators, symlinked base",
			tree: &layered,
			path: "app/overlays/prod",
			sources: map[string]string{
				"Namespace/prod":                                   "app/overlays/prod/namespace.yaml",
				"Deployment/prod/prod-web":                         "app/base/deployment.yaml",
				"ConfigMap/prod/prod-settings":                     "app/base/settings.yaml",
				"ConfigMap/prod/prod-base-generated-b9t2424hkf":    "app/base/kustomization.yaml",
				"Service/prod/prod-shared":                         "shared/real/shared.yaml", // through the symlink app/links/shared
				"ServiceAccount/prod/prod-extra":                   "app/components/extra/extra.yaml",
				"Secret/prod/prod-extra-secret-fd9k8cktfk":         "app/components/extra/kustomization.yaml",
				"ConfigMap/prod/prod-from-plugin-bdg947hgcc":       "app/overlays/prod/generator.yaml",
				"ConfigMap/prod/prod-overlay-generated-m7tbbtkd9d": "app/overlays/prod/kustomization.yaml",
			},
		},
		{
			name: "the user's kustomization asks for origin annotations itself",
			tree: &tree{files: map[string]string{
				"k/kustomization.yaml": "resources: [cm.yaml]\nbuildMetadata: [originAnnotations, transformerAnnotations]\ncommonLabels: {team: a}\n",
				"k/cm.yaml":            configMap,
			}},
			path:    "k",
			sources: map[string]string{"ConfigMap/settings": "k/cm.yaml"},
		},
		{
			name: "managedByLabel and sortOptions",
			tree: &tree{files: map[string]string{
				"kustomization.yaml": "resources: [cm.yaml, ns.yaml]\nbuildMetadata: [managedByLabel]\nsortOptions: {order: fifo}\n",
				"cm.yaml":            configMap,
				"ns.yaml":            "apiVersion: v1\nkind: Namespace\nmetadata: {name: z}\n",
			}},
			sources: map[string]string{"ConfigMap/settings": "cm.yaml", "Namespace/z": "ns.yaml"},
		},
		{
			name: "a kustomization that mentions the origin annotation is checked against a build without tracking",
			tree: &tree{files: map[string]string{
				"kustomization.yaml": "resources: [cm.yaml]\ncommonAnnotations: {note: \"see config.kubernetes.io/origin\"}\n",
				"cm.yaml":            configMap,
			}},
			sources: map[string]string{"ConfigMap/settings": "cm.yaml"},
		},
		{
			name: "a JSON6902 patch adds an annotation to an object without any",
			tree: &tree{files: map[string]string{
				"kustomization.yaml": `resources: [cm.yaml]
patches:
- target: {kind: ConfigMap}
  patch: |-
    - op: add
      path: /metadata/annotations/foo
      value: bar
`,
				"cm.yaml": configMap,
			}},
			sources: map[string]string{"ConfigMap/settings": "cm.yaml"},
		},
		{
			name: "built-in transformer configs in a file",
			tree: &tree{files: map[string]string{
				"kustomization.yaml": "resources: [cm.yaml]\ntransformers: [t.yaml]\n",
				"cm.yaml":            configMap,
				"patch.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {PATCHED: \"yes\"}\n",
				"t.yaml": `apiVersion: builtin
kind: AnnotationsTransformer
metadata: {name: notes}
annotations: {path: "https://example.com/not-a-file"}
fieldSpecs: [{path: metadata/annotations, create: true}]
---
apiVersion: builtin
kind: PatchTransformer
metadata: {name: patch}
path: patch.yaml
`,
			}},
			sources: map[string]string{"ConfigMap/settings": "cm.yaml"},
		},
		{
			name: "kustomization.yml and a JSON resource",
			tree: &tree{files: map[string]string{
				"kustomization.yml": `{"resources": ["cm.json"]}`,
				"cm.json":           `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "json"}, "data": {"a": "<&>"}}`,
			}},
			sources: map[string]string{"ConfigMap/json": "cm.json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := examples
			if tt.tree != nil {
				root = tt.tree.checkout(t)
			}
			rs, err := Build(context.Background(), Options{Root: root, Path: tt.path})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			got, err := YAML(rs)
			if err != nil {
				t.Fatal(err)
			}
			want := kustomizeBuild(t, filepath.Join(root, filepath.FromSlash(tt.path)))
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from kustomize build\n--- tether\n%s\n--- kustomize\n%s", got, want)
			}
			if s := sources(rs); !maps.Equal(s, tt.sources) {
				t.Errorf("sources:\n got %v\nwant %v", s, tt.sources)
			}
		})
	}
}

// refusalCase is a checkout that Build must refuse.
type refusalCase struct {
	name string
	tree tree
	opts Options // Root is filled in; Path is relative to the checkout, which is "co" in the temp folder
	want error
	msg  []string // substrings of the message
}

// checkout writes the case's tree and returns the options to build it with.
func (tt refusalCase) checkout(t *testing.T) (dir string, opts Options) {
	t.Helper()
	dir = tt.tree.checkout(t)
	opts = tt.opts
	opts.Root = filepath.Join(dir, "co")
	if err := os.MkdirAll(opts.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, opts
}

// check checks a refusal: an *Error of the case's category that names the
// file and entry, and no path outside the checkout.
func (tt refusalCase) check(t *testing.T, dir string, rs []Resource, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("Build succeeded with %d objects, want an error", len(rs))
	}
	if rs != nil {
		t.Errorf("Build returned %d objects with its error", len(rs))
	}
	t.Logf("error: %v", err)
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("error %v (%T) is not an *Error", err, err)
	}
	if tt.want != nil && !errors.Is(err, tt.want) {
		t.Errorf("error %q is not %v", err, tt.want)
	}
	for _, m := range tt.msg {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not contain %q", err, m)
		}
	}
	if strings.Contains(err.Error(), dir) || strings.Contains(err.Error(), vroot) {
		t.Errorf("error %q names a path outside the checkout's own", err)
	}
}

// TestBuildRefusals checks every refusal: the category, and that the
// message names the file and the entry.
func TestBuildRefusals(t *testing.T) {
	for _, tt := range refusalCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			dir, opts := tt.checkout(t)
			rs, err := Build(context.Background(), opts)
			tt.check(t, dir, rs, err)
		})
	}
}

// refusalCases are the checkouts Build refuses, one per kind of refusal.
func refusalCases(t *testing.T) []refusalCase {
	// Nodes one small bomb adds: three of them pass the build's budget,
	// two do not, and none is over the per-document limit.
	smallBomb, _, err := screenYAML([]byte(aliasBomb(3, 10)), 1<<20)
	if err != nil || smallBomb == 0 {
		t.Fatalf("screening a small bomb: %d, %v", smallBomb, err)
	}
	outside := "apiVersion: v1\nkind: Secret\nmetadata: {name: stolen}\n"
	return []refusalCase{
		{
			name: "remote resource over https",
			tree: tree{files: map[string]string{
				"co/overlays/prod/kustomization.yaml": "resources:\n- a.yaml\n- b.yaml\n- https://github.com/x/y\n",
				"co/overlays/prod/a.yaml":             configMap,
				"co/overlays/prod/b.yaml":             strings.Replace(configMap, "settings", "b", 1),
			}},
			opts: Options{Path: "overlays/prod"},
			want: ErrRemote,
			msg:  []string{`overlays/prod/kustomization.yaml: resources[2] "https://github.com/x/y": remote resources are not allowed`},
		},
		{
			name: "remote git base in a base",
			tree: tree{files: map[string]string{
				"co/overlay/kustomization.yaml": "resources: [../base]\n",
				"co/base/kustomization.yaml":    "resources:\n- github.com/org/repo//deploy?ref=v1\n",
			}},
			opts: Options{Path: "overlay"},
			want: ErrRemote,
			msg:  []string{`base/kustomization.yaml: resources[0] "github.com/org/repo//deploy?ref=v1"`},
		},
		{
			name: "scp-style git base in the deprecated bases field",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "bases:\n- git@gitlab.example.com:org/repo.git\n"}},
			want: ErrRemote,
			msg:  []string{`kustomization.yaml: bases[0] "git@gitlab.example.com:org/repo.git"`},
		},
		{
			name: "remote component",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "components:\n- ssh://git@example.com/org/repo.git\n"}},
			want: ErrRemote,
			msg:  []string{`components[0] "ssh://git@example.com/org/repo.git"`},
		},
		{
			name: "remote patch file",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: https://example.com/patch.yaml\n",
				"co/cm.yaml":            configMap,
			}},
			want: ErrRemote,
			msg:  []string{`patches[0].path "https://example.com/patch.yaml"`},
		},
		{
			name: "remote generator source",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "configMapGenerator:\n- name: x\n  files: [key=http://example.com/f]\n"}},
			want: ErrRemote,
			msg:  []string{`configMapGenerator[0].files[0] "key=http://example.com/f"`},
		},
		{
			name: "exec plugin",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml": "transformers: [plugin.yaml]\n",
				"co/plugin.yaml":        "apiVersion: someteam.example.com/v1\nkind: SedTransformer\nmetadata: {name: sed}\nargsOneLiner: s/a/b/\n",
			}},
			want: ErrPlugin,
			msg:  []string{`kustomization.yaml: transformers[0] "plugin.yaml"`, "not one of kustomize's built-in plugins"},
		},
		{
			name: "container KRM function",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml": "generators: [fn.yaml]\n",
				"co/fn.yaml": `apiVersion: example.com/v1
kind: Generate
metadata:
  name: gen
  annotations:
    config.kubernetes.io/function: |
      container:
        image: example.com/evil:latest
`,
			}},
			want: ErrPlugin,
			msg:  []string{`generators[0] "fn.yaml"`, "KRM function"},
		},
		{
			name: "inline exec KRM function",
			tree: tree{files: map[string]string{"co/kustomization.yaml": `validators:
- |
  apiVersion: example.com/v1
  kind: Check
  metadata:
    name: check
    annotations:
      config.kubernetes.io/function: |
        exec:
          path: ./check.sh
`}},
			want: ErrPlugin,
			msg:  []string{"validators[0] (inline)", "KRM function"},
		},
		{
			name: "plugin config in a generator folder",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml":      "generators: [gens]\n",
				"co/gens/kustomization.yaml": "resources: [p.yaml]\n",
				"co/gens/p.yaml":             "apiVersion: example.com/v1\nkind: Run\nmetadata: {name: r}\n",
			}},
			want: ErrPlugin,
			msg:  []string{`gens/kustomization.yaml: resources[0] "p.yaml"`},
		},
		{
			name: "built-in plugin config that reads a remote patch",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml": "resources: [cm.yaml]\ntransformers: [t.yaml]\n",
				"co/cm.yaml":            configMap,
				"co/t.yaml":             "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: https://example.com/p.yaml\ntarget: {kind: ConfigMap}\n",
			}},
			want: ErrRemote,
			msg:  []string{`transformers[0] "t.yaml": path "https://example.com/p.yaml"`},
		},
		{
			name: "built-in plugin config in a generator folder reads outside the checkout",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml":      "generators: [gens]\n",
				"co/gens/kustomization.yaml": "resources: [cm.yaml]\n",
				"co/gens/cm.yaml":            "apiVersion: builtin\nkind: SecretGenerator\nmetadata: {name: s}\nfiles: [key=../outside/id_rsa]\n",
				"outside/id_rsa":             "secret",
			}},
			want: ErrEscape,
			msg:  []string{`gens/kustomization.yaml: resources[0] "cm.yaml" (loaded by kustomization.yaml): files[0] "key=../outside/id_rsa"`},
		},
		{
			name: "helmCharts",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "helmCharts:\n- name: minecraft\n  repo: https://charts.example.com\n"}},
			want: ErrHelm,
			msg:  []string{`kustomization.yaml: helmCharts[0] "minecraft": helm charts are not allowed`},
		},
		{
			name: "deprecated helmChartInflationGenerator",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "helmChartInflationGenerator:\n- chartName: minecraft\n"}},
			want: ErrHelm,
			msg:  []string{`helmChartInflationGenerator[0] "minecraft"`},
		},
		{
			name: "built-in helm generator config",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml": "generators: [helm.yaml]\n",
				"co/helm.yaml":          "apiVersion: builtin\nkind: HelmChartInflationGenerator\nmetadata: {name: h}\nname: minecraft\n",
			}},
			want: ErrHelm,
			msg:  []string{`generators[0] "helm.yaml"`},
		},
		{
			name: "resource escapes through ..",
			tree: tree{files: map[string]string{
				"co/overlays/dev/kustomization.yaml": "resources:\n- ../../../outside/secret.yaml\n",
				"outside/secret.yaml":                outside,
			}},
			opts: Options{Path: "overlays/dev"},
			want: ErrEscape,
			msg:  []string{`overlays/dev/kustomization.yaml: resources[0] "../../../outside/secret.yaml"`, "outside the checkout"},
		},
		{
			name: "base escapes through .. and comes back in by name",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml":      "resources:\n- ../co/base\n",
				"co/base/kustomization.yaml": "resources: []\n",
			}},
			want: ErrEscape,
			msg:  []string{`resources[0] "../co/base"`},
		},
		{
			name: "resource escapes through a symlink",
			tree: tree{
				files: map[string]string{"co/kustomization.yaml": "resources: [link.yaml]\n", "outside/secret.yaml": outside},
				links: map[string]string{"co/link.yaml": "../outside/secret.yaml"},
			},
			want: ErrEscape,
			msg:  []string{`kustomization.yaml: resources[0] "link.yaml"`, `through symlink "link.yaml" -> "../outside/secret.yaml"`},
		},
		{
			name: "base escapes through a symlinked folder",
			tree: tree{
				files: map[string]string{"co/kustomization.yaml": "resources: [vendor/base]\n", "outside/base/kustomization.yaml": "resources: []\n"},
				links: map[string]string{"co/vendor": "../outside"},
			},
			want: ErrEscape,
			msg:  []string{`resources[0] "vendor/base"`},
		},
		{
			name: "absolute symlink",
			tree: tree{
				files: map[string]string{"co/kustomization.yaml": "resources: [passwd.yaml]\n"},
				links: map[string]string{"co/passwd.yaml": "/etc/passwd"},
			},
			want: ErrEscape,
			msg:  []string{`resources[0] "passwd.yaml"`, `points to absolute path "/etc/passwd"`},
		},
		{
			name: "absolute resource path",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "resources: [/etc/passwd]\n"}},
			want: ErrEscape,
			msg:  []string{`resources[0] "/etc/passwd"`},
		},
		{
			name: "patch escapes through ..",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: ../outside/patch.yaml\n",
				"co/cm.yaml":            configMap,
				"outside/patch.yaml":    configMap,
			}},
			want: ErrEscape,
			msg:  []string{`patches[0].path "../outside/patch.yaml"`},
		},
		{
			name: "generator file escapes through a symlink",
			tree: tree{
				files: map[string]string{"co/kustomization.yaml": "secretGenerator:\n- name: s\n  files: [key=key.txt]\n", "outside/id_rsa": "secret"},
				links: map[string]string{"co/key.txt": "../outside/id_rsa"},
			},
			want: ErrEscape,
			msg:  []string{`secretGenerator[0].files[0] "key=key.txt"`},
		},
		{
			name: "path to render escapes",
			tree: tree{files: map[string]string{"outside/kustomization.yaml": "resources: []\n"}},
			opts: Options{Path: "../outside"},
			want: ErrEscape,
		},
		{
			name: "oversized file",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml": "resources: [big.yaml]\n",
				"co/big.yaml":           configMap + "  BIG: " + strings.Repeat("x", 4096) + "\n",
			}},
			opts: Options{MaxFileSize: 2048},
			want: ErrTooLarge,
			msg:  []string{"big.yaml: size limit exceeded", "MaxFileSize"},
		},
		{
			name: "oversized kustomization file",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "resources: []\n#" + strings.Repeat("x", 4096) + "\n"}},
			opts: Options{MaxFileSize: 2048},
			want: ErrTooLarge,
			msg:  []string{"kustomization.yaml: size limit exceeded"},
		},
		{
			name: "too much input",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml": "resources: [a.yaml, b.yaml]\n",
				"co/a.yaml":             configMap + "  A: " + strings.Repeat("x", 3000) + "\n",
				"co/b.yaml":             strings.Replace(configMap, "settings", "other", 1) + "  B: " + strings.Repeat("x", 3000) + "\n",
			}},
			opts: Options{MaxTotalSize: 5000},
			want: ErrTooLarge,
			msg:  []string{"b.yaml: size limit exceeded", "MaxTotalSize"},
		},
		{
			// The base is read once (3 KB, within the limit) and rendered
			// twice, which passes it.
			name: "too much output",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml":      "resources: [one, two]\n",
				"co/one/kustomization.yaml":  "resources: [../base]\nnamePrefix: one-\n",
				"co/two/kustomization.yaml":  "resources: [../base]\nnamePrefix: two-\n",
				"co/base/kustomization.yaml": "resources: [cm.yaml]\n",
				"co/base/cm.yaml":            configMap + "  A: " + strings.Repeat("x", 3000) + "\n",
			}},
			opts: Options{MaxTotalSize: 5000},
			want: ErrTooLarge,
			msg:  []string{"base/cm.yaml: ConfigMap/two-settings: size limit exceeded", "rendered objects pass 5000 bytes as JSON (MaxTotalSize)"},
		},
		{
			name: "alias bomb in a resource",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "resources: [bomb.yaml]\n", "co/bomb.yaml": aliasBomb(9, 10)}},
			want: ErrYAMLNodes,
			msg:  []string{"bomb.yaml: document 1: too many YAML nodes"},
		},
		{
			name: "alias bomb in an inline patch",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml": "resources: [cm.yaml]\npatches:\n- patch: |\n" + indent(aliasBomb(9, 10), "    "),
				"co/cm.yaml":            configMap,
			}},
			want: ErrYAMLNodes,
			msg:  []string{"kustomization.yaml: patches[0].patch document 1"},
		},
		{
			name: "alias that contains itself",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml": "resources: [cycle.yaml]\n",
				"co/cycle.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: &a {x: *a}\n",
			}},
			want: ErrYAMLNodes,
			msg:  []string{"cycle.yaml: document 1", "contains it"},
		},
		{
			name: "many small bombs add up",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "resources: [a.yaml, b.yaml, c.yaml]\n",
				"co/a.yaml": aliasBomb(3, 10), "co/b.yaml": aliasBomb(3, 10), "co/c.yaml": aliasBomb(3, 10)}},
			opts: Options{MaxYAMLNodes: int(5 * smallBomb / 2)},
			want: ErrYAMLNodes,
			msg:  []string{"c.yaml", "in total"},
		},
		{
			name: "cycle of bases",
			tree: tree{files: map[string]string{
				"co/a/kustomization.yaml": "resources: [../b]\n",
				"co/b/kustomization.yaml": "resources: [../a]\n",
			}},
			opts: Options{Path: "a"},
			msg:  []string{`b/kustomization.yaml: resources[0] "../a": cycle`},
		},
		{
			name: "base without a kustomization",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "resources: [base]\n", "co/base/cm.yaml": configMap}},
			msg:  []string{`kustomization.yaml: resources[0] "base": folder "base" has no kustomization file`},
		},
		{
			name: "empty kustomization",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "# nothing\n"}},
			msg:  []string{"kustomization.yaml: kustomization.yaml is empty"},
		},
		{
			name: "two kustomization files",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "resources: []\n", "co/Kustomization": "resources: []\n"}},
			msg:  []string{"more than one kustomization file"},
		},
		{
			name: "kustomize's own error names files relative to the checkout",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: missing.yaml\n", "co/cm.yaml": configMap}},
			msg:  []string{"kustomization.yaml: kustomize: ", "missing.yaml"},
		},
		{
			name: "duplicate across versions of a group",
			tree: tree{files: map[string]string{
				"co/a.yaml": deployment,
				"co/b.yaml": strings.Replace(deployment, "apps/v1", "apps/v1beta2", 1),
			}},
			want: ErrDuplicate,
			msg:  []string{"b.yaml: Deployment/web: duplicate object: the same object also comes from a.yaml"},
		},
		{
			name: "duplicate between a kustomization and a plain file",
			tree: tree{files: map[string]string{
				"co/a.yaml":               configMap,
				"co/k/kustomization.yaml": "resources: [cm.yaml]\n",
				"co/k/cm.yaml":            configMap,
			}},
			want: ErrDuplicate,
			msg:  []string{"k/cm.yaml: ConfigMap/settings: duplicate object: the same object also comes from a.yaml"},
		},
		{
			name: "invalid name",
			tree: tree{files: map[string]string{"co/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a/b}\n"}},
			want: ErrInvalid,
			msg:  []string{`a.yaml: ConfigMap/a/b: invalid object: metadata.name "a/b"`},
		},
		{
			name: "name too long",
			tree: tree{files: map[string]string{"co/k/kustomization.yaml": "resources: [cm.yaml]\n", "co/k/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + strings.Repeat("a", 254) + "}\n"}},
			opts: Options{Path: "k"},
			want: ErrInvalid,
			msg:  []string{"k/cm.yaml: ConfigMap/aaaa", "254 characters long"},
		},
		{
			name: "invalid namespace",
			tree: tree{files: map[string]string{"co/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: Team_A}\n"}},
			want: ErrInvalid,
			msg:  []string{`a.yaml: ConfigMap/Team_A/a: invalid object: metadata.namespace "Team_A"`},
		},
		{
			name: "missing name in a plain file",
			tree: tree{files: map[string]string{"co/a.yaml": configMap + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n"}},
			want: ErrInvalid,
			msg:  []string{"a.yaml: document 2 (ConfigMap): invalid object: metadata.name is missing"},
		},
		{
			name: "document that is not an object",
			tree: tree{files: map[string]string{"co/a.yaml": configMap + "---\n# empty\n---\nfoo: bar\n"}},
			want: ErrNotObject,
			msg:  []string{"a.yaml: document 3: not a Kubernetes object"},
		},
		{
			name: "transformer folder whose kustomization patches its configs",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml":      "resources: [cm.yaml]\ntransformers: [tdir]\n",
				"co/cm.yaml":                 configMap,
				"co/local.yaml":              configMap,
				"co/tdir/t.yaml":             "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: local.yaml\n",
				"co/tdir/kustomization.yaml": "resources: [t.yaml]\npatches:\n- target: {kind: PatchTransformer}\n  patch: |-\n    - op: replace\n      path: /path\n      value: https://example.com/p.yaml\n",
			}},
			want: ErrPlugin,
			msg:  []string{`tdir/kustomization.yaml: patches: plugins and KRM functions are not allowed`, `validators entry of kustomization.yaml`},
		},
		{
			name: "generator folder that renames its configs",
			tree: tree{files: map[string]string{
				"co/kustomization.yaml":            "generators: [gens]\n",
				"co/gens/kustomization.yaml":       "resources: [inner]\n",
				"co/gens/inner/kustomization.yaml": "resources: [g.yaml]\nnamePrefix: x-\nconfigurations: [c.yaml]\n",
				"co/gens/inner/g.yaml":             "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: g}\nliterals: [a=b]\n",
			}},
			want: ErrPlugin,
			msg:  []string{`gens/inner/kustomization.yaml: namePrefix: `},
		},
		{
			name: "a built-in kind this version of kustomize does not have",
			tree: tree{files: map[string]string{"co/kustomization.yaml": "transformers:\n- |\n  apiVersion: builtin\n  kind: FetchTransformer\n  metadata: {name: f}\n"}},
			want: ErrPlugin,
			msg:  []string{`transformers[0] (inline): plugins and KRM functions are not allowed: builtin FetchTransformer/f is not one of the built-in plugins tether knows`},
		},
		{
			name: "plain folder with a symlinked folder",
			tree: tree{
				files: map[string]string{"co/a.yaml": configMap, "co/real/b.yaml": strings.Replace(configMap, "settings", "b", 1)},
				links: map[string]string{"co/linked": "real"},
			},
			msg: []string{"linked: a symlink to a folder"},
		},
		{
			name: "plain folder with a symlinked kustomization",
			tree: tree{
				files: map[string]string{"co/k/kustomization.yaml": "resources: [cm.yaml]\n", "co/k/cm.yaml": configMap},
				links: map[string]string{"co/apps/k": "../k"},
			},
			msg: []string{"apps/k: a symlink to a folder"},
		},
		{
			name: "plain folder with a symlinked folder outside the checkout",
			tree: tree{
				files: map[string]string{"co/a.yaml": configMap, "outside/s.yaml": outside},
				links: map[string]string{"co/vendor": "../outside"},
			},
			want: ErrEscape,
			msg:  []string{`vendor: path leads outside the checkout: through symlink "vendor" -> "../outside"`},
		},
		{
			name: "plain folder with an upper-case extension",
			tree: tree{files: map[string]string{"co/a.yaml": configMap, "co/B.YAML": strings.Replace(configMap, "settings", "b", 1)}},
			msg:  []string{`B.YAML: the extension ".YAML" is not one tether reads (.yaml, .yml, .json, in lower case)`},
		},
		{
			name: "plain folder with a mixed-case extension below",
			tree: tree{files: map[string]string{"co/sub/c.Yml": configMap}},
			msg:  []string{`sub/c.Yml: the extension ".Yml"`},
		},
	}
}

// TestProvenanceGuard checks builds in which kustomize's origin tracking
// itself would change the outcome: tether refuses them rather than report
// a wrong source or an output that differs from kustomize build's.
func TestProvenanceGuard(t *testing.T) {
	tests := []struct {
		name string
		kust string
		msg  string
	}{
		{
			name: "a patch replaces metadata.annotations",
			kust: "resources: [cm.yaml]\npatches:\n- target: {kind: ConfigMap}\n  patch: |-\n    - op: replace\n      path: /metadata/annotations\n      value: {a: b}\n",
			msg:  "kustomization.yaml: ConfigMap/settings: cannot tell which file the object came from: a PatchTransformer configured here replaced or removed its metadata.annotations",
		},
		{
			name: "a patch removes metadata.annotations",
			kust: "resources: [cm.yaml]\npatches:\n- target: {kind: ConfigMap}\n  patch: |-\n    - op: remove\n      path: /metadata/annotations\n",
			msg:  "replaced or removed its metadata.annotations",
		},
		{
			name: "a patch copies metadata.annotations",
			kust: "resources: [cm.yaml]\npatches:\n- target: {kind: ConfigMap}\n  patch: |-\n    - op: copy\n      from: /metadata/annotations\n      path: /data\n",
			msg:  "switching on kustomize's origin tracking changes the output",
		},
		{
			name: "a selector depends on the origin annotation",
			kust: "resources: [cm.yaml]\npatches:\n- target: {annotationSelector: \"!config.kubernetes.io/origin\"}\n  patch: |-\n    - op: add\n      path: /metadata/labels\n      value: {selected: \"yes\"}\n",
			msg:  "switching on kustomize's origin tracking changes the output",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"kustomization.yaml": tt.kust, "cm.yaml": configMap}
			root := tree{files: files}.checkout(t)
			kustomizeBuild(t, root) // kustomize itself builds it
			_, err := Build(context.Background(), Options{Root: root})
			if !errors.Is(err, ErrProvenance) {
				t.Fatalf("Build: %v, want ErrProvenance", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

// TestPlainFolder checks a folder without a kustomization file: files in
// lexical order, hidden entries (symlinks too) and other extensions
// skipped, a subfolder kustomization built where it sits, lists unpacked,
// local configuration dropped, empty documents skipped, symlinked files
// read. (Symlinked folders and extensions in other case are refused: see
// TestBuildRefusals.)
func TestPlainFolder(t *testing.T) {
	tr := tree{
		files: map[string]string{
			"b.yaml":                strings.Replace(configMap, "settings", "b", 1) + "---\n# only a comment\n---\n" + strings.Replace(configMap, "settings", "b2", 1),
			"a.yml":                 strings.Replace(configMap, "settings", "a", 1),
			"c/z.json":              `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "z"}}`,
			"c/list.yaml":           "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: l1}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: l2}\n",
			"c/local.yaml":          "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local\n  annotations: {config.kubernetes.io/local-config: \"true\"}\n",
			"d/kustomization.yaml":  "namespace: d\nresources: [cm.yaml, ns.yaml]\n",
			"d/cm.yaml":             strings.Replace(configMap, "settings", "in-d", 1),
			"d/ns.yaml":             "apiVersion: v1\nkind: Namespace\nmetadata: {name: d}\n",
			"d/nested/ignored.yaml": "not: an object\n",
			"notes.txt":             "not yaml",
			".git/config.yaml":      "not: an object\n",
			".gitlab-ci.yml":        "stages: [build]\n",
			".hidden/r.yaml":        strings.Replace(configMap, "settings", "r", 1),
		},
		links: map[string]string{"e-link.yaml": ".hidden/r.yaml", ".f-dir": ".hidden"},
	}
	root := tr.checkout(t)
	rs, err := Build(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, objectName(r.Object)+" <- "+r.Source)
	}
	want := []string{
		"ConfigMap/a <- a.yml",
		"ConfigMap/b <- b.yaml",
		"ConfigMap/b2 <- b.yaml",
		"ConfigMap/l1 <- c/list.yaml",
		"ConfigMap/l2 <- c/list.yaml",
		"ConfigMap/z <- c/z.json",
		"Namespace/d <- d/ns.yaml", // kustomize's order within the kustomization
		"ConfigMap/d/in-d <- d/cm.yaml",
		"ConfigMap/r <- .hidden/r.yaml", // through e-link.yaml; .f-dir is hidden
	}
	if !slices.Equal(got, want) {
		t.Errorf("objects:\n got %q\nwant %q", got, want)
	}

	// The subfolder's part is what kustomize build prints for it.
	sub, err := Build(context.Background(), Options{Root: root, Path: "d"})
	if err != nil {
		t.Fatal(err)
	}
	y, err := YAML(sub)
	if err != nil {
		t.Fatal(err)
	}
	if want := kustomizeBuild(t, filepath.Join(root, "d")); !bytes.Equal(y, want) {
		t.Errorf("subfolder output differs from kustomize build\n--- tether\n%s\n--- kustomize\n%s", y, want)
	}
}

// TestPlainFolderSpecialFile checks that a manifest that is not a regular
// file (reading a FIFO would block), or a symlink to one, is refused, not
// skipped.
func TestPlainFolderSpecialFile(t *testing.T) {
	for _, tt := range []struct{ fifo, link, want string }{
		{fifo: "b.yaml", want: "b.yaml"},
		{fifo: "b.fifo", link: "c.yaml", want: "c.yaml"},
	} {
		tr := tree{files: map[string]string{"a.yaml": configMap}}
		if tt.link != "" {
			tr.links = map[string]string{tt.link: tt.fifo}
		}
		root := tr.checkout(t)
		if err := syscall.Mkfifo(filepath.Join(root, tt.fifo), 0o644); err != nil {
			t.Fatalf("mkfifo: %v", err) // Linux, where tether runs, always has FIFOs
		}
		_, err := Build(context.Background(), Options{Root: root})
		if !errors.Is(err, fs.ErrInvalid) || !strings.Contains(err.Error(), tt.want+": a manifest that is not a regular file") {
			t.Errorf("Build with a FIFO as %s: %v", tt.want, err)
		}
	}
}

// TestBuildCancelled checks that a cancelled context stops the build.
func TestBuildCancelled(t *testing.T) {
	root := layered.checkout(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	iso := testIsolated(t)
	for _, p := range []string{"app/overlays/prod", "app"} {
		_, err := Build(ctx, Options{Root: root, Path: p})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Build(%s) with a cancelled context: %v, want context.Canceled", p, err)
		}
		_, err = iso.Build(ctx, Options{Root: root, Path: p})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Isolated.Build(%s) with a cancelled context: %v, want context.Canceled", p, err)
		}
	}
}

// TestBuildRootBehindSymlink checks that the checkout itself may be a
// symlink (an atomic swap of checkouts), and that Source stays relative to
// it.
func TestBuildRootBehindSymlink(t *testing.T) {
	dir := tree{
		files: map[string]string{"rev1/kustomization.yaml": "resources: [cm.yaml]\n", "rev1/cm.yaml": configMap},
		links: map[string]string{"current": "rev1"},
	}.checkout(t)
	rs, err := Build(context.Background(), Options{Root: filepath.Join(dir, "current")})
	if err != nil {
		t.Fatal(err)
	}
	if got := sources(rs); !maps.Equal(got, map[string]string{"ConfigMap/settings": "cm.yaml"}) {
		t.Errorf("sources %v", got)
	}
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}

// aliasBomb returns a ConfigMap whose data expands to width^levels nodes
// from a few hundred bytes ("billion laughs").
func aliasBomb(levels, width int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\nlol:\n  l0: &l0 [lol]\n")
	for i := 1; i <= levels; i++ {
		refs := slices.Repeat([]string{"*l" + strconv.Itoa(i-1)}, width)
		b.WriteString("  l" + strconv.Itoa(i) + ": &l" + strconv.Itoa(i) + " [" + strings.Join(refs, ", ") + "]\n")
	}
	return b.String()
}

func TestYAMLAndObjects(t *testing.T) {
	a, b := obj("v1", "ConfigMap", "", "a"), obj("v1", "ConfigMap", "ns", "b")
	rs := []Resource{{Object: a, Source: "a.yaml"}, {Object: b, Source: "b.yaml"}}
	got, err := YAML(rs)
	if err != nil {
		t.Fatal(err)
	}
	want := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: ns\n"
	if string(got) != want {
		t.Errorf("YAML:\n%s\nwant\n%s", got, want)
	}
	if objs := Objects(rs); len(objs) != 2 || objs[0] != a || objs[1] != b {
		t.Errorf("Objects = %v", objs)
	}
	if out, err := YAML(nil); err != nil || len(out) != 0 {
		t.Errorf("YAML(nil) = %q, %v", out, err)
	}
	if _, err := YAML([]Resource{{Source: "x.yaml"}}); err == nil || !strings.Contains(err.Error(), "x.yaml") {
		t.Errorf("YAML of a resource without an object: %v", err)
	}
}
