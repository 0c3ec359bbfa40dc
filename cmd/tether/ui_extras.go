package main

import (
	"context"
	"strings"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/ui"
)

// agentExtras fills the web page's drift and image sections from the
// agent's status.
type agentExtras struct{}

// Extras returns the open drift and the image updates of sync, from the
// agent's status st.
func (e agentExtras) Extras(_ context.Context, st *agent.Status, sync string) ui.Extras {
	out := ui.Extras{Drift: []ui.Drift{}}
	for _, s := range st.Syncs {
		if s.Name != sync {
			continue
		}
		for _, d := range s.Drift {
			if d.Deleted {
				out.Drift = append(out.Drift, ui.Drift{Object: d.ID, Field: "deleted", Since: d.Since})
			}
			for _, f := range d.Fields {
				// "path: git → cluster by manager (Operation) at time": the
				// page shows the managers in a column of their own.
				if i := strings.LastIndex(f, " by "); i > 0 {
					f = f[:i]
				}
				out.Drift = append(out.Drift, ui.Drift{Object: d.ID, Field: f, Manager: d.Managers, Since: d.Since})
			}
		}
	}
	if st.Images == nil {
		return out
	}
	for _, p := range st.Images.Policies {
		for _, ps := range p.Syncs {
			if ps.Sync != sync {
				continue
			}
			u := ui.ImageUpdate{Image: p.Image, Policy: p.Name, From: ps.Running, To: ps.Target, State: "up to date"}
			if u.To == "" {
				u.To = ps.InGit
			}
			switch {
			case ps.Hold != nil:
				u.State, u.At = "held after a manual rollback to "+ps.Hold.Tag, ps.Hold.At
			case ps.Rollout != nil && ps.Rollout.Outcome != "":
				u.State, u.At = "rollout "+ps.Rollout.Outcome, ps.Rollout.Started
			case ps.LastWritten != nil:
				u.State, u.At = "committed "+ps.LastWritten.Tag, ps.LastWritten.At
			}
			if ps.Reason != "" && ps.Hold == nil {
				u.State += " (" + ps.Reason + ")"
			}
			out.Images = append(out.Images, u)
		}
	}
	return out
}
