package agent

import (
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/inventory"
	"github.com/tether-gitops/tether/kube"
)

// Event types and reasons tether records. Users filter on the reasons
// (kubectl get events --field-selector reason=ReconcileFailed).
const (
	eventNormal  = corev1.EventTypeNormal
	eventWarning = corev1.EventTypeWarning

	reasonApplied        = "Applied"
	reasonPruned         = "Pruned"
	reasonFailed         = "ReconcileFailed"
	reasonGuard          = "GuardRefused"
	reasonConfigRejected = "ConfigRejected"
)

// newRecorder records events through client-go's broadcaster, whose
// correlator aggregates repeats and rate-limits each object (a burst of 25,
// then one per five minutes), so a sync failing every few seconds does not
// flood the API server.
func newRecorder(clients *kube.Clients, log *slog.Logger) (record.EventRecorder, func()) {
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: clients.Typed.CoreV1().Events("")})
	b.StartEventWatcher(func(e *corev1.Event) {
		log.Debug("event", "reason", e.Reason, "object", e.InvolvedObject.Namespace+"/"+e.InvolvedObject.Name, "message", e.Message)
	})
	return b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: contract.FieldManager}), b.Shutdown
}

// event records an event on the sync's inventory ConfigMap, where
// `kubectl describe configmap tether-inventory-NAME` shows it.
func (a *Agent) event(s config.Sync, eventType, reason, format string, args ...any) {
	ref := &corev1.ObjectReference{
		APIVersion: "v1",
		Kind:       "ConfigMap",
		Namespace:  a.invNamespace,
		Name:       inventory.ConfigMapName(s.Name),
	}
	a.events.Event(ref, eventType, reason, truncate(fmt.Sprintf(format, args...)))
}

// agentEvent records an event about the agent itself, on its lease.
func (a *Agent) agentEvent(eventType, reason, format string, args ...any) {
	ref := &corev1.ObjectReference{
		APIVersion: "coordination.k8s.io/v1",
		Kind:       "Lease",
		Namespace:  a.opts.Namespace,
		Name:       a.opts.LeaseName,
	}
	a.events.Event(ref, eventType, reason, truncate(fmt.Sprintf(format, args...)))
}

// truncate keeps event messages within the API server's 1 KiB-ish limit
// for notes.
func truncate(s string) string {
	const max = 1000
	if len(s) <= max {
		return s
	}
	return s[:max-3] + "..."
}
