package images

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	web := &Policy{Name: "web", Image: "reg/web", Kind: SemVer, Range: ">=1.0.0 <2.0.0"}
	if err := web.Compile(); err != nil {
		t.Fatal(err)
	}
	policies := map[string]*Policy{"web": web}
	file := func(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		yaml     string
		best     []string
		rec      *Records
		changes  []string // "line: old → new"
		target   string
		held     bool
		released bool
		reason   string
		problems []string
		// unscanned leaves the policy out of the scans' results.
		unscanned bool
		// rollback is the failed tag a rollback goes back from.
		rollback string
		// rolledBack are the changes marked as a rollback ("line").
		rolledBack []int
		// base is what the values were read from.
		base Base
	}{
		{name: "moves forward", yaml: file("image: reg/web:1.0.0 # tether:image web"), best: []string{"1.1.0", "1.0.0"},
			changes: []string{"1: reg/web:1.0.0 → reg/web:1.1.0"}, target: "1.1.0"},
		{name: "already there", yaml: file("image: reg/web:1.1.0 # tether:image web"), best: []string{"1.1.0"}, target: "1.1.0"},
		{name: "never backwards", yaml: file("tag: 1.5.0 # tether:image web:tag"), best: []string{"1.1.0"}, target: "1.1.0"},
		{name: "a tag outside the policy is replaced", yaml: file("tag: latest # tether:image web:tag"), best: []string{"1.1.0"},
			changes: []string{"1: latest → 1.1.0"}, target: "1.1.0"},
		{name: "a failed tag is skipped", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{"1.2.0", "1.1.0"},
			rec:     &Records{Policies: map[string]*PolicyRecord{"web": {Failed: []Failure{{Tag: "1.2.0"}}}}},
			changes: []string{"1: 1.0.0 → 1.1.0"}, target: "1.1.0"},
		{name: "every tag failed", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{"1.2.0"},
			rec:    &Records{Policies: map[string]*PolicyRecord{"web": {Failed: []Failure{{Tag: "1.2.0"}}}}},
			reason: "every matching tag failed its rollout before"},
		{name: "pinned values stay", yaml: file("image: reg/web:1.0.0 # tether:image web pin", "tag: 1.0.0 # tether:image web:tag"), best: []string{"1.1.0"},
			changes: []string{"2: 1.0.0 → 1.1.0"}, target: "1.1.0"},
		{name: "manual rollback holds", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{"1.1.0"},
			rec:  &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.1.0"}}}},
			held: true, reason: "held: f.yaml:1 was rolled back from 1.1.0 to 1.0.0"},
		{name: "a tag newer than the rolled-back one lifts the hold", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{"1.2.0", "1.1.0"},
			rec:     &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.1.0"}, Hold: &Hold{Tag: "1.0.0", From: "1.1.0"}}}},
			changes: []string{"1: 1.0.0 → 1.2.0"}, target: "1.2.0", released: true},
		{name: "an existing hold stays", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{"1.1.0"},
			rec:  &Records{Policies: map[string]*PolicyRecord{"web": {Hold: &Hold{Tag: "1.0.0", From: "1.1.0", Location: "f.yaml:1"}}}},
			held: true, reason: "held"},
		{name: "no tag matches", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{}, reason: "no tag matches the policy"},
		{name: "not scanned yet", yaml: file("tag: 1.0.0 # tether:image web:tag"), unscanned: true, reason: "no successful scan of reg/web yet"},
		{name: "name and digest", yaml: file("newName: old/web # tether:image web:name", "newTag: 1.0.0 # tether:image web:tag", "digest: sha256:00 # tether:image web:digest"),
			best:    []string{"1.1.0"},
			changes: []string{"1: old/web → reg/web", "2: 1.0.0 → 1.1.0", "3: sha256:00 → sha256:1.1.0"}, target: "1.1.0"},
		// The policy stays on the last good tag: tether's own tag that
		// failed goes back, never a person's.
		{name: "tether's failed tag goes back to the last good tag", yaml: file("tag: 1.2.0 # tether:image web:tag"), best: []string{"1.2.0"},
			rec:     &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0"}, LastGood: "1.0.0", Failed: []Failure{{Tag: "1.2.0", From: "1.1.0"}}}}},
			changes: []string{"1: 1.2.0 → 1.0.0"}, target: "1.0.0", rollback: "1.2.0", rolledBack: []int{1}},
		{name: "a tag between the last good and the failed one that has not failed is preferred", yaml: file("image: reg/web:1.2.0 # tether:image web"),
			best:    []string{"1.2.0", "1.1.0", "1.0.0"},
			rec:     &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0"}, LastGood: "1.0.0", Failed: []Failure{{Tag: "1.2.0"}}}}},
			changes: []string{"1: reg/web:1.2.0 → reg/web:1.1.0"}, target: "1.1.0", rollback: "1.2.0", rolledBack: []int{1}},
		{name: "a tag newer than the failed one is a move forward, not a rollback", yaml: file("tag: 1.2.0 # tether:image web:tag"), best: []string{"1.3.0", "1.2.0"},
			rec:     &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0"}, LastGood: "1.0.0", Failed: []Failure{{Tag: "1.2.0"}}}}},
			changes: []string{"1: 1.2.0 → 1.3.0"}, target: "1.3.0"},
		{name: "no rollout succeeded yet: back to the tag the workload ran before", yaml: file("tag: 1.2.0 # tether:image web:tag"), best: []string{"1.2.0"},
			rec:     &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0"}, Failed: []Failure{{Tag: "1.2.0", From: "1.0.0"}}}}},
			changes: []string{"1: 1.2.0 → 1.0.0"}, target: "1.0.0", rollback: "1.2.0", rolledBack: []int{1}},
		{name: "a last good tag that failed since is no rollback target", yaml: file("tag: 1.2.0 # tether:image web:tag"), best: []string{"1.2.0"},
			rec: &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0"}, LastGood: "1.0.0",
				Failed: []Failure{{Tag: "1.0.0"}, {Tag: "1.2.0", From: "0.9.0"}}}}},
			changes: []string{"1: 1.2.0 → 0.9.0"}, target: "0.9.0", rollback: "1.2.0", rolledBack: []int{1}},
		{name: "nothing known to be good: reported, not changed", yaml: file("tag: 1.2.0 # tether:image web:tag"), best: []string{"1.2.0"},
			rec:    &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0"}, Failed: []Failure{{Tag: "1.2.0"}}}}},
			reason: "1.2.0 failed its rollout and no earlier tag is known to be good"},
		{name: "a failing tag a person wrote is never reverted", yaml: file("tag: 1.2.0 # tether:image web:tag"), best: []string{"1.2.0", "1.1.0"},
			rec:    &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.1.0"}, LastGood: "1.1.0", Failed: []Failure{{Tag: "1.2.0", From: "1.1.0"}}}}},
			target: "1.1.0"},
		{name: "a pinned value holding tether's failed tag stays", yaml: file("tag: 1.2.0 # tether:image web:tag pin"), best: []string{"1.2.0"},
			rec:    &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0"}, LastGood: "1.0.0", Failed: []Failure{{Tag: "1.2.0"}}}}},
			reason: "every matching tag failed"},
		{name: "tether's rollback is not taken for a manual one", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{"1.2.0"},
			rec:    &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.0.0"}, LastGood: "1.0.0", Failed: []Failure{{Tag: "1.2.0"}}}}},
			reason: "every matching tag failed its rollout before"},
		{name: "a rollback that failed too is not followed further back", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{"1.2.0", "1.0.0", "0.9.0", "0.8.0"},
			rec: &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.0.0"},
				Failed: []Failure{{Tag: "1.2.0", From: "1.0.0"}, {Tag: "1.0.0", From: "1.2.0"}}}}},
			reason: "1.0.0 failed its rollout and no earlier tag is known to be good"},
		{name: "tether's rollback whose records were not saved is not taken for a manual one", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{"1.2.0", "1.0.0"},
			rec:    &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0"}, LastGood: "1.0.0", Failed: []Failure{{Tag: "1.2.0"}}}}},
			target: "1.0.0"},
		{name: "tether's rollback to a tag between the last good and the failed one, records not saved, is no manual rollback", yaml: file("tag: 1.1.0 # tether:image web:tag"),
			best:   []string{"1.2.0", "1.1.0", "1.0.0"},
			rec:    &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0"}, LastGood: "1.0.0", Failed: []Failure{{Tag: "1.2.0"}}}}},
			target: "1.1.0"},
		{name: "a merge forward keeps tether's rollback on its branch", yaml: file("tag: 1.2.0 # tether:image web:tag"), best: []string{"1.2.0", "1.1.0"},
			rec: &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.1.0", Branch: "image-updates"}, LastGood: "1.0.0",
				Failed: []Failure{{Tag: "1.2.0"}}}}}, base: Base{Unmerged: true},
			changes: []string{"1: 1.2.0 → 1.1.0"}, target: "1.1.0", rollback: "1.2.0", rolledBack: []int{1}},
		{name: "a failed tag merged by squash while the branch stays is rolled back", yaml: file("tag: 1.2.0 # tether:image web:tag"), best: []string{"1.2.0"},
			rec: &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0", Branch: "image-updates"}, LastGood: "1.0.0",
				Failed: []Failure{{Tag: "1.2.0"}}}}}, base: Base{Unmerged: true},
			changes: []string{"1: 1.2.0 → 1.0.0"}, target: "1.0.0", rollback: "1.2.0", rolledBack: []int{1}},
		{name: "a rollback sets the digest of the tag it goes back to", yaml: file("newTag: 1.2.0 # tether:image web:tag", "digest: sha256:1.2.0 # tether:image web:digest"),
			best:    []string{"1.2.0"},
			rec:     &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0"}, LastGood: "1.0.0", Failed: []Failure{{Tag: "1.2.0"}}}}},
			changes: []string{"1: 1.2.0 → 1.0.0", "2: sha256:1.2.0 → sha256:1.0.0"}, target: "1.0.0", rollback: "1.2.0", rolledBack: []int{1}},
		// Failures forgotten past MaxFailedTags leave a watermark.
		{name: "tags at or below the watermark of forgotten failures are never targets", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{"1.1.0", "1.0.5"},
			rec:    &Records{Policies: map[string]*PolicyRecord{"web": {FailedWatermark: "1.1.0"}}},
			reason: "every matching tag failed its rollout before"},
		{name: "a tag above the watermark moves", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{"1.1.1", "1.1.0"},
			rec:     &Records{Policies: map[string]*PolicyRecord{"web": {FailedWatermark: "1.1.0"}}},
			changes: []string{"1: 1.0.0 → 1.1.1"}, target: "1.1.1"},
		{name: "the last good tag below the watermark is still a rollback target", yaml: file("tag: 1.2.0 # tether:image web:tag"), best: []string{"1.2.0", "1.0.5"},
			rec: &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.2.0"}, LastGood: "1.0.0", FailedWatermark: "1.1.0",
				Failed: []Failure{{Tag: "1.2.0"}}}}},
			changes: []string{"1: 1.2.0 → 1.0.0"}, target: "1.0.0", rollback: "1.2.0", rolledBack: []int{1}},
		// A pull request not merged yet: the sync's branch holds the old tag.
		{name: "an unmerged pull request is no manual rollback", yaml: file("tag: 1.0.0 # tether:image web:tag"), best: []string{"1.1.0"},
			rec: &Records{Policies: map[string]*PolicyRecord{"web": {LastWritten: &Written{Tag: "1.1.0", Branch: "image-updates"}}}}, base: Base{Unmerged: true},
			changes: []string{"1: 1.0.0 → 1.1.0"}, target: "1.1.0"},
		{name: "unknown policy", yaml: file("tag: 1.0.0 # tether:image nope:tag", "image: reg/web:1.0.0 # tether:image web"), best: []string{"1.1.0"},
			changes: []string{"2: reg/web:1.0.0 → reg/web:1.1.0"}, target: "1.1.0",
			problems: []string{`f.yaml:1: the marker names policy "nope", which is not in imagePolicies`}},
	}
	digest := func(policy, tag string) (string, error) {
		if policy != "web" {
			return "", errors.New("unknown")
		}
		return "sha256:" + tag, nil
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sites, problems := FindMarkers("f.yaml", []byte(tt.yaml))
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			rec := tt.rec
			if rec == nil {
				rec = &Records{}
			}
			best := map[string][]string{"web": tt.best}
			if tt.unscanned {
				best = map[string][]string{}
			}
			plan := Decide(sites, tt.base, policies, best, rec, digest, now)
			var got []string
			for _, c := range plan.Changes {
				got = append(got, strings.Join([]string{itoa(c.Line) + ":", c.Old, "→", c.New}, " "))
			}
			if strings.Join(got, "\n") != strings.Join(tt.changes, "\n") {
				t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.changes, "\n"))
			}
			var probs []string
			for _, p := range plan.Problems {
				probs = append(probs, p.String())
			}
			if strings.Join(probs, "\n") != strings.Join(tt.problems, "\n") {
				t.Errorf("problems = %q, want %q", probs, tt.problems)
			}
			pp := plan.Policies["web"]
			if pp == nil {
				t.Fatal("no plan for web")
			}
			if pp.Target != tt.target || (pp.Held != nil) != tt.held || pp.Released != tt.released || !strings.HasPrefix(pp.Reason, tt.reason) || pp.Rollback != tt.rollback {
				t.Errorf("plan = %+v, want target %q held %v released %v reason %q rollback %q", pp, tt.target, tt.held, tt.released, tt.reason, tt.rollback)
			}
			var rolledBack []int
			for _, c := range plan.Changes {
				if c.RolledBack != "" {
					if c.RolledBack != tt.rollback {
						t.Errorf("change %+v rolls back from %q, want %q", c, c.RolledBack, tt.rollback)
					}
					rolledBack = append(rolledBack, c.Line)
				}
			}
			if !slices.Equal(rolledBack, tt.rolledBack) {
				t.Errorf("rollback changes on lines %v, want %v", rolledBack, tt.rolledBack)
			}
			if !tt.held && rec.Policy("web").Hold != nil && (tt.rec == nil || tt.rec.Policies["web"].Hold == nil) {
				t.Errorf("a hold was set: %+v", rec.Policy("web").Hold)
			}
			if tt.held && rec.Policy("web").Hold == nil {
				t.Error("the hold is not in the records")
			}
			if tt.released && rec.Policy("web").Hold != nil {
				t.Error("the hold is still in the records")
			}
			// The edits apply cleanly and give the planned values.
			out, err := Apply([]byte(tt.yaml), plan.Edits["f.yaml"])
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range plan.Changes {
				if !strings.Contains(string(out), c.New) {
					t.Errorf("%s not written:\n%s", c.New, out)
				}
			}
		})
	}
}

func TestMessageTemplate(t *testing.T) {
	tmpl, err := ParseMessageTemplate(DefaultMessageTemplate)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := RenderMessage(tmpl, MessageData{Sync: "web-dev", Changes: []Change{
		{File: "base/deployment.yaml", Line: 17, Policy: "web", Image: "reg/web", Old: "reg/web:1.0.0", New: "reg/web:1.1.0"},
		{File: "dev/kustomization.yaml", Line: 9, Policy: "api", Image: "reg/api", Old: "2.0.0", New: "2.1.0"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := "Update images of web-dev\n\n" +
		"- reg/web: reg/web:1.0.0 → reg/web:1.1.0 (policy web, base/deployment.yaml:17)\n" +
		"- reg/api: 2.0.0 → 2.1.0 (policy api, dev/kustomization.yaml:9)\n"
	if msg != want {
		t.Errorf("message:\n%q\nwant:\n%q", msg, want)
	}
	// A round that only goes back from a failed tag says so, in the
	// subject and on the line; one that also moves forward is an update.
	back := Change{File: "base/deployment.yaml", Line: 17, Policy: "web", Image: "reg/web", Old: "reg/web:1.2.0", New: "reg/web:1.1.0",
		OldTag: "1.2.0", NewTag: "1.1.0", RolledBack: "1.2.0"}
	msg, err = RenderMessage(tmpl, NewMessageData("web-dev", []Change{back}))
	if err != nil {
		t.Fatal(err)
	}
	want = "Roll back images of web-dev\n\n" +
		"- reg/web: reg/web:1.2.0 → reg/web:1.1.0 (policy web, base/deployment.yaml:17): rollback, 1.2.0 failed its rollout\n"
	if msg != want {
		t.Errorf("rollback message:\n%q\nwant:\n%q", msg, want)
	}
	forward := Change{File: "dev/kustomization.yaml", Line: 9, Policy: "api", Image: "reg/api", Old: "2.0.0", New: "2.1.0", OldTag: "2.0.0", NewTag: "2.1.0"}
	if d := NewMessageData("web-dev", []Change{back, forward}); d.Rollback {
		t.Error("a round that also moves a tag forward is called a rollback")
	}
	for _, bad := range []struct{ tmpl, want string }{
		{"{{.Nope}}", "can't evaluate field Nope"},
		{"{{range .Changes}}", "unexpected EOF"},
		{"   {{/* nothing */}}  ", "the message is empty"},
		{`{{range $.Changes}}{{printf "%070000d" 1}}{{end}}`, "longer than"},
	} {
		if _, err := ParseMessageTemplate(bad.tmpl); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseMessageTemplate(%q) = %v, want %q", bad.tmpl, err, bad.want)
		}
	}
}

func TestRecordsBounds(t *testing.T) {
	pr := &PolicyRecord{}
	for i := range MaxFailedTags + 5 {
		pr.Fail(Failure{Tag: "1.0." + itoa(i)}, nil)
	}
	pr.Fail(Failure{Tag: "1.0.54"}, nil) // again: once
	if len(pr.Failed) != MaxFailedTags || pr.HasFailed("1.0.0") || !pr.HasFailed("1.0.54") {
		t.Errorf("failed: %d, oldest kept %s", len(pr.Failed), pr.Failed[0].Tag)
	}
	pr.Record(Rollout{Workload: "w", Tag: "0", Outcome: RolloutProgressing})
	for i := range MaxRollouts + 3 {
		pr.Record(Rollout{Workload: "w", Tag: "x" + itoa(i), Outcome: RolloutSucceeded})
	}
	if len(pr.Rollouts) != MaxRollouts+1 || pr.Rollouts[0].Outcome != RolloutProgressing {
		t.Errorf("rollouts: %d, first %+v", len(pr.Rollouts), pr.Rollouts[0])
	}
	pr.Record(Rollout{Workload: "w", Tag: "0", Outcome: RolloutFailed})
	if len(pr.Rollouts) != MaxRollouts || pr.Rollouts[len(pr.Rollouts)-1].Outcome != RolloutFailed {
		t.Errorf("replacing a pending rollout: %+v", pr.Rollouts)
	}
}

// Failures forgotten past MaxFailedTags are still never proposed: the
// lowest failed tags are forgotten first and leave a watermark that
// excludes every tag at or below it, whatever order the failures came in.
func TestForgottenFailuresStayExcluded(t *testing.T) {
	web := &Policy{Name: "web", Image: "reg/web", Kind: SemVer, Range: ">=0.1.0"}
	if err := web.Compile(); err != nil {
		t.Fatal(err)
	}
	pr := &PolicyRecord{LastGood: "1.0.1"}
	// 1.0.60 down to 1.0.0 fail (all but the last good 1.0.1), newest
	// tags first, then a tag of another scheme (the newest failure, kept).
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 60; i >= 0; i-- {
		if i == 1 {
			continue
		}
		pr.Fail(Failure{Tag: "1.0." + itoa(i), At: start.Add(time.Duration(60-i) * time.Minute)}, web)
	}
	pr.Fail(Failure{Tag: "latest", At: start.Add(2 * time.Hour)}, web)
	if len(pr.Failed) != MaxFailedTags {
		t.Fatalf("%d failures kept, want %d", len(pr.Failed), MaxFailedTags)
	}
	if pr.FailedWatermark != "1.0.11" {
		t.Errorf("watermark %q, want 1.0.11 (the highest of the 12 lowest tags forgotten)", pr.FailedWatermark)
	}
	if !pr.HasFailed("1.0.60") || !pr.HasFailed("1.0.12") || pr.HasFailed("1.0.11") || !pr.HasFailed("latest") {
		t.Errorf("kept %v", pr.Failed)
	}
	for tag, want := range map[string]bool{
		"1.0.0": true, "1.0.11": true, "1.0.5": true, // forgotten, below the watermark
		"1.0.12": true, "1.0.60": true, // remembered one by one
		"0.9.0":  true,                  // never failed, below the watermark
		"1.0.1":  false,                 // LastGood
		"1.0.61": false, "1.1.0": false, // newer, never failed
	} {
		if got := pr.Excluded(tag, web); got != want {
			t.Errorf("Excluded(%s) = %v, want %v", tag, got, want)
		}
	}
	if !pr.LastFailure().Equal(start.Add(2 * time.Hour)) {
		t.Errorf("last failure %v", pr.LastFailure())
	}
	// Decide never proposes a forgotten tag, even as the only newer one.
	sites, _ := FindMarkers("f.yaml", []byte("tag: 0.9.0 # tether:image web:tag\n"))
	plan := Decide(sites, Base{}, map[string]*Policy{"web": web}, map[string][]string{"web": {"1.0.11", "1.0.3"}}, &Records{Policies: map[string]*PolicyRecord{"web": pr}}, nil, start)
	if len(plan.Changes) != 0 || plan.Policies["web"].Target != "" {
		t.Errorf("a forgotten failed tag was proposed: %+v", plan.Policies["web"])
	}
	// Without a policy to order them, the oldest failure is forgotten.
	byTime := &PolicyRecord{}
	for i := range MaxFailedTags + 1 {
		byTime.Fail(Failure{Tag: "t" + itoa(i)}, nil)
	}
	if byTime.HasFailed("t0") || !byTime.HasFailed("t1") || byTime.FailedWatermark != "" {
		t.Errorf("without a policy: %+v", byTime)
	}
}

// A last good tag whose rollout fails later is no longer the last good
// one: no rollback goes back to it, and it is not let through the
// watermark once its failure is forgotten.
func TestFailingLastGoodTagIsForgotten(t *testing.T) {
	pr := &PolicyRecord{LastGood: "1.0.0"}
	pr.Fail(Failure{Tag: "1.1.0"}, nil)
	if pr.LastGood != "1.0.0" {
		t.Fatalf("another tag's failure cleared LastGood: %q", pr.LastGood)
	}
	pr.Fail(Failure{Tag: "1.0.0"}, nil)
	if pr.LastGood != "" {
		t.Errorf("LastGood %q after its own rollout failed, want none", pr.LastGood)
	}
	// Where the failing workload came from is good as far as is known,
	// unless it failed too.
	pr = &PolicyRecord{LastGood: "1.1.0"}
	pr.Fail(Failure{Tag: "1.1.0", From: "1.0.5"}, nil)
	if pr.LastGood != "1.0.5" {
		t.Errorf("LastGood %q after it failed coming from 1.0.5, want 1.0.5", pr.LastGood)
	}
	pr = &PolicyRecord{LastGood: "1.1.0", Failed: []Failure{{Tag: "1.0.5"}}}
	pr.Fail(Failure{Tag: "1.1.0", From: "1.0.5"}, nil)
	if pr.LastGood != "" {
		t.Errorf("LastGood %q, a tag that failed, want none", pr.LastGood)
	}
}

// One policy, two workloads: a tag that failed on one and then completed
// on the other does not become the last good tag.
func TestSucceededAfterAFailureIsNotGood(t *testing.T) {
	pr := &PolicyRecord{LastGood: "1.1.0"}
	pr.Fail(Failure{Tag: "1.2.0", Workload: "a"}, nil)
	pr.Succeeded("1.2.0")
	if pr.LastGood != "1.1.0" {
		t.Errorf("LastGood %q after 1.2.0 failed on one workload and completed on another, want 1.1.0", pr.LastGood)
	}
	pr.Succeeded("1.3.0")
	if pr.LastGood != "1.3.0" {
		t.Errorf("LastGood %q, want 1.3.0", pr.LastGood)
	}
}
