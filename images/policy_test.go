package images

import (
	"regexp"
	"slices"
	"testing"
)

func TestPolicySelect(t *testing.T) {
	semver := func(r string) *Policy { return &Policy{Name: "p", Kind: SemVer, Range: r, Exclude: DefaultExclude()} }
	tests := []struct {
		name string
		p    *Policy
		tags []string
		want []string // best first, up to 3
	}{
		{"range picks the highest in range, not the rc or the sig",
			semver(">=1.0.0 <2.0.0"), []string{"1.0.0", "1.1.0", "2.0.0-rc.1", "sha256-abc.sig", "1.1.0.sig"}, []string{"1.1.0", "1.0.0"}},
		{"pre-releases only when the range asks",
			semver(">=2.0.0-0"), []string{"1.9.0", "2.0.0-rc.1", "2.0.0-rc.2"}, []string{"2.0.0-rc.2", "2.0.0-rc.1"}},
		{"v prefixes are versions",
			semver(">=1.0.0"), []string{"v1.2.0", "1.10.0", "v1.9.9"}, []string{"1.10.0", "v1.9.9", "v1.2.0"}},
		{"build metadata cannot be in a tag ('+' is not allowed): ignored",
			semver("*"), []string{"1.0.0+b", "0.1.0"}, []string{"0.1.0"}},
		{"v and no v: equal precedence broken by the tag",
			semver("*"), []string{"1.0.0", "v1.0.0"}, []string{"v1.0.0", "1.0.0"}},
		{"mixed schemes: only versions count; bare numbers are not versions",
			semver("*"), []string{"latest", "main-abc", "2024", "7", "0.3.1", "sha-123"}, []string{"0.3.1"}},
		{"no match", semver(">=5.0.0"), []string{"1.0.0", "latest"}, nil},
		{"alphabetical asc picks the last",
			&Policy{Name: "p", Kind: Alphabetical, Order: Asc}, []string{"b", "c", "a"}, []string{"c", "b", "a"}},
		{"alphabetical desc picks the first",
			&Policy{Name: "p", Kind: Alphabetical, Order: Desc}, []string{"b", "c", "a"}, []string{"a", "b", "c"}},
		{"numerical asc: 10 beats 9",
			&Policy{Name: "p", Kind: Numerical, Order: Asc}, []string{"9", "10", "x", "1.5"}, []string{"10", "9", "1.5"}},
		{"numerical desc",
			&Policy{Name: "p", Kind: Numerical, Order: Desc}, []string{"9", "10", "0"}, []string{"0", "9", "10"}},
		{"filter with an extract group orders by it",
			&Policy{Name: "p", Kind: Numerical, Order: Asc, Filter: regexp.MustCompile(`^main-[a-f0-9]+-(?P<ts>[0-9]+)$`), Extract: "ts"},
			[]string{"main-abc123-1700000000", "main-fff000-1600000000", "feature-aaa-1800000000", "main-zzz-1900000000"},
			[]string{"main-abc123-1700000000", "main-fff000-1600000000"}},
		{"filter without extract orders whole tags",
			&Policy{Name: "p", Kind: SemVer, Range: "*", Filter: regexp.MustCompile(`^v`)}, []string{"1.5.0", "v1.2.0", "v1.3.0"}, []string{"v1.3.0", "v1.2.0"}},
		{"default exclusions",
			&Policy{Name: "p", Kind: Alphabetical, Order: Asc, Exclude: DefaultExclude()},
			[]string{"a", "sha256-0123.sig", "z.att", "zz.sbom", "b"}, []string{"b", "a"}},
		{"explicit empty exclusions keep signature tags",
			&Policy{Name: "p", Kind: Alphabetical, Order: Asc, Exclude: []string{}}, []string{"a", "z.sig"}, []string{"z.sig", "a"}},
		{"invalid tags never count",
			&Policy{Name: "p", Kind: Alphabetical, Order: Asc}, []string{"ok", "-bad", "has space", "x/y", string(make([]byte, 200))}, []string{"ok"}},
		{"duplicates listed once",
			semver("*"), []string{"1.0.0", "1.0.0", "0.9.0"}, []string{"1.0.0", "0.9.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Compile(); err != nil {
				t.Fatal(err)
			}
			s := NewSelector(tt.p, 3)
			for _, tag := range tt.tags {
				s.Add(tag)
			}
			got := s.Best()
			if len(got) == 0 {
				got = nil
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("best = %q, want %q", got, tt.want)
			}
			if s.Seen != len(tt.tags) {
				t.Errorf("seen %d, want %d", s.Seen, len(tt.tags))
			}
			// The order the registry lists tags in never changes the choice.
			r := NewSelector(tt.p, 3)
			for _, tag := range slices.Backward(tt.tags) {
				r.Add(tag)
			}
			if !slices.Equal(r.Best(), s.Best()) {
				t.Errorf("reversed input gives %q, want %q", r.Best(), s.Best())
			}
		})
	}
}

func TestSelectorBoundedMemory(t *testing.T) {
	p := &Policy{Name: "p", Kind: Numerical, Order: Asc}
	if err := p.Compile(); err != nil {
		t.Fatal(err)
	}
	s := NewSelector(p, 5)
	for i := range 100_000 {
		s.Add(itoa(i))
	}
	if got := s.Best(); !slices.Equal(got, []string{"99999", "99998", "99997", "99996", "99995"}) {
		t.Errorf("best = %q", got)
	}
	if cap(s.top) > 16 {
		t.Errorf("the selector grew to %d keys for 100,000 tags", cap(s.top))
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestPolicyCompileErrors(t *testing.T) {
	for _, tt := range []struct {
		p    Policy
		want string
	}{
		{Policy{Name: "a", Kind: SemVer, Range: ">=a.b"}, `policy a: semver range ">=a.b"`},
		{Policy{Name: "a", Kind: Numerical, Order: "up"}, `policy a: order "up": want asc or desc`},
		{Policy{Name: "a", Kind: "newest"}, `policy a: unknown kind "newest"`},
		{Policy{Name: "a", Kind: Numerical, Order: Asc, Filter: regexp.MustCompile(`(?P<x>\d+)`), Extract: "y"}, `policy a: extract "y" names no group of the tag filter`},
		{Policy{Name: "a", Kind: Numerical, Order: Asc, Exclude: []string{"[x"}}, `policy a: exclude pattern "[x"`},
	} {
		err := tt.p.Compile()
		if err == nil || len(err.Error()) < len(tt.want) || err.Error()[:len(tt.want)] != tt.want {
			t.Errorf("Compile(%+v) = %v, want %q...", tt.p, err, tt.want)
		}
	}
}

func TestNewer(t *testing.T) {
	p := &Policy{Name: "p", Kind: SemVer, Range: ">=1.0.0"}
	if err := p.Compile(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		a, b      string
		newer, ok bool
	}{
		{"1.1.0", "1.0.0", true, true},
		{"1.0.0", "1.1.0", false, true},
		{"1.0.0", "1.0.0", false, true},
		{"1.0.0", "latest", false, false},
		{"0.9.0", "1.0.0", false, false}, // out of range: not comparable
	} {
		newer, ok := p.Newer(tt.a, tt.b)
		if newer != tt.newer || ok != tt.ok {
			t.Errorf("Newer(%s, %s) = %v, %v; want %v, %v", tt.a, tt.b, newer, ok, tt.newer, tt.ok)
		}
	}
}
