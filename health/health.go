// Package health turns live objects into health verdicts. Object health comes
// from kstatus (sigs.k8s.io/cli-utils/pkg/kstatus), the same rules kubectl,
// kpt and Flux use, plus per-kind rules where kstatus is not enough; a sync's
// health is the worst of its objects'. Everything here is a pure function of
// its inputs except Wait, which polls through a reader the caller supplies.
package health

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/cli-utils/pkg/object"
)

// Status is the health of an object or a sync.
type Status string

// The statuses, from best to worst.
const (
	// Healthy: the object reached the state its spec asks for (kstatus
	// Current).
	Healthy Status = "Healthy"
	// Progressing: the object is on its way (kstatus InProgress,
	// Terminating or Unknown, or a custom resource in its grace period).
	Progressing Status = "Progressing"
	// Degraded: the object's controller reports failure (kstatus Failed).
	Degraded Status = "Degraded"
	// Failed: the object is missing although it was just applied, or its
	// status cannot be read.
	Failed Status = "Failed"
)

// rank orders statuses from best (0) to worst.
func rank(s Status) int {
	switch s {
	case Healthy:
		return 0
	case Progressing:
		return 1
	case Degraded:
		return 2
	}
	return 3
}

// Worse reports whether a is worse than b.
func Worse(a, b Status) bool { return rank(a) > rank(b) }

// Result is an object's health with the reason.
type Result struct {
	Status  Status
	Message string
}

// CustomResourceGrace is how long a custom resource without status
// conditions counts as Progressing after it was applied: its controller
// may not have written any status yet.
const CustomResourceGrace = 10 * time.Second

// Object computes the health of a live object. obj nil means it was not
// found although it should exist. appliedAt is when tether just applied it
// (zero if it did not); now is the current time.
func Object(obj *unstructured.Unstructured, appliedAt, now time.Time) Result {
	if obj == nil {
		if !appliedAt.IsZero() {
			return Result{Status: Failed, Message: "not found after apply"}
		}
		return Result{Status: Failed, Message: "not found"}
	}
	if rule := ruleFor(obj.GroupVersionKind().GroupKind().String()); rule != nil {
		if r, decided := rule(obj); decided {
			return r
		}
	}
	res, err := status.Compute(obj)
	if err != nil {
		return Result{Status: Failed, Message: fmt.Sprintf("cannot compute status: %v", err)}
	}
	r := fromKstatus(res)
	if r.Status == Healthy && isCustomResource(obj) && !hasConditions(obj) && !appliedAt.IsZero() && now.Sub(appliedAt) < CustomResourceGrace {
		return Result{Status: Progressing, Message: "custom resource without status conditions: waiting for its controller"}
	}
	return r
}

func fromKstatus(res *status.Result) Result {
	msg := res.Message
	switch res.Status {
	case status.CurrentStatus:
		return Result{Status: Healthy, Message: msg}
	case status.FailedStatus:
		return Result{Status: Degraded, Message: msg}
	case status.NotFoundStatus:
		return Result{Status: Failed, Message: "not found"}
	case status.TerminatingStatus:
		return Result{Status: Progressing, Message: "terminating: " + msg}
	case status.InProgressStatus:
		return Result{Status: Progressing, Message: msg}
	}
	return Result{Status: Progressing, Message: "unknown status: " + msg}
}

// isCustomResource tells custom resources from built-in ones by API group:
// CRD groups must contain a dot, and groups under k8s.io are reserved for
// Kubernetes itself.
func isCustomResource(obj *unstructured.Unstructured) bool {
	g := obj.GroupVersionKind().Group
	return strings.Contains(g, ".") && g != "k8s.io" && !strings.HasSuffix(g, ".k8s.io")
}

func hasConditions(obj *unstructured.Unstructured) bool {
	conds, found, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	return found && len(conds) > 0
}

// Summary is the health of a set of objects.
type Summary struct {
	// Status is the worst object status (Healthy for an empty set).
	Status Status
	// Counts is the number of objects per status.
	Counts map[Status]int
	// Unhealthy holds the objects that are not Healthy.
	Unhealthy map[object.ObjMetadata]Result
}

// Summarize folds object results into a sync's health.
func Summarize(results map[object.ObjMetadata]Result) Summary {
	s := Summary{Status: Healthy, Counts: map[Status]int{}, Unhealthy: map[object.ObjMetadata]Result{}}
	for id, r := range results {
		s.Counts[r.Status]++
		if r.Status != Healthy {
			s.Unhealthy[id] = r
		}
		if Worse(r.Status, s.Status) {
			s.Status = r.Status
		}
	}
	return s
}
