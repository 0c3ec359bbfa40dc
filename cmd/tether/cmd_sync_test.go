package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/sync"
)

// A reconcile that failed before its plan (here: the inventory could not
// be read) prints its summary and the phase, not a line per rendered
// object it never planned.
func TestSummaryOfAReconcileThatFailedBeforeThePlan(t *testing.T) {
	cm := object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "ConfigMap"}, Namespace: "app", Name: "a"}
	res := &sync.Result{
		Sync: "web", Revision: "main@sha1:1", Phase: "inventory",
		Err:     errors.New("loading inventory: connection refused"),
		Changes: []*sync.Change{{}, {}, {ID: cm, Action: sync.ActionCreate}},
	}
	var out bytes.Buffer
	printSummary(&out, res)
	got := out.String()
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		if strings.TrimSpace(line) == "/" || strings.HasPrefix(line, "  ") && strings.HasSuffix(line, "/") {
			t.Errorf("a line for an unplanned object: %q", line)
		}
	}
	if !strings.Contains(got, "create     ConfigMap/app/a") || !strings.Contains(got, "failed in phase inventory") {
		t.Errorf("summary:\n%s", got)
	}
}
