package metrics

import "github.com/tether-gitops/tether/health"

// SyncHealth sets a sync's health outside a reconcile: when the agent
// recomputes it from the live-state cache after an object changed.
func (m *Metrics) SyncHealth(sync string, status health.Status) {
	m.setHealth(sync, status)
}
