package cluster

import (
	"context"
	"testing"
	"time"
)

// StartT starts a control plane for a test and stops it when the test ends,
// including when it fails or panics. On failure it logs the processes' last
// log lines.
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", c.Logs(15))
		}
		c.Stop()
	})
	return c
}
