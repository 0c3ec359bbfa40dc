package main

import (
	"context"
	"testing"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/images"
)

func TestAgentExtras(t *testing.T) {
	st := &agent.Status{
		Syncs: []agent.SyncStatus{
			{Name: "other", Drift: []agent.DriftStatus{{Object: "ConfigMap/app/x", Deleted: true}}},
			{Name: "web", Drift: []agent.DriftStatus{{
				Object:   "Deployment.apps/app/web",
				Fields:   []string{"spec.template.spec.containers[name=app].image: web:1.0 → web:hotfix by kubectl-set (Update) at 14:02:11"},
				Managers: "kubectl-set",
			}}},
		},
		Images: &agent.ImagesStatus{Policies: []agent.ImagePolicyStatus{{
			Name: "web", Image: "reg/web",
			Syncs: []agent.ImagePolicySyncStatus{
				{Sync: "web", InGit: "1.0", Running: "1.0", Target: "1.1", Rollout: &images.Rollout{Outcome: images.RolloutFailed}},
				{Sync: "other", InGit: "2.0"},
			},
		}}},
	}
	ex := agentExtras{}.Extras(context.Background(), st, "web")
	if len(ex.Drift) != 1 || ex.Drift[0].Field != "spec.template.spec.containers[name=app].image: web:1.0 → web:hotfix" || ex.Drift[0].Manager != "kubectl-set" {
		t.Errorf("drift %+v, want the field without its managers, and the managers apart", ex.Drift)
	}
	if len(ex.Images) != 1 || ex.Images[0].From != "1.0" || ex.Images[0].To != "1.1" || ex.Images[0].State != "rollout Failed" {
		t.Errorf("images %+v", ex.Images)
	}
	if ex := (agentExtras{}).Extras(context.Background(), &agent.Status{}, "web"); ex.Drift == nil || ex.Images != nil {
		t.Errorf("without image automation: %+v, want drift tracked (empty) and no image section", ex)
	}
}
