package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/images"
)

// The table says where a running tag comes from, which tag a rollback
// goes back from, and why a push branch is built on as it is.
func TestPrintImages(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	img := &agent.ImagesStatus{
		Policies: []agent.ImagePolicyStatus{{Name: "web", Image: "reg/web", Latest: "1.2.0", TagsSeen: 3, LastScan: now.Add(-time.Minute),
			Syncs: []agent.ImagePolicySyncStatus{
				{Sync: "dev", InGit: "1.2.0", Running: "1.1.0", RunningApplied: true, Target: "1.1.0", RollingBack: "1.2.0",
					Failed: []images.Failure{{Tag: "1.2.0", Reason: "Progress deadline exceeded"}}},
				{Sync: "prod", InGit: "1.1.0", Running: "1.1.0"},
			}}},
		WriteBacks: []agent.ImageWriteBackStatus{
			{Sync: "dev", At: now.Add(-time.Minute), Branch: "main", Commit: "0123456789abcdef", Changes: []images.Change{{}}},
			{Sync: "prod", At: now.Add(-time.Minute), Branch: "image-updates", Commit: "fedcba9876543210", Start: string(images.BaseMerge), Changes: []images.Change{{}}},
			{Sync: "stage", At: now, Branch: "image-updates", Start: string(images.BaseStack), BranchNote: "the sync's branch moved, and the push branch holds commits tether did not write"},
		},
	}
	var b bytes.Buffer
	printImages(&b, img, now)
	out := b.String()
	for _, want := range []string{
		"1.1.0 (applied)",
		"rolling back from 1.2.0",
		"policy web in dev: going back from 1.2.0 (tether's tag, failed its rollout) to 1.1.0",
		"ok, merged the sync's branch in",
		"sync stage: branch image-updates: the sync's branch moved, and the push branch holds commits tether did not write",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	// prod's running tag was read live: no marker.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " prod ") && strings.Contains(line, "(applied)") {
			t.Errorf("prod's live tag is marked applied: %s", line)
		}
	}
}
