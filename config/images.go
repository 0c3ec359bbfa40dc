package config

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"

	"github.com/tether-gitops/tether/images"
	"github.com/tether-gitops/tether/source"
)

// Image automation: registries, imagePolicies and syncs[].imageUpdates.

// Defaults and bounds of the image settings.
const (
	// DefaultImageInterval is how often a policy's repository is scanned.
	DefaultImageInterval = 5 * time.Minute
	// MinImageInterval bounds imagePolicies[].interval.
	MinImageInterval = 5 * time.Second
	// DefaultRolloutTimeout bounds how long the rollout gate follows a
	// workload whose image changed (a Deployment's progress deadline
	// usually decides sooner).
	DefaultRolloutTimeout = 10 * time.Minute
	// MinRolloutTimeout bounds imageUpdates.rolloutTimeout.
	MinRolloutTimeout = 10 * time.Second
	// DefaultAuthorName and DefaultAuthorEmail sign write-back commits.
	DefaultAuthorName  = "tether"
	DefaultAuthorEmail = "tether@localhost"
)

// Registry is a resolved registries[] entry.
type Registry struct {
	images.Registry
	// NotificationSecretFile holds the shared secret the registry sends
	// with its notifications (Authorization: Bearer <secret>); empty when
	// it sends none.
	NotificationSecretFile string
}

// ImagePolicy is a resolved imagePolicies[] entry.
type ImagePolicy struct {
	// Policy is the compiled policy.
	Policy *images.Policy
	// Interval is the scan interval.
	Interval time.Duration
	// FilterPattern is Policy.Filter as written ("" for none), so
	// policies compare with ==.
	FilterPattern string
}

// Equal reports whether two policies have the same settings.
func (p ImagePolicy) Equal(o ImagePolicy) bool {
	a, b := *p.Policy, *o.Policy
	return a.Name == b.Name && a.Image == b.Image && a.Kind == b.Kind && a.Range == b.Range && a.Order == b.Order &&
		a.Extract == b.Extract && slices.Equal(a.Exclude, b.Exclude) && p.FilterPattern == o.FilterPattern && p.Interval == o.Interval
}

// ImageUpdates is a sync's imageUpdates: write-back of marker changes.
type ImageUpdates struct {
	// Enabled turns write-back on for the sync.
	Enabled bool
	// Branch receives the commits; "" means the sync's branch.
	Branch string
	// Path is the folder searched for markers, relative to the
	// repository root; the sync's path by default.
	Path string
	// AuthorName and AuthorEmail sign the commits.
	AuthorName, AuthorEmail string
	// MessageTemplate is the commit message (text/template).
	MessageTemplate string
	// RolloutTimeout bounds the rollout gate's wait per workload.
	RolloutTimeout time.Duration
}

// Registry returns the registry configured for host (the zero value for
// an anonymous HTTPS registry).
func (c *Config) Registry(host string) Registry {
	for _, r := range c.Registries {
		if r.Host == host {
			return r
		}
	}
	return Registry{Registry: images.Registry{Host: host}}
}

// ImagePolicy returns the policy named name.
func (c *Config) ImagePolicy(name string) (ImagePolicy, bool) {
	for _, p := range c.ImagePolicies {
		if p.Policy.Name == name {
			return p, true
		}
	}
	return ImagePolicy{}, false
}

// RegistryHost is the registry host of an image repository.
func RegistryHost(image string) string {
	if repo, err := name.NewRepository(image); err == nil {
		return repo.RegistryStr()
	}
	host, _, _ := strings.Cut(image, "/")
	return host
}

type (
	rawRegistry struct {
		line                           int
		host                           opt[string]
		dockerConfigJSONFile           opt[string]
		username, passwordFile, caFile opt[string]
		notificationSecretFile         opt[string]
		insecure                       opt[bool]
	}
	rawImagePolicy struct {
		line                            int
		name, image                     opt[string]
		semver, alphabetical, numerical opt[string]
		interval                        opt[time.Duration]
		filterLine                      int
		pattern, extract                opt[string]
		exclude                         opt[[]string]
	}
	rawImageUpdates struct {
		line                    int
		enabled                 opt[bool]
		branch, path            opt[string]
		authorName, authorEmail opt[string]
		messageTemplate         opt[string]
		rolloutTimeout          opt[time.Duration]
	}
)

func (d *decoder) registries(n *yaml.Node, path string, dst *[]*rawRegistry) {
	d.list(n, path, func(n *yaml.Node, p string) {
		r := &rawRegistry{}
		if m := d.follow(n); m != nil {
			r.line = m.Line
		}
		if d.mapping(n, p, []field{
			{"host", func(n *yaml.Node, p string) { d.str(n, p, &r.host, checkRegistryHost) }},
			{"dockerConfigJSONFile", func(n *yaml.Node, p string) { d.str(n, p, &r.dockerConfigJSONFile, checkSecretPath) }},
			{"username", func(n *yaml.Node, p string) { d.str(n, p, &r.username, checkNotEmpty) }},
			{"passwordFile", func(n *yaml.Node, p string) { d.str(n, p, &r.passwordFile, checkSecretPath) }},
			{"caFile", func(n *yaml.Node, p string) { d.str(n, p, &r.caFile, checkAbsPath) }},
			{"insecure", func(n *yaml.Node, p string) { d.boolean(n, p, &r.insecure) }},
			{"notificationSecretFile", func(n *yaml.Node, p string) { d.str(n, p, &r.notificationSecretFile, checkSecretPath) }},
		}) {
			*dst = append(*dst, r)
		}
	})
}

func (d *decoder) imagePolicies(n *yaml.Node, path string, dst *[]*rawImagePolicy) {
	d.list(n, path, func(n *yaml.Node, p string) {
		r := &rawImagePolicy{}
		if m := d.follow(n); m != nil {
			r.line = m.Line
		}
		if d.mapping(n, p, []field{
			{"name", func(n *yaml.Node, p string) { d.str(n, p, &r.name, checkDNSLabel) }},
			{"image", func(n *yaml.Node, p string) { d.str(n, p, &r.image, checkImageRepository) }},
			{"interval", func(n *yaml.Node, p string) { d.duration(n, p, MinImageInterval, &r.interval) }},
			{"semver", func(n *yaml.Node, p string) { d.str(n, p, &r.semver, checkSemver) }},
			{"alphabetical", func(n *yaml.Node, p string) { d.str(n, p, &r.alphabetical, checkOrder) }},
			{"numerical", func(n *yaml.Node, p string) { d.str(n, p, &r.numerical, checkOrder) }},
			{"filterTags", func(n *yaml.Node, p string) {
				r.filterLine = d.key
				d.mapping(n, p, []field{
					{"pattern", func(n *yaml.Node, p string) { d.str(n, p, &r.pattern, checkRegexp) }},
					{"extract", func(n *yaml.Node, p string) { d.str(n, p, &r.extract, checkNotEmpty) }},
				})
			}},
			{"exclude", func(n *yaml.Node, p string) { d.globs(n, p, &r.exclude) }},
		}) {
			*dst = append(*dst, r)
		}
	})
}

func (d *decoder) globs(n *yaml.Node, p string, dst *opt[[]string]) {
	globs := []string{}
	line, ok := d.list(n, p, func(n *yaml.Node, p string) {
		var g opt[string]
		d.str(n, p, &g, checkGlob)
		if g.set {
			globs = append(globs, g.v)
		}
	})
	if ok {
		*dst = opt[[]string]{v: globs, set: true, line: line}
	} else if m := d.follow(n); m != nil && isNull(m) {
		*dst = opt[[]string]{v: []string{}, set: true, line: m.Line}
	}
}

func (d *decoder) imageUpdates(n *yaml.Node, path string) *rawImageUpdates {
	r := &rawImageUpdates{line: d.key}
	ok := d.mapping(n, path, []field{
		{"enabled", func(n *yaml.Node, p string) { d.boolean(n, p, &r.enabled) }},
		{"branch", func(n *yaml.Node, p string) { d.str(n, p, &r.branch, checkBranch) }},
		{"path", func(n *yaml.Node, p string) { d.str(n, p, &r.path, checkRepoPath) }},
		{"author", func(n *yaml.Node, p string) {
			d.mapping(n, p, []field{
				{"name", func(n *yaml.Node, p string) { d.str(n, p, &r.authorName, checkNotEmpty) }},
				{"email", func(n *yaml.Node, p string) { d.str(n, p, &r.authorEmail, checkEmail) }},
			})
		}},
		{"messageTemplate", func(n *yaml.Node, p string) { d.str(n, p, &r.messageTemplate, checkMessageTemplate) }},
		{"rolloutTimeout", func(n *yaml.Node, p string) { d.duration(n, p, MinRolloutTimeout, &r.rolloutTimeout) }},
	})
	if !ok {
		return nil
	}
	return r
}

// resolveImageUpdates checks a sync's imageUpdates against its source:
// write-back needs a git repository followed by branch.
func (d *decoder) resolveImageUpdates(rs *rawSync, p string, s Sync) ImageUpdates {
	r := rs.imageUpdates
	if r == nil {
		return ImageUpdates{}
	}
	u := ImageUpdates{
		Enabled:         or(r.enabled, true),
		Branch:          r.branch.v,
		Path:            s.Path,
		AuthorName:      or(r.authorName, DefaultAuthorName),
		AuthorEmail:     or(r.authorEmail, DefaultAuthorEmail),
		MessageTemplate: or(r.messageTemplate, images.DefaultMessageTemplate),
		RolloutTimeout:  or(r.rolloutTimeout, DefaultRolloutTimeout),
	}
	if r.path.set {
		u.Path = cleanRepoPath(r.path.v)
	}
	if !u.Enabled {
		return u
	}
	switch {
	case !rs.source.set || rs.source.bad:
	case s.Source.LocalPath != "":
		d.addf(r.line, p, "needs a git source (source.url): commits are pushed to it")
	case s.Source.URL != "" && s.Source.Ref.Branch == "" && u.Branch == "":
		d.addf(r.line, p+".branch", "required when the sync follows a %s rather than a branch: name the branch the commits go to", refKind(s.Source.Ref))
	}
	return u
}

// refKind names what a ref follows, for messages.
func refKind(r source.Ref) string {
	switch {
	case r.Tag != "":
		return "tag"
	case r.Commit != "":
		return "commit"
	case r.SemVer != "":
		return "semver range"
	}
	return "ref"
}

// resolveImages checks registries and policies as a whole (unique hosts
// and names) and compiles the policies.
func (d *decoder) resolveImages(raw *rawConfig, cfg *Config) {
	hosts := map[string]int{}
	for i, r := range raw.registries {
		p := fmt.Sprintf("registries[%d]", i)
		if !r.host.set {
			d.addf(r.line, p+".host", "required")
			continue
		}
		host := canonicalRegistryHost(r.host.v)
		if first, dup := hosts[host]; dup {
			d.addf(r.host.line, p+".host", "duplicate registry %q (first at line %d)", r.host.v, first)
			continue
		}
		hosts[host] = r.host.line
		reg := Registry{Registry: images.Registry{
			Host:             host,
			DockerConfigFile: cleanFile(r.dockerConfigJSONFile.v),
			Username:         r.username.v,
			PasswordFile:     cleanFile(r.passwordFile.v),
			CAFile:           cleanFile(r.caFile.v),
			Insecure:         r.insecure.v,
		}, NotificationSecretFile: cleanFile(r.notificationSecretFile.v)}
		switch {
		case r.dockerConfigJSONFile.set && (r.username.set || r.passwordFile.set):
			d.addf(r.dockerConfigJSONFile.line, p+".dockerConfigJSONFile", "set dockerConfigJSONFile or username and passwordFile, not both")
		case r.username.set && !r.passwordFile.set:
			d.addf(r.username.line, p+".username", "needs passwordFile")
		case r.passwordFile.set && !r.username.set:
			d.addf(r.passwordFile.line, p+".passwordFile", "needs username")
		}
		if r.caFile.set && r.insecure.v {
			d.addf(r.caFile.line, p+".caFile", "insecure: true talks plain HTTP, where a CA has no use")
		}
		cfg.Registries = append(cfg.Registries, reg)
	}
	names := map[string]int{}
	for i, r := range raw.imagePolicies {
		p := fmt.Sprintf("imagePolicies[%d]", i)
		if r.name.set {
			if first, dup := names[r.name.v]; dup {
				d.addf(r.name.line, p+".name", "duplicate image policy name %q (first at line %d)", r.name.v, first)
				continue
			}
			names[r.name.v] = r.name.line
		}
		if pol, ok := d.resolvePolicy(r, p); ok {
			cfg.ImagePolicies = append(cfg.ImagePolicies, pol)
		}
	}
}

func (d *decoder) resolvePolicy(r *rawImagePolicy, p string) (ImagePolicy, bool) {
	ok := true
	for _, f := range []struct {
		name string
		v    opt[string]
	}{{"name", r.name}, {"image", r.image}} {
		if !f.v.set {
			d.addf(r.line, p+"."+f.name, "required")
			ok = false
		}
	}
	pol := &images.Policy{Name: r.name.v, Image: r.image.v, Exclude: images.DefaultExclude()}
	var set []string
	last := r.line
	for _, k := range []struct {
		kind images.Kind
		v    opt[string]
	}{{images.SemVer, r.semver}, {images.Alphabetical, r.alphabetical}, {images.Numerical, r.numerical}} {
		if k.v.set {
			set = append(set, string(k.kind))
			last = k.v.line
			pol.Kind = k.kind
			if k.kind == images.SemVer {
				pol.Range = k.v.v
			} else {
				pol.Order = images.Order(k.v.v)
			}
		}
	}
	switch len(set) {
	case 0:
		d.addf(r.line, p, "set one of semver (a range), alphabetical or numerical (asc or desc)")
		ok = false
	case 1:
	default:
		d.addf(last, p, "set one of semver, alphabetical or numerical, not %s", strings.Join(set, " and "))
		ok = false
	}
	out := ImagePolicy{Policy: pol, Interval: or(r.interval, DefaultImageInterval), FilterPattern: r.pattern.v}
	if r.pattern.set {
		pol.Filter, _ = regexp.Compile(r.pattern.v) // checked when decoded
	}
	if r.extract.set {
		pol.Extract = r.extract.v
		switch {
		case !r.pattern.set:
			d.addf(r.extract.line, p+".filterTags.extract", "needs filterTags.pattern with a named group (?P<%s>...)", r.extract.v)
			ok = false
		case pol.Filter != nil && pol.Filter.SubexpIndex(r.extract.v) < 0:
			d.addf(r.extract.line, p+".filterTags.extract", "%q is not a named group of the pattern: want (?P<%s>...)", r.extract.v, r.extract.v)
			ok = false
		}
	}
	if r.exclude.set {
		pol.Exclude = r.exclude.v
	}
	// Values already reported when decoded are not compiled (and
	// reported) again.
	if !ok || (r.pattern.set && pol.Filter == nil) || checkDNSLabel(r.name.v) != "" || checkImageRepository(r.image.v) != "" ||
		r.semver.set && checkSemver(r.semver.v) != "" || r.alphabetical.set && checkOrder(r.alphabetical.v) != "" ||
		r.numerical.set && checkOrder(r.numerical.v) != "" || slices.ContainsFunc(pol.Exclude, func(g string) bool { return checkGlob(g) != "" }) {
		return out, false
	}
	if err := pol.Compile(); err != nil {
		d.addf(r.line, p, "%v", err)
		return out, false
	}
	return out, true
}

// canonicalRegistryHost names a registry host as RegistryHost names the
// host of an image ("docker.io" is "index.docker.io"), so that a
// registries[] entry applies to the images on it.
func canonicalRegistryHost(host string) string {
	if reg, err := name.NewRegistry(host); err == nil {
		return reg.RegistryStr()
	}
	return host
}

// checkRegistryHost accepts host[:port].
func checkRegistryHost(s string) string {
	if _, err := name.NewRegistry(s, name.StrictValidation); err != nil || strings.Contains(s, "/") {
		return fmt.Sprintf("%q is not a registry host: want host or host:port, such as registry.example.com or 127.0.0.1:5000", s)
	}
	return ""
}

// checkImageRepository accepts a repository without a tag or digest.
func checkImageRepository(s string) string {
	if strings.Contains(s, "@") {
		return fmt.Sprintf("%q: name the repository without a digest", s)
	}
	if _, tag := images.SplitImage(s); tag != "" {
		return fmt.Sprintf("%q: name the repository without a tag (the policy chooses the tag)", s)
	}
	if _, err := name.NewRepository(s, name.StrictValidation); err != nil {
		return fmt.Sprintf("%q is not an image repository such as registry.example.com/org/app", s)
	}
	return ""
}

func checkOrder(s string) string {
	if s != string(images.Asc) && s != string(images.Desc) {
		return fmt.Sprintf("%q is not an order: want asc (the highest wins) or desc (the lowest wins)", s)
	}
	return ""
}

func checkRegexp(s string) string {
	if _, err := regexp.Compile(s); err != nil {
		return fmt.Sprintf("%q is not a regular expression: %v", s, err)
	}
	return ""
}

func checkGlob(s string) string {
	if _, err := path.Match(s, ""); err != nil || s == "" {
		return fmt.Sprintf("%q is not a glob pattern such as *.sig", s)
	}
	return ""
}

func checkEmail(s string) string {
	if strings.ContainsAny(s, "<>\n") || !strings.Contains(s, "@") {
		return fmt.Sprintf("%q is not an email address", s)
	}
	return ""
}

func checkMessageTemplate(s string) string {
	if _, err := images.ParseMessageTemplate(s); err != nil {
		return fmt.Sprintf("not a usable commit message template: %v", err)
	}
	return ""
}

// SameImages reports whether two configurations have the same registries
// and image policies (a reload that changes only those must still be
// installed).
func (c *Config) SameImages(o *Config) bool {
	return slices.Equal(c.Registries, o.Registries) &&
		slices.EqualFunc(c.ImagePolicies, o.ImagePolicies, func(a, b ImagePolicy) bool { return a.Equal(b) })
}
