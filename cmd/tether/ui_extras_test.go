package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/images"
	"github.com/tether-gitops/tether/inventory"
	tsync "github.com/tether-gitops/tether/sync"
	"github.com/tether-gitops/tether/ui"
)

var webDeploy = object.ObjMetadata{GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}, Namespace: "app", Name: "web"}

func TestAgentExtrasDrift(t *testing.T) {
	since := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	applied := &agent.RevisionStatus{Revision: "main@sha1:1111111111111111111111111111111111111111"}
	st := &agent.Status{Syncs: []agent.SyncStatus{
		{Name: "new"}, // nothing applied yet: drift unknown
		{Name: "quiet", Applied: applied},
		{Name: "web", Applied: applied, Drift: []agent.DriftStatus{
			{Object: "Deployment.apps/app/web", ID: webDeploy, Managers: "kubectl-set, hpa", Since: since, Fields: []string{
				"spec.template.spec.containers[name=app].image: web:1.0 → web:hotfix by kubectl-set (Update) at 14:02:11",
				"spec.replicas: 2 → 5 by hpa (Update, scale)",
				"metadata.labels.team: shop removed",
				"metadata.annotations.note: made by hand → fixed by hand by kubectl-edit (Update)",
				"spec.paused",
			}},
			{Object: "ConfigMap/app/gone", ID: object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "ConfigMap"}, Namespace: "app", Name: "gone"}, Deleted: true, Since: since},
		}},
	}}
	ex := agentExtras{}.Extras(context.Background(), st, "web")
	want := []ui.Drift{
		{Object: webDeploy, Path: "spec.template.spec.containers[name=app].image", Git: "web:1.0", Live: "web:hotfix", Manager: "kubectl-set (Update)", Since: since},
		{Object: webDeploy, Path: "spec.replicas", Git: "2", Live: "5", Manager: "hpa (Update, scale)", Since: since},
		{Object: webDeploy, Path: "metadata.labels.team", Git: "shop", Removed: true, Manager: "kubectl-set, hpa", Since: since},
		{Object: webDeploy, Path: "metadata.annotations.note", Git: "made by hand", Live: "fixed by hand", Manager: "kubectl-edit (Update)", Since: since},
		{Object: webDeploy, Path: "spec.paused", Manager: "kubectl-set, hpa", Since: since},
		{Object: st.Syncs[2].Drift[1].ID, Deleted: true, Since: since},
	}
	if len(ex.Drift) != len(want) {
		t.Fatalf("drift %+v, want %d entries", ex.Drift, len(want))
	}
	for i := range want {
		if ex.Drift[i] != want[i] {
			t.Errorf("drift %d:\n got %+v\nwant %+v", i, ex.Drift[i], want[i])
		}
	}
	if ex := (agentExtras{}).Extras(context.Background(), st, "quiet"); ex.Drift == nil || len(ex.Drift) != 0 {
		t.Errorf("a sync with nothing drifted: %+v, want drift known and empty", ex.Drift)
	}
	if ex := (agentExtras{}).Extras(context.Background(), st, "new"); ex.Drift != nil {
		t.Errorf("a sync that applied nothing yet: %+v, want drift unknown (nil)", ex.Drift)
	}
	if ex := (agentExtras{}).Extras(context.Background(), st, "web"); ex.Images != nil {
		t.Errorf("without image automation: images %+v, want none", ex.Images)
	}
}

// parseDriftField reads what sync writes: each case goes through
// sync.FieldChange.String, so a change of that format fails here.
func TestParseDriftFieldReadsFieldChangeString(t *testing.T) {
	at := time.Date(2026, 12, 1, 14, 2, 11, 0, time.UTC)
	for _, tc := range []struct {
		fc   tsync.FieldChange
		want ui.Drift
	}{
		{tsync.FieldChange{Path: "spec.replicas", Desired: int64(2), Live: int64(3), Managers: []string{"kubectl (Update, scale)"}, At: at},
			ui.Drift{Path: "spec.replicas", Git: "2", Live: "3", Manager: "kubectl (Update, scale)"}},
		{tsync.FieldChange{Path: "spec.template.spec.containers[name=app].image", Desired: "web:1.0", Live: "web:hotfix", Managers: []string{"a (Update)", "b (Apply)"}},
			ui.Drift{Path: "spec.template.spec.containers[name=app].image", Git: "web:1.0", Live: "web:hotfix", Manager: "a (Update), b (Apply)"}},
		{tsync.FieldChange{Path: "data.note", Desired: "made by hand", Removed: true},
			ui.Drift{Path: "data.note", Git: "made by hand", Removed: true}},
		{tsync.FieldChange{Path: "data.note", Desired: "seen at 10:00:00", Live: "by me", Managers: []string{"kubectl-edit (Update)"}, At: at},
			ui.Drift{Path: "data.note", Git: "seen at 10:00:00", Live: "by me", Manager: "kubectl-edit (Update)"}},
		{tsync.FieldChange{Path: "data.password", Desired: "***", Live: "***", Managers: []string{"kubectl-edit (Update)"}},
			ui.Drift{Path: "data.password", Git: "***", Live: "***", Manager: "kubectl-edit (Update)"}},
	} {
		line := tc.fc.String()
		if got := parseDriftField(line); got != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", line, got, tc.want)
		}
	}
}

func TestImageUpdateStates(t *testing.T) {
	at := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	p := agent.ImagePolicyStatus{Name: "web", Image: "reg/web", Latest: "1.1"}
	for _, tc := range []struct {
		name   string
		ps     agent.ImagePolicySyncStatus
		want   ui.ImageState
		to     string
		detail string
	}{
		{"git and the workloads hold the tag", agent.ImagePolicySyncStatus{InGit: "1.1", Running: "1.1", Target: "1.1"}, ui.ImageUpToDate, "1.1", ""},
		{"git holds it, no workload reports the image", agent.ImagePolicySyncStatus{InGit: "1.1", Target: "1.1"}, ui.ImageUpToDate, "1.1", ""},
		{"a newer tag not in git yet", agent.ImagePolicySyncStatus{InGit: "1.0", Running: "1.0", Target: "1.1"}, ui.ImagePending, "1.1", ""},
		{"tether committed it", agent.ImagePolicySyncStatus{InGit: "1.0", Running: "1.0", Target: "1.1", LastWritten: &images.Written{Tag: "1.1", At: at}}, ui.ImageCommitted, "1.1", ""},
		{"in git, not running yet", agent.ImagePolicySyncStatus{InGit: "1.1", Running: "1.0", Target: "1.1"}, ui.ImageCommitted, "1.1", ""},
		{"rolling out", agent.ImagePolicySyncStatus{InGit: "1.1", Running: "1.0", Target: "1.1", Rollout: &images.Rollout{Tag: "1.1", Outcome: images.RolloutProgressing, Started: at}}, ui.ImageRollingOut, "1.1", ""},
		{"rolled out", agent.ImagePolicySyncStatus{InGit: "1.1", Running: "1.1", Target: "1.1", Rollout: &images.Rollout{Tag: "1.1", Outcome: images.RolloutSucceeded, Finished: at}}, ui.ImageRolledOut, "1.1", ""},
		{"rollout failed", agent.ImagePolicySyncStatus{InGit: "1.1", Running: "1.0", Target: "1.1", Rollout: &images.Rollout{Tag: "1.1", Outcome: images.RolloutFailed, Message: "pods crash", Finished: at}}, ui.ImageRolloutFailed, "1.1", "pods crash"},
		{"held", agent.ImagePolicySyncStatus{InGit: "1.0", Running: "1.0", Hold: &images.Hold{Tag: "1.0", From: "1.1", Location: "app/deploy.yaml:20", At: at}}, ui.ImageHeld, "1.0", "rolled back by hand from 1.1 to 1.0 (app/deploy.yaml:20)"},
		{"cannot move", agent.ImagePolicySyncStatus{InGit: "1.0", Running: "1.0", Reason: "no tag matches the policy"}, ui.ImageStuck, "1.0", "no tag matches the policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := imageUpdate(p, tc.ps)
			if u.State != tc.want || u.To != tc.to || u.Detail != tc.detail || u.Image != "reg/web" || u.Policy != "web" {
				t.Errorf("got %+v, want state %q, to %q, detail %q", u, tc.want, tc.to, tc.detail)
			}
			if !slices.Contains(imageStatesOnPage(), u.State) {
				t.Errorf("state %q is not one the page knows", u.State)
			}
		})
	}
}

// imageStatesOnPage are the states ui defines.
func imageStatesOnPage() []ui.ImageState {
	return []ui.ImageState{ui.ImageUpToDate, ui.ImagePending, ui.ImageCommitted, ui.ImageRollingOut, ui.ImageRolledOut, ui.ImageRolloutFailed, ui.ImageHeld, ui.ImageStuck}
}

// allowAll is a reviewer that takes one token and lets it read every
// sync.
type allowAll struct{}

func (allowAll) Authenticate(_ context.Context, token string) (ui.User, error) {
	if token != "t" {
		return ui.User{}, ui.ErrInvalidToken
	}
	return ui.User{Name: "admin"}, nil
}

func (allowAll) CanRead(context.Context, ui.User, string, string) (bool, error) { return true, nil }

// noObjects is a source with no inventories.
type noObjects struct{}

func (noObjects) Sync(context.Context, string, string) (*ui.SyncDetail, error) {
	return &ui.SyncDetail{}, nil
}

func (noObjects) Owners(context.Context, string, object.ObjMetadata) ([]inventory.Owner, error) {
	return nil, nil
}

func (noObjects) Object(_ context.Context, id object.ObjMetadata) (*ui.ObjectDetail, error) {
	return &ui.ObjectDetail{ID: id}, nil
}

// The overview as agentExtras fills it: an up-to-date image is not
// pending, a newer tag is; a sync without drift says none, one that
// applied nothing yet says drift is not tracked yet.
func TestOverviewWithAgentExtras(t *testing.T) {
	applied := &agent.RevisionStatus{Revision: "main@sha1:1111111111111111111111111111111111111111"}
	st := agent.Status{Leader: true, InventoryNamespace: "tether-system", Syncs: []agent.SyncStatus{
		{Name: "calm", Applied: applied},
		{Name: "moving", Applied: applied, Drift: []agent.DriftStatus{{Object: "Deployment.apps/app/web", ID: webDeploy, Fields: []string{"spec.replicas: 2 → 3 by kubectl (Update, scale)"}}}},
		{Name: "fresh"},
	}, Images: &agent.ImagesStatus{Policies: []agent.ImagePolicyStatus{{Name: "web", Image: "reg/web", Latest: "1.1", Syncs: []agent.ImagePolicySyncStatus{
		{Sync: "calm", InGit: "1.1", Running: "1.1", Target: "1.1"},
		{Sync: "moving", InGit: "1.0", Running: "1.0", Target: "1.1"},
	}}}}}
	page, err := ui.New(ui.Options{Status: func() agent.Status { return st }, Source: noObjects{}, Reviewer: allowAll{}, Extras: agentExtras{}})
	if err != nil {
		t.Fatal(err)
	}
	defer page.Close()
	req := httptest.NewRequest(http.MethodGet, "/ui/", nil)
	req.Header.Set("Authorization", "Bearer t")
	rec := httptest.NewRecorder()
	page.Handler().ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Result().Body)
	if rec.Code != 200 {
		t.Fatalf("status %d:\n%s", rec.Code, body)
	}
	cells := map[string]string{}
	cell := regexp.MustCompile(`(?s)<td data-label="(Drift|Images)">(.*?)</td>`)
	for _, tr := range strings.Split(string(body), "<tr>")[1:] {
		name := regexp.MustCompile(`href="syncs/([a-z]+)"`).FindStringSubmatch(tr)
		if name == nil {
			continue
		}
		for _, m := range cell.FindAllStringSubmatch(tr, -1) {
			text := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(m[2], " ")
			cells[name[1]+" "+m[1]] = strings.Join(strings.Fields(text), " ")
		}
	}
	for key, want := range map[string]string{
		"calm Images":   "up to date",
		"calm Drift":    "none",
		"moving Images": "1 pending",
		"moving Drift":  "1 object drifted 1 field",
		"fresh Drift":   "not tracked yet",
		"fresh Images":  "no image policy",
	} {
		if cells[key] != want {
			t.Errorf("%s: %q, want %q", key, cells[key], want)
		}
	}
}
