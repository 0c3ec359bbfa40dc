package images

import (
	"errors"
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
			plan := Decide(sites, policies, best, rec, digest, now)
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
			if pp.Target != tt.target || (pp.Held != nil) != tt.held || pp.Released != tt.released || !strings.HasPrefix(pp.Reason, tt.reason) {
				t.Errorf("plan = %+v, want target %q held %v released %v reason %q", pp, tt.target, tt.held, tt.released, tt.reason)
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
		pr.Fail(Failure{Tag: "1.0." + itoa(i)})
	}
	pr.Fail(Failure{Tag: "1.0.54"}) // again: once
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
