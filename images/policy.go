package images

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// Kind is how a policy orders tags.
type Kind string

// The policy kinds.
const (
	// SemVer picks the highest version in a range. Pre-releases are
	// candidates only when the range names one (">=1.0.0-0").
	SemVer Kind = "semver"
	// Alphabetical orders tags (or their extracted part) as strings.
	Alphabetical Kind = "alphabetical"
	// Numerical orders tags (or their extracted part) as numbers.
	Numerical Kind = "numerical"
)

// Order is the direction of an alphabetical or numerical policy.
type Order string

// The orders. Like Flux's image policies: asc picks the last tag in
// ascending order (the highest), desc the first (the lowest).
const (
	Asc  Order = "asc"
	Desc Order = "desc"
)

// DefaultExclude are the tags no policy proposes unless its exclusions
// are set explicitly: signatures, attestations and SBOMs that cosign and
// friends push as tags next to the image.
func DefaultExclude() []string {
	return []string{"sha256-*", "*.sig", "*.att", "*.sbom"}
}

// Policy chooses a tag among a repository's tags. It is pure: Key and
// Less depend on nothing but the policy and the tags.
type Policy struct {
	// Name names the policy (markers refer to it).
	Name string
	// Image is the repository, "registry/path" (no tag, no digest).
	Image string
	// Kind orders the tags.
	Kind Kind
	// Range is the semver range of a SemVer policy.
	Range string
	// Order is the direction of an Alphabetical or Numerical policy.
	Order Order
	// Filter, when set, must match a tag for it to be a candidate.
	Filter *regexp.Regexp
	// Extract names a group of Filter whose match is ordered instead of
	// the whole tag; "" orders the whole tag.
	Extract string
	// Exclude are glob patterns (path.Match) of tags never proposed.
	Exclude []string

	constraint *semver.Constraints
}

// Compile checks the policy and prepares it. Errors name the field.
func (p *Policy) Compile() error {
	switch p.Kind {
	case SemVer:
		c, err := semver.NewConstraint(p.Range)
		if err != nil {
			return fmt.Errorf("policy %s: semver range %q: %w", p.Name, p.Range, err)
		}
		p.constraint = c
	case Alphabetical, Numerical:
		if p.Order != Asc && p.Order != Desc {
			return fmt.Errorf("policy %s: order %q: want asc or desc", p.Name, p.Order)
		}
	default:
		return fmt.Errorf("policy %s: unknown kind %q", p.Name, p.Kind)
	}
	if p.Extract != "" {
		if p.Filter == nil || p.Filter.SubexpIndex(p.Extract) < 0 {
			return fmt.Errorf("policy %s: extract %q names no group of the tag filter", p.Name, p.Extract)
		}
	}
	for _, g := range p.Exclude {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("policy %s: exclude pattern %q: %w", p.Name, g, err)
		}
	}
	return nil
}

// Key is what a tag is ordered by: the parsed version, number or string.
type Key struct {
	// Tag is the tag itself (ties are broken by it).
	Tag     string
	version *semver.Version
	number  float64
	text    string
}

// Key returns the ordering key of tag, or false when the policy does not
// consider the tag at all: excluded, not matching the filter, not a
// version in the range, not a number.
func (p *Policy) Key(tag string) (Key, bool) {
	if !validTag(tag) {
		return Key{}, false
	}
	for _, g := range p.Exclude {
		if ok, _ := path.Match(g, tag); ok {
			return Key{}, false
		}
	}
	value := tag
	if p.Filter != nil {
		m := p.Filter.FindStringSubmatch(tag)
		if m == nil {
			return Key{}, false
		}
		if p.Extract != "" {
			value = m[p.Filter.SubexpIndex(p.Extract)]
		}
	}
	k := Key{Tag: tag}
	switch p.Kind {
	case SemVer:
		v, err := semver.NewVersion(value)
		if err != nil || !strictEnough(value) {
			return Key{}, false
		}
		if p.constraint == nil || !p.constraint.Check(v) {
			return Key{}, false
		}
		k.version = v
	case Numerical:
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || f != f { // NaN orders nowhere
			return Key{}, false
		}
		k.number = f
	default:
		if value == "" {
			return Key{}, false
		}
		k.text = value
	}
	return k, true
}

// strictEnough refuses what semver.NewVersion would coerce but nobody
// means as a version: a bare number ("2024", "7") is a build number, not
// 2024.0.0. "v1.2" and "1.2.3" are versions.
func strictEnough(s string) bool {
	s = strings.TrimPrefix(s, "v")
	return strings.Contains(s, ".")
}

// Less reports whether a orders before b: b is the better choice.
// Equal precedence (1.0.0+a and 1.0.0+b, or v1.0.0 and 1.0.0) is broken
// by comparing the tags as strings, so the choice never depends on the
// order the registry lists them in.
func (p *Policy) Less(a, b Key) bool {
	c := 0
	switch p.Kind {
	case SemVer:
		c = a.version.Compare(b.version)
	case Numerical:
		switch {
		case a.number < b.number:
			c = -1
		case a.number > b.number:
			c = 1
		}
		if p.Order == Desc {
			c = -c
		}
	default:
		c = strings.Compare(a.text, b.text)
		if p.Order == Desc {
			c = -c
		}
	}
	if c == 0 {
		return a.Tag < b.Tag
	}
	return c < 0
}

// Newer reports whether tag a is a better choice than tag b under the
// policy; ok is false when either tag is not a candidate (then the two
// cannot be compared).
func (p *Policy) Newer(a, b string) (newer, ok bool) {
	ka, okA := p.Key(a)
	kb, okB := p.Key(b)
	if !okA || !okB {
		return false, false
	}
	return p.Less(kb, ka), true
}

// Selector keeps the best tags of a stream in bounded memory: a scan
// feeds it every tag of every page and keeps nothing else, so a
// repository with 100,000 tags costs the memory of Keep keys.
type Selector struct {
	p    *Policy
	keep int
	top  []Key // best first
	// Seen counts the tags fed; Matched those the policy considers.
	Seen, Matched int
}

// NewSelector keeps the keep best tags (at least 1).
func NewSelector(p *Policy, keep int) *Selector {
	return &Selector{p: p, keep: max(keep, 1)}
}

// Add considers one tag.
func (s *Selector) Add(tag string) {
	s.Seen++
	k, ok := s.p.Key(tag)
	if !ok {
		return
	}
	s.Matched++
	i, _ := slices.BinarySearchFunc(s.top, k, func(e, t Key) int {
		switch {
		case s.p.Less(t, e): // e is better: it stays in front
			return -1
		case s.p.Less(e, t):
			return 1
		}
		return 0
	})
	if i < len(s.top) && s.top[i].Tag == tag {
		return // listed twice
	}
	if i >= s.keep {
		return
	}
	s.top = slices.Insert(s.top, i, k)
	if len(s.top) > s.keep {
		s.top = s.top[:s.keep]
	}
}

// Best returns the kept tags, best first.
func (s *Selector) Best() []string {
	out := make([]string, len(s.top))
	for i, k := range s.top {
		out[i] = k.Tag
	}
	return out
}

// validTag is the OCI distribution rule for tags:
// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}. Anything else a registry lists is
// hostile or broken and never reaches a manifest.
func validTag(t string) bool {
	if t == "" || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case (c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
