package images

import (
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// BaseMode is where a round on a separate push branch (a pull-request
// flow) builds its commit.
type BaseMode string

// The base modes. None of them forces: every push moves the push branch
// from its tip to a commit that descends from it (or creates it).
const (
	// BaseCreate: the push branch does not exist; it is made from the
	// sync's branch.
	BaseCreate BaseMode = "create"
	// BaseStack: on the push branch's tip (the sync's branch has not
	// moved since, or someone else committed on the push branch).
	BaseStack BaseMode = "stack"
	// BaseForward: the sync's branch holds the push branch's tip (the pull
	// request was merged): from the sync's tip again, a fast-forward.
	BaseForward BaseMode = "forward"
	// BaseMerge: the sync's branch moved and the push branch holds only
	// tether's commits since they parted: a merge commit of both tips
	// whose tree is the sync's tree with the markers set again.
	BaseMerge BaseMode = "merge"
)

// BaseChoice is ChooseBase's answer.
type BaseChoice struct {
	Mode BaseMode
	// Note says why the round stacks although the sync's branch moved
	// ("" otherwise).
	Note string
}

// ChooseBase tells how the push branch's tip push relates to the sync
// branch's tip sync, reading at most limit commits of each side's history
// from st (a shallow fetch: a missing commit ends a walk), and picks where
// a round builds: BaseForward when sync holds push; BaseStack when push
// holds sync or is sync; BaseMerge when they parted and every commit on
// push's side since is tether's (own); BaseStack with a Note when someone
// else committed there or the history is too deep to tell.
func ChooseBase(st storer.EncodedObjectStorer, push, sync plumbing.Hash, own func(*object.Commit) bool, limit int) BaseChoice {
	if push == sync {
		return BaseChoice{Mode: BaseStack}
	}
	onSync, _, err := ancestors(st, sync, limit, nil)
	if err != nil {
		return BaseChoice{Mode: BaseStack, Note: fmt.Sprintf("the history of the sync's branch could not be read (%v): building on the push branch", err)}
	}
	if onSync[push] {
		return BaseChoice{Mode: BaseForward}
	}
	// The push side: push's ancestors that sync's history does not hold,
	// stopping at those it does (the merge base).
	var others []*object.Commit
	common := false
	side, complete, err := ancestors(st, push, limit, func(c *object.Commit) bool {
		if onSync[c.Hash] {
			common = true
			return false
		}
		if !own(c) {
			others = append(others, c)
		}
		return true
	})
	switch {
	case err != nil:
		return BaseChoice{Mode: BaseStack, Note: fmt.Sprintf("the history of the push branch could not be read (%v): building on it", err)}
	case side[sync]:
		return BaseChoice{Mode: BaseStack} // the push branch is ahead; the sync's branch did not move
	case len(others) > 0:
		c := others[0]
		return BaseChoice{Mode: BaseStack, Note: fmt.Sprintf("the sync's branch moved, and the push branch holds commits tether did not write (%s by %s, %d in all): building on it; merge the sync's branch into it by hand",
			c.Hash.String()[:12], c.Author.Name, len(others))}
	case !complete || !common:
		return BaseChoice{Mode: BaseStack, Note: fmt.Sprintf("the sync's branch moved, and no common commit is within %d commits of both tips: building on the push branch", limit)}
	}
	return BaseChoice{Mode: BaseMerge}
}

// ancestors walks the history from tip (tip included), at most limit
// commits, and returns the commits it reached. visit, when set, is asked
// about each commit and stops the walk below it when it returns false.
// complete is false when the walk ended at a commit missing from st (a
// shallow fetch) or at the limit, with commits left to visit.
func ancestors(st storer.EncodedObjectStorer, tip plumbing.Hash, limit int, visit func(*object.Commit) bool) (map[plumbing.Hash]bool, bool, error) {
	seen := map[plumbing.Hash]bool{}
	queue := []plumbing.Hash{tip}
	complete := true
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if seen[h] {
			continue
		}
		if len(seen) >= limit {
			complete = false
			break
		}
		c, err := object.GetCommit(st, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) && h != tip {
			complete = false // past the shallow boundary
			continue
		}
		if err != nil {
			return nil, false, err
		}
		seen[h] = true
		if visit != nil && !visit(c) {
			continue
		}
		queue = append(queue, c.ParentHashes...)
	}
	return seen, complete, nil
}
