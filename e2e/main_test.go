//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tether-gitops/tether/e2e/cluster"
)

// shared is one control plane for every test in the package that does not
// need its own; tests keep out of each other's way with their own
// namespaces and names.
var shared struct {
	once sync.Once
	c    *cluster.Cluster
	err  error
}

// sharedCluster starts the package's control plane on first use.
func sharedCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.c, shared.err = cluster.Start(ctx, cluster.Options{})
	})
	if shared.err != nil {
		t.Fatalf("starting the shared control plane: %v", shared.err)
	}
	if err := shared.c.Failed(); err != nil {
		t.Fatalf("shared control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", shared.c.Logs(10))
		}
	})
	return shared.c
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		shared.c.Stop()
	}
	if code != 0 {
		fmt.Fprintln(os.Stderr, "e2e: some tests failed")
	}
	os.Exit(code)
}
