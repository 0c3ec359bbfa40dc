//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tether-gitops/tether/e2e/gitserver"
	"github.com/tether-gitops/tether/e2e/sshserver"
	"github.com/tether-gitops/tether/source"
)

// The source package against real servers: git's own smart HTTP backend
// (package gitserver) and OpenSSH's sshd (package sshserver) serving the
// same bare repositories. No Kubernetes here.

// srcGitSource builds a Git source with a temporary Dir (unless set), a
// 30 s timeout (unless set) and a debug logger whose output is returned
// and shown when the test fails.
func srcGitSource(t *testing.T, opts source.GitOptions) (*source.Git, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("source logs:\n%s", logs)
		}
	})
	g, err := source.NewGit(opts)
	if err != nil {
		t.Fatalf("NewGit: %v", err)
	}
	return g, logs
}

func srcFetch(t *testing.T, g *source.Git) *source.Artifact {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	art, err := g.Fetch(ctx)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return art
}

func srcFetchErr(t *testing.T, g *source.Git) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	art, err := g.Fetch(ctx)
	if err == nil {
		t.Fatalf("Fetch succeeded with %s, want an error", art.Revision)
	}
	t.Logf("Fetch error (as expected): %v", err)
	return err
}

func srcReadFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("reading %s from the checkout: %v", name, err)
	}
	return string(b)
}

// srcAssertIntact checks that art is still what Dir/current points at, and
// still has its content.
func srcAssertIntact(t *testing.T, dir string, art *source.Artifact, file, content string) {
	t.Helper()
	target, err := filepath.EvalSymlinks(filepath.Join(dir, "current"))
	if err != nil {
		t.Fatalf("current symlink: %v", err)
	}
	if target != art.Dir {
		t.Errorf("current points at %s, want the previous artifact %s", target, art.Dir)
	}
	if got := srcReadFile(t, art.Dir, file); got != content {
		t.Errorf("previous artifact's %s = %q, want %q", file, got, content)
	}
}

func srcMust[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func srcGitServer(t *testing.T, opts gitserver.Options) *gitserver.Server {
	t.Helper()
	srv, err := gitserver.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// srcHistory is a repository with tags and a commit that is no ref's tip:
//
//	c1 "first"  a.yaml=1  tag v1.0.0 (lightweight)
//	c2 "second" a.yaml=2  tag v1.2.0 (annotated)
//	c3 "third"  a.yaml=3  (no ref)
//	c4 "fourth" a.yaml=4  main, tags v2.0.0 and v1.3.0-rc.1
//	c5 "dev"    a.yaml=dev  branch dev (on c4)
type srcHistory struct {
	repo               *gitserver.Repo
	c1, c2, c3, c4, c5 string
}

func srcMakeHistory(t *testing.T, srv *gitserver.Server, name string) srcHistory {
	t.Helper()
	repo := srcMust[*gitserver.Repo](t)(srv.CreateRepo(name))
	h := srcHistory{repo: repo}
	commit := func(msg, content string) string {
		return srcMust[string](t)(repo.Commit(msg, map[string]string{"a.yaml": "a: " + content + "\n"}))
	}
	h.c1 = commit("first", "1")
	if err := repo.Tag("v1.0.0", ""); err != nil {
		t.Fatal(err)
	}
	h.c2 = commit("second\n\nwith a body", "2")
	if err := repo.Tag("v1.2.0", "release 1.2.0"); err != nil {
		t.Fatal(err)
	}
	h.c3 = commit("third", "3")
	h.c4 = commit("fourth", "4")
	for _, tag := range []string{"v2.0.0", "v1.3.0-rc.1", "not-a-version"} {
		if err := repo.Tag(tag, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.Branch("dev"); err != nil {
		t.Fatal(err)
	}
	h.c5 = commit("dev", "dev")
	if err := repo.Checkout("main"); err != nil {
		t.Fatal(err)
	}
	return h
}

// Branch, tag (lightweight and annotated), pinned commit (a tip and one
// that is no ref's tip), semver ranges and short names, each fetched fresh
// over HTTP: the right commit, content, revision string and metadata.
func TestSourceGitRefs(t *testing.T) {
	t.Parallel()
	srv := srcGitServer(t, gitserver.Options{})
	h := srcMakeHistory(t, srv, "app")
	for _, tc := range []struct {
		name     string
		ref      string
		revision string
		content  string
		subject  string
	}{
		{"branch", "refs/heads/main", "main@sha1:" + h.c4, "4", "fourth"},
		{"other branch", "refs/heads/dev", "dev@sha1:" + h.c5, "dev", "dev"},
		{"short name is a branch", "main", "main@sha1:" + h.c4, "4", "fourth"},
		{"lightweight tag", "refs/tags/v1.0.0", "v1.0.0@sha1:" + h.c1, "1", "first"},
		{"annotated tag", "refs/tags/v1.2.0", "v1.2.0@sha1:" + h.c2, "2", "second"},
		{"short name is a tag", "v1.2.0", "v1.2.0@sha1:" + h.c2, "2", "second"},
		{"commit at a tip", h.c4, "sha1:" + h.c4, "4", "fourth"},
		{"commit that is no tip", h.c3, "sha1:" + h.c3, "3", "third"},
		{"semver range", "semver:>=1.0.0 <2.0.0", "v1.2.0@sha1:" + h.c2, "2", "second"},
		{"semver with pre-releases", "semver:>=1.3.0-rc.0 <2.0.0", "v1.3.0-rc.1@sha1:" + h.c4, "4", "fourth"},
		{"semver highest", "semver:>=1.0.0", "v2.0.0@sha1:" + h.c4, "4", "fourth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref, err := source.ParseRef(tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			g, _ := srcGitSource(t, source.GitOptions{URL: h.repo.URL, Ref: ref})
			art := srcFetch(t, g)
			if art.Revision != tc.revision {
				t.Errorf("revision %q, want %q", art.Revision, tc.revision)
			}
			if got := srcReadFile(t, art.Dir, "a.yaml"); got != "a: "+tc.content+"\n" {
				t.Errorf("a.yaml = %q, want content %q", got, tc.content)
			}
			if hash := tc.revision[strings.LastIndex(tc.revision, ":")+1:]; art.Commit.Hash != hash {
				t.Errorf("commit hash %s, want %s", art.Commit.Hash, hash)
			}
			if art.Commit.Subject != tc.subject || art.Commit.Author != "tether e2e <e2e@tether.invalid>" || art.Commit.Time.IsZero() {
				t.Errorf("commit metadata %+v, want subject %q by tether e2e", art.Commit, tc.subject)
			}
			st := g.Stats()
			if st.RefListings != 1 || st.Fetches != 1 || st.FallbackFetches != 0 || st.Published != 1 || st.Failures != 0 {
				t.Errorf("stats %+v, want one listing, one fetch (no fallback: over HTTP git checks reachability), one publish", st)
			}
			if st.FetchedBytes == 0 || st.FetchedObjects < 3 {
				t.Errorf("stats %+v: want fetched bytes and at least commit, tree and blob counted", st)
			}
			if _, err := os.Stat(filepath.Join(art.Dir, ".git")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("checkout has a .git entry (%v); it should hold the tree only", err)
			}
		})
	}
}

// A semver range follows new tags; a new tag on the commit already
// checked out renames the revision without fetching anything.
func TestSourceGitSemverFollowsTags(t *testing.T) {
	t.Parallel()
	srv := srcGitServer(t, gitserver.Options{})
	repo := srcMust[*gitserver.Repo](t)(srv.CreateRepo("app"))
	c1 := srcMust[string](t)(repo.Commit("one", map[string]string{"a.yaml": "a: 1\n"}))
	if err := repo.Tag("v1.0.0", ""); err != nil {
		t.Fatal(err)
	}
	g, _ := srcGitSource(t, source.GitOptions{URL: repo.URL, Ref: source.Ref{SemVer: "^1"}})
	first := srcFetch(t, g)
	if first.Revision != "v1.0.0@sha1:"+c1 {
		t.Fatalf("revision %s", first.Revision)
	}
	if err := repo.Tag("v1.0.1", "same commit, new tag"); err != nil {
		t.Fatal(err)
	}
	fetches := srv.Count("upload-pack")
	renamed := srcFetch(t, g)
	if renamed.Revision != "v1.0.1@sha1:"+c1 || renamed.Dir != first.Dir {
		t.Errorf("after a re-tag: %s at %s, want v1.0.1@sha1:%s at %s", renamed.Revision, renamed.Dir, c1, first.Dir)
	}
	if n := srv.Count("upload-pack") - fetches; n != 0 {
		t.Errorf("a re-tag of the same commit fetched %d times, want 0", n)
	}
	c2 := srcMust[string](t)(repo.Commit("two", map[string]string{"a.yaml": "a: 2\n"}))
	for _, tag := range []string{"v1.1.0", "v2.0.0"} {
		if err := repo.Tag(tag, ""); err != nil {
			t.Fatal(err)
		}
	}
	if art := srcFetch(t, g); art.Revision != "v1.1.0@sha1:"+c2 || srcReadFile(t, art.Dir, "a.yaml") != "a: 2\n" {
		t.Errorf("after v1.1.0 (and v2.0.0, out of range): %s", art.Revision)
	}
}

// Symlinks (inside the checkout, pointing outside it, absolute) are checked
// out as symlinks and never followed, not even to measure the size (the
// build refuses the ones that leave the checkout); executables keep their
// bit; nothing git-internal lands in the checkout.
func TestSourceGitSymlinksAndModes(t *testing.T) {
	t.Parallel()
	srv := srcGitServer(t, gitserver.Options{})
	repo := srcMust[*gitserver.Repo](t)(srv.CreateRepo("app"))
	srcMust[string](t)(repo.Commit("files", map[string]string{"a.yaml": "a: 1\n", "run.sh": "#!/bin/sh\n"}))
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{"inside": "a.yaml", "outside": "../../../../etc/passwd", "absolute": big}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(repo.Work, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(repo.Work, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"add", "--all"}, {"commit", "--quiet", "-m", "links"}, {"push", "--quiet", "origin", "HEAD:refs/heads/main"}} {
		if _, err := repo.Git(args...); err != nil {
			t.Fatal(err)
		}
	}
	// 1 MiB cap: following the absolute link would count 4 MiB.
	g, _ := srcGitSource(t, source.GitOptions{URL: repo.URL, Ref: source.Ref{Branch: "main"}, MaxSize: 1 << 20})
	art := srcFetch(t, g)
	for name, target := range links {
		fi, err := os.Lstat(filepath.Join(art.Dir, name))
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is not a symlink in the checkout: %v %v", name, fi, err)
			continue
		}
		if got, _ := os.Readlink(filepath.Join(art.Dir, name)); got != target {
			t.Errorf("%s -> %q, want %q", name, got, target)
		}
	}
	if fi, err := os.Stat(filepath.Join(art.Dir, "run.sh")); err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("run.sh lost its executable bit: %v %v", fi, err)
	}
	entries, err := os.ReadDir(art.Dir)
	if err != nil || len(entries) != 5 {
		t.Errorf("checkout holds %d entries (%v), want the 5 committed", len(entries), err)
	}
}

// Polling: an unchanged remote costs one ref listing and no fetch (the
// source's counter and the server's own request count agree); a new commit
// is fetched and published; the previous checkout is kept, the one before
// it removed; Dir/current follows.
func TestSourceGitPolling(t *testing.T) {
	t.Parallel()
	srv := srcGitServer(t, gitserver.Options{})
	repo := srcMust[*gitserver.Repo](t)(srv.CreateRepo("app"))
	c1 := srcMust[string](t)(repo.Commit("one", map[string]string{"a.yaml": "a: 1\n"}))
	g, _ := srcGitSource(t, source.GitOptions{URL: repo.URL, Ref: source.Ref{Branch: "main"}})
	dir := filepath.Dir(filepath.Dir(srcFetch(t, g).Dir))

	first := g.Current()
	if first.Revision != "main@sha1:"+c1 {
		t.Fatalf("revision %s", first.Revision)
	}
	listings, fetches := srv.Count("info/refs upload-pack"), srv.Count("upload-pack")
	if fetches != 1 {
		t.Fatalf("server saw %d fetches for the first Fetch, want 1 (requests: %v)", fetches, srv.Requests())
	}
	for i := range 3 {
		art := srcFetch(t, g)
		if art != first {
			t.Fatalf("poll %d returned %s at %s, want the same artifact as before", i, art.Revision, art.Dir)
		}
	}
	if n := srv.Count("upload-pack"); n != fetches {
		t.Errorf("server saw %d more fetches while nothing changed, want 0", n-fetches)
	}
	if n := srv.Count("info/refs upload-pack"); n != listings+3 {
		t.Errorf("server saw %d ref listings for 3 polls, want 3", n-listings)
	}
	if st := g.Stats(); st.Fetches != 1 || st.RefListings != 4 || st.Unchanged != 3 {
		t.Errorf("stats %+v, want 1 fetch, 4 listings, 3 unchanged", st)
	}

	c2 := srcMust[string](t)(repo.Commit("two", map[string]string{"a.yaml": "a: 2\n", "b.yaml": "b: 1\n"}))
	second := srcFetch(t, g)
	if second.Revision != "main@sha1:"+c2 || srcReadFile(t, second.Dir, "a.yaml") != "a: 2\n" || srcReadFile(t, second.Dir, "b.yaml") != "b: 1\n" {
		t.Fatalf("after a new commit: %s with a.yaml %q", second.Revision, srcReadFile(t, second.Dir, "a.yaml"))
	}
	if second.Dir == first.Dir {
		t.Fatal("new revision published into the same directory")
	}
	if got := srcReadFile(t, first.Dir, "a.yaml"); got != "a: 1\n" {
		t.Errorf("previous checkout changed or went away: a.yaml %q", got)
	}
	c3 := srcMust[string](t)(repo.Commit("three", map[string]string{"b.yaml": ""}))
	third := srcFetch(t, g)
	if third.Revision != "main@sha1:"+c3 {
		t.Fatalf("revision %s, want main@sha1:%s", third.Revision, c3)
	}
	if _, err := os.Stat(filepath.Join(third.Dir, "b.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b.yaml deleted upstream is still in the checkout (%v)", err)
	}
	if _, err := os.Stat(first.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("checkout two revisions back still exists (%v); keep current and previous only", err)
	}
	if _, err := os.Stat(second.Dir); err != nil {
		t.Errorf("previous checkout removed: %v", err)
	}
	srcAssertIntact(t, dir, third, "a.yaml", "a: 2\n")
	if n := srv.Count("upload-pack"); n != 3 {
		t.Errorf("server saw %d fetches in total, want 3", n)
	}

	// Concurrent callers (the sync loop, a webhook, the metrics collector)
	// are safe: Fetch calls take turns, Stats and Current never block.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for range 3 {
				if art, err := g.Fetch(ctx); err != nil || art.Revision != third.Revision {
					t.Errorf("concurrent Fetch: %v, %v", art, err)
				}
				_ = g.Stats()
				_ = g.Current()
			}
		}()
	}
	wg.Wait()

	// A restarted source on the same Dir resumes without fetching.
	g2, _ := srcGitSource(t, source.GitOptions{URL: repo.URL, Ref: source.Ref{Branch: "main"}, Dir: dir})
	if art := srcFetch(t, g2); art.Revision != third.Revision || art.Dir != third.Dir {
		t.Errorf("restarted source gave %s at %s, want %s at %s", art.Revision, art.Dir, third.Revision, third.Dir)
	}
	if st := g2.Stats(); st.Fetches != 0 || st.Unchanged != 1 {
		t.Errorf("restarted source stats %+v, want no fetch", st)
	}

	// A checkout whose files no longer hold what was published (a power
	// loss emptied a file, current survived) is not resumed: the restarted
	// source fetches the revision again into a new checkout.
	if err := os.Truncate(filepath.Join(third.Dir, "a.yaml"), 0); err != nil {
		t.Fatal(err)
	}
	g3, logs := srcGitSource(t, source.GitOptions{URL: repo.URL, Ref: source.Ref{Branch: "main"}, Dir: dir})
	if g3.Current() != nil {
		t.Errorf("a damaged checkout was resumed: %+v", g3.Current())
	}
	if !strings.Contains(logs.String(), "not resuming from the published checkout") {
		t.Errorf("the refusal to resume was not logged:\n%s", logs)
	}
	art := srcFetch(t, g3)
	if art.Revision != third.Revision || art.Dir == third.Dir || srcReadFile(t, art.Dir, "a.yaml") != "a: 2\n" {
		t.Errorf("after a damaged checkout: %s at %s", art.Revision, art.Dir)
	}
	if st := g3.Stats(); st.Fetches != 1 {
		t.Errorf("stats %+v, want one fetch", st)
	}
	srcAssertIntact(t, dir, art, "a.yaml", "a: 2\n")
}

// A force-pushed branch (srcHistory rewritten, old tip unreachable) is
// followed: the source fetches the new tip by its advertised id and never
// compares histories.
func TestSourceGitForcePush(t *testing.T) {
	t.Parallel()
	srv := srcGitServer(t, gitserver.Options{})
	repo := srcMust[*gitserver.Repo](t)(srv.CreateRepo("app"))
	srcMust[string](t)(repo.Commit("base", map[string]string{"a.yaml": "a: base\n"}))
	old := srcMust[string](t)(repo.Commit("to be rewritten", map[string]string{"a.yaml": "a: old\n"}))
	g, _ := srcGitSource(t, source.GitOptions{URL: repo.URL, Ref: source.Ref{Branch: "main"}})
	if art := srcFetch(t, g); art.Revision != "main@sha1:"+old {
		t.Fatalf("revision %s", art.Revision)
	}
	rewritten := srcMust[string](t)(repo.Amend("rewritten", map[string]string{"a.yaml": "a: rewritten\n"}))
	if rewritten == old {
		t.Fatal("amend did not change the commit")
	}
	if anc, _ := repo.Git("merge-base", "--is-ancestor", old, rewritten); anc != "" {
		t.Fatalf("unexpected output %q", anc)
	}
	art := srcFetch(t, g)
	if art.Revision != "main@sha1:"+rewritten {
		t.Fatalf("after a force-push: revision %s, want main@sha1:%s", art.Revision, rewritten)
	}
	if got := srcReadFile(t, art.Dir, "a.yaml"); got != "a: rewritten\n" {
		t.Errorf("a.yaml = %q after force-push", got)
	}
	if art.Commit.Subject != "rewritten" {
		t.Errorf("subject %q", art.Commit.Subject)
	}
	// And back again, to a commit the source has seen before.
	if _, err := repo.Git("reset", "--quiet", "--hard", old); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Git("push", "--quiet", "--force", "origin", "HEAD:refs/heads/main"); err != nil {
		t.Fatal(err)
	}
	if art := srcFetch(t, g); art.Revision != "main@sha1:"+old || srcReadFile(t, art.Dir, "a.yaml") != "a: old\n" {
		t.Errorf("after force-pushing back: %s", art.Revision)
	}
}

// A deleted branch or tag is an error naming it; the last good artifact
// stays published and readable.
func TestSourceGitDeletedRef(t *testing.T) {
	t.Parallel()
	srv := srcGitServer(t, gitserver.Options{})
	repo := srcMust[*gitserver.Repo](t)(srv.CreateRepo("app"))
	srcMust[string](t)(repo.Commit("one", map[string]string{"a.yaml": "a: 1\n"}))
	if err := repo.Tag("v1.0.0", "annotated"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Branch("feature"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ref, remote, want string
	}{
		{"branch", "refs/heads/feature", "refs/heads/feature", `branch "feature" not found`},
		{"tag", "refs/tags/v1.0.0", "refs/tags/v1.0.0", `tag "v1.0.0" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := srcMust[source.Ref](t)(source.ParseRef(tc.ref))
			dir := t.TempDir()
			g, _ := srcGitSource(t, source.GitOptions{URL: repo.URL, Ref: ref, Dir: dir})
			good := srcFetch(t, g)
			if err := repo.DeleteRemoteRef(tc.remote); err != nil {
				t.Fatal(err)
			}
			err := srcFetchErr(t, g)
			if !strings.Contains(err.Error(), tc.want) || !errors.Is(err, source.ErrRefNotFound) {
				t.Errorf("error %q, want one containing %q that is ErrRefNotFound", err, tc.want)
			}
			if !strings.Contains(err.Error(), good.Revision) {
				t.Errorf("error %q does not say which revision is still served (%s)", err, good.Revision)
			}
			if g.Current() != good {
				t.Errorf("current artifact changed to %+v", g.Current())
			}
			srcAssertIntact(t, dir, good, "a.yaml", "a: 1\n")
			if st := g.Stats(); st.Failures != 1 || st.Fetches != 1 {
				t.Errorf("stats %+v, want one failure and no second fetch", st)
			}
		})
	}
}

// Basic auth with the right password works (from a file); a wrong one
// (from an environment variable, and in the URL) fails with a clear
// "authentication failed" and the password appears nowhere: not in the
// error, not in any log line, not in the revision. A bearer token over
// HTTPS with a custom CA works, and a rotated token file is read on the
// next fetch.
func TestSourceGitAuth(t *testing.T) {
	t.Parallel()
	const user, password = "alice", "Pa55-correct-horse-battery"
	const wrong = "Wr0ng-staple-guess-9817"
	srv := srcGitServer(t, gitserver.Options{Username: user, Password: password})
	repo := srcMust[*gitserver.Repo](t)(srv.CreateRepo("app"))
	c1 := srcMust[string](t)(repo.Commit("one", map[string]string{"a.yaml": "a: 1\n"}))
	secrets := t.TempDir()
	passFile := filepath.Join(secrets, "password")
	if err := os.WriteFile(passFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("right password from a file", func(t *testing.T) {
		g, logs := srcGitSource(t, source.GitOptions{URL: repo.URL, Ref: source.Ref{Branch: "main"},
			Auth: source.Auth{Username: user, PasswordFile: passFile, AllowInsecureHTTP: true}})
		art := srcFetch(t, g)
		if art.Revision != "main@sha1:"+c1 || srcReadFile(t, art.Dir, "a.yaml") != "a: 1\n" {
			t.Errorf("got %s", art.Revision)
		}
		if strings.Contains(logs.String(), password) {
			t.Errorf("logs hold the password:\n%s", logs)
		}
	})

	failing := []struct {
		name string
		opts source.GitOptions
		want string
	}{
		{"wrong password from an environment variable", source.GitOptions{
			URL: repo.URL, Auth: source.Auth{Username: user, PasswordEnv: "GIT_PASSWORD", AllowInsecureHTTP: true},
			Getenv: func(k string) string {
				if k == "GIT_PASSWORD" {
					return wrong
				}
				return ""
			}}, `the server refused the password for user "alice"`},
		{"no credentials", source.GitOptions{URL: repo.URL}, "requires credentials and none are configured"},
	}
	for _, tc := range failing {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Ref = source.Ref{Branch: "main"}
			before := srv.AuthFailures()
			g, logs := srcGitSource(t, tc.opts)
			err := srcFetchErr(t, g)
			if !errors.Is(err, source.ErrAuthFailed) || !strings.Contains(err.Error(), "authentication failed") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want ErrAuthFailed saying %q", err, tc.want)
			}
			if srv.AuthFailures() == before {
				t.Error("the server refused nothing: the source did not try")
			}
			if g.Current() != nil {
				t.Errorf("something was published: %+v", g.Current())
			}
			// Everything the source produced, in every format a caller
			// might print it.
			output := strings.Join([]string{
				err.Error(), fmt.Sprintf("%v|%+v|%#v|%q", err, err, err, err), logs.String(),
				fmt.Sprintf("%+v", g.Stats()), fmt.Sprintf("%+v", g.Current()),
			}, "\n")
			for _, secret := range []string{wrong, password} {
				if strings.Contains(output, secret) {
					t.Errorf("output holds a password:\n%s", output)
				}
			}
		})
	}

	// Credentials in the URL are refused before anything is sent, with a
	// message that shows the URL redacted.
	t.Run("password in the URL", func(t *testing.T) {
		before := srv.AuthFailures()
		_, err := source.NewGit(source.GitOptions{URL: strings.Replace(repo.URL, "://", "://"+user+":"+wrong+"@", 1), Ref: source.Ref{Branch: "main"}, Dir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "credentials in the URL (http://***@127.0.0.1") || strings.Contains(err.Error(), wrong) {
			t.Errorf("error %v, want a refusal showing the URL redacted", err)
		}
		if srv.AuthFailures() != before {
			t.Error("something was sent to the server")
		}
	})

	t.Run("bearer token over https with a CA file, rotated", func(t *testing.T) {
		const token, rotated = "tok-first-4f1c2e9a", "tok-second-77d0b3c5"
		tsrv := srcGitServer(t, gitserver.Options{BearerToken: token, TLS: true})
		trepo := srcMust[*gitserver.Repo](t)(tsrv.CreateRepo("app"))
		tc1 := srcMust[string](t)(trepo.Commit("one", map[string]string{"a.yaml": "a: 1\n"}))
		dir := t.TempDir()
		caFile, tokFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token")
		if err := os.WriteFile(caFile, tsrv.CACertPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tokFile, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		g, logs := srcGitSource(t, source.GitOptions{URL: trepo.URL, Ref: source.Ref{Branch: "main"},
			Auth: source.Auth{BearerTokenFile: tokFile, CAFile: caFile}})
		if art := srcFetch(t, g); art.Revision != "main@sha1:"+tc1 {
			t.Errorf("got %s", art.Revision)
		}
		// The server's token changes before the mounted secret does.
		if err := os.WriteFile(tokFile, []byte(rotated), 0o600); err != nil {
			t.Fatal(err)
		}
		err := srcFetchErr(t, g)
		if !errors.Is(err, source.ErrAuthFailed) || !strings.Contains(err.Error(), "bearer token") {
			t.Errorf("error %q, want the bearer token refused", err)
		}
		if out := err.Error() + logs.String(); strings.Contains(out, rotated) || strings.Contains(out, token) {
			t.Errorf("output holds a token:\n%s", out)
		}
		if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if art := srcFetch(t, g); art.Revision != "main@sha1:"+tc1 {
			t.Errorf("after restoring the token: %s", art.Revision)
		}
		// The token from an environment variable works the same.
		genv, _ := srcGitSource(t, source.GitOptions{URL: trepo.URL, Ref: source.Ref{Branch: "main"},
			Auth:   source.Auth{BearerTokenEnv: "GIT_TOKEN", CAFile: caFile},
			Getenv: func(k string) string { return map[string]string{"GIT_TOKEN": token}[k] }})
		if art := srcFetch(t, genv); art.Revision != "main@sha1:"+tc1 {
			t.Errorf("token from the environment: %s", art.Revision)
		}
		// Without the CA file the server's certificate is not trusted.
		g2, _ := srcGitSource(t, source.GitOptions{URL: trepo.URL, Ref: source.Ref{Branch: "main"},
			Auth: source.Auth{BearerTokenFile: tokFile}})
		if err := srcFetchErr(t, g2); !strings.Contains(err.Error(), "certificate") {
			t.Errorf("without the CA: %v, want a certificate error", err)
		}
	})
}

// srcSSHFixture is an sshd serving a gitserver's repositories, with a client
// key authorized and a known_hosts file that trusts the server.
type srcSSHFixture struct {
	srv        *gitserver.Server
	sshd       *sshserver.Server
	keyFile    string
	knownHosts string
	secrets    string
}

func srcStartSSH(t *testing.T) srcSSHFixture {
	t.Helper()
	srv := srcGitServer(t, gitserver.Options{})
	secrets := t.TempDir()
	keyFile := filepath.Join(secrets, "id_ed25519")
	pub := srcMust[string](t)(sshserver.GenerateKey(keyFile, ""))
	sshd, err := sshserver.Start(sshserver.Options{Root: srv.Root, AuthorizedKeys: []string{pub}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sshd log:\n%s", sshd.Logs())
		}
		sshd.Close()
	})
	knownHosts := filepath.Join(secrets, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(sshd.KnownHostsLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return srcSSHFixture{srv: srv, sshd: sshd, keyFile: keyFile, knownHosts: knownHosts, secrets: secrets}
}

// SSH against a real sshd: key auth works (plain and passphrase-protected
// keys), polling stays quiet, a pinned commit that is no tip is fetched
// through the fallback; a wrong host key, a missing known_hosts entry and
// an unknown client key are refused with errors that say so.
func TestSourceSSH(t *testing.T) {
	t.Parallel()
	f := srcStartSSH(t)
	h := srcMakeHistory(t, f.srv, "app")
	url := f.sshd.RepoURL("app")
	auth := source.Auth{SSHKeyFile: f.keyFile, KnownHostsFile: f.knownHosts}

	t.Run("key auth, branch, polling", func(t *testing.T) {
		g, _ := srcGitSource(t, source.GitOptions{URL: url, Ref: source.Ref{Branch: "main"}, Auth: auth})
		art := srcFetch(t, g)
		if art.Revision != "main@sha1:"+h.c4 || srcReadFile(t, art.Dir, "a.yaml") != "a: 4\n" {
			t.Fatalf("got %s", art.Revision)
		}
		sessions := f.sshd.Count("Starting session: command")
		if again := srcFetch(t, g); again != art {
			t.Errorf("unchanged poll returned %s", again.Revision)
		}
		if st := g.Stats(); st.Fetches != 1 || st.RefListings != 2 || st.Unchanged != 1 {
			t.Errorf("stats %+v, want 1 fetch and 2 listings", st)
		}
		if got := f.sshd.Count("Starting session: command"); got != sessions+1 {
			t.Errorf("sshd ran %d commands for one poll, want 1 (the ref listing)", got-sessions)
		}
	})

	t.Run("annotated tag and semver", func(t *testing.T) {
		g, _ := srcGitSource(t, source.GitOptions{URL: url, Ref: source.Ref{SemVer: "~1.2"}, Auth: auth})
		if art := srcFetch(t, g); art.Revision != "v1.2.0@sha1:"+h.c2 || srcReadFile(t, art.Dir, "a.yaml") != "a: 2\n" {
			t.Errorf("got %s", art.Revision)
		}
	})

	t.Run("commit that is no tip", func(t *testing.T) {
		g, logs := srcGitSource(t, source.GitOptions{URL: url, Ref: source.Ref{Commit: h.c3}, Auth: auth})
		art := srcFetch(t, g)
		if art.Revision != "sha1:"+h.c3 || srcReadFile(t, art.Dir, "a.yaml") != "a: 3\n" {
			t.Fatalf("got %s", art.Revision)
		}
		st := g.Stats()
		if st.FallbackFetches != 1 || st.Fetches != 2 {
			t.Errorf("stats %+v: over SSH (protocol v0, no allowReachableSHA1InWant) a non-tip commit needs the full-srcHistory fallback", st)
		}
		if !strings.Contains(logs.String(), "fetching all branches and tags in full") {
			t.Errorf("the fallback was not logged:\n%s", logs)
		}
		// Pinned: the next poll does not even list refs.
		if again := srcFetch(t, g); again != art || g.Stats().RefListings != st.RefListings {
			t.Errorf("a pinned commit was fetched again: %+v", g.Stats())
		}
	})

	t.Run("passphrase-protected key", func(t *testing.T) {
		const passphrase = "open-sesame-5531"
		key := filepath.Join(f.secrets, "id_protected")
		pub := srcMust[string](t)(sshserver.GenerateKey(key, passphrase))
		if err := f.sshd.AuthorizeKey(pub); err != nil {
			t.Fatal(err)
		}
		passFile := filepath.Join(f.secrets, "passphrase")
		if err := os.WriteFile(passFile, []byte(passphrase+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		g, logs := srcGitSource(t, source.GitOptions{URL: url, Ref: source.Ref{Branch: "main"},
			Auth: source.Auth{SSHKeyFile: key, SSHPassphraseFile: passFile, KnownHostsFile: f.knownHosts}})
		if art := srcFetch(t, g); art.Revision != "main@sha1:"+h.c4 {
			t.Errorf("got %s", art.Revision)
		}
		if strings.Contains(logs.String(), passphrase) {
			t.Errorf("logs hold the passphrase")
		}
		// Without the passphrase the key cannot be used.
		g2, _ := srcGitSource(t, source.GitOptions{URL: url, Ref: source.Ref{Branch: "main"},
			Auth: source.Auth{SSHKeyFile: key, KnownHostsFile: f.knownHosts}})
		if err := srcFetchErr(t, g2); !strings.Contains(err.Error(), "encrypted and no passphrase") {
			t.Errorf("error %q", err)
		}
	})

	hostPort := fmt.Sprintf("127.0.0.1:%d", f.sshd.Port)
	t.Run("wrong host key in known_hosts", func(t *testing.T) {
		other := filepath.Join(f.secrets, "other_host_key")
		otherPub := srcMust[string](t)(sshserver.GenerateKey(other, ""))
		kh := filepath.Join(f.secrets, "known_hosts_wrong")
		line := fmt.Sprintf("[127.0.0.1]:%d %s\n", f.sshd.Port, otherPub)
		if err := os.WriteFile(kh, []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
		before := f.sshd.Count("Accepted publickey")
		g, _ := srcGitSource(t, source.GitOptions{URL: url, Ref: source.Ref{Branch: "main"},
			Auth: source.Auth{SSHKeyFile: f.keyFile, KnownHostsFile: kh}})
		err := srcFetchErr(t, g)
		if !errors.Is(err, source.ErrHostKey) || !strings.Contains(err.Error(), hostPort) || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("error %q, want ErrHostKey naming %s and saying the key does not match", err, hostPort)
		}
		if f.sshd.Count("Accepted publickey") != before {
			t.Error("the client logged in to a server whose host key did not match")
		}
	})

	t.Run("no known_hosts entry", func(t *testing.T) {
		kh := filepath.Join(f.secrets, "known_hosts_other")
		otherPub := srcMust[string](t)(sshserver.GenerateKey(filepath.Join(f.secrets, "k2"), ""))
		if err := os.WriteFile(kh, []byte("[127.0.0.1]:1 "+otherPub+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		g, _ := srcGitSource(t, source.GitOptions{URL: url, Ref: source.Ref{Branch: "main"},
			Auth: source.Auth{SSHKeyFile: f.keyFile, KnownHostsFile: kh}})
		err := srcFetchErr(t, g)
		if !errors.Is(err, source.ErrHostKey) || !strings.Contains(err.Error(), hostPort) || !strings.Contains(err.Error(), "is not in known_hosts") {
			t.Errorf("error %q, want ErrHostKey naming %s as unknown", err, hostPort)
		}
		// And an empty known_hosts file.
		empty := filepath.Join(f.secrets, "known_hosts_empty")
		if err := os.WriteFile(empty, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		g2, _ := srcGitSource(t, source.GitOptions{URL: url, Ref: source.Ref{Branch: "main"},
			Auth: source.Auth{SSHKeyFile: f.keyFile, KnownHostsFile: empty}})
		if err := srcFetchErr(t, g2); !errors.Is(err, source.ErrHostKey) || !strings.Contains(err.Error(), hostPort) {
			t.Errorf("error %q with an empty known_hosts", err)
		}
	})

	t.Run("known_hosts is mandatory", func(t *testing.T) {
		_, err := source.NewGit(source.GitOptions{URL: url, Ref: source.Ref{Branch: "main"}, Dir: t.TempDir(),
			Auth: source.Auth{SSHKeyFile: f.keyFile}})
		if err == nil || !strings.Contains(err.Error(), "KnownHostsFile is required") {
			t.Errorf("NewGit without known_hosts: %v", err)
		}
	})

	t.Run("insecure ignore host key warns on every fetch", func(t *testing.T) {
		g, logs := srcGitSource(t, source.GitOptions{URL: url, Ref: source.Ref{Branch: "main"},
			Auth: source.Auth{SSHKeyFile: f.keyFile, InsecureIgnoreHostKey: true}})
		srcFetch(t, g)
		srcFetch(t, g)
		if n := strings.Count(logs.String(), "host key checking is disabled"); n != 2 {
			t.Errorf("%d warnings for 2 fetches, want 2:\n%s", n, logs)
		}
	})

	t.Run("repository that does not exist", func(t *testing.T) {
		g, _ := srcGitSource(t, source.GitOptions{URL: f.sshd.RepoURL("nope"), Ref: source.Ref{Branch: "main"}, Auth: auth})
		err := srcFetchErr(t, g)
		if !errors.Is(err, source.ErrNotRepository) || !strings.Contains(err.Error(), "nope.git") {
			t.Errorf("error %q, want ErrNotRepository naming nope.git", err)
		}
	})

	t.Run("unknown client key", func(t *testing.T) {
		stranger := filepath.Join(f.secrets, "id_stranger")
		srcMust[string](t)(sshserver.GenerateKey(stranger, ""))
		g, _ := srcGitSource(t, source.GitOptions{URL: url, Ref: source.Ref{Branch: "main"},
			Auth: source.Auth{SSHKeyFile: stranger, KnownHostsFile: f.knownHosts}})
		err := srcFetchErr(t, g)
		if !errors.Is(err, source.ErrAuthFailed) || !strings.Contains(err.Error(), "refused the SSH key") {
			t.Errorf("error %q, want ErrAuthFailed for the key", err)
		}
	})
}

// srcSilentListener accepts TCP connections and never says anything: a host
// that is reachable but hangs. Connections are closed when the test ends.
func srcSilentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// srcClosedPort is a loopback port nothing listens on.
func srcClosedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Bad input: each case is a clear error naming what was wrong; nothing is
// published; the artifact published before (by a good source on the same
// Dir, or by the same source) stays intact.
func TestSourceBadInput(t *testing.T) {
	t.Parallel()
	srv := srcGitServer(t, gitserver.Options{})
	repo := srcMust[*gitserver.Repo](t)(srv.CreateRepo("app"))
	srcMust[string](t)(repo.Commit("one", map[string]string{"a.yaml": "a: 1\n"}))
	// A folder in the server's root that is not a repository.
	if err := os.MkdirAll(filepath.Join(srv.Root, "plain.git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(srv.Root, "plain.git", "README"), []byte("not git\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>a web page</body></html>")
	}))
	t.Cleanup(web.Close)
	silent := srcSilentListener(t)
	keyDir := t.TempDir()
	key := filepath.Join(keyDir, "id")
	srcMust[string](t)(sshserver.GenerateKey(key, ""))
	kh := filepath.Join(keyDir, "known_hosts")
	if err := os.WriteFile(kh, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// publishGood fetches the good repository into a new Dir and returns
	// the Dir and the artifact that srcMust survive.
	publishGood := func(t *testing.T) (string, *source.Artifact) {
		dir := t.TempDir()
		g, _ := srcGitSource(t, source.GitOptions{URL: repo.URL, Ref: source.Ref{Branch: "main"}, Dir: dir})
		return dir, srcFetch(t, g)
	}

	t.Run("invalid options", func(t *testing.T) {
		for _, tc := range []struct {
			url, want string
		}{
			{"https://exa mple.com/app.git", `malformed repository URL https://exa mple.com/app.git: invalid character " " in host name`},
			{"http://user:s3cret-value@exa mple.com/app.git", "malformed repository URL http://***@exa mple.com/app.git"},
			{"not a url", "malformed repository URL"},
			{"https:///app.git", "no host"},
			{"ftp://example.com/app.git", `unsupported URL scheme "ftp"`},
			{"file:///srv/app.git", `unsupported URL scheme "file"`},
			{"git://example.com/app.git", `unsupported URL scheme "git"`},
		} {
			dir, good := publishGood(t)
			_, err := source.NewGit(source.GitOptions{URL: tc.url, Ref: source.Ref{Branch: "main"}, Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewGit(%q): %v, want an error containing %q", tc.url, err, tc.want)
			} else if strings.Contains(err.Error(), "s3cret-value") {
				t.Errorf("error leaks the password: %v", err)
			}
			srcAssertIntact(t, dir, good, "a.yaml", "a: 1\n")
		}
		if _, err := source.NewGit(source.GitOptions{URL: repo.URL, Ref: source.Ref{Branch: "bad..name"}, Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "not a valid git ref name") {
			t.Errorf("bad ref name: %v", err)
		}
	})

	for _, tc := range []struct {
		name string
		opts source.GitOptions
		want []string
		is   error
		max  time.Duration // how long the failure may take
	}{
		{"unreachable host over http (hangs)", source.GitOptions{URL: "http://" + silent + "/app.git", Timeout: 2 * time.Second},
			[]string{"http://" + silent + "/app.git", "timed out after 2s"}, source.ErrTimeout, 15 * time.Second},
		{"unreachable host over ssh (hangs)", source.GitOptions{URL: "ssh://git@" + silent + "/app.git", Timeout: 2 * time.Second,
			Auth: source.Auth{SSHKeyFile: key, KnownHostsFile: kh}},
			[]string{"ssh://git@" + silent + "/app.git", "timed out after 2s"}, source.ErrTimeout, 15 * time.Second},
		{"nothing listening", source.GitOptions{URL: "http://" + srcClosedPort(t) + "/app.git"},
			[]string{"connection refused"}, nil, 15 * time.Second},
		{"folder that is not a repository", source.GitOptions{URL: srv.RepoURL("plain")},
			[]string{srv.RepoURL("plain"), "not a git repository"}, source.ErrNotRepository, 15 * time.Second},
		{"repository that does not exist", source.GitOptions{URL: srv.RepoURL("nope")},
			[]string{srv.RepoURL("nope"), "not a git repository"}, source.ErrNotRepository, 15 * time.Second},
		{"web page, not a git server", source.GitOptions{URL: web.URL + "/app.git"},
			[]string{web.URL + "/app.git", "not a git ref listing"}, source.ErrNotRepository, 15 * time.Second},
		{"ref that does not exist", source.GitOptions{URL: repo.URL, Ref: source.Ref{Branch: "nope"}},
			[]string{`branch "nope" not found`, "branches: main"}, source.ErrRefNotFound, 15 * time.Second},
		{"commit that does not exist", source.GitOptions{URL: repo.URL, Ref: source.Ref{Commit: strings.Repeat("ab", 20)}},
			[]string{"commit " + strings.Repeat("ab", 20) + " is not on the remote: no branch or tag reaches it"}, source.ErrRefNotFound, 15 * time.Second},
		{"no tag in the semver range", source.GitOptions{URL: repo.URL, Ref: source.Ref{SemVer: ">=9.0.0"}},
			[]string{`no tag satisfies semver range ">=9.0.0"`}, source.ErrRefNotFound, 15 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, good := publishGood(t)
			tc.opts.Dir = dir
			if (tc.opts.Ref == source.Ref{}) {
				tc.opts.Ref = source.Ref{Branch: "main"}
			}
			g, _ := srcGitSource(t, tc.opts)
			start := time.Now()
			err := srcFetchErr(t, g)
			if took := time.Since(start); took > tc.max {
				t.Errorf("the failure took %s, want under %s", took, tc.max)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if g.Current() != nil || g.Stats().Published != 0 {
				t.Errorf("something was published: %+v", g.Current())
			}
			srcAssertIntact(t, dir, good, "a.yaml", "a: 1\n")
		})
	}

	t.Run("repository over the size cap", func(t *testing.T) {
		big := srcMust[*gitserver.Repo](t)(srv.CreateRepo("big"))
		// Big pushes would otherwise use chunked requests, which the CGI
		// server does not take.
		if _, err := big.Git("config", "http.postBuffer", "67108864"); err != nil {
			t.Fatal(err)
		}
		srcMust[string](t)(big.Commit("small", map[string]string{"a.yaml": "a: 1\n"}))
		dir := t.TempDir()
		g, _ := srcGitSource(t, source.GitOptions{URL: big.URL, Ref: source.Ref{Branch: "main"}, Dir: dir, MaxSize: 1 << 20})
		good := srcFetch(t, g)
		random := func(n int) string {
			b := make([]byte, n)
			_, _ = rand.Read(b)
			return string(b)
		}
		// Two files of 600 KiB of incompressible data: the transfer fits
		// its allowance (MaxSize + 25% + 1 MiB), each object fits MaxSize,
		// the checkout does not.
		srcMust[string](t)(big.Commit("over the checkout cap", map[string]string{"b1.bin": random(600 << 10), "b2.bin": random(600 << 10)}))
		err := srcFetchErr(t, g)
		if !errors.Is(err, source.ErrTooLarge) || !strings.Contains(err.Error(), "more than 1 MiB of files (MaxSize)") {
			t.Errorf("error %q, want ErrTooLarge naming the 1 MiB MaxSize", err)
		}
		srcAssertIntact(t, dir, good, "a.yaml", "a: 1\n")
		// 1.5 MiB in one file: refused from the pack, before go-git reads
		// the object.
		srcMust[string](t)(big.Commit("one object over the cap", map[string]string{"b1.bin": "", "b2.bin": "", "blob.bin": random(3 << 19)}))
		err = srcFetchErr(t, g)
		if !errors.Is(err, source.ErrTooLarge) || !strings.Contains(err.Error(), "the pack holds a blob of 1.5 MiB, more than the 1 MiB one object may have (MaxSize)") {
			t.Errorf("error %q, want ErrTooLarge for the object", err)
		}
		srcAssertIntact(t, dir, good, "a.yaml", "a: 1\n")
		// 5 MiB: the transfer itself is cut off at its allowance.
		srcMust[string](t)(big.Commit("over the transfer cap", map[string]string{"blob.bin": random(5 << 20)}))
		before := g.Stats().FetchedBytes
		err = srcFetchErr(t, g)
		if !errors.Is(err, source.ErrTooLarge) || !strings.Contains(err.Error(), "the transfer passed 2.25 MiB") {
			t.Errorf("error %q, want ErrTooLarge for the transfer", err)
		}
		allowance := int64(1<<20 + 1<<18 + 1<<20)
		if n := g.Stats().FetchedBytes - before; n > allowance+1 {
			t.Errorf("read %d bytes of a 5 MiB pack; the cut-off at %d did not stop the transfer", n, allowance)
		}
		srcAssertIntact(t, dir, good, "a.yaml", "a: 1\n")
		if g.Current() != good {
			t.Errorf("current changed to %+v", g.Current())
		}
		// And too many files.
		files := map[string]string{}
		for i := range 30 {
			files[fmt.Sprintf("f/%02d", i)] = "x"
		}
		srcMust[string](t)(big.Commit("many files", map[string]string{"blob.bin": ""}))
		srcMust[string](t)(big.Commit("many files", files))
		g2, _ := srcGitSource(t, source.GitOptions{URL: big.URL, Ref: source.Ref{Branch: "main"}, MaxFiles: 20})
		if err := srcFetchErr(t, g2); !errors.Is(err, source.ErrTooLarge) || !strings.Contains(err.Error(), "more than 20 files and directories (MaxFiles)") {
			t.Errorf("error %q, want MaxFiles named", err)
		}
	})
}

// srcAllocated returns how many bytes of heap fn allocated in total: an
// upper bound of how much the process's Go heap grew while fn ran.
func srcAllocated(fn func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A 1 GiB blob of zeros committed with git (a pack of about 1 MiB) is
// refused from the pack's object header, while the fetch allocates well
// under 200 MiB in all: the object is never inflated into memory. Not
// parallel, so that the allocation count is this test's alone.
func TestSourceGitInflationBomb(t *testing.T) {
	srv := srcGitServer(t, gitserver.Options{})
	repo := srcMust[*gitserver.Repo](t)(srv.CreateRepo("bomb"))
	good := srcMust[string](t)(repo.Commit("small", map[string]string{"a.yaml": "a: 1\n"}))
	dir := t.TempDir()
	g, _ := srcGitSource(t, source.GitOptions{URL: repo.URL, Ref: source.Ref{Branch: "main"}, Dir: dir, MaxSize: 1 << 20})
	first := srcFetch(t, g)
	if first.Revision != "main@sha1:"+good {
		t.Fatalf("revision %s", first.Revision)
	}
	// A sparse file: no disk, and git streams it into a pack.
	f, err := os.Create(filepath.Join(repo.Work, "zeros.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(f.Truncate(1<<30), f.Close()); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"config", "http.postBuffer", "67108864"},
		{"add", "zeros.bin"},
		{"commit", "--quiet", "-m", "1 GiB of zeros"},
		{"push", "--quiet", "origin", "HEAD:refs/heads/main"},
	} {
		if _, err := repo.Git(args...); err != nil {
			t.Fatal(err)
		}
	}
	before := g.Stats().FetchedBytes
	n := srcAllocated(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err = g.Fetch(ctx)
	})
	t.Logf("fetch allocated %d MiB; read %d KiB of pack; error: %v", n>>20, (g.Stats().FetchedBytes-before)>>10, err)
	if !errors.Is(err, source.ErrTooLarge) || !strings.Contains(err.Error(), "the pack holds a blob of 1 GiB, more than the 1 MiB one object may have (MaxSize)") {
		t.Errorf("error %v, want ErrTooLarge for the 1 GiB blob", err)
	}
	if n > 200<<20 {
		t.Errorf("the fetch allocated %d MiB, want under 200 MiB", n>>20)
	}
	if g.Current() != first {
		t.Errorf("current changed to %+v", g.Current())
	}
	srcAssertIntact(t, dir, first, "a.yaml", "a: 1\n")
}

// Two levels of 1,000 tree entries each pointing at the empty tree (a
// pack of a few KiB that would check out 1,001,000 directories) are
// refused against MaxFiles before anything is written.
func TestSourceGitDirectoryBomb(t *testing.T) {
	t.Parallel()
	srv := srcGitServer(t, gitserver.Options{})
	repo := srcMust[*gitserver.Repo](t)(srv.CreateRepo("dirs"))
	srcMust[string](t)(repo.Commit("small", map[string]string{"a.yaml": "a: 1\n"}))
	dir := t.TempDir()
	g, _ := srcGitSource(t, source.GitOptions{URL: repo.URL, Ref: source.Ref{Branch: "main"}, Dir: dir})
	good := srcFetch(t, g)

	empty := srcMust[string](t)(repo.GitInput("", "hash-object", "-t", "tree", "-w", "--stdin"))
	level := func(child string) string {
		var b strings.Builder
		for i := range 1000 {
			fmt.Fprintf(&b, "040000 tree %s\td%04d\n", child, i)
		}
		return srcMust[string](t)(repo.GitInput(b.String(), "mktree"))
	}
	root := level(level(empty))
	commit := srcMust[string](t)(repo.GitInput("", "commit-tree", root, "-m", "a million directories"))
	if _, err := repo.Git("push", "--quiet", "--force", "origin", commit+":refs/heads/main"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := srcFetchErr(t, g)
	if !errors.Is(err, source.ErrTooLarge) || !strings.Contains(err.Error(), "more than 100000 files and directories (MaxFiles)") {
		t.Errorf("error %q, want ErrTooLarge naming MaxFiles", err)
	}
	t.Logf("refused in %s", time.Since(start).Round(time.Millisecond))
	srcAssertIntact(t, dir, good, "a.yaml", "a: 1\n")
	if entries, err := os.ReadDir(filepath.Join(dir, "checkouts")); err != nil || len(entries) != 2 {
		t.Errorf("checkouts holds %d entries (%v), want the good checkout and its record", len(entries), err)
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "tmp")); err != nil || len(entries) != 0 {
		t.Errorf("scratch space holds %d entries (%v), want none", len(entries), err)
	}
}
