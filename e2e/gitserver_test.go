//go:build e2e

package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/tether-gitops/tether/e2e/gitserver"
)

// Two commits pushed over HTTP; `git ls-remote` over HTTP sees the second.
// With basic auth on, a client without credentials is refused.
func TestGitServerRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts gitserver.Options
	}{
		{"anonymous", gitserver.Options{}},
		{"basic auth", gitserver.Options{Username: "alice", Password: "s3cret-pass"}},
		{"https with bearer token", gitserver.Options{BearerToken: "tok-123", TLS: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := gitserver.Start(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			repo, err := srv.CreateRepo("app")
			if err != nil {
				t.Fatal(err)
			}
			first, err := repo.Commit("first", map[string]string{"a.yaml": "a: 1\n"})
			if err != nil {
				t.Fatal(err)
			}
			second, err := repo.Commit("second", map[string]string{"a.yaml": "a: 2\n"})
			if err != nil {
				t.Fatal(err)
			}
			if first == second || len(second) != 40 {
				t.Fatalf("commits %q and %q", first, second)
			}
			refs, err := repo.LsRemote()
			if err != nil {
				t.Fatal(err)
			}
			if refs["refs/heads/main"] != second {
				t.Fatalf("ls-remote shows main at %q, want %q (refs %v)", refs["refs/heads/main"], second, refs)
			}
			if n := srv.Count("receive-pack"); n != 2 {
				t.Errorf("server saw %d pushes, want 2", n)
			}
			if tc.opts.Username == "" && tc.opts.BearerToken == "" {
				return
			}
			// Without credentials the server refuses.
			cmd := exec.Command("git", "ls-remote", repo.URL)
			cmd.Env = append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_SSL_NO_VERIFY=1")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("ls-remote without credentials succeeded: %s", out)
			}
			if srv.AuthFailures() == 0 {
				t.Errorf("server counted no refused request; git said %s", out)
			}
			if secret := tc.opts.Password + tc.opts.BearerToken; strings.Contains(string(out), secret) {
				t.Errorf("git output leaks the secret: %s", out)
			}
		})
	}
}
