package main

import (
	"context"
	"strings"
	"time"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/images"
	"github.com/tether-gitops/tether/ui"
)

// agentExtras fills the web page's drift and image sections from the
// agent's status.
type agentExtras struct{}

// Extras returns the open drift and the image updates of sync, from the
// agent's status st. Drift is nil (unknown) until the sync has applied a
// revision: only then does the agent follow its objects.
func (e agentExtras) Extras(_ context.Context, st *agent.Status, sync string) ui.Extras {
	var out ui.Extras
	for _, s := range st.Syncs {
		if s.Name != sync || s.Applied == nil {
			continue
		}
		out.Drift = []ui.Drift{}
		for _, d := range s.Drift {
			if d.Deleted {
				out.Drift = append(out.Drift, ui.Drift{Object: d.ID, Deleted: true, Manager: d.Managers, Since: d.Since})
			}
			for _, f := range d.Fields {
				fd := parseDriftField(f)
				fd.Object, fd.Since = d.ID, d.Since
				if fd.Manager == "" {
					fd.Manager = d.Managers
				}
				out.Drift = append(out.Drift, fd)
			}
		}
	}
	if st.Images == nil {
		return out
	}
	for _, p := range st.Images.Policies {
		for _, ps := range p.Syncs {
			if ps.Sync == sync {
				out.Images = append(out.Images, imageUpdate(p, ps))
			}
		}
	}
	return out
}

// parseDriftField reads one of agent.DriftStatus.Fields, as
// sync.FieldChange.String writes it: "path: git → live by managers at
// 15:04:05", or "path: git removed" when the field is gone.
func parseDriftField(f string) ui.Drift {
	var d ui.Drift
	path, rest, ok := strings.Cut(f, ": ")
	if !ok {
		d.Path = f
		return d
	}
	d.Path = path
	if i := strings.LastIndex(rest, " at "); i >= 0 {
		if _, err := time.Parse("15:04:05", rest[i+len(" at "):]); err == nil {
			rest = rest[:i]
		}
	}
	if i := strings.LastIndex(rest, " by "); i >= 0 && !strings.HasSuffix(rest, " removed") {
		rest, d.Manager = rest[:i], rest[i+len(" by "):]
	}
	if git, live, ok := strings.Cut(rest, " → "); ok {
		d.Git, d.Live = git, live
	} else {
		d.Git, d.Removed = strings.TrimSuffix(rest, " removed"), true
	}
	return d
}

// imageUpdate says where policy p stands in one sync, in the page's
// states: a hold or the newest rollout first, then whether the policy
// can move at all, then how far its tag got (git, the workloads).
func imageUpdate(p agent.ImagePolicyStatus, ps agent.ImagePolicySyncStatus) ui.ImageUpdate {
	u := ui.ImageUpdate{Image: p.Image, Policy: p.Name, From: ps.Running, To: ps.Target}
	if u.To == "" {
		u.To = ps.InGit
	}
	r := ps.Rollout
	switch {
	case ps.Hold != nil:
		u.State, u.At = ui.ImageHeld, ps.Hold.At
		u.Detail = "rolled back by hand from " + ps.Hold.From + " to " + ps.Hold.Tag + " (" + ps.Hold.Location + ")"
	case r != nil && r.Outcome == images.RolloutProgressing:
		u.State, u.At, u.To = ui.ImageRollingOut, r.Started, r.Tag
	case r != nil && r.Outcome == images.RolloutFailed:
		u.State, u.At, u.To, u.Detail = ui.ImageRolloutFailed, r.Finished, r.Tag, r.Message
	case ps.Target == "" && ps.Reason != "":
		u.State, u.Detail = ui.ImageStuck, ps.Reason
	case u.To != "" && (ps.Running == u.To || ps.Running == "" && ps.InGit == u.To):
		// Git holds the tag, and every workload that reports the image
		// runs it (or none reports it).
		u.State = ui.ImageUpToDate
		if r != nil && r.Outcome == images.RolloutSucceeded && r.Tag == u.To {
			u.State, u.At = ui.ImageRolledOut, r.Finished
		}
	case ps.InGit == u.To || ps.LastWritten != nil && ps.LastWritten.Tag == u.To:
		u.State = ui.ImageCommitted
		if w := ps.LastWritten; w != nil && w.Tag == u.To {
			u.At = w.At
		}
	default:
		u.State = ui.ImagePending
	}
	return u
}
