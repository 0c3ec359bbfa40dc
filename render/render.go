// Package render turns a folder of a git checkout into Kubernetes objects,
// as `kustomize build` does, but confined to the checkout and bounded,
// because the checkout comes from a repository tether does not trust.
//
// A folder with a kustomization file is built with kustomize's own library
// (sigs.k8s.io/kustomize/api/krusty, the code `kubectl kustomize` runs), on
// a read-only file system rooted at the checkout, so the objects and fields
// are those `kustomize build` prints. Before kustomize sees anything, every
// kustomization the build reaches is read and vetted: remote bases and
// resources, helm charts, exec, Go and container plugins, and paths or
// symlinks that leave the checkout are refused with an error naming the
// kustomization file and the entry. Every file kustomize reads is size
// capped and its YAML screened for alias bombs. A folder without a
// kustomization file is read as plain YAML files, recursively, as Flux does:
// *.yaml, *.yml and *.json, hidden entries (.git, .gitlab-ci.yml) skipped,
// and what it cannot read as intended (a symlinked folder, x.YAML) refused
// rather than skipped, since an object left out would be pruned.
//
// Every object comes with the file it came from (Resource.Source), taken
// from kustomize's own origin tracking.
//
// kustomize's memory and CPU time cannot be bounded from inside the
// process that runs it (it holds hundreds of bytes of memory per byte of
// some inputs, some merges are super-quadratic, and it cannot be
// interrupted), so the agent renders with Isolated: the same Build in a
// child process with hard memory and CPU limits, no network and no
// programs to run, killed when the context ends, through a Scheduler that
// bounds how many run at once, shares them fairly between syncs and does
// not render again a revision that failed by a limit. Build itself runs
// in-process (for the tests and callers that trust their input).
package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/provider"
	"sigs.k8s.io/kustomize/api/resmap"
	sigsyaml "sigs.k8s.io/yaml"
)

// Defaults for the limits in Options.
const (
	// DefaultMaxFileSize caps each file read from the checkout.
	DefaultMaxFileSize int64 = 8 << 20
	// DefaultMaxTotalSize caps the YAML read from the checkout and, apart
	// from that, the rendered objects (as JSON).
	DefaultMaxTotalSize int64 = 64 << 20
	// DefaultMaxYAMLNodes caps each YAML document that uses aliases at
	// 100,000 nodes once the aliases are expanded, and the nodes aliases add
	// across the whole build at the same number. kustomize holds 1 to 2 KiB
	// of heap per node while it works (measured with kustomize api v0.20.1:
	// a ConfigMap of 100,000 nodes peaked at 120 MiB, an alias-expanded
	// document of 235,000 nodes at 430 MiB), so this keeps what aliases can
	// cost to roughly 200 MiB. Documents that use anchors are
	// written by hand and rarely pass a few thousand nodes; generated ones
	// (big CRDs of 100,000 nodes and more) have no aliases and are bounded
	// by MaxFileSize alone. Alias bombs aim at billions of nodes, so the
	// exact number does not matter for stopping them.
	DefaultMaxYAMLNodes = 100_000
)

// Options says what to render and within which limits. Zero limits take
// their defaults.
type Options struct {
	Root         string // the checkout; nothing outside it may be read
	Path         string // folder to render, relative to Root ("" = Root)
	MaxFileSize  int64  // per file read; default 8 MiB
	MaxTotalSize int64  // total YAML read, and total rendered (as JSON); default 64 MiB each
	MaxYAMLNodes int    // cap on the nodes of a document that uses aliases, once expanded, and on the nodes aliases add in total; default 100,000
}

// withDefaults fills in the zero limits and checks the rest.
func (o Options) withDefaults() (Options, error) {
	if o.Root == "" {
		return o, errors.New("render: Options.Root is empty")
	}
	if o.MaxFileSize == 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.MaxTotalSize == 0 {
		o.MaxTotalSize = DefaultMaxTotalSize
	}
	if o.MaxYAMLNodes == 0 {
		o.MaxYAMLNodes = DefaultMaxYAMLNodes
	}
	if o.MaxFileSize < 0 || o.MaxTotalSize < 0 || o.MaxYAMLNodes < 0 {
		return o, fmt.Errorf("render: negative limit in options (MaxFileSize %d, MaxTotalSize %d, MaxYAMLNodes %d)",
			o.MaxFileSize, o.MaxTotalSize, o.MaxYAMLNodes)
	}
	return o, nil
}

// Resource is one rendered object and the file it came from.
type Resource struct {
	Object *unstructured.Unstructured
	// Source is the slash path relative to Root of the file the object came
	// from: the resource file it was read from, or for a generated object
	// (configMapGenerator, secretGenerator, a generator config) the file
	// that configured the generator. Symlinks are resolved: Source names the
	// file that holds the content.
	Source string
}

// Build renders opts.Path inside opts.Root. It returns the objects in the
// order `kustomize build` prints them (for a plain folder: files in
// lexical order, documents in file order), each with its source file, or an
// error (an *Error) that names the file and entry or object concerned. A
// build that fails never returns objects.
//
// Build checks ctx between the files it reads, but kustomize itself cannot
// be interrupted: when ctx ends while kustomize works, Build returns (an
// *Error wrapping) ctx.Err() once kustomize is done, never the objects.
// Isolated.Build stops at once.
func Build(ctx context.Context, opts Options) ([]Resource, error) {
	return buildReporting(ctx, opts, nil)
}

// buildReporting is Build, calling onRead (when not nil) with the path of
// each file, relative to Root, before it reads the file: the child tells
// the parent which file it worked on when it ran out of memory.
func buildReporting(ctx context.Context, opts Options, onRead func(file string)) ([]Resource, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b, err := newBuild(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer b.close()
	b.onRead = onRead

	dir, err := b.folder(opts.Path)
	if err != nil {
		return nil, err
	}
	name, err := b.kustomizationFile(dir)
	if err != nil {
		return nil, err
	}
	var out []Resource
	if name != "" {
		out, err = b.kustomize(dir)
	} else {
		out, err = b.plain(dir)
	}
	if err != nil {
		return nil, err
	}
	if err := validate(out); err != nil {
		return nil, err
	}
	// kustomize cannot be interrupted: a build whose context ended while
	// kustomize worked must not pass for one that finished in time.
	if err := ctx.Err(); err != nil {
		return nil, &Error{File: displayDir(dir), Reason: "build cancelled: " + err.Error(), Err: err}
	}
	return out, nil
}

// Objects returns the objects of rs, in order.
func Objects(rs []Resource) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(rs))
	for i, r := range rs {
		out[i] = r.Object
	}
	return out
}

// YAML returns rs as a multi-document YAML stream, byte for byte as
// `kustomize build` prints the same objects: documents separated by "---"
// lines, fields in kustomize's order (sorted, because kustomize prints each
// object by converting it to JSON and then to YAML, which is what this does
// too).
func YAML(rs []Resource) ([]byte, error) {
	var buf bytes.Buffer
	for i, r := range rs {
		if r.Object == nil {
			return nil, fmt.Errorf("render: resource %d (from %s) has no object", i, r.Source)
		}
		y, err := objectYAML(r.Object)
		if err != nil {
			return nil, fmt.Errorf("render: %s (from %s): %w", objectName(r.Object), r.Source, err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(y)
	}
	return buf.Bytes(), nil
}

// objectYAML renders one object as kustomize's Resource.AsYAML does: JSON
// first (which sorts the fields), then YAML.
func objectYAML(u *unstructured.Unstructured) ([]byte, error) {
	j, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	return sigsyaml.JSONToYAML(j)
}

// build is the state of one Build call: the checkout, the limits, the files
// read so far and the budgets they used.
type build struct {
	// ctx is kept here because kustomize reads files through the
	// filesys.FileSystem interface, which has no context; the sandbox checks
	// it before every read, so a cancelled build stops between files.
	ctx  context.Context
	opts Options
	root *os.Root

	rmf *resmap.Factory // kustomize's parser, for plain files and inline plugin configs

	files    map[string][]byte // content by resolved path, each file read once
	approved map[string]bool   // files read while vetting (see sandbox.ReadFile)
	read     int64             // bytes read from the checkout
	extra    int64             // YAML nodes added by alias expansion, whole build
	wideWork int64             // keys squared of wide mappings and generators, whole build (MaxWideWork)
	rendered int64             // bytes of YAML rendered
	// mentionsTracking is set when a file read mentions one of the
	// annotations kustomize's origin tracking writes; see kustomize.go.
	mentionsTracking bool
	// onRead, when set, is told each file before it is read.
	onRead func(file string)
}

func newBuild(ctx context.Context, opts Options) (*build, error) {
	abs, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("render: root %q: %w", opts.Root, err)
	}
	// The checkout itself may sit behind a symlink (git-sync style
	// atomic swaps); everything below it is confined.
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("render: root %q: %w", opts.Root, err)
	}
	root, err := os.OpenRoot(real)
	if err != nil {
		return nil, fmt.Errorf("render: root %q: %w", opts.Root, err)
	}
	return &build{
		ctx:      ctx,
		opts:     opts,
		root:     root,
		rmf:      resmap.NewFactory(provider.NewDepProvider().GetResourceFactory()),
		files:    map[string][]byte{},
		approved: map[string]bool{},
	}, nil
}

func (b *build) close() { _ = b.root.Close() }
