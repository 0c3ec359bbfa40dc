package agent

import (
	"slices"
	"strings"
	"time"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/images"
	"github.com/tether-gitops/tether/live"
)

// ImagesStatus is the image automation part of /status.
type ImagesStatus struct {
	// Policies holds one entry per image policy, sorted by name.
	Policies []ImagePolicyStatus `json:"policies"`
	// WriteBacks holds the newest write-back round of each sync with
	// imageUpdates, sorted by sync.
	WriteBacks []ImageWriteBackStatus `json:"writeBacks,omitempty"`
}

// ImagePolicyStatus is one policy: its newest scan and where each sync
// stands.
type ImagePolicyStatus struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	// Policy describes the ordering ("semver >=1.0.0 <2.0.0").
	Policy   string `json:"policy"`
	Interval string `json:"interval"`
	// Latest is the best tag of the newest successful scan.
	Latest string `json:"latest,omitempty"`
	// TagsSeen and TagsMatched count the repository's tags and those the
	// policy considers.
	TagsSeen    int `json:"tagsSeen"`
	TagsMatched int `json:"tagsMatched"`
	// LastScan is when the newest scan started; LastScanError why it
	// failed ("" when it did not).
	LastScan         time.Time `json:"lastScan,omitzero"`
	LastScanError    string    `json:"lastScanError,omitempty"`
	LastScanRequests int64     `json:"lastScanRequests,omitempty"`
	NextScan         time.Time `json:"nextScan,omitzero"`
	// Syncs holds the policy's state in each sync that uses it.
	Syncs []ImagePolicySyncStatus `json:"syncs,omitempty"`
}

// ImagePolicySyncStatus is one policy in one sync.
type ImagePolicySyncStatus struct {
	Sync string `json:"sync"`
	// InGit is the newest tag the sync's marked values hold (newest
	// write-back round).
	InGit string `json:"inGit,omitempty"`
	// Running is the tag the sync's workloads run, read from the live
	// workloads (their tags, sorted and comma-separated, when they
	// differ).
	Running string `json:"running,omitempty"`
	// RunningApplied is set when some of those tags are what tether
	// applied, because the live workload could not be read (its watch not
	// listed yet, or refused).
	RunningApplied bool `json:"runningApplied,omitempty"`
	// Target is the tag the newest round moved (or would move) to.
	Target string `json:"target,omitempty"`
	// RollingBack is the tag tether wrote whose rollout failed, when the
	// newest round goes back from it to Target.
	RollingBack string `json:"rollingBack,omitempty"`
	// LastWritten is tether's newest commit for the policy.
	LastWritten *images.Written `json:"lastWritten,omitempty"`
	// LastGood is the newest tag whose rollout completed.
	LastGood string `json:"lastGood,omitempty"`
	// Pinned counts values marked pin.
	Pinned int `json:"pinned,omitempty"`
	// Hold is set while a manual rollback holds the policy.
	Hold *images.Hold `json:"hold,omitempty"`
	// Failed are the tags whose rollout failed (never proposed again).
	Failed []images.Failure `json:"failed,omitempty"`
	// Rollout is the newest gated rollout.
	Rollout *images.Rollout `json:"rollout,omitempty"`
	// Reason says why the policy does not move, when it does not.
	Reason string `json:"reason,omitempty"`
}

// ImageWriteBackStatus is a sync's newest write-back round.
type ImageWriteBackStatus struct {
	Sync   string    `json:"sync"`
	At     time.Time `json:"at"`
	Branch string    `json:"branch,omitempty"`
	// Base is the commit the round read; Commit the one it pushed ("" when
	// nothing changed).
	Base   string `json:"base,omitempty"`
	Commit string `json:"commit,omitempty"`
	// Changes are the values the round changed.
	Changes []images.Change `json:"changes,omitempty"`
	// Tries counts fetch-and-push attempts (more than one after a race).
	Tries int `json:"tries,omitempty"`
	// Start is how a round on a separate push branch built its commit:
	// create, stack, forward (the branch was merged: from the sync's
	// branch again) or merge (a merge of both tips).
	Start string `json:"start,omitempty"`
	// BranchNote says why a round kept building on a push branch the
	// sync's branch moved away from (someone else's commits there).
	BranchNote string `json:"branchNote,omitempty"`
	// Error is why the round failed; Refused says the server refused the
	// push (protected branch, permissions).
	Error   string `json:"error,omitempty"`
	Refused bool   `json:"refused,omitempty"`
	// Problems are markers that cannot be used (file:line: why); the
	// other markers still work and the sync applies what git holds.
	Problems []string `json:"problems,omitempty"`
}

// Failing reports whether a scan or a write-back failed, a rollout failed
// or an image is held: what `tether images` exits 1 for.
func (s *ImagesStatus) Failing() bool {
	if s == nil {
		return false
	}
	for _, p := range s.Policies {
		if p.LastScanError != "" {
			return true
		}
		for _, ps := range p.Syncs {
			if ps.Hold != nil || ps.Rollout != nil && ps.Rollout.Outcome == images.RolloutFailed {
				return true
			}
		}
	}
	for _, w := range s.WriteBacks {
		if w.Error != "" || len(w.Problems) > 0 {
			return true
		}
	}
	return false
}

// status is the images section of /status; nil when no policy is
// configured.
func (ia *imageAutomation) status() *ImagesStatus {
	if ia == nil {
		return nil
	}
	ia.mu.Lock()
	defer ia.mu.Unlock()
	if ia.cfg == nil || len(ia.cfg.ImagePolicies) == 0 && len(ia.syncs) == 0 {
		return nil
	}
	out := &ImagesStatus{Policies: []ImagePolicyStatus{}}
	for _, p := range ia.cfg.ImagePolicies {
		ps := ImagePolicyStatus{Name: p.Policy.Name, Image: p.Policy.Image, Policy: describePolicy(p), Interval: p.Interval.String()}
		if l := ia.scans[p.Policy.Name]; l != nil {
			l.mu.Lock()
			ps = l.status
			l.mu.Unlock()
		}
		for _, s := range ia.cfg.Syncs {
			if pss, ok := ia.policySyncStatus(p, s); ok {
				ps.Syncs = append(ps.Syncs, pss)
			}
		}
		out.Policies = append(out.Policies, ps)
	}
	for _, s := range ia.cfg.Syncs {
		if st := ia.syncs[s.Name]; st != nil && st.round != nil && s.ImageUpdates.Enabled {
			r := *st.round
			r.Sync = s.Name
			out.WriteBacks = append(out.WriteBacks, r)
		}
	}
	slices.SortFunc(out.Policies, func(a, b ImagePolicyStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// policySyncStatus is where policy p stands in sync s; false when the
// sync neither marks nor runs the policy's image.
func (ia *imageAutomation) policySyncStatus(p config.ImagePolicy, s config.Sync) (ImagePolicySyncStatus, bool) {
	st := ia.syncs[s.Name]
	if st == nil {
		return ImagePolicySyncStatus{}, false
	}
	out := ImagePolicySyncStatus{Sync: s.Name}
	used := false
	if pp := st.plans[p.Policy.Name]; pp != nil {
		used = true
		out.InGit, out.Target, out.Pinned, out.Reason, out.RollingBack = pp.InGit, pp.Target, pp.Pinned, pp.Reason, pp.Rollback
		out.Hold = pp.Held
	}
	if st.records != nil {
		var running []string
		for ref, imgs := range st.records.Workloads {
			var live map[string]string // nil: the live workload cannot be read
			for container, image := range imgs {
				name, tag := images.SplitImage(image)
				if name != p.Policy.Image || tag == "" {
					continue
				}
				used = true
				if live == nil {
					live = ia.liveImages(s.Name, ref)
				}
				if img, ok := live[container]; ok {
					// The live container's tag (none when it runs
					// another repository now).
					if n, t := images.SplitImage(img); n == p.Policy.Image {
						tag = t
					} else {
						tag = ""
					}
				} else {
					out.RunningApplied = true
				}
				if tag != "" {
					running = append(running, tag)
				}
			}
		}
		slices.Sort(running)
		out.Running = strings.Join(slices.Compact(running), ", ")
		if pr := st.records.Policies[p.Policy.Name]; pr != nil {
			used = true
			out.LastWritten, out.LastGood, out.Failed = pr.LastWritten, pr.LastGood, pr.Failed
			if pr.Hold != nil {
				out.Hold = pr.Hold
			}
			if n := len(pr.Rollouts); n > 0 {
				r := pr.Rollouts[n-1]
				out.Rollout = &r
			}
		}
	}
	return out, used
}

// liveImages reads a workload's container images from the live-state
// cache (no request to the API server); nil when the cache cannot answer
// or the workload is gone.
func (ia *imageAutomation) liveImages(sync, ref string) map[string]string {
	if ia.a == nil || ia.a.live == nil {
		return nil
	}
	id, ok := images.ParseWorkload(ref)
	if !ok {
		return nil
	}
	gvr, _ := images.WorkloadResource(id)
	obj, ok := ia.a.live.Get(sync, live.Ref{GVR: gvr, Namespace: id.Namespace}, id.Name)
	if !ok || obj == nil {
		return nil
	}
	imgs, _ := images.WorkloadImages(obj)
	if imgs == nil {
		imgs = map[string]string{}
	}
	return imgs
}

// describePolicy is a policy in a few words.
func describePolicy(p config.ImagePolicy) string {
	var b strings.Builder
	b.WriteString(string(p.Policy.Kind))
	if p.Policy.Kind == images.SemVer {
		b.WriteString(" " + p.Policy.Range)
	} else {
		b.WriteString(" " + string(p.Policy.Order))
	}
	if p.FilterPattern != "" {
		b.WriteString(", tags matching " + p.FilterPattern)
		if p.Policy.Extract != "" {
			b.WriteString(" by " + p.Policy.Extract)
		}
	}
	return b.String()
}
