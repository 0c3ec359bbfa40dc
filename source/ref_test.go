package source

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		in      string
		want    Ref
		wantErr string
	}{
		{in: "main", want: Ref{Name: "main"}},
		{in: " main ", want: Ref{Name: "main"}},
		{in: "feature/x", want: Ref{Name: "feature/x"}},
		{in: "v1.2.3", want: Ref{Name: "v1.2.3"}},
		{in: "refs/heads/main", want: Ref{Branch: "main"}},
		{in: "refs/heads/feature/x", want: Ref{Branch: "feature/x"}},
		{in: "refs/tags/v1.2.3", want: Ref{Tag: "v1.2.3"}},
		{in: "refs/pull/12/head", want: Ref{Name: "refs/pull/12/head"}},
		{in: sha, want: Ref{Commit: sha}},
		{in: strings.ToUpper(sha), want: Ref{Commit: sha}},
		{in: "semver:>=1.2.0 <2.0.0", want: Ref{SemVer: ">=1.2.0 <2.0.0"}},
		{in: "semver: ~1.2", want: Ref{SemVer: "~1.2"}},
		{in: "0123456", want: Ref{Name: "0123456"}}, // short SHAs are names
		{in: "", wantErr: "empty ref"},
		{in: "semver:", wantErr: "no ref given"},
		{in: "semver:>=x.y", wantErr: `semver range ">=x.y"`},
		{in: "refs/heads/", wantErr: "no ref given"},
		{in: "bad..name", wantErr: "not a valid git ref name"},
		{in: "with space", wantErr: "not a valid git ref name"},
		{in: "refs/heads/a:b", wantErr: "not a valid git ref name"},
		{in: "x.lock", wantErr: "not a valid git ref name"},
		{in: "a/.hidden", wantErr: "not a valid git ref name"},
		{in: "a@{1}", wantErr: "not a valid git ref name"},
	} {
		got, err := ParseRef(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseRef(%q) = %+v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		// String round-trips through ParseRef (short names stay names).
		if again, err := ParseRef(got.String()); err != nil || again != got {
			t.Errorf("ParseRef(%q.String() = %q) = %+v, %v", tc.in, got.String(), again, err)
		}
	}
}

func TestRefValidate(t *testing.T) {
	for _, tc := range []struct {
		ref  Ref
		want string
	}{
		{Ref{}, "no ref given"},
		{Ref{Branch: "main", Tag: "v1"}, "more than one"},
		{Ref{Commit: "abc"}, "not a full 40-hex SHA-1"},
		{Ref{Commit: strings.Repeat("g", 40)}, "not a full 40-hex SHA-1"},
		{Ref{SemVer: "not a range"}, "semver range"},
		{Ref{Tag: "a b"}, "not a valid git ref name"},
		{Ref{Branch: "main"}, ""},
		{Ref{SemVer: "^1"}, ""},
	} {
		err := tc.ref.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v.Validate() = %v, want %q", tc.ref, err, tc.want)
		}
	}
}

func TestResolve(t *testing.T) {
	c1 := strings.Repeat("1", 40)
	c2 := strings.Repeat("2", 40)
	tagObj := strings.Repeat("a", 40)
	rr := remoteRefs{
		refs: map[string]string{
			"HEAD":              c1,
			"refs/heads/main":   c1,
			"refs/heads/v1.0.0": c2, // a branch named like a tag
			"refs/tags/v1.0.0":  c1,
			"refs/tags/v1.2.0":  tagObj, // annotated
			"refs/tags/v1.3.0":  c2,
			"refs/pull/7/head":  c2,
		},
		peeled: map[string]string{"refs/tags/v1.2.0": c2},
	}
	noPeel := remoteRefs{refs: map[string]string{"refs/tags/v1.2.0": tagObj}}
	for _, tc := range []struct {
		name    string
		ref     Ref
		rr      remoteRefs
		want    target
		wantErr string
	}{
		{"branch", Ref{Branch: "main"}, rr, target{Name: "main", RefName: "refs/heads/main", Object: c1, Commit: c1}, ""},
		// A tag without a peeled line is probably lightweight, but the commit is
		// only taken as known once fetched.
		{"lightweight tag", Ref{Tag: "v1.0.0"}, rr, target{Name: "v1.0.0", RefName: "refs/tags/v1.0.0", Object: c1}, ""},
		{"annotated tag: want the tag object, commit from the peeled line", Ref{Tag: "v1.2.0"}, rr,
			target{Name: "v1.2.0", RefName: "refs/tags/v1.2.0", Object: tagObj, Commit: c2}, ""},
		{"annotated tag without a peeled line: commit unknown until fetched", Ref{Tag: "v1.2.0"}, noPeel,
			target{Name: "v1.2.0", RefName: "refs/tags/v1.2.0", Object: tagObj}, ""},
		{"commit needs no listing entry", Ref{Commit: strings.ToUpper(c2)}, rr, target{Object: c2, Commit: c2}, ""},
		{"short name prefers the branch", Ref{Name: "v1.0.0"}, rr, target{Name: "v1.0.0", RefName: "refs/heads/v1.0.0", Object: c2, Commit: c2}, ""},
		{"short name falls back to a tag", Ref{Name: "v1.3.0"}, rr, target{Name: "v1.3.0", RefName: "refs/tags/v1.3.0", Object: c2}, ""},
		{"full name", Ref{Name: "refs/pull/7/head"}, rr, target{Name: "refs/pull/7/head", RefName: "refs/pull/7/head", Object: c2, Commit: c2}, ""},
		{"full branch name", Ref{Name: "refs/heads/main"}, rr, target{Name: "main", RefName: "refs/heads/main", Object: c1, Commit: c1}, ""},
		{"semver picks the highest match", Ref{SemVer: ">=1.0.0 <2.0.0"}, rr, target{Name: "v1.3.0", RefName: "refs/tags/v1.3.0", Object: c2}, ""},
		{"semver picks an annotated tag", Ref{SemVer: "~1.2"}, rr, target{Name: "v1.2.0", RefName: "refs/tags/v1.2.0", Object: tagObj, Commit: c2}, ""},
		{"missing branch", Ref{Branch: "gone"}, rr, target{}, `branch "gone" not found on the remote (branches: main, v1.0.0; tags: v1.0.0, v1.2.0, v1.3.0)`},
		{"missing tag", Ref{Tag: "v9"}, rr, target{}, `tag "v9" not found`},
		{"missing name", Ref{Name: "nope"}, rr, target{}, `ref "nope" not found`},
		{"semver without a match", Ref{SemVer: ">=2"}, rr, target{}, `no tag satisfies semver range ">=2"`},
		{"empty listing", Ref{Branch: "main"}, remoteRefs{}, target{}, "no branches; no tags"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolve(tc.ref, tc.rr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrRefNotFound) {
					t.Fatalf("resolve = %+v, %v; want ErrRefNotFound containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("resolve = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestSummarizeRefsIsBounded(t *testing.T) {
	rr := remoteRefs{refs: map[string]string{}}
	for i := range 20 {
		rr.refs["refs/heads/b"+string(rune('a'+i))] = "x"
	}
	if got := summarizeRefs(rr); !strings.Contains(got, "and 12 more") || strings.Count(got, ",") != 7 {
		t.Errorf("summarizeRefs = %q", got)
	}
}

func TestSelectSemver(t *testing.T) {
	tags := []string{"v1.0.0", "v1.2.0", "1.2.5", "v1.10.0", "v2.0.0", "v2.1.0-rc.1", "latest", "v3", "release-4.0.0", "v1.2.5+build.7"}
	for _, tc := range []struct {
		rng, want string
		tags      []string
	}{
		{">=1.2.0 <2.0.0", "v1.10.0", tags}, // numeric, not lexical, order
		{"~1.2", "v1.2.5+build.7", tags},    // same precedence as 1.2.5: the greater name wins
		{"1.2.5", "v1.2.5+build.7", tags},
		{"^2", "v2.0.0", tags},                            // the pre-release is not in a plain range
		{">=2.1.0-rc.0", "v3", tags},                      // "v3" parses as 3.0.0
		{">=2.1.0-rc.0 <3", "v2.1.0-rc.1", tags},          // a range naming a pre-release admits it
		{">=5", "", tags},                                 // none
		{"*", "v3", tags},                                 // anything but pre-releases
		{">=1", "", nil},                                  // no tags at all
		{">=1", "v1.0.0", []string{"v1.0.0", "x"}},        // non-versions ignored
		{"=1.0.0", "v1.0.0", []string{"1.0.0", "v1.0.0"}}, // tie: "v1.0.0" > "1.0.0"
		{"=1.0.0", "v1.0.0", []string{"v1.0.0", "1.0.0"}}, // listing order does not matter
	} {
		got, err := selectSemver(tc.rng, tc.tags)
		if err != nil || got != tc.want {
			t.Errorf("selectSemver(%q) = %q, %v; want %q", tc.rng, got, err, tc.want)
		}
	}
	if _, err := selectSemver("nope", tags); err == nil {
		t.Error("a bad range was accepted")
	}
}

func TestFormatRevision(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct{ name, want string }{
		{"main", "main@sha1:" + sha},
		{"feature/x", "feature/x@sha1:" + sha},
		{"v1.2.3", "v1.2.3@sha1:" + sha},
		{"refs/pull/1/head", "refs/pull/1/head@sha1:" + sha},
		{"", "sha1:" + sha},
	} {
		if got := FormatRevision(tc.name, sha); got != tc.want {
			t.Errorf("FormatRevision(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}
