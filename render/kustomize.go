package render

import (
	"bytes"
	"encoding/json"
	"fmt"

	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// Provenance comes from kustomize's own origin tracking. With
// "originAnnotations" in the top kustomization's buildMetadata, kustomize
// annotates every object with config.kubernetes.io/origin: the path of the
// resource file it was read from, or for a generated object the
// kustomization (or generator config) that configured the generator, in
// both cases relative to the folder being built, joined lexically
// ("../../base/deployment.yaml"). The sandbox serves the top kustomization
// with that switched on; the build reads the annotation, maps the path to
// the exact file through what the vetter learned, and removes the
// annotation again (kustomize's own RemoveOriginAnnotations, the call its
// build makes when the option is off) unless the user's kustomization asked
// for it. The output is then what `kustomize build` prints.
//
// The annotation exists while kustomize transforms the objects, so a
// kustomization could in principle notice it: a patch that replaces or
// removes metadata.annotations as a whole erases it (kustomize then credits
// the patch), one that copies metadata.annotations elsewhere carries it
// along, a selector could match on it. Such builds are recognised (an
// origin that names a transformer, the annotation anywhere after removal,
// an input that mentions it, a build that fails only with tracking on) and
// built a second time without tracking, exactly as kustomize would; tether
// uses the tracked objects only if both builds agree object for object,
// and refuses (ErrProvenance) rather than guess.

// isGeneratorKind reports whether kind is one of kustomize's built-in
// generators: an origin that names one of them as configuredBy credits the
// file that configured it.
func isGeneratorKind(kind string) bool {
	switch kind {
	case "ConfigMapGenerator", "SecretGenerator", "IAMPolicyGenerator", "HelmChartInflationGenerator":
		return true
	}
	return false
}

// object is a rendered object with what is needed to check it.
type object struct {
	res  Resource
	json []byte // kustomize's JSON for it
	// unknown says why the source is unknown ("" when res.Source is set),
	// and unknownFile which file that is about.
	unknown, unknownFile string
}

// kustomize builds the kustomization in the resolved folder dir.
func (b *build) kustomize(dir string) ([]Resource, error) {
	v, err := vet(b, dir)
	if err != nil {
		return nil, err
	}
	return b.kustomizeVetted(dir, v)
}

// kustomizeVetted builds a vetted kustomization.
func (b *build) kustomizeVetted(dir string, v *vetter) ([]Resource, error) {
	track := ""
	if !v.userOrigin {
		track = v.topFile
	}
	m, buildErr, err := b.krusty(dir, track)
	if err != nil {
		return nil, err
	}
	var objs []object
	suspect := buildErr != nil
	if buildErr == nil {
		if objs, err = b.collect(m, v, track != ""); err != nil {
			return nil, err
		}
		suspect = unknownSource(objs) != nil || (track != "" && (b.mentionsTracking || residue(objs)))
	}
	if !suspect {
		return resources(objs), nil
	}
	if track == "" {
		// The user's kustomization tracks origins itself: this was the
		// build exactly as kustomize runs it.
		if buildErr != nil {
			return nil, kustomizeError(v.topFile, buildErr)
		}
		return nil, provenanceError(unknownSource(objs))
	}

	plain, plainErr, err := b.krusty(dir, "")
	if err != nil {
		return nil, err
	}
	if plainErr != nil {
		return nil, kustomizeError(v.topFile, plainErr)
	}
	if buildErr != nil {
		return nil, &Error{
			File: v.topFile,
			Reason: "the build succeeds, but fails once kustomize tracks origins, so tether cannot tell which file each object came from " +
				"(does a patch test or rely on metadata.annotations as a whole?): " + cleanMessage(buildErr.Error()),
			Err: fmt.Errorf("%w: %w", ErrProvenance, buildErr),
		}
	}
	if err := sameOutput(v.topFile, objs, plain); err != nil {
		return nil, err
	}
	if u := unknownSource(objs); u != nil {
		return nil, provenanceError(u)
	}
	return resources(objs), nil
}

// krusty runs kustomize on the sandbox: with origin tracking switched on in
// the kustomization file track, or as it is when track is "". It returns
// kustomize's result, kustomize's error, and separately a refusal of the
// sandbox, which is the root cause of whatever kustomize made of it.
func (b *build) krusty(dir, track string) (m resmap.ResMap, buildErr, refused error) {
	s := &sandbox{b: b, track: track}
	// The options of `kustomize build` and `kubectl kustomize` without
	// flags, spelled out: reorder "unspecified" means kustomize's legacy
	// order unless the kustomization has sortOptions; loads restricted to
	// each kustomization's folder; built-in plugins only (no exec, Go or
	// KRM function plugins) and helm off.
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionUnspecified
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	opts.AddManagedbyLabel = false
	opts.PluginConfig = types.DisabledPluginConfig()
	opts.PluginConfig.HelmConfig = types.HelmConfig{Enabled: false}
	opts.PluginConfig.FnpLoadingOptions = types.FnPluginLoadingOptions{}
	m, buildErr = runKrusty(opts, s, vpath(dir))
	if s.refused != nil {
		return nil, nil, s.refused
	}
	return m, buildErr, nil
}

// runKrusty runs kustomize, turning a panic into an error: the input comes
// from a repository tether does not trust, and a crafted file that trips a
// bug in kustomize must fail one build, not the process.
func runKrusty(opts *krusty.Options, fsys filesys.FileSystem, dir string) (m resmap.ResMap, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("kustomize panicked: %v", r)
		}
	}()
	return krusty.MakeKustomizer(opts).Run(fsys, dir)
}

// kustomizeError reports a failed kustomize build.
func kustomizeError(file string, err error) error {
	return &Error{File: file, Reason: "kustomize: " + cleanMessage(err.Error()), Err: err}
}

// collect reads the origins of kustomize's objects, removes the origin
// annotations if tether switched tracking on, and converts the objects.
func (b *build) collect(m resmap.ResMap, v *vetter, tracking bool) ([]object, error) {
	rs := m.Resources()
	objs := make([]object, len(rs))
	for i, r := range rs {
		origin, err := r.GetOrigin()
		objs[i].res.Source, objs[i].unknown, objs[i].unknownFile = v.sourceOf(origin, err)
	}
	if tracking {
		if err := m.RemoveOriginAnnotations(); err != nil {
			return nil, &Error{File: v.topFile, Reason: "removing origin annotations: " + err.Error(), Err: err}
		}
	}
	for i, r := range rs {
		j, err := objectJSON(&r.RNode)
		if err != nil {
			return nil, &Error{File: objs[i].res.Source, Entry: r.CurId().String(), Reason: "converting to JSON: " + err.Error(), Err: err}
		}
		u, err := b.object(objs[i].res.Source, j)
		if err != nil {
			return nil, err
		}
		objs[i].res.Object = u
		objs[i].json = j
	}
	return objs, nil
}

// sourceOf maps an origin kustomize recorded to the file it means; when it
// cannot, it says why and which file that is about.
func (v *vetter) sourceOf(o *resource.Origin, err error) (source, unknown, unknownFile string) {
	switch {
	case err != nil:
		return "", "kustomize's origin annotation does not parse: " + err.Error(), v.topFile
	case o == nil:
		return "", "kustomize recorded no origin for it", v.topFile
	case o.Repo != "":
		return "", fmt.Sprintf("kustomize says it came from repository %q", o.Repo), v.topFile
	case o.ConfiguredIn != "":
		src, ok := v.source(o.ConfiguredIn)
		if o.ConfiguredBy.APIVersion == "builtin" && !isGeneratorKind(o.ConfiguredBy.Kind) {
			// kustomize credits a transformer with an object that has no
			// origin after it ran: the transformer erased the origin.
			file := src
			if !ok {
				file = v.topFile
			}
			return "", fmt.Sprintf("a %s configured here replaced or removed its metadata.annotations, where kustomize records the file an object came from; "+
				"change single annotations instead (for example op: remove, path: /metadata/annotations/NAME)", o.ConfiguredBy.Kind), file
		}
		if !ok {
			return "", fmt.Sprintf("kustomize names %q as its generator, which tether cannot map to one file", o.ConfiguredIn), v.topFile
		}
		return src, "", ""
	default:
		src, ok := v.source(o.Path)
		if !ok {
			return "", fmt.Sprintf("kustomize names %q as its origin, which tether cannot map to one file", o.Path), v.topFile
		}
		return src, "", ""
	}
}

// objectJSON is what kyaml's RNode.MarshalJSON returns, without its
// detour: MarshalJSON prints the node as YAML text and parses the text again
// before decoding it into a map, which took a third of the time of
// rendering a plain folder. Decoding the node itself goes through the same
// decoder and gives the same values (TestObjectJSONMatchesKyaml holds the
// two to each other on awkward YAML).
func objectJSON(rn *kyaml.RNode) ([]byte, error) {
	n := rn.YNode()
	if n == nil {
		return nil, fmt.Errorf("an empty document")
	}
	if n.Kind == yaml.SequenceNode {
		var a []interface{}
		if err := n.Decode(&a); err != nil {
			return nil, err
		}
		return json.Marshal(a)
	}
	m := map[string]interface{}{}
	if err := n.Decode(&m); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// object converts kustomize's JSON for an object (never its Map(), whose
// int values make runtime.DeepCopyJSON panic) and counts the JSON against
// MaxTotalSize. The JSON is counted rather than the YAML the object prints
// as: converting every object to YAML only to measure it took a quarter of
// a plain folder's render, and the two sizes are close (JSON was 2% smaller
// on the bench's 1,001 objects; quotes and braces against indentation).
func (b *build) object(source string, j []byte) (*unstructured.Unstructured, error) {
	b.rendered += int64(len(j))
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(j); err != nil {
		return nil, refusal(source, "", ErrInvalid, err.Error())
	}
	if b.rendered > b.opts.MaxTotalSize {
		return nil, refusal(source, objectName(u), ErrTooLarge, fmt.Sprintf("the rendered objects pass %d bytes as JSON (MaxTotalSize)", b.opts.MaxTotalSize))
	}
	return u, nil
}

// unknownSource returns the first object whose source is unknown.
func unknownSource(objs []object) *object {
	for i := range objs {
		if objs[i].unknown != "" {
			return &objs[i]
		}
	}
	return nil
}

// provenanceError reports an object whose source is unknown.
func provenanceError(o *object) error {
	return &Error{File: o.unknownFile, Entry: objectName(o.res.Object), Reason: ErrProvenance.Error() + ": " + o.unknown, Err: ErrProvenance}
}

// residue reports whether an object still mentions a tracking annotation
// after the origin annotations were removed: the build copied it.
func residue(objs []object) bool {
	for _, o := range objs {
		if bytes.Contains(o.json, []byte(originAnnotation)) || bytes.Contains(o.json, []byte(transformationsAnnotation)) {
			return true
		}
	}
	return false
}

// sameOutput checks that the tracked build, annotations removed, is object
// for object the build without tracking.
func sameOutput(topFile string, tracked []object, plain resmap.ResMap) error {
	rs := plain.Resources()
	differ := func(entry string) error {
		return &Error{
			File:  topFile,
			Entry: entry,
			Reason: ErrProvenance.Error() + ": switching on kustomize's origin tracking changes the output of this build " +
				"(the kustomization uses metadata.annotations as a whole, where kustomize records origins)",
			Err: ErrProvenance,
		}
	}
	if len(rs) != len(tracked) {
		return differ(fmt.Sprintf("%d objects instead of %d", len(tracked), len(rs)))
	}
	for i, r := range rs {
		j, err := objectJSON(&r.RNode)
		if err != nil {
			return &Error{File: topFile, Entry: r.CurId().String(), Reason: "converting to JSON: " + err.Error(), Err: err}
		}
		if !bytes.Equal(j, tracked[i].json) {
			return differ(objectName(tracked[i].res.Object))
		}
	}
	return nil
}

// resources returns the rendered objects.
func resources(objs []object) []Resource {
	out := make([]Resource, len(objs))
	for i, o := range objs {
		out[i] = o.res
	}
	return out
}
