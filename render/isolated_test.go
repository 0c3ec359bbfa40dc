package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// sameError checks that an error of Isolated.Build is equivalent to Build's:
// the same text, the same *Error fields, the same categories.
func sameError(t *testing.T, got, want error) {
	t.Helper()
	if got == nil || want == nil {
		t.Fatalf("Isolated: %v, Build: %v", got, want)
	}
	if got.Error() != want.Error() {
		t.Errorf("Isolated's error differs from Build's\n got %q\nwant %q", got, want)
	}
	var ge, we *Error
	if errors.As(got, &ge) != errors.As(want, &we) {
		t.Fatalf("Isolated's error is an *Error: %v; Build's: %v", ge != nil, we != nil)
	}
	if ge != nil && (ge.File != we.File || ge.Entry != we.Entry || ge.Reason != we.Reason) {
		t.Errorf("Isolated's *Error %+v, Build's %+v", *ge, *we)
	}
	for _, c := range errorCategories() {
		if errors.Is(got, c.err) != errors.Is(want, c.err) {
			t.Errorf("errors.Is(%v): Isolated %v, Build %v", c.err, errors.Is(got, c.err), errors.Is(want, c.err))
		}
	}
}

// sameResources checks that Isolated.Build rendered what Build rendered:
// the same objects, value for value, with the same sources.
func sameResources(t *testing.T, got, want []Resource) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("Isolated rendered %d objects, Build %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Source != want[i].Source || !reflect.DeepEqual(got[i].Object.Object, want[i].Object.Object) {
			t.Errorf("object %d: Isolated %s <- %s, Build %s <- %s (or their contents differ)",
				i, objectName(got[i].Object), got[i].Source, objectName(want[i].Object), want[i].Source)
		}
	}
	gy, err := YAML(got)
	if err != nil {
		t.Fatal(err)
	}
	wy, err := YAML(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gy, wy) {
		t.Errorf("YAML differs\n--- isolated\n%s\n--- in-process\n%s", gy, wy)
	}
}

// TestIsolatedMatchesBuild checks that a build in a child process renders
// what Build renders in-process.
func TestIsolatedMatchesBuild(t *testing.T) {
	examples, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	plain := tree{files: map[string]string{
		"a.yml":                configMap,
		"b/list.yaml":          "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: l1}\n  data: {html: \"<b>&amp;</b>\", n: \"1.50\"}\n",
		"c/kustomization.yaml": "namespace: c\nresources: [d.yaml]\n",
		"c/d.yaml":             deployment,
		"e.json":               `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "e"}, "data": {"u": "\u2028 ünïcødé"}}`,
		"f.yaml":               "apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: f}\nspec: {big: 12345678901234567890, f: 1.5, e: 1e3, i: 7, b: true, z: null}\n",
	}}
	tests := []struct {
		name string
		tree *tree
		path string
	}{
		{name: "example dev overlay", path: "webapp/overlays/dev"},
		{name: "example prod overlay", path: "webapp/overlays/prod"},
		{name: "bases, overlays, components, generators, symlinked base", tree: &layered, path: "app/overlays/prod"},
		{name: "plain folder", tree: &plain},
	}
	iso := testIsolated(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := examples
			if tt.tree != nil {
				root = tt.tree.checkout(t)
			}
			opts := Options{Root: root, Path: tt.path}
			want, err := Build(context.Background(), opts)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			got, err := iso.Build(context.Background(), opts)
			if err != nil {
				t.Fatalf("Isolated.Build: %v", err)
			}
			sameResources(t, got, want)
		})
	}
}

// TestIsolatedRefusals checks that every refusal of Build comes back from
// the child as an equivalent error.
func TestIsolatedRefusals(t *testing.T) {
	iso := testIsolated(t)
	cases := append(refusalCases(t),
		refusalCase{name: "missing root", opts: Options{Root: "/nonexistent/tether"}},
		refusalCase{name: "negative limit", opts: Options{MaxFileSize: -1}},
	)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, opts := tt.checkout(t)
			if tt.name == "missing root" {
				opts.Root = tt.opts.Root
			}
			_, want := Build(context.Background(), opts)
			rs, got := iso.Build(context.Background(), opts)
			if rs != nil {
				t.Errorf("Isolated.Build returned %d objects with its error", len(rs))
			}
			sameError(t, got, want)
		})
	}
}

// TestPluginConfigURLs checks every way a plugin config could make
// kustomize fetch a URL (keys in any case, every built-in plugin's file
// fields, fields tether does not know, a folder of configs that changes
// them after vetting): each is refused, with the file and entry named, in
// process and in a child, and the server is never asked for anything.
func TestPluginConfigURLs(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  injected: from-the-network\n")
	}))
	defer srv.Close()
	u := srv.URL
	config := "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: a}\npath: local.yaml\n"
	twoConfigs := config + "---\n" + config
	inline := func(field, config string) string {
		return "resources: [cm.yaml]\n" + field + ":\n- |-\n  apiVersion: builtin\n" + indent(config, "  ")
	}
	tests := []struct {
		name  string
		files map[string]string
		want  error
		msg   []string
	}{
		{
			name:  "inline PatchTransformer with Path",
			files: map[string]string{"kustomization.yaml": inline("transformers", "kind: PatchTransformer\nmetadata: {name: p}\nPath: "+u+"/patch.yaml\n")},
			msg:   []string{`kustomization.yaml: transformers[0] (inline): path "` + u + `/patch.yaml": remote resources are not allowed`},
		},
		{
			name:  "inline ConfigMapGenerator with Envs",
			files: map[string]string{"kustomization.yaml": inline("generators", "kind: ConfigMapGenerator\nmetadata: {name: gen}\nEnvs: ["+u+"/env]\n")},
			msg:   []string{`kustomization.yaml: generators[0] (inline): envs[0] "` + u + `/env"`},
		},
		{
			name:  "inline ConfigMapGenerator with Files",
			files: map[string]string{"kustomization.yaml": inline("generators", "kind: ConfigMapGenerator\nmetadata: {name: gen}\nFiles: [key="+u+"/f]\n")},
			msg:   []string{`generators[0] (inline): files[0] "key=` + u + `/f"`},
		},
		{
			name:  "SecretGenerator with ENV",
			files: map[string]string{"kustomization.yaml": inline("generators", "kind: SecretGenerator\nmetadata: {name: s}\nENV: "+u+"/env\n")},
			msg:   []string{`generators[0] (inline): env "` + u + `/env"`},
		},
		{
			name:  "a key that encoding/json folds to files",
			files: map[string]string{"kustomization.yaml": inline("generators", "kind: ConfigMapGenerator\nmetadata: {name: gen}\nfileſ: ["+u+"/f]\n")},
			msg:   []string{`generators[0] (inline): files[0] "` + u + `/f"`},
		},
		{
			name:  "PatchStrategicMergeTransformer with Paths",
			files: map[string]string{"kustomization.yaml": inline("transformers", "kind: PatchStrategicMergeTransformer\nmetadata: {name: p}\nPaths: ["+u+"/p.yaml]\n")},
			msg:   []string{`transformers[0] (inline): paths[0] "` + u + `/p.yaml"`},
		},
		{
			name:  "PatchJson6902Transformer with pAtH",
			files: map[string]string{"kustomization.yaml": inline("transformers", "kind: PatchJson6902Transformer\nmetadata: {name: p}\ntarget: {kind: ConfigMap, name: settings}\npAtH: "+u+"/ops.yaml\n")},
			msg:   []string{`transformers[0] (inline): path "` + u + `/ops.yaml"`},
		},
		{
			name:  "ReplacementTransformer with Replacements and Path",
			files: map[string]string{"kustomization.yaml": inline("transformers", "kind: ReplacementTransformer\nmetadata: {name: r}\nReplacements:\n- Path: "+u+"/r.yaml\n")},
			msg:   []string{`transformers[0] (inline): replacements[0].path "` + u + `/r.yaml"`},
		},
		{
			name:  "ValueAddTransformer with targetFilePath",
			files: map[string]string{"kustomization.yaml": inline("transformers", "kind: ValueAddTransformer\nmetadata: {name: v}\nvalue: x\ntargetFilePath: "+u+"/targets\n")},
			msg:   []string{`transformers[0] (inline): targetFilePath "` + u + `/targets"`},
		},
		{
			name: "config in a file with PATH",
			files: map[string]string{
				"kustomization.yaml": "resources: [cm.yaml]\ntransformers: [t.yaml]\n",
				"t.yaml":             "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\nPATH: " + u + "/patch.yaml\n",
			},
			msg: []string{`kustomization.yaml: transformers[0] "t.yaml": path "` + u + `/patch.yaml"`},
		},
		{
			// Two configs of the same name make no resource map, so
			// kustomize reads the entry as the name of a file, and git
			// allows newlines in names.
			name: "inline configs that kustomize reads as a file name",
			files: map[string]string{
				"kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- |\n" + indent(twoConfigs, "  "),
				"local.yaml":         configMap,
				twoConfigs:           "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: a}\npath: " + u + "/patch.yaml\n",
			},
			msg: []string{`kustomization.yaml: transformers[0] "apiVersion: builtin\nkind: PatchTransformer`, `path "` + u + `/patch.yaml"`},
		},
		{
			name:  "a URL in a field that reads no file",
			files: map[string]string{"kustomization.yaml": inline("transformers", "kind: PrefixTransformer\nmetadata: {name: p}\nprefix: "+u+"/\nfieldSpecs: [{path: metadata/name}]\n")},
			msg:   []string{`transformers[0] (inline): prefix "` + u + `/": remote resources are not allowed: builtin PrefixTransformer/p names a URL`},
		},
		{
			name: "transformer folder whose kustomization patches its config to a URL",
			files: map[string]string{
				"kustomization.yaml":      "resources: [cm.yaml]\ntransformers: [tdir]\n",
				"local.yaml":              configMap,
				"tdir/t.yaml":             "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: local.yaml\n",
				"tdir/kustomization.yaml": "resources: [t.yaml]\npatches:\n- target: {kind: PatchTransformer}\n  patch: |-\n    - op: replace\n      path: /path\n      value: " + u + "/patch.yaml\n",
			},
			want: ErrPlugin,
			msg:  []string{`tdir/kustomization.yaml: patches: plugins and KRM functions are not allowed`},
		},
	}
	iso := testIsolated(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := maps.Clone(tt.files)
			files["cm.yaml"] = configMap
			root := tree{files: files}.checkout(t)
			want := tt.want
			if want == nil {
				want = ErrRemote
			}
			rc := refusalCase{want: want, msg: tt.msg}
			rs, err := Build(context.Background(), Options{Root: root})
			rc.check(t, root, rs, err)
			irs, ierr := iso.Build(context.Background(), Options{Root: root})
			if irs != nil {
				t.Errorf("Isolated.Build returned %d objects", len(irs))
			}
			sameError(t, ierr, err)
			if n := hits.Load(); n != 0 {
				t.Fatalf("the server got %d requests", n)
			}
		})
	}

	// URLs in data fields are data: these configs build, and nothing is
	// fetched either.
	t.Run("URLs in data fields", func(t *testing.T) {
		root := tree{files: map[string]string{
			"cm.yaml": configMap,
			"kustomization.yaml": inline("generators", "kind: ConfigMapGenerator\nmetadata: {name: gen, annotations: {docs: "+u+"/docs}}\nliterals: [URL="+u+"/api]\n") +
				"transformers:\n- |-\n  apiVersion: builtin\n  kind: AnnotationsTransformer\n  metadata: {name: a}\n  annotations: {link: " + u + "/x}\n  fieldSpecs: [{path: metadata/annotations, create: true}]\n",
		}}.checkout(t)
		want, err := Build(context.Background(), Options{Root: root})
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		got, err := iso.Build(context.Background(), Options{Root: root})
		if err != nil {
			t.Fatalf("Isolated.Build: %v", err)
		}
		sameResources(t, got, want)
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("the server got %d requests", n)
	}
	// The counter counts.
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := hits.Load(); n != 1 {
		t.Fatalf("the server counted %d requests, want 1", n)
	}
}

// TestIsolatedConfinement checks, in a confined child, that neither
// kustomize's HTTP client nor any other can connect, that no DNS lookup
// leaves the process, that git cannot be found or run, and that the limits
// are hard limits of the kernel.
func TestIsolatedConfinement(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	iso := Isolated{Command: []string{exe}, Env: []string{childEnvVar + "=probe", "GORACE=atexit_sleep_ms=0", "PATH=/usr/bin:/bin"}}
	req, err := json.Marshal(probeRequest{MemoryLimit: 900 << 20, CPULimit: 1500 * time.Millisecond, URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	run, err := iso.run(context.Background(), req, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if run.err != nil {
		t.Fatalf("probe: %v%s", run.err, run.stderr.summary())
	}
	var rep probeReport
	if err := json.Unmarshal(run.stdout, &rep); err != nil {
		t.Fatalf("probe report %q: %v", run.stdout, err)
	}
	t.Logf("%+v", rep)
	for what, msg := range map[string]string{"http.Get": rep.DefaultClient, "(&http.Client{}).Get": rep.Client, "DNS lookup": rep.Lookup} {
		if !strings.Contains(msg, errNoNetwork.Error()) {
			t.Errorf("%s: %q, want %q", what, msg, errNoNetwork)
		}
	}
	if rep.PATH != "" {
		t.Errorf("PATH = %q in the child", rep.PATH)
	}
	if rep.LookPath == "" || rep.Exec == "" {
		t.Errorf("git: LookPath %q, running it %q; want both to fail", rep.LookPath, rep.Exec)
	}
	if want := [2]uint64{900 << 20, 900 << 20}; rep.Data != want {
		t.Errorf("RLIMIT_DATA = %v, want %v", rep.Data, want)
	}
	if want := [2]uint64{2, 2 + uint64(cpuGrace/time.Second)}; rep.CPU != want {
		t.Errorf("RLIMIT_CPU = %v, want %v (whole seconds, rounded up; the hard limit cpuGrace later)", rep.CPU, want)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server got %d requests", n)
	}
}

// flowList is an object whose spec holds one flow list of about size
// bytes: cheap to read, hundreds of times its size in kustomize's memory.
func flowList(size int) string {
	var b strings.Builder
	b.WriteString("apiVersion: example.com/v1\nkind: Foo\nmetadata:\n  name: bomb\nspec:\n  items: [")
	for b.Len() < size-4 {
		b.WriteString("1,")
	}
	b.WriteString("1]\n")
	return b.String()
}

// TestIsolatedMemoryLimit checks that a build that needs more memory than
// allowed fails with ErrTooLarge, as a memory error (never a CPU one) that
// names the file it was reading, and that the parent goes on.
func TestIsolatedMemoryLimit(t *testing.T) {
	root := tree{files: map[string]string{"kustomization.yaml": "resources: [bomb.yaml]\n", "bomb.yaml": flowList(4 << 20)}}.checkout(t)
	iso := testIsolated(t)
	_, err := iso.Build(context.Background(), Options{Root: root})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Isolated.Build of a 4 MiB flow list: %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "rendering used more than 768 MiB of memory") || strings.Contains(err.Error(), "CPU") {
		t.Errorf("error %q does not say which limit", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "bomb.yaml" {
		t.Errorf("error %q names %q, want the file it was reading, bomb.yaml", err, e.File)
	}
	// The parent is fine and builds on.
	if _, err := iso.Build(context.Background(), Options{Root: layered.checkout(t), Path: "app/overlays/prod"}); err != nil {
		t.Fatalf("Isolated.Build after the bomb: %v", err)
	}
}

// TestIsolatedKilledByKernel checks how the parent explains a child the
// kernel killed without a word: after little CPU time it was the
// out-of-memory killer (memory), after its CPU hard limit it was the CPU
// limit, and never the other way round. The children are shells that
// set their own limits and ignore SIGXCPU, so only the kernel's SIGKILL
// ends them.
func TestIsolatedKilledByKernel(t *testing.T) {
	root := tree{files: map[string]string{"cm.yaml": configMap}}.checkout(t)
	for _, tc := range []struct {
		name, script string
		want, not    string
	}{
		{"out-of-memory killer", "kill -9 $$", "of memory, or more than the pod had left: it was killed by the kernel", "CPU"},
		{"CPU hard limit", "ulimit -St 1; ulimit -Ht 2; trap '' XCPU; while :; do :; done", "rendering used more than 1s of CPU", "memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iso := Isolated{Command: []string{"/bin/sh", "-c", tc.script}, CPULimit: time.Second}
			_, err := iso.Build(context.Background(), Options{Root: root})
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.not) {
				t.Fatalf("Isolated.Build: %v, want ErrTooLarge saying %q", err, tc.want)
			}
		})
	}
}

// psmBomb is a Deployment with n containers and a strategic-merge patch
// that lists them in the opposite order: kustomize's merge is
// super-quadratic in n (2,000 take 5 s of CPU, 8,000 a minute).
func psmBomb(n int) tree {
	var a, b strings.Builder
	head := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    spec:\n      containers:\n"
	a.WriteString(head)
	b.WriteString(head)
	for i := range n {
		fmt.Fprintf(&a, "      - {name: c%d, image: x}\n", i)
		fmt.Fprintf(&b, "      - {name: c%d, image: y}\n", n-1-i)
	}
	return tree{files: map[string]string{"d.yaml": a.String(), "p.yaml": b.String(), "kustomization.yaml": "resources: [d.yaml]\npatches:\n- path: p.yaml\n"}}
}

// TestIsolatedCPULimit checks that a build that takes too long is stopped,
// by its CPU limit or by the context, and that the CPU limit is reported as
// such however loaded the machine is: the child answers on SIGXCPU.
func TestIsolatedCPULimit(t *testing.T) {
	root := psmBomb(8000).checkout(t)
	t.Run("CPU limit", func(t *testing.T) {
		iso := testIsolated(t)
		iso.CPULimit = time.Second
		_, _, req, err := iso.request(Options{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		run, err := iso.run(context.Background(), req, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if run.err != nil || !run.report.cpuLimit {
			t.Fatalf("the child did not answer on SIGXCPU: %v, reported the CPU limit: %v%s", run.err, run.report.cpuLimit, run.stderr.summary())
		}
		_, err = decodeAnswer(run.stdout)
		if !errors.Is(err, ErrTooLarge) || err.Error() != ".: size limit exceeded: rendering used more than 1s of CPU (the render CPU limit, tether --render-cpu-limit)" {
			t.Fatalf("answer: %v, want ErrTooLarge for CPU", err)
		}
		if _, err := iso.Build(context.Background(), Options{Root: root}); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "of CPU") {
			t.Fatalf("Isolated.Build: %v, want ErrTooLarge for CPU", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		iso := testIsolated(t)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err := iso.Build(ctx, Options{Root: root})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Isolated.Build: %v, want context.DeadlineExceeded", err)
		}
	})
}

// TestBuildContextEndsDuringKustomize checks that Build does not pass a
// build off as finished in time when its context ended while kustomize,
// which cannot be interrupted, was working.
func TestBuildContextEndsDuringKustomize(t *testing.T) {
	root := psmBomb(1000).checkout(t) // about a second of kustomize
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rs, err := Build(ctx, Options{Root: root})
	if !errors.Is(err, context.DeadlineExceeded) || rs != nil {
		t.Fatalf("Build: %d objects, %v; want context.DeadlineExceeded", len(rs), err)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Errorf("error %v is not an *Error", err)
	}
}

// TestIsolatedChildFailures checks what the parent makes of a child that
// misbehaves: a crash (with the end of its stderr, bounded), an answer
// that never ends, a child that cannot start.
func TestIsolatedChildFailures(t *testing.T) {
	root := tree{files: map[string]string{"cm.yaml": configMap}}.checkout(t)
	tests := []struct {
		name    string
		command []string
		want    error
		msg     []string
	}{
		{
			name:    "crash",
			command: []string{"/bin/sh", "-c", "echo 'panic: boom' >&2; i=0; while [ $i -lt 3000 ]; do echo \"goroutine $i [running]: some.frame()\" >&2; i=$((i+1)); done; echo last words >&2; exit 3"},
			msg:     []string{"the renderer failed (exit status 3): panic: boom; its stderr ends with:\n...\n", "last words"},
		},
		{
			name:    "an answer that never ends",
			command: []string{"/bin/sh", "-c", "while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"},
			want:    ErrTooLarge,
			msg:     []string{"the renderer's answer passes"},
		},
		{
			name:    "an answer that is not one",
			command: []string{"/bin/sh", "-c", fmt.Sprintf("echo '{\"protocol\": %d, \"sources\": [\"a.yaml\"], \"objects\": [{\"source\": 3, \"object\": {}}]}'", childProtocol)},
			msg:     []string{"names source 3 of 1"},
		},
		{
			name:    "no such program",
			command: []string{"/nonexistent/tether"},
			want:    fs.ErrNotExist,
			msg:     []string{`starting the renderer "/nonexistent/tether"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iso := Isolated{Command: tt.command}
			_, err := iso.Build(context.Background(), Options{Root: root, MaxTotalSize: 1 << 20})
			if err == nil {
				t.Fatal("Isolated.Build succeeded")
			}
			t.Logf("error: %v", err)
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error is not %v", tt.want)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error does not contain %q", m)
				}
			}
			if len(err.Error()) > 4096 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

// TestErrorRoundTrip checks that errors cross from child to parent with
// their text and categories.
func TestErrorRoundTrip(t *testing.T) {
	tests := []error{
		refusal("k/kustomization.yaml", `resources[0] "x"`, ErrRemote, "detail"),
		&Error{File: "a.yaml", Reason: "build cancelled: context canceled", Err: context.Canceled},
		&Error{File: "a.yaml", Reason: "kustomize: boom", Err: errors.New("boom")},
		&Error{File: "k", Reason: "provenance", Err: fmt.Errorf("%w: %w", ErrProvenance, errors.New("kustomize failed"))},
		&Error{File: "x", Reason: "no kustomization", Err: fs.ErrNotExist},
		&Error{File: "x", Reason: "no cause"},
		fmt.Errorf("render: root %q: %w", "/x", &fs.PathError{Op: "lstat", Path: "/x", Err: syscall.ENOENT}),
	}
	for _, want := range tests {
		data, err := marshalJSON(encodeError(want))
		if err != nil {
			t.Fatal(err)
		}
		var ce childError
		if err := json.Unmarshal(data, &ce); err != nil {
			t.Fatal(err)
		}
		got := ce.decode()
		sameError(t, got, want)
		var we *Error
		if errors.As(want, &we) {
			if ge := got.(*Error); (ge.Err == nil) != (we.Err == nil) || (we.Err == ErrRemote && ge.Err != ErrRemote) {
				t.Errorf("%v: Err %#v, want %#v", want, ge.Err, we.Err)
			}
		}
	}
}
