package agent

import (
	"slices"
	"sort"
	"time"

	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/metrics"
	"github.com/tether-gitops/tether/source"
	tsync "github.com/tether-gitops/tether/sync"
)

// Status is what /status serves: the agent and every sync it runs.
type Status struct {
	// Identity names this process in leader election.
	Identity string `json:"identity"`
	// Leader is true while this process holds the lease and runs syncs;
	// a standby reports the syncs it would run, without progress.
	Leader bool `json:"leader"`
	// Version is tether's version.
	Version string `json:"version"`
	// ConfigFile is the configuration file.
	ConfigFile string `json:"configFile"`
	// ConfigError is why the newest configuration was rejected (the
	// previous one keeps running); empty when it was accepted.
	ConfigError string `json:"configError,omitempty"`
	// ConfigLoadedAt is when the running configuration was loaded.
	ConfigLoadedAt time.Time `json:"configLoadedAt"`
	// InventoryNamespace holds the syncs' inventory ConfigMaps (empty
	// until the configuration is loaded).
	InventoryNamespace string `json:"inventoryNamespace,omitempty"`
	// Syncs holds one entry per configured sync, sorted by name.
	Syncs []SyncStatus `json:"syncs"`
	// Images is the image automation (images_status.go); absent when no
	// image policy is configured.
	Images *ImagesStatus `json:"images,omitempty"`
}

// SyncStatus is the state of one sync.
type SyncStatus struct {
	Name string `json:"name"`
	// Source is the repository URL (credentials redacted) or folder.
	Source string `json:"source"`
	// Ref is the ref followed (git only).
	Ref string `json:"ref,omitempty"`
	// Path is the folder rendered.
	Path string `json:"path"`
	// Suspended syncs are configured but not reconciled.
	Suspended bool `json:"suspended,omitempty"`
	// Fetched is the newest revision fetched.
	Fetched *RevisionStatus `json:"fetched,omitempty"`
	// Applied is the newest revision applied in full.
	Applied *RevisionStatus `json:"applied,omitempty"`
	// LastAttempt is the newest reconcile.
	LastAttempt *Attempt `json:"lastAttempt,omitempty"`
	// History holds the newest reconciles that did work (at most
	// HistorySize, newest first); polls that found nothing to do
	// (outcome skipped) are left out, so they cannot push real attempts
	// out.
	History []Attempt `json:"history,omitempty"`
	// ConsecutiveFailures counts failed reconciles since the last success.
	ConsecutiveFailures int `json:"consecutiveFailures"`
	// NextAttempt is when the next reconcile is due (sooner on a trigger).
	NextAttempt time.Time `json:"nextAttempt,omitempty"`
	// Health is the sync's health after its newest reconcile that got that
	// far: Healthy, Progressing, Degraded or Failed.
	Health health.Status `json:"health,omitempty"`
	// Unhealthy lists each object that is not Healthy.
	Unhealthy []ObjectHealth `json:"unhealthy,omitempty"`
	// Drift lists the objects changed in the cluster since tether applied
	// them, while the drift is open (not yet corrected, or kept by the
	// policy warn).
	Drift []DriftStatus `json:"drift,omitempty"`
	// Live says where the sync's live state (health, drift, the "nothing
	// changed" check) comes from: watches, or polling and why; absent
	// until the sync has applied once.
	Live *LiveStatus `json:"live,omitempty"`
	// Objects is the number of objects the sync renders.
	Objects int `json:"objects"`
}

// RevisionStatus is a revision with its commit.
type RevisionStatus struct {
	Revision string    `json:"revision"`
	Commit   *Commit   `json:"commit,omitempty"`
	At       time.Time `json:"at"`
}

// Commit is the commit metadata of a git revision.
type Commit struct {
	Hash    string    `json:"hash"`
	Author  string    `json:"author"`
	Subject string    `json:"subject"`
	Time    time.Time `json:"time"`
}

// Attempt is one reconcile.
type Attempt struct {
	At       time.Time `json:"at"`
	Duration string    `json:"duration"`
	// Outcome is success, failure or skipped (unchanged revision, nothing
	// drifted).
	Outcome string `json:"outcome"`
	// Revision is the revision it worked on.
	Revision string `json:"revision,omitempty"`
	// Phase is the phase that failed.
	Phase string `json:"phase,omitempty"`
	// Error is why it failed.
	Error string `json:"error,omitempty"`
	// Counts is the number of objects per action.
	Counts map[string]int `json:"counts,omitempty"`
	// Writes is the number of writes it sent.
	Writes int64 `json:"writes"`
	// Phases is how long each phase that ran took, in the order they ran.
	Phases []PhaseTiming `json:"phases,omitempty"`
}

// PhaseTiming is how long one phase of a reconcile took.
type PhaseTiming struct {
	Phase    string `json:"phase"`
	Duration string `json:"duration"`
}

// HistorySize bounds SyncStatus.History.
const HistorySize = 10

// ObjectHealth is an object that is not Healthy.
type ObjectHealth struct {
	Object  string        `json:"object"`
	Status  health.Status `json:"status"`
	Message string        `json:"message"`
}

// Failing reports whether the sync's newest reconcile failed or its
// objects are Degraded or Failed.
func (s SyncStatus) Failing() bool {
	if s.LastAttempt != nil && s.LastAttempt.Outcome == metrics.OutcomeFailure {
		return true
	}
	return s.Health == health.Degraded || s.Health == health.Failed
}

func commitOf(a *source.Artifact) *Commit {
	if a == nil || a.Commit.Hash == "" {
		return nil
	}
	return &Commit{Hash: a.Commit.Hash, Author: a.Commit.Author, Subject: a.Commit.Subject, Time: a.Commit.Time}
}

func countsOf(res *tsync.Result) map[string]int {
	if res == nil {
		return nil
	}
	out := map[string]int{}
	for a, n := range res.Counts() {
		out[string(a)] = n
	}
	return out
}

// phasesOf lists the phase durations of a reconcile in the order the
// phases ran; phases this list does not know come last, by name.
func phasesOf(res *tsync.Result) []PhaseTiming {
	if res == nil || len(res.Phases) == 0 {
		return nil
	}
	// The order in which sync.Reconcile runs its timed phases.
	phaseOrder := []string{"build", "plan", "apply", "prune", "health"}
	names := make([]string, 0, len(res.Phases))
	for p := range res.Phases {
		if !slices.Contains(phaseOrder, p) {
			names = append(names, p)
		}
	}
	sort.Strings(names)
	var out []PhaseTiming
	for _, p := range append(phaseOrder, names...) {
		if d, ok := res.Phases[p]; ok {
			out = append(out, PhaseTiming{Phase: p, Duration: d.Round(time.Millisecond).String()})
		}
	}
	return out
}

// withAttempt returns history with a prepended, at most HistorySize long.
// It never modifies history: snapshots handed out earlier share it.
func withAttempt(history []Attempt, a Attempt) []Attempt {
	out := make([]Attempt, 0, min(len(history)+1, HistorySize))
	out = append(out, a)
	return append(out, history[:min(len(history), HistorySize-1)]...)
}

func unhealthyOf(res *tsync.Result) []ObjectHealth {
	var out []ObjectHealth
	for id, h := range health.Summarize(res.Health).Unhealthy {
		out = append(out, ObjectHealth{Object: contract.ObjectRef(id), Status: h.Status, Message: h.Message})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Object < out[j].Object })
	return out
}

// DriftStatus is one object whose drift is open.
type DriftStatus struct {
	Object string `json:"object"`
	// ID is the object (for the web page; Object is its text form).
	ID object.ObjMetadata `json:"-"`
	// Policy is what tether does about it: correct, warn.
	Policy string `json:"policy"`
	// Deleted is set when the object was deleted.
	Deleted bool `json:"deleted,omitempty"`
	// Fields lists each changed field: "path: desired → live by manager
	// (Operation) at time".
	Fields []string `json:"fields,omitempty"`
	// Managers are the field managers that changed it, comma-separated.
	Managers string `json:"managers,omitempty"`
	// Since is when the drift was first seen.
	Since time.Time `json:"since"`
	// Corrected is when tether last put it back.
	Corrected *time.Time `json:"corrected,omitempty"`
	// CorrectionError is why the last correction failed.
	CorrectionError string `json:"correctionError,omitempty"`
}

// Sources of a sync's live state (LiveStatus.Source).
const (
	// LiveWatch: every watch of the sync streams changes; an unchanged
	// revision costs no request, drift is found as it happens.
	LiveWatch = "watch"
	// LivePolling: the agent lists the sync's objects each interval
	// instead (a watch is refused, or has not listed yet).
	LivePolling = "polling"
)

// LiveStatus says where a sync's live state comes from.
type LiveStatus struct {
	// Source is LiveWatch or LivePolling.
	Source string `json:"source"`
	// Reason says why the agent polls.
	Reason string `json:"reason,omitempty"`
	// Refused is what the API server refuses, when that is why.
	Refused *Refusal `json:"refused,omitempty"`
	// Watches holds the sync's watches, one per resource and namespace.
	Watches []WatchStatus `json:"watches,omitempty"`
}

// Refusal is a request the API server refuses the agent.
type Refusal struct {
	// Verb is list or watch.
	Verb string `json:"verb"`
	// Resource is the resource and namespace: "deployments.apps/v1 in web".
	Resource string `json:"resource"`
	// Error is the API server's answer.
	Error string `json:"error"`
}

// WatchStatus is one watch of a sync.
type WatchStatus struct {
	// Resource is the resource and namespace watched.
	Resource string `json:"resource"`
	// Listed is set once the watch has done its first list.
	Listed bool `json:"listed"`
	// Since is when the watch last (re)connected.
	Since *time.Time `json:"since,omitempty"`
	// Refused is the verb the API server refuses, if any.
	Refused string `json:"refused,omitempty"`
}
