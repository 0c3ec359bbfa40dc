package render

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kustomize/api/konfig"
)

// plainItem is one thing to render in a folder without a kustomization:
// a YAML file, or a subfolder with a kustomization file.
type plainItem struct {
	path          string // relative to the checkout root, as found
	kustomization bool
}

// manifestExtensions are the extensions of the files read in a plain
// folder, in lower case; a file whose extension matches one only when case
// is ignored is refused (see walk).
func manifestExtensions() []string { return []string{".yaml", ".yml", ".json"} }

// manifestKind says whether a file name has one of the manifest extensions:
// exactly (read), only when case is ignored (refused), or not at all
// (skipped).
func manifestKind(name string) (exact, folded bool) {
	ext := path.Ext(name)
	for _, m := range manifestExtensions() {
		if ext == m {
			return true, true
		}
		if strings.EqualFold(ext, m) {
			folded = true
		}
	}
	return false, folded
}

// plain renders the resolved folder dir, which has no kustomization file,
// as Flux does: every YAML and JSON file below it, recursively and in
// lexical order, documents in file order; a subfolder with a kustomization
// file is built with kustomize (as `kustomize build` of that subfolder)
// instead of being read file by file. Every kustomization is vetted before
// kustomize runs at all.
func (b *build) plain(dir string) ([]Resource, error) {
	var items []plainItem
	if err := b.walk(dir, &items); err != nil {
		return nil, err
	}
	vetted := map[string]*vetter{}
	for _, it := range items {
		if !it.kustomization {
			continue
		}
		v, err := vet(b, it.path)
		if err != nil {
			return nil, err
		}
		vetted[it.path] = v
	}
	var out []Resource
	for _, it := range items {
		var rs []Resource
		var err error
		if it.kustomization {
			rs, err = b.kustomizeVetted(it.path, vetted[it.path])
		} else {
			rs, err = b.plainFile(it.path)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// walk lists what to render below the resolved folder dir.
//
// What a plain folder renders must never depend on a file being skipped
// quietly: an object left out of the render is pruned from the cluster. So
// walk refuses, with an error naming the path, what it cannot read as
// intended: a symlink to a folder (with or without a kustomization; tether
// does not follow symlinked folders, as filepath.WalkDir and Flux do not,
// which also keeps symlink loops out), a file whose extension is a manifest
// extension in other case (x.YAML, x.Yml), and a manifest that is not a
// regular file (a FIFO, a device, a symlink to one). A symlinked YAML file
// is read if it resolves inside the checkout. Files with other extensions
// are skipped (README.md, scripts), and so is every entry whose name starts
// with "." (hidden folders such as .git and .github, and hidden files such
// as .gitlab-ci.yml and .pre-commit-config.yaml): those are tool
// configuration, not manifests.
func (b *build) walk(dir string, items *[]plainItem) error {
	if err := b.ctx.Err(); err != nil {
		return &Error{File: displayDir(dir), Reason: "build cancelled: " + err.Error(), Err: err}
	}
	entries, err := b.readDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		rel := path.Join(dir, name)
		if e.IsDir() {
			k, err := b.kustomizationFile(rel)
			if err != nil {
				return err
			}
			if k != "" {
				*items = append(*items, plainItem{path: rel, kustomization: true})
				continue
			}
			if err := b.walk(rel, items); err != nil {
				return err
			}
			continue
		}
		exact, folded := manifestKind(name)
		var fi fs.FileInfo
		if e.Type()&fs.ModeSymlink != 0 {
			_, fi, err = b.stat(rel)
			if err != nil {
				if exact || folded || isEscape(err) {
					return pathError(rel, "", rel, err)
				}
				continue // a dangling link to something that is no manifest
			}
			if fi.IsDir() {
				return &Error{File: rel, Reason: "a symlink to a folder: tether does not follow symlinked folders in a folder without a kustomization, " +
					"and skipping it would leave its objects out (and prune them); list the folder in a kustomization or replace the link with the folder"}
			}
		} else if fi, err = e.Info(); err != nil {
			return pathError(rel, "", rel, err)
		}
		switch {
		case !exact && folded:
			return &Error{File: rel, Reason: fmt.Sprintf("the extension %q is not one tether reads (%s, in lower case), and skipping the file would leave its objects out (and prune them); rename it",
				path.Ext(name), strings.Join(manifestExtensions(), ", "))}
		case !exact:
		case !fi.Mode().IsRegular():
			return &Error{File: rel, Reason: "a manifest that is not a regular file", Err: fs.ErrInvalid}
		default:
			*items = append(*items, plainItem{path: rel})
		}
	}
	return nil
}

// plainFile renders one YAML file of a plain folder with kustomize's parser
// (so a List is unpacked as kustomize and Flux unpack it), dropping the
// objects kustomize drops as local configuration.
func (b *build) plainFile(rel string) ([]Resource, error) {
	res, data, err := b.readFile(rel)
	if err != nil {
		return nil, err
	}
	if err := checkDocuments(res, data); err != nil {
		return nil, err
	}
	rs, err := b.rmf.RF().SliceFromBytes(data)
	if err != nil {
		return nil, &Error{File: res, Reason: "parsing: " + err.Error(), Err: err}
	}
	var out []Resource
	for _, r := range rs {
		if v, ok := r.GetAnnotations()[konfig.IgnoredByKustomizeAnnotation]; ok && v != "false" {
			continue
		}
		j, err := objectJSON(&r.RNode)
		if err != nil {
			return nil, &Error{File: res, Entry: r.CurId().String(), Reason: "converting to JSON: " + err.Error(), Err: err}
		}
		u, err := b.object(res, j)
		if err != nil {
			return nil, err
		}
		out = append(out, Resource{Object: u, Source: res})
	}
	return out, nil
}

// checkDocuments checks that every document of a plain YAML file, as
// kyaml's reader splits them, is empty or a Kubernetes object (a mapping
// with apiVersion and kind), so that an error names the document rather
// than what kustomize's parser makes of it.
func checkDocuments(file string, data []byte) error {
	for i, piece := range splitDocuments(data) {
		entry := fmt.Sprintf("document %d", i+1)
		var doc yaml.Node
		if err := yaml.NewDecoder(strings.NewReader(piece)).Decode(&doc); err != nil {
			if err == io.EOF {
				continue
			}
			return &Error{File: file, Entry: entry, Reason: "not valid YAML: " + err.Error(), Err: err}
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue
		}
		if root.Kind != yaml.MappingNode {
			return refusal(file, entry, ErrNotObject, "expected a mapping with apiVersion and kind")
		}
		apiVersion := scalarField(root, "apiVersion")
		kind := scalarField(root, "kind")
		if apiVersion == "" || kind == "" {
			return refusal(file, entry, ErrNotObject, "apiVersion and kind are required")
		}
		// kustomize's parser refuses a nameless object with a message that
		// names neither file nor document; lists have no name of their own.
		if !strings.HasSuffix(kind, "List") {
			if md := mappingField(root, "metadata"); md == nil || scalarField(md, "name") == "" {
				return refusal(file, entry+" ("+kind+")", ErrInvalid, "metadata.name is missing")
			}
		}
	}
	return nil
}

// mappingField returns the value of key in a YAML mapping if it is a
// mapping.
func mappingField(m *yaml.Node, key string) *yaml.Node {
	for j := 0; j+1 < len(m.Content); j += 2 {
		if m.Content[j].Value == key && m.Content[j+1].Kind == yaml.MappingNode {
			return m.Content[j+1]
		}
	}
	return nil
}

// scalarField returns the value of key in a YAML mapping if it is a
// scalar, else "".
func scalarField(m *yaml.Node, key string) string {
	for j := 0; j+1 < len(m.Content); j += 2 {
		if m.Content[j].Value == key && m.Content[j+1].Kind == yaml.ScalarNode {
			return m.Content[j+1].Value
		}
	}
	return ""
}
