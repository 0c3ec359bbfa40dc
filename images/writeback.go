package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/source"
)

// Limits of the files a write-back reads for markers.
const (
	// MaxMarkedFileSize is the largest YAML file read for markers.
	MaxMarkedFileSize = 1 << 20
	// MaxMarkedBytes bounds the YAML read in one round.
	MaxMarkedBytes = 64 << 20
	// DefaultPushTries bounds the fetch, change and push attempts of one
	// round when pushes race other commits.
	DefaultPushTries = 3
	// BranchHistory is the history fetched of the push branch and the
	// sync's branch (commits from each tip) to tell how they relate; past
	// it tether cannot tell and keeps building on the push branch.
	BranchHistory = 100
)

// Remote is what a write-back needs from a git source (source.Git).
type Remote interface {
	FetchTip(ctx context.Context, branch string) (*source.Tip, error)
	FetchBranches(ctx context.Context, branches []string, depth int) (*source.Tip, error)
	Push(ctx context.Context, st storer.EncodedObjectStorer, branch string, old, commit plumbing.Hash, objects []plumbing.Hash) error
}

// WriteBack commits marker changes to a sync's repository.
type WriteBack struct {
	// Sync names the sync (for the message).
	Sync string
	// Remote fetches and pushes.
	Remote Remote
	// Branch is the sync's branch: the base when PushBranch does not
	// exist yet.
	Branch string
	// PushBranch receives the commits; "" means Branch. A separate branch
	// is for a pull-request flow: it is created from Branch; later rounds
	// start from Branch again once it holds the push branch (merged),
	// merge Branch into it while it holds only tether's commits, and
	// otherwise build on it (see ChooseBase).
	PushBranch string
	// Path is the folder searched for markers ("." for the whole
	// repository).
	Path string
	// AuthorName and AuthorEmail sign the commits.
	AuthorName, AuthorEmail string
	// Message renders the commit message.
	Message *template.Template
	// Tries bounds the attempts when pushes race; default DefaultPushTries.
	Tries int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Round is the outcome of one write-back round.
type Round struct {
	// Base is the commit the round read (and built on).
	Base string
	// Commit is the pushed commit; "" when nothing changed.
	Commit string
	// Branch is the branch pushed to (or that would have been).
	Branch string
	// Plan is what the round decided, on the base it pushed on.
	Plan *Plan
	// Problems are markers that could not be used.
	Problems []Problem
	// Tries counts fetch-and-push attempts (more than one after a race).
	Tries int
	// Start is how the round built on a separate push branch: BaseStack,
	// BaseForward, BaseMerge or BaseCreate ("" on the sync's branch).
	Start BaseMode
	// Note says why a round kept building on a push branch the sync's
	// branch has moved away from ("" when it did not).
	Note string
}

// Run fetches the push branch (or the sync's branch), reads the markers,
// lets decide plan the changes, and pushes one commit with all of them.
// When the push races another commit it fetches again and decides again
// on the new tip, up to Tries times, so both changes end up in the
// history; it never forces. Nothing changed means no commit.
func (w *WriteBack) Run(ctx context.Context, decide func(sites []Site, base Base) *Plan) (*Round, error) {
	tries := w.Tries
	if tries <= 0 {
		tries = DefaultPushTries
	}
	push := w.PushBranch
	if push == "" {
		push = w.Branch
	}
	round := &Round{Branch: push}
	for {
		round.Tries++
		err := w.try(ctx, round, push, decide)
		if err == nil || !errors.Is(err, source.ErrPushRace) || round.Tries >= tries {
			if err != nil && errors.Is(err, source.ErrPushRace) {
				err = fmt.Errorf("gave up after %d tries, each racing another push: %w", round.Tries, err)
			}
			return round, err
		}
	}
}

func (w *WriteBack) try(ctx context.Context, round *Round, push string, decide func([]Site, Base) *Plan) error {
	if push == w.Branch {
		tip, err := w.Remote.FetchTip(ctx, push)
		if err != nil {
			return err
		}
		defer tip.Close()
		if tip.Commit.IsZero() {
			return fmt.Errorf("branch %s does not exist", push)
		}
		return w.change(ctx, round, push, decide, tip.Storer, tip.Commit, tip.Commit, nil, Base{})
	}
	tip, note, err := w.fetchBoth(ctx, push)
	if err != nil {
		return err
	}
	defer tip.Close()
	old, onSync := tip.Heads[push], tip.Heads[w.Branch]
	if onSync.IsZero() {
		return fmt.Errorf("branch %s does not exist", w.Branch)
	}
	if old.IsZero() {
		// A new branch for a pull request, made from the sync's branch.
		round.Start = BaseCreate
		return w.change(ctx, round, push, decide, tip.Storer, onSync, plumbing.ZeroHash, nil, Base{})
	}
	choice := ChooseBase(tip.Storer, old, onSync, w.own, 2*BranchHistory)
	round.Start, round.Note = choice.Mode, choice.Note
	if note != "" && choice.Mode == BaseStack && choice.Note != "" {
		round.Note = choice.Note + " (" + note + ")"
	}
	switch choice.Mode {
	case BaseForward:
		// The push branch is merged: start from the sync's branch again
		// (a fast-forward of the push branch).
		return w.change(ctx, round, push, decide, tip.Storer, onSync, old, nil, Base{})
	case BaseMerge:
		// Only tether's commits since the sync's branch moved: the sync's
		// tree with the markers set again, as a merge of both tips.
		return w.change(ctx, round, push, decide, tip.Storer, onSync, old, []plumbing.Hash{old, onSync}, Base{Unmerged: true})
	}
	return w.change(ctx, round, push, decide, tip.Storer, old, old, nil, Base{})
}

// fetchBoth fetches the push branch and the sync's branch with
// BranchHistory commits of history; when that is too large, the tips
// only (then note says why the two cannot be compared).
func (w *WriteBack) fetchBoth(ctx context.Context, push string) (*source.Tip, string, error) {
	tip, err := w.Remote.FetchBranches(ctx, []string{push, w.Branch}, BranchHistory)
	if err == nil || !errors.Is(err, source.ErrTooLarge) {
		return tip, "", err
	}
	tip, err = w.Remote.FetchBranches(ctx, []string{push, w.Branch}, 1)
	return tip, fmt.Sprintf("%d commits of history are larger than the source's size limit", BranchHistory), err
}

// own reports whether tether wrote a commit: its author and committer are
// the write-back's author.
func (w *WriteBack) own(c *object.Commit) bool {
	return c.Author.Name == w.AuthorName && c.Author.Email == w.AuthorEmail &&
		c.Committer.Name == w.AuthorName && c.Committer.Email == w.AuthorEmail
}

// Base says what a round's markers were read from, for Decide.
type Base struct {
	// Unmerged is set when they are the sync's branch's while tether's
	// newest commits wait on the push branch (a pull request not merged
	// yet): a value older than the tag tether wrote there is no manual
	// rollback, and not tether's failed tag.
	Unmerged bool
}

// change reads the markers at base, lets decide plan, and pushes one
// commit with the changes on top of parents (default: base) to push,
// expecting it at old (zero: create it).
func (w *WriteBack) change(ctx context.Context, round *Round, push string, decide func([]Site, Base) *Plan, st *filesystem.Storage,
	base, old plumbing.Hash, parents []plumbing.Hash, how Base) error {
	round.Base = base.String()
	files, sites, problems, err := w.read(st, base)
	if err != nil {
		return err
	}
	round.Problems = problems
	plan := decide(sites, how)
	round.Plan = plan
	if len(plan.Changes) == 0 {
		return nil
	}
	changed := map[string][]byte{}
	for file, edits := range plan.Edits {
		data, err := Apply(files[file], edits)
		if err != nil {
			return err
		}
		changed[file] = data
	}
	msg, err := RenderMessage(w.Message, NewMessageData(w.Sync, plan.Changes))
	if err != nil {
		return err
	}
	if parents == nil {
		parents = []plumbing.Hash{base}
	}
	commit, objects, err := w.commit(st, base, parents, changed, msg)
	if err != nil {
		return err
	}
	if err := w.Remote.Push(ctx, st, push, old, commit, objects); err != nil {
		return err
	}
	round.Commit = commit.String()
	return nil
}

// read returns the YAML files under Path that hold the marker text, their
// marked values and the markers that cannot be used.
func (w *WriteBack) read(st storer.EncodedObjectStorer, at plumbing.Hash) (map[string][]byte, []Site, []Problem, error) {
	commit, err := object.GetCommit(st, at)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading commit %s: %w", at, err)
	}
	root, err := commit.Tree()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading the tree of %s: %w", at, err)
	}
	dir := path.Clean(w.Path)
	tree := root
	if dir != "." {
		if tree, err = root.Tree(dir); err != nil {
			return nil, nil, nil, fmt.Errorf("folder %s in %s: %w", dir, at, err)
		}
	}
	files := map[string][]byte{}
	var sites []Site
	var problems []Problem
	total := int64(0)
	err = tree.Files().ForEach(func(f *object.File) error {
		name := path.Join(dir, f.Name)
		if ext := path.Ext(name); ext != ".yaml" && ext != ".yml" || f.Mode != filemode.Regular && f.Mode != filemode.Executable {
			return nil
		}
		if f.Size > MaxMarkedFileSize {
			// Too large to rewrite; said only when it has markers, so a
			// large bundle without any is not a problem on every round.
			if marked, err := fileHasMarker(f); err != nil || marked {
				problems = append(problems, Problem{File: name, Message: fmt.Sprintf("larger than %d bytes: its markers are not read", MaxMarkedFileSize)})
			}
			return nil
		}
		if total += f.Size; total > MaxMarkedBytes {
			return fmt.Errorf("more than %d bytes of YAML under %s", MaxMarkedBytes, dir)
		}
		r, err := f.Reader()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(io.LimitReader(r, MaxMarkedFileSize+1))
		_ = r.Close()
		if err != nil {
			return err
		}
		s, p := FindMarkers(name, data)
		problems = append(problems, p...)
		if len(s) > 0 {
			files[name] = data
			sites = append(sites, s...)
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading the files of %s: %w", at, err)
	}
	slices.SortFunc(sites, func(a, b Site) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return a.start - b.start
	})
	return files, sites, problems, nil
}

// commit writes the changed files as new blobs, the trees above them (the
// tree of base with the changes) and a commit with parents, and returns
// the commit and every new object.
func (w *WriteBack) commit(st storer.EncodedObjectStorer, base plumbing.Hash, parents []plumbing.Hash, changed map[string][]byte, msg string) (plumbing.Hash, []plumbing.Hash, error) {
	var objects []plumbing.Hash
	blobs := map[string]plumbing.Hash{}
	for file, data := range changed {
		obj := st.NewEncodedObject()
		obj.SetType(plumbing.BlobObject)
		wr, err := obj.Writer()
		if err != nil {
			return plumbing.ZeroHash, nil, err
		}
		if _, err := wr.Write(data); err != nil {
			return plumbing.ZeroHash, nil, err
		}
		if err := wr.Close(); err != nil {
			return plumbing.ZeroHash, nil, err
		}
		h, err := st.SetEncodedObject(obj)
		if err != nil {
			return plumbing.ZeroHash, nil, err
		}
		blobs[file] = h
		objects = append(objects, h)
	}
	from, err := object.GetCommit(st, base)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	root, err := rewriteTree(st, from.TreeHash, blobs, &objects)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	sig := object.Signature{Name: w.AuthorName, Email: w.AuthorEmail, When: now()}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: root, ParentHashes: parents}
	obj := st.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, nil, err
	}
	h, err := st.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	return h, append(objects, h), nil
}

// rewriteTree stores a copy of tree h with the blobs of changes (paths
// relative to it) replaced, and the subtrees above them, appending every
// new tree to objects. Entries keep their names, modes and order.
func rewriteTree(st storer.EncodedObjectStorer, h plumbing.Hash, changes map[string]plumbing.Hash, objects *[]plumbing.Hash) (plumbing.Hash, error) {
	tree, err := object.GetTree(st, h)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	entries := slices.Clone(tree.Entries)
	sub := map[string]map[string]plumbing.Hash{}
	for p, blob := range changes {
		if dir, rest, ok := strings.Cut(p, "/"); ok {
			if sub[dir] == nil {
				sub[dir] = map[string]plumbing.Hash{}
			}
			sub[dir][rest] = blob
			continue
		}
		i := slices.IndexFunc(entries, func(e object.TreeEntry) bool { return e.Name == p })
		if i < 0 || !entries[i].Mode.IsFile() {
			return plumbing.ZeroHash, fmt.Errorf("%s is not a file in tree %s", p, h)
		}
		entries[i].Hash = blob
	}
	for dir, ch := range sub {
		i := slices.IndexFunc(entries, func(e object.TreeEntry) bool { return e.Name == dir })
		if i < 0 || entries[i].Mode != filemode.Dir {
			return plumbing.ZeroHash, fmt.Errorf("%s is not a folder in tree %s", dir, h)
		}
		nh, err := rewriteTree(st, entries[i].Hash, ch, objects)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries[i].Hash = nh
	}
	obj := st.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	nh, err := st.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	*objects = append(*objects, nh)
	return nh, nil
}

// fileHasMarker reports whether a file's content holds the marker text,
// reading it in pieces (it may be large).
func fileHasMarker(f *object.File) (bool, error) {
	r, err := f.Reader()
	if err != nil {
		return false, err
	}
	defer r.Close()
	return containsMarker(r)
}

// containsMarker reports whether r's content holds contract.ImageMarker,
// holding at most 64 KiB of it at a time.
func containsMarker(r io.Reader) (bool, error) {
	marker := []byte(contract.ImageMarker)
	buf := make([]byte, 64<<10)
	kept := 0 // bytes carried over from the previous piece
	for {
		n, err := r.Read(buf[kept:])
		n += kept
		if bytes.Contains(buf[:n], marker) {
			return true, nil
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		// Keep the tail that could start a marker split across pieces.
		kept = min(len(marker)-1, n)
		copy(buf, buf[n-kept:n])
	}
}
