package webhook

import "testing"

func TestNormalizeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://github.com/org/repo", "github.com/org/repo"},
		{"https://github.com/org/repo.git", "github.com/org/repo"},
		{"https://github.com/org/repo/", "github.com/org/repo"},
		{"https://github.com/org/repo.git/", "github.com/org/repo"},
		{"http://github.com/org/repo", "github.com/org/repo"},
		{"HTTPS://GitHub.COM/org/repo", "github.com/org/repo"},
		{"https://github.com/Org/Repo", "github.com/org/repo"},
		{"https://user:secret@github.com/org/repo", "github.com/org/repo"},
		{"https://token@github.com/org/repo", "github.com/org/repo"},
		{"https://github.com:443/org/repo", "github.com/org/repo"},
		{"https://github.com/org/repo?x=1#frag", "github.com/org/repo"},
		{"  https://github.com/org/repo  ", "github.com/org/repo"},
		{"ssh://git@github.com/org/repo.git", "github.com/org/repo"},
		{"ssh://git@github.com:22/org/repo.git", "github.com/org/repo"},
		{"ssh://git@gitea.local:2222/org/repo.git", "gitea.local/org/repo"},
		{"git@github.com:org/repo.git", "github.com/org/repo"},
		{"git@github.com:org/repo", "github.com/org/repo"},
		{"github.com:org/repo.git", "github.com/org/repo"},
		{"git@GitHub.com:/org/repo.git/", "github.com/org/repo"},
		{"git://github.com/org/repo.git", "github.com/org/repo"},
		{"github.com/org/repo", "github.com/org/repo"},
		{"https://gitlab.com/group/sub/repo.git", "gitlab.com/group/sub/repo"},
		{"https://[::1]:8443/org/repo.git", "::1/org/repo"},
		{"git@[::1]:org/repo.git", "::1/org/repo"},
		{"ssh://git@[::1]:22/org/repo", "::1/org/repo"},
		{"https://git.example.com/repo.git.git", "git.example.com/repo"},
		{"", ""},
		{"https://github.com", ""},
		{"https://github.com/", ""},
		{"https://github.com/.git", ""},
		{"just-a-name", ""},
		{"git@github.com:", ""},
		{"[::1:org/repo", ""},
	}
	for _, tt := range tests {
		if got := NormalizeURL(tt.in); got != tt.want {
			t.Errorf("NormalizeURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestNormalizeURLSameRepository checks the spellings of one repository
// against each other, as a webhook and a configuration would.
func TestNormalizeURLSameRepository(t *testing.T) {
	same := []string{
		"git@github.com:org/repo",
		"ssh://git@github.com/org/repo",
		"https://github.com/org/repo",
		"https://github.com/org/repo.git",
		"https://GITHUB.com/org/repo/",
		"ssh://git@github.com:22/org/repo.git",
	}
	for _, a := range same {
		for _, b := range same {
			if NormalizeURL(a) != NormalizeURL(b) {
				t.Errorf("%q and %q differ: %q, %q", a, b, NormalizeURL(a), NormalizeURL(b))
			}
		}
	}
	different := [][2]string{
		{"https://github.com/org/repo", "https://github.com/org/repo2"},
		{"https://github.com/org/repo", "https://gitlab.com/org/repo"},
		{"https://github.com/org/repo", "https://github.com/other/repo"},
		{"git@github.com:org/repo", "git@github.com:org/sub/repo"},
	}
	for _, p := range different {
		if NormalizeURL(p[0]) == NormalizeURL(p[1]) {
			t.Errorf("%q and %q compare equal (%q)", p[0], p[1], NormalizeURL(p[0]))
		}
	}
}
