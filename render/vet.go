package render

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/kustomize/api/builtins"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/api/types"
	sigsyaml "sigs.k8s.io/yaml"
)

// scpUser matches the "user@" that makes kustomize read a string as an
// scp-style git URL (git@github.com:org/repo); the same expression as
// kustomize's internal/git.extractUsername.
var scpUser = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]*@`)

// isRemote reports whether kustomize could take s for something to
// download: an http(s) file (its loader GETs those), or a git repository
// (it runs `git clone` for those). kustomize's own parser for git URLs is
// internal, so this mirrors its rules, erring towards "remote": any URL
// with "://" (http, https, ssh, file, git), the "git::" prefix, the
// github.com shorthands and scp-style "user@host:path". kustomize tries a
// git URL before a local folder of the same name, so a local path that
// looks like one would be cloned, not read; refusing it is right.
func isRemote(s string) bool {
	l := strings.ToLower(strings.TrimSpace(s))
	l = strings.TrimPrefix(l, "git::")
	switch {
	case strings.Contains(l, "://"):
		return true
	case strings.HasPrefix(l, "github.com/"), strings.HasPrefix(l, "github.com:"):
		return true
	case scpUser.MatchString(l):
		return true
	}
	if u, err := url.Parse(s); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		return true
	}
	return false
}

// entryName names a list entry of a kustomization in messages.
func entryName(field string, i int, value string) string {
	return fmt.Sprintf("%s[%d] %q", field, i, value)
}

// joinRel joins an entry to the resolved folder of its kustomization, as
// kustomize's loader does (lexically), refusing absolute paths and paths
// that climb above the checkout root.
func joinRel(dir, p string) (string, error) {
	if path.IsAbs(p) {
		return "", &escapeError{path: p}
	}
	return cleanRel(path.Join(dir, p))
}

// plugins says that the resources of a kustomization are plugin configs
// (it was reached through a generators, transformers or validators entry),
// and which kustomization loads them: paths in plugin configs are relative
// to that kustomization's folder.
type plugins struct {
	dir  string // resolved folder of the kustomization with the entry
	file string // its kustomization file, for messages
}

// vetter reads every kustomization a build reaches, before kustomize runs,
// and refuses what must not run: remote resources and bases, helm charts,
// plugins other than kustomize's built-in ones, and paths that leave the
// checkout. kustomize cannot be told to refuse remote resources (its
// loader fetches URLs and runs git itself), so this walk is what keeps a
// build off the network; it also makes the errors name the kustomization
// file and entry.
//
// It also learns, for every path kustomize's origin tracking can write, the
// file that path means (see kustomize.go): kustomize writes paths as it
// joined them, relative to the top folder and without resolving symlinks,
// so "link/../x.yaml" comes out as "x.yaml" even when link is a symlink and
// the file read was elsewhere. Walking the same entries with symlinks
// resolved gives the exact file for each path kustomize can write.
type vetter struct {
	b *build
	// origins maps paths as kustomize's origin annotations write them
	// (relative to the top folder) to the files they mean (resolved,
	// relative to the checkout root).
	origins   map[string]string
	ambiguous map[string]bool // origin paths that mean two files
	stack     []string        // folders of the kustomizations being vetted
	seen      map[vetKey]bool
	// topFile is the top kustomization file (resolved).
	topFile string
	// userOrigin: the top kustomization asks for origin annotations itself.
	userOrigin bool
}

type vetKey struct {
	dir, originDir string
	plugins        plugins
}

// vet vets the kustomization in the resolved folder dir and everything it
// reaches.
func vet(b *build, dir string) (*vetter, error) {
	v := &vetter{
		b:         b,
		origins:   map[string]string{},
		ambiguous: map[string]bool{},
		seen:      map[vetKey]bool{},
	}
	if err := v.kustomization(dir, "", "", "", nil, true); err != nil {
		return nil, err
	}
	return v, nil
}

// record notes that the origin path key means the file source.
func (v *vetter) record(key, source string) {
	key = path.Clean(key)
	if old, ok := v.origins[key]; ok && old != source {
		v.ambiguous[key] = true
		return
	}
	v.origins[key] = source
}

// source returns the file an origin path means.
func (v *vetter) source(key string) (string, bool) {
	key = path.Clean(key)
	src, ok := v.origins[key]
	return src, ok && !v.ambiguous[key]
}

// cycle reports whether kustomize would refuse to load dir as a base or
// component from where the walk is: kustomize refuses a folder equal to, or
// containing, a folder of a kustomization on the way to it.
func (v *vetter) cycle(dir string) bool {
	for _, s := range v.stack {
		if dir == "" || s == dir || strings.HasPrefix(s, dir+"/") {
			return true
		}
	}
	return false
}

// kustomization vets the kustomization in the resolved folder dir, reached
// from the entry fromEntry of fromFile ("" for the top); originDir is the
// folder as kustomize's origin paths name it.
func (v *vetter) kustomization(dir, originDir, fromFile, fromEntry string, pl *plugins, top bool) error {
	if err := v.b.ctx.Err(); err != nil {
		return &Error{File: fromFile, Entry: fromEntry, Reason: "build cancelled: " + err.Error(), Err: err}
	}
	name, err := v.b.kustomizationFile(dir)
	if err != nil {
		return err
	}
	if name == "" {
		return &Error{File: fromFile, Entry: fromEntry, Reason: fmt.Sprintf("folder %q has no kustomization file (kustomization.yaml, kustomization.yml or Kustomization)", displayDir(dir)), Err: fs.ErrNotExist}
	}
	file := path.Join(dir, name)
	res, data, err := v.b.readFile(file)
	if err != nil {
		return err
	}
	v.b.approved[res] = true
	v.record(path.Join(originDir, name), res)
	if top {
		v.topFile = res
	}
	key := vetKey{dir: dir, originDir: originDir}
	if pl != nil {
		key.plugins = *pl
	}
	if v.seen[key] {
		return nil
	}
	v.seen[key] = true

	var k types.Kustomization
	if err := k.Unmarshal(data); err != nil {
		return &Error{File: file, Reason: cleanMessage(err.Error()), Err: err}
	}
	if top {
		v.userOrigin = slices.Contains(k.BuildMetadata, types.OriginAnnotations)
	}
	// kustomize refuses an empty kustomization; switching origin tracking
	// on would make it non-empty, so check as kustomize does first.
	var fixed types.Kustomization
	_ = fixed.Unmarshal(data)
	fixed.FixKustomization()
	if err := fixed.CheckEmpty(); err != nil {
		return &Error{File: file, Reason: err.Error(), Err: err}
	}
	// Strings in a kustomization that kustomize parses as YAML (inline
	// patches and plugin configs) are screened like files.
	var tree any
	if err := sigsyaml.Unmarshal(data, &tree); err != nil {
		return &Error{File: file, Reason: err.Error(), Err: err}
	}
	if err := v.screenStrings(file, "", tree); err != nil {
		return err
	}
	if pl != nil {
		if field := pluginFolderField(&k); field != "" {
			return refusal(file, field, ErrPlugin, fmt.Sprintf(
				"this kustomization holds plugin configs (it is reached through a generators, transformers or validators entry of %s), "+
					"and its %s would change them after tether checked them; a folder of plugin configs may only list them (resources)", pl.file, field))
		}
	}

	v.stack = append(v.stack, dir)
	defer func() { v.stack = v.stack[:len(v.stack)-1] }()
	return v.entries(file, dir, originDir, &k, pl)
}

// screenStrings screens every string in a decoded YAML tree as YAML
// (aliases and mapping width): kustomize parses many of them (inline
// patches of every kind, inline plugin configs and the patches in them),
// and screening a string it does not parse costs little (screenYAML skips
// short strings without aliases) and refuses only what no kustomization
// needs.
func (v *vetter) screenStrings(file, at string, n any) error {
	switch t := n.(type) {
	case string:
		return v.b.screen(file, at, []byte(t))
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(t)) {
			sub := k
			if at != "" {
				sub = at + "." + k
			}
			if err := v.screenStrings(file, sub, t[k]); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range t {
			if err := v.screenStrings(file, fmt.Sprintf("%s[%d]", at, i), e); err != nil {
				return err
			}
		}
	}
	return nil
}

// entries vets the entries of one kustomization.
func (v *vetter) entries(file, dir, originDir string, k *types.Kustomization, pl *plugins) error {
	if len(k.HelmCharts) > 0 {
		return refusal(file, entryName("helmCharts", 0, k.HelmCharts[0].Name), ErrHelm, "inflating a chart runs the helm binary and usually downloads the chart")
	}
	if len(k.HelmChartInflationGenerator) > 0 {
		return refusal(file, entryName("helmChartInflationGenerator", 0, k.HelmChartInflationGenerator[0].ChartName), ErrHelm, "inflating a chart runs the helm binary and usually downloads the chart")
	}
	for _, f := range []struct {
		name string
		list []string
	}{{"resources", k.Resources}, {"bases", k.Bases}} {
		for i, r := range f.list {
			if err := v.resource(file, dir, originDir, entryName(f.name, i, r), r, pl); err != nil {
				return err
			}
		}
	}
	for i, c := range k.Components {
		if err := v.component(file, dir, originDir, entryName("components", i, c), c, pl); err != nil {
			return err
		}
	}
	check := func(entry, p string) error { return v.localPath(file, dir, entry, p) }
	for i, p := range k.Crds {
		if err := check(entryName("crds", i, p), p); err != nil {
			return err
		}
	}
	for i, p := range k.Configurations {
		if err := check(entryName("configurations", i, p), p); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		list []types.Patch
	}{{"patches", k.Patches}, {"patchesJson6902", k.PatchesJson6902}} {
		for i, p := range f.list {
			if p.Path == "" {
				continue
			}
			if err := check(fmt.Sprintf("%s[%d].path %q", f.name, i, p.Path), p.Path); err != nil {
				return err
			}
		}
	}
	for i, p := range k.PatchesStrategicMerge {
		// kustomize takes an entry that parses as objects for an inline
		// patch, anything else for a path (the string was screened above).
		if _, err := v.b.rmf.RF().SliceFromBytes([]byte(p)); err == nil {
			continue
		}
		if err := check(entryName("patchesStrategicMerge", i, string(p)), string(p)); err != nil {
			return err
		}
	}
	for i, r := range k.Replacements {
		if r.Path == "" {
			continue
		}
		if err := check(fmt.Sprintf("replacements[%d].path %q", i, r.Path), r.Path); err != nil {
			return err
		}
	}
	if p, ok := k.OpenAPI["path"]; ok {
		if err := check(fmt.Sprintf("openapi.path %q", p), p); err != nil {
			return err
		}
	}
	for i, g := range k.ConfigMapGenerator {
		if err := v.sources(file, dir, fmt.Sprintf("configMapGenerator[%d]", i), g.KvPairSources); err != nil {
			return err
		}
		if err := v.generatorInputs(file, dir, entryName("configMapGenerator", i, g.Name), g.KvPairSources); err != nil {
			return err
		}
	}
	for i, g := range k.SecretGenerator {
		if err := v.sources(file, dir, fmt.Sprintf("secretGenerator[%d]", i), g.KvPairSources); err != nil {
			return err
		}
		if err := v.generatorInputs(file, dir, entryName("secretGenerator", i, g.Name), g.KvPairSources); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		list []string
	}{{"generators", k.Generators}, {"transformers", k.Transformers}, {"validators", k.Validators}} {
		for i, g := range f.list {
			if err := v.plugin(file, dir, originDir, f.name, i, g); err != nil {
				return err
			}
		}
	}
	return nil
}

// sources vets the files a configMapGenerator or secretGenerator reads.
func (v *vetter) sources(file, dir, prefix string, kv types.KvPairSources) error {
	for j, s := range kv.FileSources {
		// "[key=]path"; a malformed entry is vetted whole (kustomize
		// refuses it anyway).
		entry := fmt.Sprintf("%s.files[%d] %q", prefix, j, s)
		if isRemote(s) {
			return refusal(file, entry, ErrRemote, "tether renders only what is in the checkout")
		}
		if err := v.localPath(file, dir, entry, fileSourcePath(s)); err != nil {
			return err
		}
	}
	for j, s := range kv.EnvSources {
		if err := v.localPath(file, dir, fmt.Sprintf("%s.envs[%d] %q", prefix, j, s), s); err != nil {
			return err
		}
	}
	if kv.EnvSource != "" {
		if err := v.localPath(file, dir, fmt.Sprintf("%s.env %q", prefix, kv.EnvSource), kv.EnvSource); err != nil {
			return err
		}
	}
	return nil
}

// localPath vets a path kustomize will read as a file (patches, CRDs,
// generator sources, ...): not remote, not leaving the checkout. Whether
// the file exists and what is in it is for kustomize to judge; the sandbox
// caps and screens it when kustomize reads it.
func (v *vetter) localPath(file, dir, entry, p string) error {
	if isRemote(p) {
		return refusal(file, entry, ErrRemote, "tether renders only what is in the checkout")
	}
	joined, err := joinRel(dir, p)
	if err != nil {
		return pathError(file, entry, p, err)
	}
	if _, err := resolve(v.b.root, joined); err != nil && isEscape(err) {
		return pathError(file, entry, p, err)
	}
	return nil
}

// target resolves an entry that names a file or folder to read: not remote,
// inside the checkout, existing.
func (v *vetter) target(file, dir, entry, p string) (string, fs.FileInfo, error) {
	if isRemote(p) {
		return "", nil, refusal(file, entry, ErrRemote, "tether renders only what is in the checkout")
	}
	joined, err := joinRel(dir, p)
	if err != nil {
		return "", nil, pathError(file, entry, p, err)
	}
	res, fi, err := v.b.stat(joined)
	if err != nil {
		return "", nil, pathError(file, entry, p, err)
	}
	return res, fi, nil
}

// resource vets a resources (or bases) entry: a file of objects, or a
// folder with a kustomization.
func (v *vetter) resource(file, dir, originDir, entry, p string, pl *plugins) error {
	res, fi, err := v.target(file, dir, entry, p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return v.folder(file, originDir, entry, p, res, pl)
	}
	res, data, err := v.b.readFile(res)
	if err != nil {
		return err
	}
	v.b.approved[res] = true
	v.record(path.Join(originDir, p), res)
	if pl != nil {
		return v.pluginConfigs(pl, file, entry, data)
	}
	return nil
}

// component vets a components entry: a folder with a kustomization of kind
// Component.
func (v *vetter) component(file, dir, originDir, entry, p string, pl *plugins) error {
	res, fi, err := v.target(file, dir, entry, p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &Error{File: file, Entry: entry, Reason: "a component must be a folder with a kustomization file"}
	}
	return v.folder(file, originDir, entry, p, res, pl)
}

// folder vets an entry that names a folder holding a kustomization,
// refusing a folder that leads back to one being vetted.
func (v *vetter) folder(file, originDir, entry, p, res string, pl *plugins) error {
	if v.cycle(res) {
		return &Error{File: file, Entry: entry, Reason: fmt.Sprintf("cycle: folder %q is, or contains, a kustomization that leads to it", displayDir(res))}
	}
	return v.kustomization(res, path.Join(originDir, p), file, entry, pl, false)
}

// plugin vets a generators, transformers or validators entry: inline plugin
// configs, a file of them, or a kustomization whose output is plugin
// configs. Only kustomize's built-in plugins are allowed (kustomize is run
// with built-ins only as well, so this is about the error message and the
// paths those built-ins read).
func (v *vetter) plugin(file, dir, originDir, field string, i int, p string) error {
	pl := &plugins{dir: dir, file: file}
	// kustomize takes an entry for inline configs when it makes a resource
	// map (the string was screened with the rest of the kustomization), and
	// anything else for a path: the same call decides here, so that a
	// string kustomize reads as a path (two configs with the same name do
	// not make a resource map) is vetted as one.
	if rm, err := v.b.rmf.NewResMapFromBytes([]byte(p)); err == nil {
		entry := fmt.Sprintf("%s[%d] (inline)", field, i)
		for _, r := range rm.Resources() {
			if err := v.pluginConfig(pl, file, entry, r); err != nil {
				return err
			}
		}
		return nil
	}
	// A file of plugin configs, or a folder whose output is plugin
	// configs: vetted as a resource that carries plugin configs.
	return v.resource(file, dir, originDir, entryName(field, i, p), p, pl)
}

// pluginConfigs vets the plugin configs in a file (already screened) that
// the entry of kustomization file names.
func (v *vetter) pluginConfigs(pl *plugins, file, entry string, data []byte) error {
	rs, err := v.b.rmf.RF().SliceFromBytes(data)
	if err != nil {
		return nil // not objects: kustomize reports it
	}
	for _, r := range rs {
		if err := v.pluginConfig(pl, file, entry, r); err != nil {
			return err
		}
	}
	return nil
}

// functionAnnotations are the annotations that make a plugin config a KRM
// function (kustomize's fnplugin.GetFunctionSpec reads both).
func functionAnnotations() []string {
	return []string{"config.kubernetes.io/function", "config.k8s.io/function"}
}

// pluginConfig vets one plugin config, which the entry of kustomization
// file names: it must be a built-in plugin other than the helm chart
// inflator, the files it names must be local, and no other string in it
// may be a URL.
//
// The config is read as kustomize's plugin loader hands it to the plugin
// (the resource as YAML) and decoded into the plugin's own type with the
// plugin's own decoder (sigs.k8s.io/yaml, which matches keys the way
// encoding/json does: "Path", "PATH" and "path" are the same field), so the
// vetter sees exactly the files the plugin will load.
func (v *vetter) pluginConfig(pl *plugins, file, entry string, r *resource.Resource) error {
	gvk := r.GetGvk()
	id := fmt.Sprintf("%s %s/%s", r.GetApiVersion(), gvk.Kind, r.GetName())
	ann := r.GetAnnotations()
	for _, a := range functionAnnotations() {
		if _, ok := ann[a]; ok {
			return refusal(file, entry, ErrPlugin, fmt.Sprintf("%s is a KRM function (a container, an executable or a starlark script)", id))
		}
	}
	if gvk.Group != "" || gvk.Version != "builtin" {
		return refusal(file, entry, ErrPlugin, fmt.Sprintf("%s is not one of kustomize's built-in plugins (exec and Go plugins run code from the repository)", id))
	}
	if gvk.Kind == "HelmChartInflationGenerator" {
		return refusal(file, entry, ErrHelm, "inflating a chart runs the helm binary and usually downloads the chart")
	}
	config, err := r.AsYAML()
	if err != nil {
		return &Error{File: file, Entry: entry, Reason: fmt.Sprintf("%s: %v", id, err), Err: err}
	}
	var tree any
	if err := sigsyaml.Unmarshal(config, &tree); err != nil {
		return &Error{File: file, Entry: entry, Reason: fmt.Sprintf("%s: %v", id, err), Err: err}
	}
	// Inline patches in the config are parsed as YAML.
	if err := v.screenStrings(file, entry, tree); err != nil {
		return err
	}
	paths, known, err := v.builtinPaths(gvk.Kind, config)
	if !known {
		return refusal(file, entry, ErrPlugin, fmt.Sprintf("%s is not one of the built-in plugins tether knows", id))
	}
	if err != nil {
		// The plugin's own Config fails on the same bytes the same way.
		return &Error{File: file, Entry: entry, Reason: fmt.Sprintf("kustomize cannot read %s: %v", id, err), Err: err}
	}
	// relocate names the kustomization that lists the config when that is
	// not the one that loads it (a config in a folder of configs).
	relocate := func(err error, field, value string) error {
		var e *Error
		if errors.As(err, &e) && file != pl.file {
			e.File, e.Entry = file, fmt.Sprintf("%s (loaded by %s): %s %q", entry, pl.file, field, value)
		}
		return err
	}
	for _, p := range paths {
		// Relative to the folder of the kustomization that loads the
		// plugin, which is not always the one that lists the config.
		if isRemote(p.value) {
			return relocate(refusal(pl.file, fmt.Sprintf("%s: %s %q", entry, p.field, p.value), ErrRemote, "tether renders only what is in the checkout"), p.field, p.value)
		}
		if err := v.localPath(pl.file, pl.dir, fmt.Sprintf("%s: %s %q", entry, p.field, p.value), p.path); err != nil {
			return relocate(err, p.field, p.value)
		}
	}
	// builtinPaths decoded the same config without an error.
	if kv, _ := generatorSources(gvk.Kind, config); kv != nil {
		if err := v.generatorInputs(file, pl.dir, fmt.Sprintf("%s: %s", entry, id), *kv); err != nil {
			return err
		}
	}
	// Defence in depth: no field other than data (names, labels,
	// annotations, literals, inline patches) holds a URL, whatever the
	// field and whether or not this version of kustomize reads it.
	if field, value, ok := urlField("", tree); ok {
		return refusal(file, fmt.Sprintf("%s: %s %q", entry, field, value), ErrRemote, id+" names a URL; tether renders only what is in the checkout")
	}
	return nil
}

// pluginPath is a file a built-in plugin config names.
type pluginPath struct {
	field string // the field as the plugin names it ("files[1]")
	value string // the field's value ("key=app.properties")
	path  string // the file that value names ("app.properties")
}

// builtinPaths returns the files a built-in plugin config makes kustomize
// (api v0.20.1) load, decoding config into the plugin's own type with
// sigs.k8s.io/yaml as the plugin's Config does. known is false for a kind
// that is not a built-in plugin of that version: a newer kustomize might
// read files through fields tether does not know of. The fields, from
// api/internal/builtins:
//
//   - PatchTransformer, PatchJson6902Transformer: path
//   - PatchStrategicMergeTransformer: paths (entries that do not parse as
//     objects, which are inline patches)
//   - ReplacementTransformer: replacements[].path
//   - ValueAddTransformer: targetFilePath
//   - ConfigMapGenerator, SecretGenerator: files ("[key=]path"), envs, env
//   - HelmChartInflationGenerator: refused before this is asked
//   - the others (AnnotationsTransformer, HashTransformer,
//     IAMPolicyGenerator, ImageTagTransformer, LabelTransformer,
//     NamespaceTransformer, PrefixTransformer, SuffixTransformer,
//     ReplicaCountTransformer, SortOrderTransformer) read no files.
func (v *vetter) builtinPaths(kind string, config []byte) (paths []pluginPath, known bool, err error) {
	add := func(field, value, p string) {
		if p != "" {
			paths = append(paths, pluginPath{field: field, value: value, path: p})
		}
	}
	kv := func(s types.KvPairSources) {
		for i, f := range s.FileSources {
			add(fmt.Sprintf("files[%d]", i), f, fileSourcePath(f))
		}
		for i, e := range s.EnvSources {
			add(fmt.Sprintf("envs[%d]", i), e, e)
		}
		add("env", s.EnvSource, s.EnvSource)
	}
	switch kind {
	case "PatchTransformer":
		var p builtins.PatchTransformerPlugin
		err = sigsyaml.Unmarshal(config, &p)
		add("path", p.Path, p.Path)
	case "PatchJson6902Transformer":
		var p builtins.PatchJson6902TransformerPlugin
		err = sigsyaml.Unmarshal(config, &p)
		add("path", p.Path, p.Path)
	case "PatchStrategicMergeTransformer":
		var p builtins.PatchStrategicMergeTransformerPlugin
		err = sigsyaml.Unmarshal(config, &p)
		for i, s := range p.Paths {
			// The plugin tries each entry as an inline patch first.
			if _, perr := v.b.rmf.RF().SliceFromBytes([]byte(s)); perr == nil {
				continue
			}
			add(fmt.Sprintf("paths[%d]", i), string(s), string(s))
		}
	case "ReplacementTransformer":
		var p builtins.ReplacementTransformerPlugin
		err = sigsyaml.Unmarshal(config, &p)
		for i, r := range p.ReplacementList {
			add(fmt.Sprintf("replacements[%d].path", i), r.Path, r.Path)
		}
	case "ValueAddTransformer":
		var p builtins.ValueAddTransformerPlugin
		err = sigsyaml.Unmarshal(config, &p)
		add("targetFilePath", p.TargetFilePath, p.TargetFilePath)
	case "ConfigMapGenerator":
		var p builtins.ConfigMapGeneratorPlugin
		err = sigsyaml.Unmarshal(config, &p)
		kv(p.KvPairSources)
	case "SecretGenerator":
		var p builtins.SecretGeneratorPlugin
		err = sigsyaml.Unmarshal(config, &p)
		kv(p.KvPairSources)
	case "AnnotationsTransformer", "HashTransformer", "IAMPolicyGenerator", "ImageTagTransformer",
		"LabelTransformer", "NamespaceTransformer", "PrefixTransformer", "SuffixTransformer",
		"ReplicaCountTransformer", "SortOrderTransformer":
		return nil, true, nil
	default:
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	return paths, true, nil
}

// fileSourcePath returns the file of a configMapGenerator or secretGenerator
// "files" entry ("[key=]path"), as kustomize's generators.ParseFileSource
// reads it; a malformed entry (which kustomize refuses) is returned whole,
// so that it is still vetted.
func fileSourcePath(s string) string {
	if strings.Count(s, "=") == 1 {
		if p := s[strings.Index(s, "=")+1:]; p != "" {
			return p
		}
	}
	return s
}

// dataFields are the fields of plugin configs whose strings are data, never
// something to load: object metadata, labels and annotations to set,
// generator literals, the value ValueAddTransformer adds, and inline
// patches. Anywhere else a URL is refused (see urlField).
func dataFields() []string {
	return []string{"metadata", "annotations", "labels", "commonLabels", "commonAnnotations", "literals", "value", "patch", "patches", "jsonOp"}
}

// urlField finds a string in a decoded plugin config that is a URL, outside
// the data fields; keys are compared as encoding/json compares them.
func urlField(at string, n any) (field, value string, found bool) {
	switch t := n.(type) {
	case string:
		if looksLikeURL(t) {
			return at, t, true
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(t)) {
			if slices.ContainsFunc(dataFields(), func(d string) bool { return strings.EqualFold(d, k) }) {
				continue
			}
			sub := k
			if at != "" {
				sub = at + "." + k
			}
			if f, v, ok := urlField(sub, t[k]); ok {
				return f, v, true
			}
		}
	case []any:
		for i, e := range t {
			if f, v, ok := urlField(fmt.Sprintf("%s[%d]", at, i), e); ok {
				return f, v, true
			}
		}
	}
	return "", "", false
}

// looksLikeURL reports whether s, a whole single-line string, is a URL of a
// kind kustomize (or git, which it runs) can fetch: anything with "://",
// an http(s) URL without slashes, a "git::" URL or an scp-style git address
// (user@host:path). Unlike isRemote it does not take github.com/... or a
// bare user@host for remote: in data fields other than the known ones those
// are image names and e-mail addresses.
func looksLikeURL(s string) bool {
	t := strings.TrimSpace(s)
	if t == "" || strings.ContainsAny(t, " \t\r\n") {
		return false
	}
	l := strings.ToLower(t)
	if strings.Contains(l, "://") || strings.HasPrefix(l, "git::") {
		return true
	}
	if u, err := url.Parse(t); err == nil {
		switch u.Scheme {
		case "http", "https", "ssh", "git", "file":
			return true
		}
	}
	if at := strings.Index(t, "@"); at > 0 && scpUser.MatchString(t) {
		host, _, ok := strings.Cut(t[at+1:], ":")
		return ok && host != "" && !strings.Contains(host, "/")
	}
	return false
}

// pluginFolderFields are the fields a kustomization that holds plugin
// configs may have: what lists the configs, and what changes nothing in
// them.
func pluginFolderFields() []string {
	return []string{"apiVersion", "kind", "metadata", "resources", "bases", "buildMetadata", "sortOptions"}
}

// pluginFolderField returns the first field of k, by its name in the
// kustomization file, that a folder of plugin configs may not have: a
// kustomization reached through a generators, transformers or validators
// entry is built before its output is loaded as plugin configs, so its own
// patches, replacements, transformers, name and label changes, vars,
// configurations and generators would change the configs after the
// vetter read them (a patch could set a PatchTransformer's path to a URL).
// Refusing those is simpler and safer than building the folder twice; real
// folders of plugin configs only list them.
func pluginFolderField(k *types.Kustomization) string {
	allowed := pluginFolderFields()
	v := reflect.ValueOf(*k)
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous { // TypeMeta: apiVersion and kind
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		fv := v.Field(i)
		empty := fv.IsZero() || ((fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.Len() == 0)
		if empty || slices.Contains(allowed, name) {
			continue
		}
		return name
	}
	return ""
}
