//go:build benchtmp

package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tether-gitops/tether/e2e/cluster"
)

func TestTmpLive(t *testing.T) {
	ctx := context.Background()
	work, _ := os.MkdirTemp("/tmp/b2", "work-")
	t.Log("work", work)
	c, err := cluster.Start(ctx, cluster.Options{BinDir: "/tmp/b2/bin", Dir: filepath.Join(work, "cluster"), Audit: true, Log: prefixWriter{w: os.Stdout, prefix: "bench: "}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	b := &bench{cluster: c, audit: &auditLog{path: c.AuditLog}, binDir: "/tmp/b2/bin", work: work, cliMode: "off", out: os.Stdout}
	if err := b.setup(ctx, "../manifests/rbac.yaml"); err != nil {
		t.Fatal(err)
	}
	a := b.agentLive(ctx)
	liveTargets(os.Stdout, &a)
	a.report(os.Stdout)
	if a.err != nil || a.drift.err != nil {
		t.Fatal(a.err, a.drift.err)
	}
}
