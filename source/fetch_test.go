package source

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// These tests fetch from a fake git server (remote_test.go) through the
// whole of Fetch, as a hostile or broken server would be met.

// listDir returns the names in dir, or nil if it cannot be read.
func listDir(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// F5: directories and submodules count against MaxFiles like files, and a
// tree over the limit is refused before anything is written. The pack is
// a few KiB: two levels of 100 entries each pointing at the empty tree.
func TestFetchCountsDirectories(t *testing.T) {
	dirBomb := func(t *testing.T, width int) ([]byte, plumbing.Hash) {
		var p testPack
		_, empty := p.add(plumbing.TreeObject, nil)
		entries := func(h plumbing.Hash, mode filemode.FileMode) []object.TreeEntry {
			var es []object.TreeEntry
			for i := range width {
				es = append(es, object.TreeEntry{Name: fmt.Sprintf("d%04d", i), Mode: mode, Hash: h})
			}
			return es
		}
		_, level1 := p.add(plumbing.TreeObject, treeBytes(t, entries(empty, filemode.Dir)...))
		_, root := p.add(plumbing.TreeObject, treeBytes(t, entries(level1, filemode.Dir)...))
		_, commit := p.add(plumbing.CommitObject, commitBytes(root, "dirs"))
		return p.bytes(), commit
	}
	submodules := func(t *testing.T, n int) ([]byte, plumbing.Hash) {
		var p testPack
		var es []object.TreeEntry
		for i := range n {
			es = append(es, object.TreeEntry{Name: fmt.Sprintf("m%d", i), Mode: filemode.Submodule, Hash: plumbing.NewHash(strings.Repeat("5", 40))})
		}
		_, root := p.add(plumbing.TreeObject, treeBytes(t, es...))
		_, commit := p.add(plumbing.CommitObject, commitBytes(root, "submodules"))
		return p.bytes(), commit
	}
	for _, tc := range []struct {
		name     string
		pack     func(t *testing.T) ([]byte, plumbing.Hash)
		maxFiles int
	}{
		{"nested directories", func(t *testing.T) ([]byte, plumbing.Hash) { return dirBomb(t, 100) }, 1000},
		{"submodules", func(t *testing.T) ([]byte, plumbing.Hash) { return submodules(t, 30) }, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pack, commit := tc.pack(t)
			remote := newFakeRemote(t)
			remote.set(commit, pack)
			dir := t.TempDir()
			g, _, err := fetchWith(t, GitOptions{URL: remote.URL(), Dir: dir, MaxFiles: tc.maxFiles})
			want := fmt.Sprintf("more than %d files and directories (MaxFiles)", tc.maxFiles)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v, want ErrTooLarge saying %q", err, want)
			}
			if g.Current() != nil {
				t.Errorf("published %+v", g.Current())
			}
			if got := listDir(filepath.Join(dir, "checkouts")); len(got) != 0 {
				t.Errorf("checkouts holds %v", got)
			}
			if got := listDir(filepath.Join(dir, "tmp")); len(got) != 0 {
				t.Errorf("scratch space holds %v", got)
			}
		})
	}

	// Within the limit, the same tree is checked out, every directory.
	pack, commit := dirBomb(t, 10)
	remote := newFakeRemote(t)
	remote.set(commit, pack)
	_, art, err := fetchWith(t, GitOptions{URL: remote.URL(), MaxFiles: 110})
	if err != nil {
		t.Fatal(err)
	}
	if got := listDir(filepath.Join(art.Dir, "d0009")); len(got) != 10 {
		t.Errorf("d0009 holds %v", got)
	}
}

// A chain of directories deeper than a path can be is refused as unsafe
// before anything is written (and without the walk holding every path).
func TestFetchRefusesDeepTrees(t *testing.T) {
	var p testPack
	_, h := p.add(plumbing.TreeObject, nil)
	for range 3000 {
		_, h = p.add(plumbing.TreeObject, treeBytes(t, object.TreeEntry{Name: "a", Mode: filemode.Dir, Hash: h}))
	}
	_, commit := p.add(plumbing.CommitObject, commitBytes(h, "deep"))
	remote := newFakeRemote(t)
	remote.set(commit, p.bytes())
	dir := t.TempDir()
	_, _, err := fetchWith(t, GitOptions{URL: remote.URL(), Dir: dir})
	if !errors.Is(err, ErrUnsafeTree) || !strings.Contains(err.Error(), "is longer than 4095 bytes") {
		t.Errorf("error %v, want ErrUnsafeTree for the path length", err)
	}
	if got := listDir(filepath.Join(dir, "checkouts")); len(got) != 0 {
		t.Errorf("checkouts holds %v", got)
	}
}

// F7: a restarted source checks the checkout it would resume; one whose
// files do not hold what was published (as after a power loss that
// emptied a file but kept current) is fetched again, not served.
func TestResumeChecksTheCheckout(t *testing.T) {
	remote := newFakeRemote(t)
	pack, commit := repoPack(t, "one", map[string]string{"a.yaml": "a: 1\n", "b.yaml": "b: 2\n"})
	remote.set(commit, pack)
	dir := t.TempDir()
	_, first, err := fetchWith(t, GitOptions{URL: remote.URL(), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// Untouched, it is resumed without a fetch.
	g, err := NewGit(GitOptions{URL: remote.URL(), Ref: Ref{Branch: "main"}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if cur := g.Current(); cur == nil || cur.Dir != first.Dir || cur.Revision != first.Revision {
		t.Fatalf("not resumed: %+v", cur)
	}
	if _, err := g.Fetch(context.Background()); err != nil || remote.uploads.Load() != 1 {
		t.Fatalf("resumed fetch: %v, %d uploads", err, remote.uploads.Load())
	}

	if err := os.Truncate(filepath.Join(first.Dir, "a.yaml"), 0); err != nil {
		t.Fatal(err)
	}
	g, err = NewGit(GitOptions{URL: remote.URL(), Ref: Ref{Branch: "main"}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if cur := g.Current(); cur != nil {
		t.Errorf("a damaged checkout was resumed: %+v", cur)
	}
	art, err := g.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if remote.uploads.Load() != 2 || art.Dir == first.Dir || art.Revision != first.Revision {
		t.Errorf("after a damaged checkout: %+v, %d uploads; want a new fetch of the same revision", art, remote.uploads.Load())
	}
	if b, err := os.ReadFile(filepath.Join(art.Dir, "a.yaml")); err != nil || string(b) != "a: 1\n" {
		t.Errorf("a.yaml = %q, %v", b, err)
	}
}

// F11: when the published checkout disappeared, Current no longer names
// it and a failed fetch does not claim to still serve it.
func TestVanishedCheckoutIsNotServed(t *testing.T) {
	remote := newFakeRemote(t)
	pack, commit := repoPack(t, "one", map[string]string{"a.yaml": "a: 1\n"})
	remote.set(commit, pack)
	g, art, err := fetchWith(t, GitOptions{URL: remote.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(art.Dir); err != nil {
		t.Fatal(err)
	}
	remote.mu.Lock()
	remote.refs = func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }
	remote.mu.Unlock()
	_, err = g.Fetch(context.Background())
	if err == nil || strings.Contains(err.Error(), "still serving") || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("error %v, want HTTP 503 and no claim to serve the vanished checkout", err)
	}
	if cur := g.Current(); cur != nil {
		t.Errorf("Current still names the vanished checkout: %+v", cur)
	}
}

// F12: the transfer allowance saturates instead of overflowing.
func TestWireLimitSaturates(t *testing.T) {
	for _, size := range []int64{1 << 20, MaxSizeLimit, math.MaxInt64 / 2, math.MaxInt64} {
		g := &Git{opts: GitOptions{MaxSize: size}}
		if w := g.wireLimit(); w < size {
			t.Errorf("wireLimit for MaxSize %d = %d", size, w)
		}
	}
}

// F9: an error answer is read only as far as its cap: a server that
// answers 500 with a body of 1 GiB costs a few KiB.
func TestHTTPErrorBodyIsCapped(t *testing.T) {
	remote := newFakeRemote(t)
	remote.refs = func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		chunk := []byte(strings.Repeat("x", 1<<20))
		for range 1024 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
	var err error
	n := allocated(func() { _, _, err = fetchWith(t, GitOptions{URL: remote.URL()}) })
	if err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Errorf("error %v, want HTTP 500", err)
	}
	if n > 64<<20 {
		t.Errorf("the fetch allocated %s, want under 64 MiB", formatBytes(int64(n)))
	}
	t.Logf("allocated %s", formatBytes(int64(n)))
}

// F9: a ref listing over 16 MiB is refused with a clear error.
func TestRefListingIsCapped(t *testing.T) {
	remote := newFakeRemote(t)
	remote.refs = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
		fmt.Fprint(w, pkt("# service=git-upload-pack\n")+"0000")
		h := strings.Repeat("1", 40)
		fmt.Fprint(w, pkt(h+" refs/heads/main\x00no-progress\n"))
		for i := range 300_000 {
			if _, err := fmt.Fprint(w, pkt(fmt.Sprintf("%s refs/pull/%d/head\n", h, i))); err != nil {
				return
			}
		}
		fmt.Fprint(w, "0000")
	}
	_, _, err := fetchWith(t, GitOptions{URL: remote.URL()})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "the ref listing is larger than 16 MiB") {
		t.Errorf("error %v, want ErrTooLarge for the ref listing", err)
	}
	t.Logf("error: %v", err)
}

// F9: the whole answer to a fetch is capped, not only the pack in it: a
// server that sends endless progress messages is cut off.
func TestFetchAnswerIsCapped(t *testing.T) {
	remote := newFakeRemote(t)
	pack, commit := repoPack(t, "one", map[string]string{"a.yaml": "a: 1\n"})
	remote.set(commit, pack)
	remote.refs = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
		fmt.Fprint(w, pkt("# service=git-upload-pack\n")+"0000"+
			pkt(commit.String()+" refs/heads/main\x00side-band-64k\n")+"0000")
	}
	remote.upload = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
		fmt.Fprint(w, pkt("NAK\n"))
		progress := pkt("\x02" + strings.Repeat("counting objects... ", 3000) + "\n")
		for range 64 << 20 / len(progress) {
			if _, err := fmt.Fprint(w, progress); err != nil {
				return
			}
		}
	}
	_, _, err := fetchWith(t, GitOptions{URL: remote.URL(), MaxSize: 1 << 20})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "the server's answer passed") {
		t.Errorf("error %v, want ErrTooLarge for the answer", err)
	}
	t.Logf("error: %v", err)
}

// F10: a server that echoes the Authorization header back (here in an
// ERR line) does not get the credentials into the error, in any of the
// forms they travel in.
func TestEchoedCredentialsAreScrubbed(t *testing.T) {
	const user, password, token = "alice", "Pa55-echo-horse", "tok-echo-77d0b3c5"
	secrets := t.TempDir()
	tokenFile := filepath.Join(secrets, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		auth   Auth
		forbid []string
	}{
		{"basic auth from a variable", Auth{Username: user, PasswordEnv: "GIT_PASSWORD", AllowInsecureHTTP: true},
			[]string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}},
		{"bearer token", Auth{BearerTokenFile: tokenFile, AllowInsecureHTTP: true}, []string{token}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote := newFakeRemote(t)
			remote.refs = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
				fmt.Fprint(w, pkt("# service=git-upload-pack\n")+"0000"+pkt("ERR you sent "+r.Header.Get("Authorization")+"\n"))
			}
			_, _, err := fetchWith(t, GitOptions{URL: remote.URL(), Auth: tc.auth,
				Getenv: func(k string) string { return map[string]string{"GIT_PASSWORD": password}[k] }})
			if err == nil || !strings.Contains(err.Error(), "you sent") {
				t.Fatalf("error %v, want the server's message", err)
			}
			if seen, _ := remote.auth.Load().(string); seen == "" {
				t.Fatal("no credentials were sent")
			}
			t.Logf("error: %v", err)
			for _, s := range tc.forbid {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error holds %q: %v", s, err)
				}
			}
		})
	}
}

// F4: a 1 GiB blob in a 1 MiB pack, or a delta that expands to 1 GiB, is
// refused from its header while the fetch allocates well under 200 MiB in
// all (go-git alone would have inflated the whole object in memory first).
func TestFetchRefusesInflationBomb(t *testing.T) {
	const huge = 1 << 30
	bomb := func(t *testing.T, delta bool) ([]byte, plumbing.Hash) {
		var p testPack
		var blob plumbing.Hash
		if delta {
			base, _ := p.add(plumbing.BlobObject, make([]byte, 4096))
			p.addOfsDelta(base, copyDelta(4096, 4096, huge))
			blob = zeroBlobHash(huge)
		} else {
			p.addRaw(plumbing.BlobObject, huge, zlibZeros(huge))
			blob = zeroBlobHash(huge)
		}
		_, tree := p.add(plumbing.TreeObject, treeBytes(t, object.TreeEntry{Name: "big.bin", Mode: filemode.Regular, Hash: blob}))
		_, commit := p.add(plumbing.CommitObject, commitBytes(tree, "bomb"))
		return p.bytes(), commit
	}
	for _, tc := range []struct {
		name  string
		delta bool
		want  string
	}{
		{"blob", false, "a blob of 1 GiB, more than the 1 MiB one object may have (MaxSize)"},
		{"delta", true, "a delta that expands to 1 GiB, more than the 1 MiB one object may have (MaxSize)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pack, commit := bomb(t, tc.delta)
			if len(pack) > 2<<20 {
				t.Fatalf("the pack has %d bytes, want about 1 MiB", len(pack))
			}
			remote := newFakeRemote(t)
			remote.set(commit, pack)
			var err error
			var g *Git
			n := allocated(func() {
				g, _, err = fetchWith(t, GitOptions{URL: remote.URL(), MaxSize: 1 << 20})
			})
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrTooLarge saying %q", err, tc.want)
			}
			if n > 200<<20 {
				t.Errorf("the fetch allocated %s, want under 200 MiB", formatBytes(int64(n)))
			}
			t.Logf("allocated %s; error: %v", formatBytes(int64(n)), err)
			if g.Current() != nil {
				t.Errorf("published %+v", g.Current())
			}
		})
	}
}
