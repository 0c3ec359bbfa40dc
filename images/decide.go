package images

import (
	"fmt"
	"slices"
	"time"
)

// Change is one value a write-back changes, for the commit message and
// the status.
type Change struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Policy string `json:"policy"`
	Field  Field  `json:"field"`
	// Image is the policy's repository.
	Image string `json:"image"`
	// Old and New are the values as written in the file.
	Old string `json:"old"`
	New string `json:"new"`
	// OldTag and NewTag are the tags before and after ("" for names and
	// digests).
	OldTag string `json:"oldTag,omitempty"`
	NewTag string `json:"newTag,omitempty"`
	// RolledBack is set when the change goes back to the policy's last
	// good tag: the tag (tether's own commit) whose rollout failed.
	RolledBack string `json:"rolledBack,omitempty"`
}

// PolicyPlan is what a round decided for one policy of one sync.
type PolicyPlan struct {
	// Target is the tag the policy's values move to ("" when none: held,
	// no candidate, or nothing scanned yet).
	Target string
	// InGit is the newest tag the sync's values of this policy hold.
	InGit string
	// Pinned counts values marked pin.
	Pinned int
	// Held is the hold in force (new or old); nil when not held.
	Held *Hold
	// NewHold is set when this round found the manual rollback.
	NewHold bool
	// Released is set when a newer tag lifted a hold this round.
	Released bool
	// Rollback is the tag tether wrote whose rollout failed, when Target
	// goes back from it (to the last good tag, or a tag between the two
	// that has not failed).
	Rollback string
	// Reason says why there is no target.
	Reason string
}

// Plan is what one write-back round changes in one sync's files.
type Plan struct {
	// Edits are the changes per file.
	Edits map[string][]Edit
	// Changes lists them for the commit message, in file order.
	Changes []Change
	// Policies holds the decision per policy the sync's markers name.
	Policies map[string]*PolicyPlan
	// Problems are markers that name no policy, or values that cannot be
	// set (a digest that could not be read).
	Problems []Problem
}

// DigestFunc returns the manifest digest of a tag of a policy's image.
type DigestFunc func(policy, tag string) (string, error)

// Decide plans one write-back round of a sync, purely: sites are the
// sync's marked values, policies the configured policies, best the
// newest successful scan's best tags per policy (best first; a policy
// not scanned successfully yet is absent), rec the sync's
// records. It moves values forward only: a value is changed when the
// target is newer than the tag it holds under the policy (or the tag is
// not the policy's kind at all). Tags that failed a rollout are never
// targets (nor tags at or below the watermark of forgotten failures). A
// value set back to an older tag than tether last wrote is a manual
// rollback: the policy is held until a tag newer than the one rolled back
// from appears. The one way back: a value holding the tag tether last
// wrote, whose rollout failed, goes back to the last good tag (or a
// newer one that has not failed); a failing tag a person wrote is
// reported, never reverted. base says what the sites were read from (on
// a base.Unmerged sync branch neither of the two checks against the tag
// tether wrote applies). Decide changes rec (holds) but writes nothing.
func Decide(sites []Site, base Base, policies map[string]*Policy, best map[string][]string, rec *Records, digest DigestFunc, now time.Time) *Plan {
	plan := &Plan{Edits: map[string][]Edit{}, Policies: map[string]*PolicyPlan{}}
	byPolicy := map[string][]Site{}
	for _, s := range sites {
		if policies[s.Marker.Policy] == nil {
			plan.Problems = append(plan.Problems, Problem{File: s.File, Line: s.Line,
				Message: fmt.Sprintf("the marker names policy %q, which is not in imagePolicies", s.Marker.Policy)})
			continue
		}
		byPolicy[s.Marker.Policy] = append(byPolicy[s.Marker.Policy], s)
	}
	names := make([]string, 0, len(byPolicy))
	for n := range byPolicy {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		p, ps := policies[name], byPolicy[name]
		b, scanned := best[name]
		pp := decidePolicy(p, ps, b, scanned, rec.Policy(name), base, now)
		plan.Policies[name] = pp
		if pp.Target == "" {
			continue
		}
		plan.edits(p, ps, pp, digest)
	}
	slices.SortFunc(plan.Changes, func(a, b Change) int {
		if a.File != b.File {
			if a.File < b.File {
				return -1
			}
			return 1
		}
		return a.Line - b.Line
	})
	return plan
}

// decidePolicy chooses the target tag of one policy and keeps the hold;
// scanned is false while no scan of the policy's repository succeeded.
func decidePolicy(p *Policy, sites []Site, best []string, scanned bool, pr *PolicyRecord, base Base, now time.Time) *PolicyPlan {
	pp := &PolicyPlan{}
	var rollback *Site
	for i, s := range sites {
		if s.Marker.Pin {
			pp.Pinned++
		}
		tag := s.Marker.CurrentTag(s.Value)
		if tag == "" {
			continue
		}
		if pp.InGit == "" {
			pp.InGit = tag
		} else if newer, ok := p.Newer(tag, pp.InGit); ok && newer {
			pp.InGit = tag
		}
		if s.Marker.Pin || pr.LastWritten == nil || tag == pr.LastWritten.Tag || base.Unmerged {
			continue
		}
		if pr.HasFailed(pr.LastWritten.Tag) && !pr.HasFailed(tag) && atOrAbove(p, tag, rollbackBase(pr, pr.LastWritten.Tag)) {
			// Where tether rolls back to after its tag failed (the last
			// good tag, or a tag between it and the failed one): its own
			// rollback (the records may not have been saved after it
			// pushed), or a person doing the same; not a hold either way.
			continue
		}
		if older, ok := p.Newer(pr.LastWritten.Tag, tag); ok && older && rollback == nil {
			rollback = &sites[i]
		}
	}
	target := ""
	for _, t := range best {
		if !pr.Excluded(t, p) {
			target = t
			break
		}
	}
	if pr.Hold == nil && rollback != nil {
		pr.Hold = &Hold{Tag: rollback.Marker.CurrentTag(rollback.Value), From: pr.LastWritten.Tag, Location: rollback.Location(), At: now}
		pp.NewHold = true
	}
	if pr.Hold != nil {
		if newer, ok := p.Newer(target, pr.Hold.From); target != "" && ok && newer {
			pr.Hold = nil
			pp.Released = !pp.NewHold
			pp.NewHold = false
		} else {
			h := *pr.Hold
			pp.Held = &h
			pp.Reason = fmt.Sprintf("held: %s was rolled back from %s to %s; waiting for a tag newer than %s (or `tether images release %s`)", h.Location, h.From, h.Tag, h.From, p.Name)
			return pp
		}
	}
	if failed := ownFailedTag(sites, pr); failed != "" {
		// tether's own tag failed its rollout (and was applied: the values
		// read hold it, on the sync's branch even while a pull-request
		// branch is unmerged): back to the last good tag, or to a tag
		// between the two that has not failed, unless a newer tag that has
		// not failed is there. Never further back than the last good tag:
		// when every tag fails (a quota, a broken node pool), walking down
		// the history would fail them all.
		if newer, ok := p.Newer(target, failed); target != "" && ok && newer {
			pp.Target = target
			return pp
		}
		back := rollbackBase(pr, failed)
		if newer, ok := p.Newer(target, back); back != "" && target != "" && ok && newer {
			back = target
		}
		if back == "" {
			pp.Reason = fmt.Sprintf("%s failed its rollout and no earlier tag is known to be good to go back to", failed)
			return pp
		}
		pp.Target, pp.Rollback = back, failed
		return pp
	}
	if base.Unmerged && pr.LastWritten != nil && pr.LastWritten.Branch != "" && target != "" && target == pr.LastWritten.Tag {
		// A merge of the sync's branch into tether's pull-request branch
		// takes the sync's tree and sets the markers again. A value there
		// holding a failed tag (tether's, merged, and rolled back on its
		// branch since) goes back to what the branch holds, the target,
		// or the merge would undo the rollback.
		for _, s := range sites {
			if cur := s.Marker.CurrentTag(s.Value); !s.Marker.Pin && cur != "" && cur != target && pr.HasFailed(cur) {
				pp.Target, pp.Rollback = target, cur
				return pp
			}
		}
	}
	switch {
	case target == "" && !scanned:
		pp.Reason = "no successful scan of " + p.Image + " yet"
	case target == "" && len(best) == 0:
		pp.Reason = "no tag matches the policy"
	case target == "":
		pp.Reason = "every matching tag failed its rollout before"
	}
	pp.Target = target
	return pp
}

// atOrAbove reports whether tag is base or newer in p's order; false when
// base is "" or the two cannot be compared.
func atOrAbove(p *Policy, tag, base string) bool {
	if base == "" {
		return false
	}
	if tag == base {
		return true
	}
	newer, ok := p.Newer(tag, base)
	return ok && newer
}

// ownFailedTag is the tag tether last wrote for the policy when a value
// (not pinned) still holds it and its rollout failed; "" otherwise.
func ownFailedTag(sites []Site, pr *PolicyRecord) string {
	if pr.LastWritten == nil || !pr.HasFailed(pr.LastWritten.Tag) {
		return ""
	}
	for _, s := range sites {
		if !s.Marker.Pin && s.Marker.CurrentTag(s.Value) == pr.LastWritten.Tag {
			return pr.LastWritten.Tag
		}
	}
	return ""
}

// rollbackBase is where a failed tag of tether's goes back to: the last
// tag whose rollout succeeded, else the tag the workload ran before the
// failed rollout; never a tag that failed itself.
func rollbackBase(pr *PolicyRecord, failed string) string {
	if pr.LastGood != "" && pr.LastGood != failed && !pr.HasFailed(pr.LastGood) {
		return pr.LastGood
	}
	if f, ok := pr.failure(failed); ok && f.From != "" && f.From != failed && !pr.HasFailed(f.From) {
		return f.From
	}
	return ""
}

// edits plans the changes of one policy's values towards pp.Target.
func (plan *Plan) edits(p *Policy, sites []Site, pp *PolicyPlan, digest DigestFunc) {
	// The tag the values will hold: the target, unless git already holds
	// a newer one (forward only), which a digest must then match.
	effective := pp.Target
	if newer, ok := p.Newer(pp.InGit, pp.Target); ok && newer && pp.Rollback == "" {
		effective = pp.InGit
	}
	digestOf := ""
	for _, s := range sites {
		if s.Marker.Pin {
			continue
		}
		cur := s.Marker.CurrentTag(s.Value)
		rollback := pp.Rollback != "" && cur == pp.Rollback
		var next string
		switch s.Marker.Field {
		case FieldImage, FieldTag:
			if cur != "" && cur != pp.Target && !rollback {
				if newer, ok := p.Newer(pp.Target, cur); ok && !newer {
					continue // git holds a newer tag: forward only
				}
			}
			next = s.Marker.Value(p.Image, pp.Target, "")
		case FieldName:
			next = p.Image
		case FieldDigest:
			if digestOf == "" {
				d, err := digest(p.Name, effective)
				if err != nil {
					plan.Problems = append(plan.Problems, Problem{File: s.File, Line: s.Line, Message: fmt.Sprintf("the digest of %s:%s: %v", p.Image, effective, err)})
					continue
				}
				digestOf = d
			}
			next = digestOf
		}
		if next == s.Value {
			continue
		}
		plan.Edits[s.File] = append(plan.Edits[s.File], Edit{Site: s, New: next})
		c := Change{File: s.File, Line: s.Line, Policy: p.Name, Field: s.Marker.Field, Image: p.Image, Old: s.Value, New: next, OldTag: cur}
		if s.Marker.Field == FieldImage || s.Marker.Field == FieldTag {
			c.NewTag = pp.Target
			if rollback {
				c.RolledBack = pp.Rollback
			}
		}
		plan.Changes = append(plan.Changes, c)
	}
}
