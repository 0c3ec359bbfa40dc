package health

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/contract"
)

// Reader reads the live state of objects. A missing key in the result means
// the object was not found.
type Reader interface {
	Read(ctx context.Context, ids []object.ObjMetadata) (map[object.ObjMetadata]*unstructured.Unstructured, error)
}

// Check reads the objects once and computes their health. appliedAt holds
// when objects were just applied (for the custom resource grace period);
// objects missing from it were not written now.
func Check(ctx context.Context, r Reader, ids []object.ObjMetadata, appliedAt map[object.ObjMetadata]time.Time, now time.Time) (map[object.ObjMetadata]Result, error) {
	live, err := r.Read(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[object.ObjMetadata]Result, len(ids))
	for _, id := range ids {
		out[id] = Object(live[id], appliedAt[id], now)
	}
	return out, nil
}

// TimeoutError is returned by Wait when objects are still not Healthy at
// the deadline; it lists each of them with its message.
type TimeoutError struct {
	Timeout   time.Duration
	Unhealthy map[object.ObjMetadata]Result
}

// Error names the timeout and each unhealthy object with its message.
func (e *TimeoutError) Error() string {
	lines := make([]string, 0, len(e.Unhealthy))
	for id, r := range e.Unhealthy {
		lines = append(lines, fmt.Sprintf("%s: %s: %s", contract.ObjectRef(id), r.Status, r.Message))
	}
	sort.Strings(lines)
	return fmt.Sprintf("%d objects not healthy after %s:\n  %s", len(lines), e.Timeout, strings.Join(lines, "\n  "))
}

// Wait polls the objects every interval until all are Healthy, then returns
// their health. At the timeout it returns the last health and a
// *TimeoutError naming every object that is not Healthy. When parent ends
// first, it returns the last health and parent's error, so a caller can
// tell "stopped" from "not healthy in time".
func Wait(parent context.Context, r Reader, ids []object.ObjMetadata, appliedAt map[object.ObjMetadata]time.Time, interval, timeout time.Duration, now func() time.Time) (map[object.ObjMetadata]Result, error) {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	var last map[object.ObjMetadata]Result
	var readErr error
	for {
		res, err := Check(ctx, r, ids, appliedAt, now())
		if err == nil {
			last, readErr = res, nil
			if Summarize(res).Status == Healthy {
				return res, nil
			}
		} else {
			readErr = err
		}
		select {
		case <-ctx.Done():
			if parent.Err() != nil {
				return last, fmt.Errorf("waiting for health: %w", parent.Err())
			}
			if last == nil {
				return nil, fmt.Errorf("reading object status: %w", readErr)
			}
			return last, &TimeoutError{Timeout: timeout, Unhealthy: Summarize(last).Unhealthy}
		case <-time.After(interval):
		}
	}
}
