package ui

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/metrics"
)

// The states of a sync on the overview, worst first; each is shown as text
// and colour.
const (
	StateFailing     = "Failing"
	StateFailed      = "Failed"
	StateDegraded    = "Degraded"
	StateProgressing = "Progressing"
	StatePending     = "Pending"
	StateSuspended   = "Suspended"
	StateHealthy     = "Healthy"
)

// states lists the states in order of severity, for sorting and the
// filter's choices.
func states() []string {
	return []string{StateFailing, StateFailed, StateDegraded, StateProgressing, StatePending, StateSuspended, StateHealthy}
}

// syncState is the one word the overview shows for a sync: Suspended,
// Pending (no attempt yet), Failing (its last reconcile failed), else its
// health.
func syncState(s agent.SyncStatus) string {
	switch {
	case s.Suspended:
		return StateSuspended
	case s.LastAttempt == nil:
		return StatePending
	case s.LastAttempt.Outcome == metrics.OutcomeFailure:
		return StateFailing
	case s.Health == "":
		return StatePending
	}
	return string(s.Health)
}

// stateClass is the CSS class of a state or health word; unknown words get
// a neutral class. The result is always one of a fixed set.
func stateClass(state string) string {
	switch state {
	case StateHealthy, metrics.OutcomeSuccess:
		return "st-ok"
	case StateProgressing, StatePending, metrics.OutcomeSkipped:
		return "st-wait"
	case StateFailing, StateFailed, StateDegraded, metrics.OutcomeFailure:
		return "st-bad"
	case StateSuspended:
		return "st-off"
	}
	return "st-none"
}

// listQuery is the overview's sorting and filtering, from the query string,
// so it works without JavaScript and can be shared as a link.
type listQuery struct {
	// Q keeps syncs whose name contains it (case-insensitive).
	Q string
	// State keeps syncs in this state ("" for all).
	State string
	// Sort is name, state, applied or attempt.
	Sort string
	// Desc reverses the order.
	Desc bool
}

// sortKeys are the accepted values of listQuery.Sort.
func sortKeys() []string { return []string{"name", "state", "applied", "attempt"} }

// parseListQuery reads the query; unknown values fall back to defaults.
func parseListQuery(v url.Values) listQuery {
	q := listQuery{Q: strings.TrimSpace(v.Get("q")), State: v.Get("state"), Sort: v.Get("sort"), Desc: v.Get("dir") == "desc"}
	if !slices.Contains(states(), q.State) {
		q.State = ""
	}
	if !slices.Contains(sortKeys(), q.Sort) {
		q.Sort = "name"
	}
	if len(q.Q) > 253 {
		q.Q = q.Q[:253]
	}
	return q
}

// link returns the query string that sorts by key: the same key again
// flips the direction; filters are kept.
func (q listQuery) link(key string) string {
	v := url.Values{}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if q.State != "" {
		v.Set("state", q.State)
	}
	v.Set("sort", key)
	if key == q.Sort && !q.Desc {
		v.Set("dir", "desc")
	}
	return "?" + v.Encode()
}

// apply filters and sorts syncs (a copy).
func (q listQuery) apply(syncs []agent.SyncStatus) []agent.SyncStatus {
	var out []agent.SyncStatus
	for _, s := range syncs {
		if q.Q != "" && !strings.Contains(strings.ToLower(s.Name), strings.ToLower(q.Q)) {
			continue
		}
		if q.State != "" && syncState(s) != q.State {
			continue
		}
		out = append(out, s)
	}
	rank := func(s agent.SyncStatus) int { return slices.Index(states(), syncState(s)) }
	slices.SortStableFunc(out, func(a, b agent.SyncStatus) int {
		var c int
		switch q.Sort {
		case "state":
			c = cmp.Compare(rank(a), rank(b))
		case "applied":
			c = revisionTime(a.Applied).Compare(revisionTime(b.Applied))
		case "attempt":
			c = attemptTime(a.LastAttempt).Compare(attemptTime(b.LastAttempt))
		}
		c = cmp.Or(c, cmp.Compare(a.Name, b.Name))
		if q.Desc {
			return -c
		}
		return c
	})
	return out
}

func revisionTime(r *agent.RevisionStatus) time.Time {
	if r == nil {
		return time.Time{}
	}
	return r.At
}

func attemptTime(a *agent.Attempt) time.Time {
	if a == nil {
		return time.Time{}
	}
	return a.At
}

// fingerprint identifies what the pages show of syncs: it changes when a
// revision is fetched or applied, an attempt that did work ends, the
// outcome, health or error changes, drift opens, changes or closes, or the
// image automation's state changes, and not on every poll that found
// nothing to do. The event stream compares it to tell the page to refresh.
func fingerprint(st agent.Status, syncs []agent.SyncStatus) string {
	type attempt struct {
		At                              time.Time
		Outcome, Revision, Phase, Error string
	}
	type view struct {
		Name, Fetched, Applied, Health string
		Suspended                      bool
		Last, Newest                   attempt
		Unhealthy                      []agent.ObjectHealth
		Objects, Failures              int
		Drift                          []agent.DriftStatus
	}
	// The image automation as a whole: its states change with scans and
	// write-backs, which the overview and the sync pages show.
	views := []any{st.Leader, st.ConfigError, st.Images}
	for _, s := range syncs {
		v := view{Name: s.Name, Health: string(s.Health), Suspended: s.Suspended, Unhealthy: s.Unhealthy, Objects: s.Objects, Failures: s.ConsecutiveFailures, Drift: s.Drift}
		if s.Fetched != nil {
			v.Fetched = s.Fetched.Revision
		}
		if s.Applied != nil {
			v.Applied = s.Applied.Revision
		}
		if a := s.LastAttempt; a != nil {
			v.Last = attempt{Outcome: a.Outcome, Revision: a.Revision, Phase: a.Phase, Error: a.Error}
		}
		if len(s.History) > 0 {
			a := s.History[0]
			v.Newest = attempt{At: a.At, Outcome: a.Outcome, Revision: a.Revision, Phase: a.Phase, Error: a.Error}
		}
		views = append(views, v)
	}
	data, _ := json.Marshal(views)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:12])
}

// shortRevision shortens "main@sha1:<40 hex>" to "main@<12 hex>".
func shortRevision(rev string) string {
	if ref, hash, ok := strings.Cut(rev, "@sha1:"); ok && len(hash) > 12 {
		return ref + "@" + hash[:12]
	}
	if ref, hash, ok := strings.Cut(rev, "@sha256:"); ok && len(hash) > 12 {
		return ref + "@" + hash[:12]
	}
	return rev
}

// ago says how long before now t was, coarsely: "12s ago", "5m ago",
// "3h ago", "4d ago"; "" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + coarse(-d)
	}
	return coarse(d) + " ago"
}

func coarse(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// objectPath is the path of an object's page below /ui/objects/: the
// object as contract.ObjectRef names it (Kind[.group]/namespace/name, or
// Kind[.group]/name when cluster-scoped), each segment escaped. A kind
// never contains a dot and a group never a slash, so the kind segment
// splits at its first dot, and the number of segments tells namespaced
// from cluster-scoped.
func objectPath(id object.ObjMetadata) string {
	parts := strings.Split(contract.ObjectRef(id), "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// parseObjectPath reads objectPath's output (already unescaped by the
// router).
func parseObjectPath(p string) (object.ObjMetadata, error) {
	parts := strings.Split(p, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return object.ObjMetadata{}, fmt.Errorf("%q: want KIND[.GROUP]/NAMESPACE/NAME or KIND[.GROUP]/NAME", p)
	}
	var id object.ObjMetadata
	id.GroupKind.Kind, id.GroupKind.Group, _ = strings.Cut(parts[0], ".")
	id.Name = parts[len(parts)-1]
	if len(parts) == 3 {
		id.Namespace = parts[1]
	}
	for _, s := range parts {
		if s == "" {
			return object.ObjMetadata{}, fmt.Errorf("%q: empty segment", p)
		}
	}
	if id.GroupKind.Kind == "" {
		return object.ObjMetadata{}, fmt.Errorf("%q: empty kind", p)
	}
	return id, nil
}
