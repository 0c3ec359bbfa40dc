package images

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/health"
)

// The rollout gate: after a sync applies a revision, the workloads whose
// container images moved to a new tag of a policy are followed until
// their rollout completes or fails, and the outcome is recorded.

// WorkloadResource is the resource of a workload kind the gate follows
// (apps/v1 Deployments, StatefulSets and DaemonSets).
func WorkloadResource(id object.ObjMetadata) (schema.GroupVersionResource, bool) {
	if id.GroupKind.Group != "apps" {
		return schema.GroupVersionResource{}, false
	}
	resource := ""
	switch id.GroupKind.Kind {
	case "Deployment":
		resource = "deployments"
	case "StatefulSet":
		resource = "statefulsets"
	case "DaemonSet":
		resource = "daemonsets"
	default:
		return schema.GroupVersionResource{}, false
	}
	return schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: resource}, true
}

// WorkloadImages returns the images of a workload's containers (init
// containers included) by container name; false for other kinds.
func WorkloadImages(obj *unstructured.Unstructured) (map[string]string, bool) {
	if obj == nil {
		return nil, false
	}
	if _, ok := WorkloadResource(object.UnstructuredToObjMetadata(obj)); !ok {
		return nil, false
	}
	out := map[string]string{}
	for _, field := range []string{"initContainers", "containers"} {
		list, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", field)
		for _, c := range list {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			name, _ := m["name"].(string)
			image, _ := m["image"].(string)
			if name != "" && image != "" {
				out[name] = image
			}
		}
	}
	return out, true
}

// ImageChange is a workload whose container moved to another tag of a
// policy's image.
type ImageChange struct {
	ID        object.ObjMetadata
	Container string
	Policy    string
	// Image is the new image (name:tag); From and Tag the old and new tag.
	Image     string
	From, Tag string
}

// Workload names the workload as every tether message does.
func (c ImageChange) Workload() string { return contract.ObjectRef(c.ID) }

// Changes compares the images of the workloads a revision applied with
// those the records hold, returns the changes to a new tag of a policy's
// image, and stores the new images in rec. applied is every workload of
// the revision: the records forget the others (pruned, renamed), so they
// never outgrow their ConfigMap. A workload seen for the first time is
// recorded, not followed: there is nothing to compare with.
func Changes(applied map[object.ObjMetadata]map[string]string, policies map[string]*Policy, rec *Records) []ImageChange {
	before := rec.Workloads
	rec.Workloads = make(map[string]map[string]string, len(applied))
	var out []ImageChange
	for id, images := range applied {
		ref := contract.ObjectRef(id)
		prev, known := before[ref]
		rec.Workloads[ref] = images
		if !known {
			continue
		}
		for container, image := range images {
			old := prev[container]
			if old == image || old == "" {
				continue
			}
			name, tag := SplitImage(image)
			oldName, oldTag := SplitImage(old)
			if tag == "" {
				continue
			}
			for _, p := range policies {
				if p.Image != name {
					continue
				}
				from := ""
				if oldName == name {
					from = oldTag
				}
				out = append(out, ImageChange{ID: id, Container: container, Policy: p.Name, Image: image, From: from, Tag: tag})
			}
		}
	}
	slices.SortFunc(out, func(a, b ImageChange) int {
		if c := compareStrings(a.Workload(), b.Workload()); c != 0 {
			return c
		}
		return compareStrings(a.Container+a.Policy, b.Container+b.Policy)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ParseWorkload reads back a workload named as contract.ObjectRef names it
// ("Deployment.apps/web/frontend"); false for anything the gate does not
// follow.
func ParseWorkload(ref string) (object.ObjMetadata, bool) {
	parts := strings.Split(ref, "/")
	if len(parts) != 3 {
		return object.ObjMetadata{}, false
	}
	kind, group, _ := strings.Cut(parts[0], ".")
	id := object.ObjMetadata{GroupKind: schema.GroupKind{Group: group, Kind: kind}, Namespace: parts[1], Name: parts[2]}
	_, ok := WorkloadResource(id)
	return id, ok
}

// Getter reads a live object (nil, nil when it does not exist).
type Getter interface {
	Get(ctx context.Context, id object.ObjMetadata) (*unstructured.Unstructured, error)
}

// Follow polls a workload until its rollout to image completes (kstatus
// Current: observedGeneration caught up, every replica updated and
// available), fails (kstatus Failed: a Deployment's
// ProgressDeadlineExceeded) or timeout passes. It returns the outcome
// (RolloutSucceeded, RolloutFailed, RolloutSuperseded when the workload
// was deleted, RolloutUnknown when the last reads before the deadline
// failed, so the outcome was never observed) and a message; "" when ctx
// ended first or the workload moved on to another image (a newer apply
// decides then). The replica count is the autoscaler's: the gate only
// reads.
func Follow(ctx context.Context, g Getter, id object.ObjMetadata, container, image string, started time.Time, interval, timeout time.Duration) (string, string) {
	deadline := started.Add(timeout)
	last, readFailed := "", false
	for {
		obj, err := g.Get(ctx, id)
		readFailed = err != nil
		switch {
		case ctx.Err() != nil:
			return "", ""
		case err != nil:
			last = err.Error()
		case obj == nil:
			return RolloutSuperseded, fmt.Sprintf("%s was deleted before its rollout to %s completed", contract.ObjectRef(id), image)
		default:
			images, _ := WorkloadImages(obj)
			if images[container] != image {
				return "", "" // superseded by another apply
			}
			h := health.Object(obj, time.Time{}, time.Now())
			switch h.Status {
			case health.Healthy:
				return RolloutSucceeded, fmt.Sprintf("%s rolled out %s", contract.ObjectRef(id), image)
			case health.Failed, health.Degraded:
				return RolloutFailed, fmt.Sprintf("%s: %s", contract.ObjectRef(id), h.Message)
			}
			last = h.Message
		}
		if !time.Now().Before(deadline) {
			if readFailed {
				return RolloutUnknown, fmt.Sprintf("%s could not be read until the rollout's deadline (%s): %s", contract.ObjectRef(id), timeout, last)
			}
			return RolloutFailed, fmt.Sprintf("%s did not complete its rollout to %s within %s (%s)", contract.ObjectRef(id), image, timeout, last)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", ""
		case <-t.C:
		}
	}
}
