package images

import (
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// history builds commits in a memory store: each commit has an empty tree
// and the named parents.
type history struct {
	t  *testing.T
	st *memory.Storage
	at time.Time
}

func (h *history) commit(author string, parents ...plumbing.Hash) plumbing.Hash {
	h.t.Helper()
	tree := h.st.NewEncodedObject()
	if err := (&object.Tree{}).Encode(tree); err != nil {
		h.t.Fatal(err)
	}
	th, err := h.st.SetEncodedObject(tree)
	if err != nil {
		h.t.Fatal(err)
	}
	h.at = h.at.Add(time.Minute)
	sig := object.Signature{Name: author, Email: author + "@example.com", When: h.at}
	obj := h.st.NewEncodedObject()
	if err := (&object.Commit{Author: sig, Committer: sig, Message: author, TreeHash: th, ParentHashes: parents}).Encode(obj); err != nil {
		h.t.Fatal(err)
	}
	c, err := h.st.SetEncodedObject(obj)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// forget removes a commit, as a shallow fetch leaves it out.
func (h *history) forget(c plumbing.Hash) { delete(h.st.Objects, c) }

func TestChooseBase(t *testing.T) {
	own := func(c *object.Commit) bool { return c.Author.Name == "tether" && c.Committer.Name == "tether" }
	for _, tc := range []struct {
		name string
		// build returns the push branch's and the sync branch's tips.
		build func(h *history) (push, sync plumbing.Hash)
		want  BaseMode
		note  string
	}{
		{"the same commit", func(h *history) (plumbing.Hash, plumbing.Hash) {
			m := h.commit("alice")
			return m, m
		}, BaseStack, ""},
		{"merged: the sync's branch holds the push branch", func(h *history) (plumbing.Hash, plumbing.Hash) {
			m0 := h.commit("alice")
			t1 := h.commit("tether", m0)
			merge := h.commit("alice", m0, t1)
			return t1, h.commit("bob", merge)
		}, BaseForward, ""},
		{"the push branch is ahead and the sync's branch did not move", func(h *history) (plumbing.Hash, plumbing.Hash) {
			m0 := h.commit("alice")
			t1 := h.commit("tether", m0)
			return h.commit("bob", t1), m0 // even with someone else's commit: nothing to merge
		}, BaseStack, ""},
		{"the sync's branch moved, only tether's commits on the push branch", func(h *history) (plumbing.Hash, plumbing.Hash) {
			m0 := h.commit("alice")
			t2 := h.commit("tether", h.commit("tether", m0))
			return t2, h.commit("bob", h.commit("alice", m0))
		}, BaseMerge, ""},
		{"tether's earlier merge commit counts as its own", func(h *history) (plumbing.Hash, plumbing.Hash) {
			m0 := h.commit("alice")
			t1 := h.commit("tether", m0)
			m1 := h.commit("alice", m0)
			x := h.commit("tether", t1, m1)
			return x, h.commit("bob", m1)
		}, BaseMerge, ""},
		{"someone else committed on the push branch", func(h *history) (plumbing.Hash, plumbing.Hash) {
			m0 := h.commit("alice")
			c := h.commit("carol", h.commit("tether", m0))
			return h.commit("tether", c), h.commit("bob", m0)
		}, BaseStack, "holds commits tether did not write"},
		{"a shallow history that ends before the two meet", func(h *history) (plumbing.Hash, plumbing.Hash) {
			m0 := h.commit("alice")
			t1 := h.commit("tether", m0)
			t2 := h.commit("tether", t1)
			sync := h.commit("bob", m0)
			h.forget(t1)
			return t2, sync
		}, BaseStack, "no common commit"},
		{"unrelated histories", func(h *history) (plumbing.Hash, plumbing.Hash) {
			return h.commit("tether"), h.commit("alice")
		}, BaseStack, "no common commit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &history{t: t, st: memory.NewStorage(), at: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			push, sync := tc.build(h)
			got := ChooseBase(h.st, push, sync, own, 2*BranchHistory)
			if got.Mode != tc.want || !strings.Contains(got.Note, tc.note) || (tc.note == "") != (got.Note == "") {
				t.Errorf("ChooseBase = %+v, want %s with a note %q", got, tc.want, tc.note)
			}
		})
	}
}

// A history deeper than the limit is not walked to its end: tether cannot
// tell, and stacks.
func TestChooseBaseLimit(t *testing.T) {
	h := &history{t: t, st: memory.NewStorage(), at: time.Now()}
	m0 := h.commit("alice")
	push := m0
	for range 10 {
		push = h.commit("tether", push)
	}
	sync := h.commit("bob", m0)
	own := func(c *object.Commit) bool { return c.Author.Name == "tether" }
	if got := ChooseBase(h.st, push, sync, own, 5); got.Mode != BaseStack || got.Note == "" {
		t.Errorf("past the limit: %+v", got)
	}
	if got := ChooseBase(h.st, push, sync, own, 50); got.Mode != BaseMerge {
		t.Errorf("within the limit: %+v", got)
	}
}
