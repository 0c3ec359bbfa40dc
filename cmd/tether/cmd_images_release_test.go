package main

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/images"
)

// One sync's records that cannot be read do not keep the hold of another
// from being released; they are named in the error.
func TestReleaseHoldPastUnreadableRecords(t *testing.T) {
	ctx := context.Background()
	client := k8sfake.NewSimpleClientset(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: images.RecordsName("broken"), Namespace: "tether-system", Labels: map[string]string{contract.ImageRecordsLabel: "broken"}},
		Data:       map[string]string{contract.ImageRecordsKey: "{not json"},
	})
	store := images.NewStore(client.CoreV1(), "tether-system")
	if _, err := store.Update(ctx, "web", func(r *images.Records) error {
		r.Policy("webapp").Hold = &images.Hold{Tag: "1.0.0", From: "1.1.0"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	released, err := releaseHold(ctx, store, "webapp", "")
	if len(released) != 1 || released[0].sync != "web" || released[0].hold.Tag != "1.0.0" {
		t.Errorf("released %+v, want web's hold", released)
	}
	if err == nil || !strings.Contains(err.Error(), images.RecordsName("broken")) {
		t.Errorf("error %v, want the unreadable records named", err)
	}
	rec, err := store.Load(ctx, "web")
	if err != nil || rec.Policy("webapp").Hold != nil {
		t.Errorf("web's hold is still there: %+v (%v)", rec, err)
	}
}
