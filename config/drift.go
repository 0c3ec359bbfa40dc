package config

import (
	"fmt"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	tsync "github.com/tether-gitops/tether/sync"
)

// Drift policies (defaults.drift, syncs[].drift, and per object the
// tether.dev/drift annotation), as package sync defines them.
const (
	// DriftCorrect puts a drifted object back at once (the default).
	DriftCorrect = tsync.DriftCorrect
	// DriftWarn keeps the change and keeps reporting it, until git
	// changes the object.
	DriftWarn = tsync.DriftWarn
	// DriftIgnore keeps the change without reporting it, until git
	// changes the object.
	DriftIgnore = tsync.DriftIgnore
)

func checkDriftPolicy(s string) string {
	policies := tsync.DriftPolicies()
	if slices.Contains(policies, s) {
		return ""
	}
	msg := fmt.Sprintf("%q is not a drift policy: want one of %s", s, strings.Join(policies, ", "))
	if sug := suggest(s, policies); sug != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", sug)
	}
	return msg
}

// rawIgnore is one ignoreDifferences entry.
type rawIgnore struct {
	group, kind, namespace, name opt[string]
	paths                        opt[[]string]
	line                         int
}

// ignoreDifferences decodes syncs[].ignoreDifferences.
func (d *decoder) ignoreDifferences(n *yaml.Node, path string, dst *[]*rawIgnore) {
	d.list(n, path, func(n *yaml.Node, p string) {
		r := &rawIgnore{}
		if m := d.follow(n); m != nil {
			r.line = m.Line
		}
		d.mapping(n, p, []field{
			{"group", func(n *yaml.Node, p string) { d.str(n, p, &r.group) }},
			{"kind", func(n *yaml.Node, p string) { d.str(n, p, &r.kind, checkNotEmpty) }},
			{"namespace", func(n *yaml.Node, p string) { d.str(n, p, &r.namespace, checkDNSLabel) }},
			{"name", func(n *yaml.Node, p string) { d.str(n, p, &r.name, checkNotEmpty) }},
			{"paths", func(n *yaml.Node, p string) {
				var paths []string
				line, ok := d.list(n, p, func(n *yaml.Node, p string) {
					var s opt[string]
					d.str(n, p, &s, checkFieldPath)
					if s.set {
						paths = append(paths, s.v)
					}
				})
				if ok {
					r.paths = opt[[]string]{v: paths, set: true, line: line}
				}
			}},
		})
		*dst = append(*dst, r)
	})
}

// checkFieldPath accepts a field path as drift reports name fields:
// dotted names with [key=value], [value] or [index] selectors.
func checkFieldPath(s string) string {
	if s == "" || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") || strings.Count(s, "[") != strings.Count(s, "]") {
		return fmt.Sprintf("%q is not a field path: write it as drift reports fields, e.g. spec.replicas or spec.template.spec.containers[name=app].image", s)
	}
	return ""
}

// resolveDrift fills the sync's drift settings.
func (d *decoder) resolveDrift(rs *rawSync, p string, def string, s *Sync) {
	s.Drift = or(rs.drift, def)
	for i, r := range rs.ignoreDifferences {
		ip := fmt.Sprintf("%s.ignoreDifferences[%d]", p, i)
		if !r.kind.set {
			d.addf(r.line, ip+".kind", "required")
		}
		if !r.paths.set || len(r.paths.v) == 0 {
			d.addf(r.line, ip+".paths", "required: at least one field path")
		}
		s.IgnoreDifferences = append(s.IgnoreDifferences, tsync.IgnoreRule{
			Group: r.group.v, Kind: r.kind.v, Namespace: r.namespace.v, Name: r.name.v, Paths: r.paths.v,
		})
	}
}

// sameIgnoreRules reports whether two rule lists are the same.
func sameIgnoreRules(a, b []tsync.IgnoreRule) bool {
	return slices.EqualFunc(a, b, func(x, y tsync.IgnoreRule) bool {
		return x.Group == y.Group && x.Kind == y.Kind && x.Namespace == y.Namespace && x.Name == y.Name && slices.Equal(x.Paths, y.Paths)
	})
}
