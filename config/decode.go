package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tether-gitops/tether/source"
	tsync "github.com/tether-gitops/tether/sync"
)

// maxNodes bounds the nodes visited in one file, aliases expanded, so an
// alias bomb is refused rather than walked.
const maxNodes = 100_000

// maxProblems bounds the problems reported for one file.
const maxProblems = 100

// opt is a value from the file: whether it was set, and where.
type opt[T any] struct {
	v    T
	set  bool
	bad  bool // present, but not of the right type
	line int
}

// The file as written, before defaults: each field remembers whether it was
// set. Lines of mappings locate "required" problems.
type (
	rawConfig struct {
		line       int
		apiVersion opt[string]
		kind       opt[string]
		defaults   rawDefaults
		webhook    rawWebhook
		syncs      opt[[]*rawSync]
		// images.go
		registries    []*rawRegistry
		imagePolicies []*rawImagePolicy
	}
	rawDefaults struct {
		interval, timeout  opt[time.Duration]
		inventoryNamespace opt[string]
		prune              opt[bool]
		deleteBudget       opt[tsync.Budget]
		drift              opt[string] // drift.go
	}
	rawWebhook struct {
		secretFile opt[string]
	}
	rawSync struct {
		line                                    int
		name                                    opt[string]
		source                                  opt[*rawSource]
		path, namespace                         opt[string]
		prune, allowEmpty, wait, deleteOnRemove opt[bool]
		suspend                                 opt[bool]
		deleteBudget                            opt[tsync.Budget]
		pruneProtected                          opt[[]string]
		timeout                                 opt[time.Duration]
		webhook                                 rawWebhook
		imageUpdates                            *rawImageUpdates // images.go
		drift                                   opt[string]      // drift.go
		ignoreDifferences                       []*rawIgnore     // drift.go
	}
	rawSource struct {
		url, localPath    opt[string]
		ref               opt[*rawRef]
		interval, timeout opt[time.Duration]
		maxSize           opt[int64]
		auth              opt[*rawAuth]
	}
	rawRef struct {
		branch, tag, commit, semver opt[string]
	}
	rawAuth struct {
		username                        opt[string]
		passwordFile, passwordEnv       opt[string]
		bearerTokenFile, bearerTokenEnv opt[string]
		caFile                          opt[string]
		sshKeyFile, sshPassphraseFile   opt[string]
		knownHostsFile                  opt[string]
		insecureIgnoreHostKey           opt[bool]
		allowInsecureHTTP               opt[bool]
	}
)

// decoder walks the YAML node tree, collecting problems as it goes.
type decoder struct {
	file     string
	lim      Limits // the agent's settings the file is checked against
	problems []Problem
	// key is the line of the key whose value is being decoded: where a
	// problem about a missing field inside that value is reported.
	key     int
	nodes   int
	tooBig  bool
	dropped int // problems beyond maxProblems
}

func (d *decoder) addf(line int, path, format string, args ...any) {
	if len(d.problems) >= maxProblems {
		d.dropped++
		return
	}
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

// document parses data as one YAML document holding a mapping.
func (d *decoder) document(data []byte) *rawConfig {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.addf(0, "", "empty configuration: want apiVersion, kind and syncs")
			return nil
		}
		d.yamlError(err)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.yamlError(err)
		return nil
	default:
		d.addf(extra.Line, "", "more than one YAML document: put every sync in the syncs list of one document")
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			d.addf(0, "", "empty configuration: want apiVersion, kind and syncs")
			return nil
		}
		root = root.Content[0]
	}
	raw := &rawConfig{line: root.Line}
	ok := d.mapping(root, "", []field{
		{"apiVersion", func(n *yaml.Node, p string) { d.str(n, p, &raw.apiVersion) }},
		{"kind", func(n *yaml.Node, p string) { d.str(n, p, &raw.kind) }},
		{"defaults", func(n *yaml.Node, p string) { d.defaults(n, p, &raw.defaults) }},
		{"webhook", func(n *yaml.Node, p string) { d.webhook(n, p, &raw.webhook) }},
		{"syncs", func(n *yaml.Node, p string) { d.syncs(n, p, &raw.syncs) }},
		{"registries", func(n *yaml.Node, p string) { d.registries(n, p, &raw.registries) }},
		{"imagePolicies", func(n *yaml.Node, p string) { d.imagePolicies(n, p, &raw.imagePolicies) }},
	})
	if !ok {
		return nil
	}
	return raw
}

// yamlError turns a syntax error into a problem, with its line when the
// message has one.
func (d *decoder) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		num, text, ok := strings.Cut(rest, ": ")
		if line, err := strconv.Atoi(num); ok && err == nil {
			d.addf(line, "", "invalid YAML: %s", text)
			return
		}
	}
	d.addf(0, "", "invalid YAML: %s", msg)
}

// field is a known key of a mapping and how to decode its value.
type field struct {
	name   string
	decode func(n *yaml.Node, path string)
}

// join appends a key to a field path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// follow follows aliases and counts the node against maxNodes; nil means
// stop.
func (d *decoder) follow(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 100 {
			return nil
		}
		n = n.Alias
	}
	d.nodes++
	if d.nodes > maxNodes {
		if !d.tooBig {
			d.tooBig = true
			d.addf(n.Line, "", "too many YAML nodes (more than %d, aliases expanded)", maxNodes)
		}
		return nil
	}
	return n
}

// isNull reports whether n is an explicit or implicit null ("key:" with no
// value): the field is then treated as not set.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node holds, for type errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!bool":
		return "boolean " + n.Value
	case "!!int", "!!float":
		return "number " + n.Value
	case "!!str":
		return strconv.Quote(source.Redact(n.Value))
	}
	return fmt.Sprintf("%s %q", n.ShortTag(), source.Redact(n.Value))
}

// mapping decodes a mapping by its known fields, reporting unknown and
// duplicate keys. It returns false when n is not a mapping (null counts as
// an empty mapping).
func (d *decoder) mapping(n *yaml.Node, path string, fields []field) bool {
	if n = d.follow(n); n == nil {
		return false
	}
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		where := path
		if where == "" {
			d.addf(n.Line, "", "want a mapping (apiVersion, kind, syncs, ...), got %s", describe(n))
			return false
		}
		d.addf(n.Line, where, "want a mapping, got %s", describe(n))
		return false
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode {
			k = k.Alias
		}
		if k == nil || k.Kind != yaml.ScalarNode {
			d.addf(n.Content[i].Line, path, "keys must be field names, got %s", describe(n.Content[i]))
			continue
		}
		p := join(path, k.Value)
		if k.ShortTag() == "!!merge" {
			d.addf(k.Line, p, "merge keys (<<) are not supported: set the fields here, or use defaults")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.addf(k.Line, p, "duplicate key (first at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		var f *field
		for j := range fields {
			if fields[j].name == k.Value {
				f = &fields[j]
				break
			}
		}
		if f == nil {
			if s := suggest(k.Value, names); s != "" {
				d.addf(k.Line, p, "unknown field (did you mean %q?)", s)
			} else {
				d.addf(k.Line, p, "unknown field (want one of: %s)", strings.Join(names, ", "))
			}
			continue
		}
		d.key = k.Line
		f.decode(v, p)
	}
	return true
}

// scalar follows n and returns it when it is a non-null scalar; a
// collection is a type error, want saying what was expected.
func (d *decoder) scalar(n *yaml.Node, path, want string) (*yaml.Node, bool) {
	if n = d.follow(n); n == nil || isNull(n) {
		return nil, false
	}
	if n.Kind != yaml.ScalarNode {
		d.addf(n.Line, path, "want %s, got %s", want, describe(n))
		return nil, false
	}
	return n, true
}

// str decodes a string. Numbers are taken as written ("1.10" stays
// "1.10"); booleans and nulls are not strings. Each check returns a
// message for a bad value, or "".
func (d *decoder) str(n *yaml.Node, path string, dst *opt[string], checks ...func(string) string) {
	n, ok := d.scalar(n, path, "a string")
	if !ok {
		return
	}
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float":
	default:
		d.addf(n.Line, path, "want a string, got %s (quote it)", describe(n))
		return
	}
	*dst = opt[string]{v: n.Value, set: true, line: n.Line}
	for _, check := range checks {
		if msg := check(n.Value); msg != "" {
			// A URL with credentials in the wrong field is shown
			// redacted too.
			if shown := source.Redact(n.Value); shown != n.Value {
				msg = strings.ReplaceAll(msg, n.Value, shown)
			}
			d.addf(n.Line, path, "%s", msg)
			return
		}
	}
}

// boolean decodes true or false.
func (d *decoder) boolean(n *yaml.Node, path string, dst *opt[bool]) {
	n, ok := d.scalar(n, path, "true or false")
	if !ok {
		return
	}
	if n.ShortTag() != "!!bool" {
		d.addf(n.Line, path, "want true or false, got %s", describe(n))
		return
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		d.addf(n.Line, path, "want true or false, got %s", describe(n))
		return
	}
	*dst = opt[bool]{v: b, set: true, line: n.Line}
}

// duration decodes a Go duration ("30s", "5m", "1h30m") of at least least.
func (d *decoder) duration(n *yaml.Node, path string, least time.Duration, dst *opt[time.Duration]) {
	n, ok := d.scalar(n, path, "a duration such as 30s or 5m")
	if !ok {
		return
	}
	if n.ShortTag() != "!!str" {
		d.addf(n.Line, path, "want a duration such as 30s or 5m, got %s (give a unit)", describe(n))
		return
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		d.addf(n.Line, path, "%q is not a duration: want a number and a unit, such as 30s, 5m or 1h30m", n.Value)
		return
	}
	*dst = opt[time.Duration]{v: v, set: true, line: n.Line}
	if v < least {
		d.addf(n.Line, path, "%s is below the minimum of %s", n.Value, least)
	}
}

// budget decodes a delete budget: a count, "10%" or "unlimited".
func (d *decoder) budget(n *yaml.Node, path string, dst *opt[tsync.Budget]) {
	n, ok := d.scalar(n, path, `a count, a percentage such as "10%" or "unlimited"`)
	if !ok {
		return
	}
	switch n.ShortTag() {
	case "!!str", "!!int":
	default:
		d.addf(n.Line, path, `want a count, a percentage such as "10%%" or "unlimited", got %s`, describe(n))
		return
	}
	b, err := tsync.ParseBudget(n.Value)
	if err != nil {
		d.addf(n.Line, path, "%v", err)
		return
	}
	if b == (tsync.Budget{}) { // an empty string: not set
		return
	}
	*dst = opt[tsync.Budget]{v: b, set: true, line: n.Line}
}

// quantity decodes a positive size in bytes of at most most, written as
// a number or a Kubernetes quantity ("256Mi", "1G").
func (d *decoder) quantity(n *yaml.Node, path string, most int64, dst *opt[int64]) {
	n, ok := d.scalar(n, path, `a size such as 256Mi`)
	if !ok {
		return
	}
	switch n.ShortTag() {
	case "!!str", "!!int", "!!float":
	default:
		d.addf(n.Line, path, "want a size such as 256Mi, got %s", describe(n))
		return
	}
	q, err := resource.ParseQuantity(n.Value)
	if err != nil {
		d.addf(n.Line, path, "%q is not a size: want bytes or a quantity such as 512Ki, 256Mi or 1Gi", n.Value)
		return
	}
	if q.Sign() <= 0 {
		d.addf(n.Line, path, "%s must be positive", n.Value)
		return
	}
	if limit := resource.NewQuantity(most, resource.BinarySI); q.Cmp(*limit) > 0 {
		d.addf(n.Line, path, "%s is over the maximum of %s", n.Value, limit)
		return
	}
	v, exact := q.AsInt64()
	if !exact {
		v = q.Value() // fractions round up
	}
	*dst = opt[int64]{v: v, set: true, line: n.Line}
}

// list decodes a list, calling item for each element with its path.
func (d *decoder) list(n *yaml.Node, path string, item func(n *yaml.Node, path string)) (line int, ok bool) {
	if n = d.follow(n); n == nil || isNull(n) {
		return 0, false
	}
	if n.Kind != yaml.SequenceNode {
		d.addf(n.Line, path, "want a list, got %s", describe(n))
		return 0, false
	}
	for i, c := range n.Content {
		item(c, fmt.Sprintf("%s[%d]", path, i))
	}
	return n.Line, true
}

func (d *decoder) defaults(n *yaml.Node, path string, r *rawDefaults) {
	d.mapping(n, path, []field{
		{"interval", func(n *yaml.Node, p string) { d.duration(n, p, MinInterval, &r.interval) }},
		{"timeout", func(n *yaml.Node, p string) { d.duration(n, p, MinTimeout, &r.timeout) }},
		{"inventoryNamespace", func(n *yaml.Node, p string) { d.str(n, p, &r.inventoryNamespace, checkDNSLabel) }},
		{"prune", func(n *yaml.Node, p string) { d.boolean(n, p, &r.prune) }},
		{"deleteBudget", func(n *yaml.Node, p string) { d.budget(n, p, &r.deleteBudget) }},
		{"drift", func(n *yaml.Node, p string) { d.str(n, p, &r.drift, checkDriftPolicy) }},
	})
}

func (d *decoder) webhook(n *yaml.Node, path string, r *rawWebhook) {
	d.mapping(n, path, []field{
		{"secretFile", func(n *yaml.Node, p string) { d.str(n, p, &r.secretFile, checkSecretPath) }},
	})
}

func (d *decoder) syncs(n *yaml.Node, path string, dst *opt[[]*rawSync]) {
	var syncs []*rawSync
	key := d.key
	line, ok := d.list(n, path, func(n *yaml.Node, p string) {
		s := &rawSync{line: n.Line}
		if d.sync(n, p, s) {
			syncs = append(syncs, s)
		} else {
			syncs = append(syncs, nil) // keep indexes in step with the file
		}
	})
	if !ok || len(syncs) == 0 {
		line = key
	}
	m := d.follow(n)
	bad := m != nil && !isNull(m) && !ok
	*dst = opt[[]*rawSync]{v: syncs, set: ok, bad: bad, line: line}
}

func (d *decoder) sync(n *yaml.Node, path string, s *rawSync) bool {
	if m := d.follow(n); m != nil {
		s.line = m.Line
		if isNull(m) {
			d.addf(m.Line, path, "want a mapping, got null")
			return false
		}
	}
	return d.mapping(n, path, []field{
		{"name", func(n *yaml.Node, p string) { d.str(n, p, &s.name, checkDNSLabel) }},
		{"source", func(n *yaml.Node, p string) {
			src := &rawSource{}
			if m := d.follow(n); m != nil && !isNull(m) {
				ok := m.Kind == yaml.MappingNode
				s.source = opt[*rawSource]{v: src, set: ok, bad: !ok, line: d.key}
			}
			d.source(n, p, src)
		}},
		{"path", func(n *yaml.Node, p string) { d.str(n, p, &s.path, checkRepoPath) }},
		{"namespace", func(n *yaml.Node, p string) { d.str(n, p, &s.namespace, checkDNSLabel) }},
		{"prune", func(n *yaml.Node, p string) { d.boolean(n, p, &s.prune) }},
		{"allowEmpty", func(n *yaml.Node, p string) { d.boolean(n, p, &s.allowEmpty) }},
		{"deleteBudget", func(n *yaml.Node, p string) { d.budget(n, p, &s.deleteBudget) }},
		{"pruneProtected", func(n *yaml.Node, p string) { d.pruneProtected(n, p, &s.pruneProtected) }},
		{"wait", func(n *yaml.Node, p string) { d.boolean(n, p, &s.wait) }},
		{"timeout", func(n *yaml.Node, p string) { d.duration(n, p, MinTimeout, &s.timeout) }},
		{"deleteOnRemove", func(n *yaml.Node, p string) { d.boolean(n, p, &s.deleteOnRemove) }},
		{"webhook", func(n *yaml.Node, p string) { d.webhook(n, p, &s.webhook) }},
		{"suspend", func(n *yaml.Node, p string) { d.boolean(n, p, &s.suspend) }},
		{"imageUpdates", func(n *yaml.Node, p string) { s.imageUpdates = d.imageUpdates(n, p) }},
		{"drift", func(n *yaml.Node, p string) { d.str(n, p, &s.drift, checkDriftPolicy) }},
		{"ignoreDifferences", func(n *yaml.Node, p string) { d.ignoreDifferences(n, p, &s.ignoreDifferences) }},
	})
}

func (d *decoder) source(n *yaml.Node, path string, s *rawSource) {
	d.mapping(n, path, []field{
		{"url", func(n *yaml.Node, p string) { d.str(n, p, &s.url, checkRepoURL) }},
		{"ref", func(n *yaml.Node, p string) {
			r := &rawRef{}
			if m := d.follow(n); m != nil && m.Kind == yaml.MappingNode {
				s.ref = opt[*rawRef]{v: r, set: true, line: d.key}
			}
			d.ref(n, p, r)
		}},
		{"localPath", func(n *yaml.Node, p string) { d.str(n, p, &s.localPath, checkNotEmpty) }},
		{"interval", func(n *yaml.Node, p string) { d.duration(n, p, MinInterval, &s.interval) }},
		{"timeout", func(n *yaml.Node, p string) { d.duration(n, p, MinFetchTimeout, &s.timeout) }},
		{"maxSize", func(n *yaml.Node, p string) { d.quantity(n, p, source.MaxSizeLimit, &s.maxSize) }},
		{"auth", func(n *yaml.Node, p string) {
			a := &rawAuth{}
			if m := d.follow(n); m != nil && m.Kind == yaml.MappingNode {
				s.auth = opt[*rawAuth]{v: a, set: true, line: d.key}
			}
			d.auth(n, p, a)
		}},
	})
}

func (d *decoder) ref(n *yaml.Node, path string, r *rawRef) {
	d.mapping(n, path, []field{
		{"branch", func(n *yaml.Node, p string) { d.str(n, p, &r.branch, checkBranch) }},
		{"tag", func(n *yaml.Node, p string) { d.str(n, p, &r.tag, checkTag) }},
		{"commit", func(n *yaml.Node, p string) { d.str(n, p, &r.commit, checkCommit) }},
		{"semver", func(n *yaml.Node, p string) { d.str(n, p, &r.semver, checkSemver) }},
	})
}

func (d *decoder) auth(n *yaml.Node, path string, a *rawAuth) {
	d.mapping(n, path, []field{
		{"username", func(n *yaml.Node, p string) { d.str(n, p, &a.username, checkNotEmpty) }},
		{"passwordFile", func(n *yaml.Node, p string) { d.str(n, p, &a.passwordFile, checkSecretPath) }},
		{"passwordEnv", func(n *yaml.Node, p string) { d.str(n, p, &a.passwordEnv, checkEnvName) }},
		{"bearerTokenFile", func(n *yaml.Node, p string) { d.str(n, p, &a.bearerTokenFile, checkSecretPath) }},
		{"bearerTokenEnv", func(n *yaml.Node, p string) { d.str(n, p, &a.bearerTokenEnv, checkEnvName) }},
		{"caFile", func(n *yaml.Node, p string) { d.str(n, p, &a.caFile, checkAbsPath) }},
		{"sshKeyFile", func(n *yaml.Node, p string) { d.str(n, p, &a.sshKeyFile, checkSecretPath) }},
		{"sshPassphraseFile", func(n *yaml.Node, p string) { d.str(n, p, &a.sshPassphraseFile, checkSecretPath) }},
		{"knownHostsFile", func(n *yaml.Node, p string) { d.str(n, p, &a.knownHostsFile, checkAbsPath) }},
		{"insecureIgnoreHostKey", func(n *yaml.Node, p string) { d.boolean(n, p, &a.insecureIgnoreHostKey) }},
		{"allowInsecureHTTP", func(n *yaml.Node, p string) { d.boolean(n, p, &a.allowInsecureHTTP) }},
	})
}

func (d *decoder) pruneProtected(n *yaml.Node, path string, dst *opt[[]string]) {
	var kinds []string
	seen := map[string]bool{}
	line, ok := d.list(n, path, func(n *yaml.Node, p string) {
		var k opt[string]
		d.str(n, p, &k, checkProtectedKind)
		if !k.set {
			return
		}
		if seen[k.v] {
			d.addf(k.line, p, "%q is listed twice", k.v)
			return
		}
		seen[k.v] = true
		kinds = append(kinds, k.v)
	})
	if ok {
		*dst = opt[[]string]{v: kinds, set: true, line: line}
	}
}
