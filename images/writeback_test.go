package images

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/source"
)

// chunkReader hands out its content n bytes per Read.
type chunkReader struct {
	s string
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.s == "" {
		return 0, io.EOF
	}
	k := min(c.n, len(p), len(c.s))
	copy(p, c.s[:k])
	c.s = c.s[k:]
	return k, nil
}

func TestContainsMarker(t *testing.T) {
	filler := strings.Repeat("a: b\n", 30_000) // larger than one 64 KiB piece
	for _, tc := range []struct {
		name    string
		content string
		chunk   int
		want    bool
	}{
		{"no marker", filler, 1 << 20, false},
		{"marker at the end", filler + "image: x # " + contract.ImageMarker + " web\n", 1 << 20, true},
		{"marker split across reads", filler + "# " + contract.ImageMarker, 7, true},
		{"marker at the start", "# " + contract.ImageMarker + " web\n" + filler, 3, true},
		{"a prefix of the marker only", filler + "# " + contract.ImageMarker[:len(contract.ImageMarker)-1], 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := containsMarker(&chunkReader{s: tc.content, n: tc.chunk})
			if err != nil || got != tc.want {
				t.Errorf("containsMarker = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// fakeRemote is a git server in an object store of its own: fetches hand
// out that store, pushes move its branches only from the tip they name
// (never forced), as source.Git does against a real server.
type fakeRemote struct {
	t       *testing.T
	st      *filesystem.Storage
	heads   map[string]plumbing.Hash
	pushes  int
	commits int
}

func newFakeRemote(t *testing.T) *fakeRemote {
	st := filesystem.NewStorage(osfs.New(t.TempDir()), cache.NewObjectLRUDefault())
	return &fakeRemote{t: t, st: st, heads: map[string]plumbing.Hash{}}
}

func (f *fakeRemote) FetchTip(ctx context.Context, branch string) (*source.Tip, error) {
	return f.FetchBranches(ctx, []string{branch}, 1)
}

func (f *fakeRemote) FetchBranches(_ context.Context, branches []string, _ int) (*source.Tip, error) {
	tip := &source.Tip{Branch: branches[0], Commit: f.heads[branches[0]], Storer: f.st, Heads: map[string]plumbing.Hash{}}
	for _, b := range branches {
		if h, ok := f.heads[b]; ok {
			tip.Heads[b] = h
		}
	}
	return tip, nil
}

func (f *fakeRemote) Push(_ context.Context, _ storer.EncodedObjectStorer, branch string, old, commit plumbing.Hash, _ []plumbing.Hash) error {
	if f.heads[branch] != old {
		return fmt.Errorf("%w: %s moved", source.ErrPushRace, branch)
	}
	f.pushes++
	f.heads[branch] = commit
	return nil
}

// commit stores a commit of files (path → content; "" deletes) on top of
// parent's tree, by author, with the given parents.
func (f *fakeRemote) commit(author string, files map[string]string, parents ...plumbing.Hash) plumbing.Hash {
	f.t.Helper()
	all := map[string]string{}
	if len(parents) > 0 {
		c, err := object.GetCommit(f.st, parents[len(parents)-1])
		if err != nil {
			f.t.Fatal(err)
		}
		tree, _ := c.Tree()
		_ = tree.Files().ForEach(func(file *object.File) error {
			all[file.Name], _ = file.Contents()
			return nil
		})
	}
	for p, c := range files {
		all[p] = c
		if c == "" {
			delete(all, p)
		}
	}
	root := f.tree(all)
	f.commits++
	sig := object.Signature{Name: author, Email: author + "@example.com", When: time.Unix(int64(1_700_000_000+f.commits), 0)}
	obj := f.st.NewEncodedObject()
	if err := (&object.Commit{Author: sig, Committer: sig, Message: "by " + author, TreeHash: root, ParentHashes: parents}).Encode(obj); err != nil {
		f.t.Fatal(err)
	}
	h, err := f.st.SetEncodedObject(obj)
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

// tree stores the tree of files (paths with at most one folder).
func (f *fakeRemote) tree(files map[string]string) plumbing.Hash {
	f.t.Helper()
	top := map[string]string{}
	sub := map[string]map[string]string{}
	for p, c := range files {
		if dir, rest, ok := strings.Cut(p, "/"); ok {
			if sub[dir] == nil {
				sub[dir] = map[string]string{}
			}
			sub[dir][rest] = c
			continue
		}
		top[p] = c
	}
	var entries []object.TreeEntry
	for name, c := range top {
		obj := f.st.NewEncodedObject()
		obj.SetType(plumbing.BlobObject)
		w, _ := obj.Writer()
		_, _ = w.Write([]byte(c))
		_ = w.Close()
		h, err := f.st.SetEncodedObject(obj)
		if err != nil {
			f.t.Fatal(err)
		}
		entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h})
	}
	for name, files := range sub {
		entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: f.tree(files)})
	}
	slices.SortFunc(entries, func(a, b object.TreeEntry) int { return strings.Compare(a.Name, b.Name) })
	obj := f.st.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		f.t.Fatal(err)
	}
	h, err := f.st.SetEncodedObject(obj)
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

// file reads a file of a commit.
func (f *fakeRemote) file(commit plumbing.Hash, path string) string {
	f.t.Helper()
	c, err := object.GetCommit(f.st, commit)
	if err != nil {
		f.t.Fatal(err)
	}
	file, err := c.File(path)
	if err != nil {
		return ""
	}
	s, _ := file.Contents()
	return s
}

// A pull-request branch across rounds: created from main; stacked while
// main stays; merged with main (both tips as parents, main's tree with
// the markers set again) when main moves and the branch holds only
// tether's commits; started from main again once main merged it; and
// stacked, with a note, when someone else committed on it.
func TestWriteBackPushBranch(t *testing.T) {
	web := &Policy{Name: "web", Image: "reg/web", Kind: SemVer, Range: ">=1.0.0"}
	if err := web.Compile(); err != nil {
		t.Fatal(err)
	}
	deployment := func(tag string) string { return "image: reg/web:" + tag + " # tether:image web\n" }
	remote := newFakeRemote(t)
	remote.heads["main"] = remote.commit("alice", map[string]string{"app/deploy.yaml": deployment("1.0.0"), "README": "one\n"})
	tmpl, err := ParseMessageTemplate(DefaultMessageTemplate)
	if err != nil {
		t.Fatal(err)
	}
	wb := &WriteBack{Sync: "web", Remote: remote, Branch: "main", PushBranch: "image-updates", Path: ".", AuthorName: "tether", AuthorEmail: "tether@example.com", Message: tmpl}
	round := func(tag string) *Round {
		t.Helper()
		r, err := wb.Run(context.Background(), func(sites []Site, base Base) *Plan {
			return Decide(sites, base, map[string]*Policy{"web": web}, map[string][]string{"web": {tag}}, &Records{}, nil, time.Now())
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	parents := func(c plumbing.Hash) []plumbing.Hash {
		commit, err := object.GetCommit(remote.st, c)
		if err != nil {
			t.Fatal(err)
		}
		return commit.ParentHashes
	}

	// Created from main.
	main0 := remote.heads["main"]
	r := round("1.1.0")
	t1 := remote.heads["image-updates"]
	if r.Start != BaseCreate || r.Commit != t1.String() || !slices.Equal(parents(t1), []plumbing.Hash{main0}) || remote.file(t1, "app/deploy.yaml") != deployment("1.1.0") {
		t.Fatalf("create: %+v, parents %v", r, parents(t1))
	}
	// Main did not move: stacked.
	r = round("1.2.0")
	t2 := remote.heads["image-updates"]
	if r.Start != BaseStack || r.Note != "" || !slices.Equal(parents(t2), []plumbing.Hash{t1}) {
		t.Fatalf("stack: %+v", r)
	}
	// Main moved (someone edited the README): a merge commit of both
	// tips, whose tree is main's with the marker set again.
	main1 := remote.commit("alice", map[string]string{"README": "two\n"}, main0)
	remote.heads["main"] = main1
	r = round("1.3.0")
	m := remote.heads["image-updates"]
	if r.Start != BaseMerge || !slices.Equal(parents(m), []plumbing.Hash{t2, main1}) {
		t.Fatalf("merge: %+v, parents %v", r, parents(m))
	}
	if remote.file(m, "README") != "two\n" || remote.file(m, "app/deploy.yaml") != deployment("1.3.0") {
		t.Errorf("the merge's tree: README %q, deploy %q", remote.file(m, "README"), remote.file(m, "app/deploy.yaml"))
	}
	// Nothing new and main did not move since the merge: no commit.
	if r = round("1.3.0"); r.Commit != "" || r.Start != BaseStack {
		t.Errorf("after the merge: %+v", r)
	}
	// Main merges the pull request: the next round starts from main (a
	// fast-forward of the branch).
	main2 := remote.commit("alice", nil, main1, m)
	remote.heads["main"] = main2
	r = round("1.4.0")
	f := remote.heads["image-updates"]
	if r.Start != BaseForward || !slices.Equal(parents(f), []plumbing.Hash{main2}) || remote.file(f, "app/deploy.yaml") != deployment("1.4.0") {
		t.Fatalf("forward: %+v, parents %v", r, parents(f))
	}
	// Someone else commits on the branch, and main moves: stacked, with a
	// note.
	carol := remote.commit("carol", map[string]string{"NOTES": "mine\n"}, f)
	remote.heads["image-updates"] = carol
	remote.heads["main"] = remote.commit("alice", map[string]string{"README": "three\n"}, main2)
	r = round("1.5.0")
	s := remote.heads["image-updates"]
	if r.Start != BaseStack || !strings.Contains(r.Note, carol.String()[:12]+" by carol") || !slices.Equal(parents(s), []plumbing.Hash{carol}) {
		t.Fatalf("someone else's commit: %+v", r)
	}
	if remote.file(s, "NOTES") != "mine\n" || remote.file(s, "README") != "two\n" {
		t.Errorf("stacking changed other files: NOTES %q, README %q", remote.file(s, "NOTES"), remote.file(s, "README"))
	}
}
