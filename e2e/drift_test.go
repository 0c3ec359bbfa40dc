//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/e2e/prometheus"
	"github.com/tether-gitops/tether/health"
)

// driftApp is a folder with a Namespace, a ConfigMap and a Deployment, web.
// With hpa it also has an HPA for web, a second Deployment, worker, that no
// HPA in git scales, and a ConfigMap, hotfixable, whose tether.dev/drift
// annotation says warn.
func driftApp(t *testing.T, ns, image string, hpa bool) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"ns.yaml": nsYAML(ns),
		"cm.yaml": cm(ns, "settings", "v1"),
		"deploy.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %s
spec:
  replicas: 1
  progressDeadlineSeconds: 10
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: %s
`, ns, image),
	}
	if hpa {
		files["hpa.yaml"] = fmt.Sprintf(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
  namespace: %s
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
`, ns)
		files["worker.yaml"] = strings.NewReplacer("name: web", "name: worker", "{app: web}", "{app: worker}").Replace(files["deploy.yaml"])
		files["hotfixable.yaml"] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hotfixable\n  namespace: %s\n  annotations:\n    %s: warn\ndata:\n  value: \"v1\"\n", ns, contract.DriftAnnotation)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// setImage changes the Deployment's image as `kubectl set image` does:
// a strategic merge patch from the field manager kubectl-set.
func setImage(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, image string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
	if _, err := c.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kubectl-set"}); err != nil {
		t.Fatal(err)
	}
}

func imageOf(ctx context.Context, c kubernetes.Interface, ns string) (string, error) {
	d, err := c.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return d.Spec.Template.Spec.Containers[0].Image, nil
}

// driftOf returns the open drift of sync in /status.
func driftOf(p *agentProc, sync string) ([]agent.DriftStatus, error) {
	s, err := p.syncStatus(sync)
	return s.Drift, err
}

// counter reads a counter of the agent's metrics (0 when absent).
func counter(p *agentProc, series string) float64 {
	v, _ := metricValue(p.metrics(), series)
	return v
}

// inventoryEvents returns the messages of the Events on a sync's inventory
// with the given reason.
func inventoryEvents(ctx context.Context, t *testing.T, c kubernetes.Interface, sync, reason string) []string {
	t.Helper()
	evs, err := c.CoreV1().Events("tether-system").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=tether-inventory-" + sync})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		if e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}

// driftEvent waits for the DriftDetected Event on a sync's inventory whose
// message holds every one of want, and returns it.
func driftEvent(ctx context.Context, t *testing.T, c kubernetes.Interface, sync string, want ...string) corev1.Event {
	t.Helper()
	var found corev1.Event
	eventually(t, time.Minute, "a DriftDetected Event with "+strings.Join(want, ", "), func() error {
		evs, err := c.CoreV1().Events("tether-system").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=tether-inventory-" + sync + ",reason=DriftDetected"})
		if err != nil {
			return err
		}
		var msgs []string
	events:
		for _, e := range evs.Items {
			msgs = append(msgs, e.Message)
			for _, w := range want {
				if !strings.Contains(e.Message, w) {
					continue events
				}
			}
			found = e
			return nil
		}
		return fmt.Errorf("events %q", msgs)
	})
	return found
}

// reportedWithin fails the test unless the drift Event ev was recorded
// within bound of the change made at changedAt: "reported within seconds",
// as a generous upper bound (Event times have whole seconds).
func reportedWithin(t *testing.T, ev corev1.Event, changedAt time.Time, bound time.Duration) {
	t.Helper()
	at := ev.LastTimestamp.Time
	if at.IsZero() {
		at = ev.EventTime.Time
	}
	if d := at.Sub(changedAt.Truncate(time.Second)); d > bound {
		t.Errorf("drift reported %s after the change, want within %s: %s", d, bound, ev.Message)
	}
}

// hasScaleOwner reports whether manager owns spec.replicas of d through
// the scale subresource with a plain update.
func hasScaleOwner(d *appsv1.Deployment, manager string) bool {
	for _, mf := range d.ManagedFields {
		if mf.Manager == manager && mf.Operation == metav1.ManagedFieldsOperationUpdate && mf.Subresource == "scale" &&
			mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:replicas"`) {
			return true
		}
	}
	return false
}

// managers lists the managedFields entries of d, for messages.
func managers(d *appsv1.Deployment) string {
	var out []string
	for _, mf := range d.ManagedFields {
		out = append(out, fmt.Sprintf("%s (%s, %s): %s", mf.Manager, mf.Operation, mf.Subresource, mf.FieldsV1))
	}
	return strings.Join(out, "; ")
}

// TestDrift runs one agent with three syncs, one per drift policy, and
// changes their objects the way people do: kubectl set image, a deleted
// object, an annotation, an HPA scaling (one in git, and a real one outside
// git that kube-controller-manager acts on), a Deployment broken by hand,
// and a change after the API server restarted (every watch broken).
func TestDrift(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	ctx := context.Background()
	admin := c.Client
	cfgPath := filepath.Join(t.TempDir(), "tether.yaml")
	dirs := map[string]string{}
	sync := func(name, policy string, hpa bool) string {
		dirs[name] = driftApp(t, name, "registry.example.com/web:1.0", hpa)
		return fmt.Sprintf("  - name: %s\n    source:\n      localPath: %s\n      interval: 5s\n    namespace: %s\n    drift: %s\n    wait: false\n",
			name, dirs[name], name, policy)
	}
	writeFileAtomically(t, cfgPath, agentConfig(sync("drift-correct", "correct", true)+sync("drift-warn", "warn", false)+sync("drift-ignore", "ignore", false)))
	p := startAgent(t, sa.Kubeconfig, cfgPath, "--leader-elect=false")
	// commit changes a file of a sync's folder, as a new revision would,
	// and waits until the sync applied it.
	commit := func(t *testing.T, p *agentProc, sync, file, old, new string) {
		t.Helper()
		path := filepath.Join(dirs[sync], file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		before, err := p.syncStatus(sync)
		if err != nil || before.Applied == nil {
			t.Fatalf("status %+v: %v", before, err)
		}
		writeFileAtomically(t, path, strings.Replace(string(data), old, new, 1))
		eventually(t, 2*time.Minute, sync+" applies the new revision", func() error {
			s, err := p.syncStatus(sync)
			if err != nil {
				return err
			}
			if s.Applied == nil || s.Applied.Revision == before.Applied.Revision {
				return fmt.Errorf("applied %+v, last attempt %+v", s.Applied, s.LastAttempt)
			}
			return nil
		})
	}
	for _, name := range []string{"drift-correct", "drift-warn", "drift-ignore"} {
		eventually(t, 2*time.Minute, name+" applied and healthy", func() error {
			s, err := p.syncStatus(name)
			if err != nil {
				return err
			}
			if s.Applied == nil || s.Health != health.Healthy {
				return fmt.Errorf("applied %v, health %s, last %+v", s.Applied, s.Health, s.LastAttempt)
			}
			return nil
		})
	}

	// An autoscaler that git does not have writes spec.replicas through
	// the scale subresource: kube-controller-manager's HPA controller,
	// here raising worker from git's 1 replica to its minReplicas (the
	// fake pods have no metrics, so that is all it does). Never drift,
	// never taken back, by the watch or by a plan.
	t.Run("an autoscaler not in git", func(t *testing.T) {
		ns := "drift-correct"
		minReplicas := int32(2)
		hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: ns},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "worker"},
				MinReplicas: &minReplicas, MaxReplicas: 4}}
		if _, err := admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "the HPA controller scaled worker to 2 through the scale subresource", func() error {
			d, err := admin.AppsV1().Deployments(ns).Get(ctx, "worker", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if *d.Spec.Replicas != 2 || !hasScaleOwner(d, "kube-controller-manager") {
				return fmt.Errorf("replicas %d, managers %s", *d.Spec.Replicas, managers(d))
			}
			return nil
		})
		// The watch saw the HPA's write at once; two polls later nothing
		// was taken for drift or put back.
		polls := counter(p, `tether_reconcile_duration_seconds_count{outcome="skipped",sync="drift-correct"}`)
		eventually(t, time.Minute, "two more polls", func() error {
			if n := counter(p, `tether_reconcile_duration_seconds_count{outcome="skipped",sync="drift-correct"}`); n < polls+2 {
				return fmt.Errorf("%v polls", n-polls)
			}
			return nil
		})
		for _, action := range []string{"detected", "corrected"} {
			if n := counter(p, `tether_drift_events_total{action="`+action+`",sync="drift-correct"}`); n != 0 {
				t.Errorf("%v drift events %s for the HPA's scaling", n, action)
			}
		}
		if d, err := driftOf(p, ns); err != nil || len(d) != 0 {
			t.Errorf("open drift %+v (%v)", d, err)
		}
		// A commit runs a full reconcile, with a plan: the replicas stay
		// the HPA's, tether's apply does not take them.
		commit(t, p, ns, "cm.yaml", `"v1"`, `"v2"`)
		d, err := admin.AppsV1().Deployments(ns).Get(ctx, "worker", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range d.ManagedFields {
			if mf.Manager == contract.FieldManager && mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:replicas"`) {
				t.Errorf("tether's apply took spec.replicas back: %s", managers(d))
			}
		}
		if *d.Spec.Replicas != 2 || !hasScaleOwner(d, "kube-controller-manager") {
			t.Errorf("replicas %d after a reconcile, managers %s", *d.Spec.Replicas, managers(d))
		}
		// The HPA controller scaled once: nobody set the replicas back.
		evs, err := admin.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name=worker,reason=SuccessfulRescale"})
		if err != nil {
			t.Fatal(err)
		}
		var rescales int32
		for _, e := range evs.Items {
			rescales += max(e.Count, 1)
		}
		if rescales != 1 {
			t.Errorf("the HPA rescaled %d times, want once", rescales)
		}
	})

	t.Run("correct", func(t *testing.T) {
		ns := "drift-correct"
		// Not drift: someone's annotation, and the HPA's scaling through
		// the scale subresource (tether leaves replicas to the HPA).
		if _, err := admin.AppsV1().Deployments(ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"metadata":{"annotations":{"team":"blue"}}}`), metav1.PatchOptions{FieldManager: "kubectl-annotate"}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}}, metav1.UpdateOptions{FieldManager: "horizontal-pod-autoscaler"}); err != nil {
			t.Fatal(err)
		}
		patchedAt := time.Now()
		setImage(ctx, t, admin, ns, "registry.example.com/web:hotfix")
		reportedWithin(t, driftEvent(ctx, t, admin, ns, "registry.example.com/web:hotfix by kubectl-set (Update)", "found by the watch"), patchedAt, 15*time.Second)
		eventually(t, time.Minute, "the image put back", func() error {
			if img, err := imageOf(ctx, admin, ns); err != nil || img != "registry.example.com/web:1.0" {
				return fmt.Errorf("image %q (%v)", img, err)
			}
			if n := counter(p, `tether_drift_events_total{action="corrected",sync="drift-correct"}`); n != 1 {
				return fmt.Errorf("%v corrections counted", n)
			}
			if d, err := driftOf(p, "drift-correct"); err != nil || len(d) != 0 {
				return fmt.Errorf("open drift %+v (%v)", d, err)
			}
			return nil
		})
		// tether counts the requests of each correction on the wire (its
		// transport), and reports them in the event.
		corrected := strings.Join(inventoryEvents(ctx, t, admin, ns, "DriftCorrected"), "\n")
		if !strings.Contains(corrected, "put back 1 drifted objects (1 writes): [Deployment.apps/drift-correct/web]") {
			t.Errorf("the correction was not exactly one write:\n%s", corrected)
		}
		detected := strings.Join(inventoryEvents(ctx, t, admin, ns, "DriftDetected"), "\n")
		if !strings.Contains(detected, "spec.template.spec.containers[name=app].image: registry.example.com/web:1.0 → registry.example.com/web:hotfix by kubectl-set (Update)") {
			t.Errorf("the DriftDetected event does not name the field and the manager:\n%s", detected)
		}
		if n := counter(p, `tether_drift_events_total{action="detected",sync="drift-correct"}`); n != 1 {
			t.Errorf("%v drift detections, want 1 (the annotation and the HPA's scaling are not drift)", n)
		}
		d, err := admin.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *d.Spec.Replicas != 3 || d.Annotations["team"] != "blue" {
			t.Errorf("replicas %d, annotation %q: tether undid a change that is not drift", *d.Spec.Replicas, d.Annotations["team"])
		}

		// A deleted object is drift, and put back.
		if err := admin.CoreV1().ConfigMaps(ns).Delete(ctx, "settings", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "the ConfigMap recreated", func() error {
			_, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
			return err
		})

		// An object moved out of the sync (its sync label changed, as when
		// another sync takes it) looks deleted to the watch: reported, not
		// taken back.
		relabel := func(value string) {
			t.Helper()
			patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, contract.SyncLabel, value)
			if _, err := admin.CoreV1().ConfigMaps(ns).Patch(ctx, "settings", types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: "kubectl-label"}); err != nil {
				t.Fatal(err)
			}
		}
		relabel("elsewhere")
		eventually(t, time.Minute, "the move reported", func() error {
			d, err := driftOf(p, ns)
			if err != nil {
				return err
			}
			for _, x := range d {
				if x.Object == "ConfigMap/drift-correct/settings" && strings.Contains(x.CorrectionError, `is "elsewhere" now`) {
					return nil
				}
			}
			return fmt.Errorf("drift %+v", d)
		})
		if cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{}); err != nil || cm.Labels[contract.SyncLabel] != "elsewhere" {
			t.Errorf("the moved ConfigMap was taken back: %v (%v)", cm.Labels, err)
		}
		relabel(ns)
		eventually(t, time.Minute, "the ConfigMap back in the sync, no drift", func() error {
			if d, err := driftOf(p, ns); err != nil || len(d) != 0 {
				return fmt.Errorf("open drift %+v (%v)", d, err)
			}
			return nil
		})

		// Every watch breaks when the API server restarts (and may be
		// refused while RBAC loads: the agent polls meanwhile). Once the
		// status says the Deployments are watched again, on a watch made
		// after the restart, drift is found by the watch again.
		restarting := time.Now()
		if err := c.RestartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		deployments := "deployments.apps/v1 in " + ns
		var polled *agent.LiveStatus
		eventually(t, 2*time.Minute, "the Deployments watched again after the restart", func() error {
			s, err := p.syncStatus(ns)
			if err != nil {
				return err
			}
			if s.Live != nil && s.Live.Source == agent.LivePolling && polled == nil {
				polled = s.Live
			}
			if s.Live == nil || s.Live.Source != agent.LiveWatch {
				return fmt.Errorf("live state %+v", s.Live)
			}
			for _, w := range s.Live.Watches {
				if w.Resource == deployments && w.Since != nil && w.Since.After(restarting) {
					return nil
				}
			}
			return fmt.Errorf("watches %+v", s.Live.Watches)
		})
		if polled != nil {
			t.Logf("polled after the restart: %s", polled.Reason)
		}
		patchedAt = time.Now()
		setImage(ctx, t, admin, ns, "registry.example.com/web:after-restart")
		ev := driftEvent(ctx, t, admin, ns, "registry.example.com/web:after-restart by kubectl-set (Update)", "found by the watch")
		reportedWithin(t, ev, patchedAt, 15*time.Second)
		eventually(t, 2*time.Minute, "the image put back after the API server restarted", func() error {
			img, err := imageOf(ctx, admin, ns)
			if err != nil || img != "registry.example.com/web:1.0" {
				return fmt.Errorf("image %q (%v)", img, err)
			}
			return nil
		})
	})

	// The object's annotation in git (tether.dev/drift: warn) overrides
	// the sync's correct: a hotfix of it is kept and reported.
	t.Run("object annotated warn in a sync that corrects", func(t *testing.T) {
		ns := "drift-correct"
		kept := counter(p, `tether_drift_events_total{action="kept",sync="drift-correct"}`)
		patchedAt := time.Now()
		if _, err := admin.CoreV1().ConfigMaps(ns).Patch(ctx, "hotfixable", types.MergePatchType, []byte(`{"data":{"value":"hotfix"}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
			t.Fatal(err)
		}
		ev := driftEvent(ctx, t, admin, ns, "ConfigMap drift-correct/hotfixable: data.value: v1 → hotfix by kubectl-edit (Update)", "(policy warn, found by the watch)")
		reportedWithin(t, ev, patchedAt, 15*time.Second)
		polls := counter(p, `tether_reconcile_duration_seconds_count{outcome="skipped",sync="drift-correct"}`)
		eventually(t, time.Minute, "two more polls", func() error {
			if n := counter(p, `tether_reconcile_duration_seconds_count{outcome="skipped",sync="drift-correct"}`); n < polls+2 {
				return fmt.Errorf("%v polls", n-polls)
			}
			return nil
		})
		got, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "hotfixable", metav1.GetOptions{})
		if err != nil || got.Data["value"] != "hotfix" {
			t.Errorf("value %q (%v): the object's warn must keep the hotfix", got.Data["value"], err)
		}
		d, err := driftOf(p, ns)
		if err != nil || len(d) != 1 || d[0].Object != "ConfigMap/drift-correct/hotfixable" || d[0].Policy != "warn" {
			t.Errorf("open drift %+v (%v), want the ConfigMap kept under warn", d, err)
		}
		if n := counter(p, `tether_drift_events_total{action="kept",sync="drift-correct"}`); n != kept+1 {
			t.Errorf("%v kept drift events, want %v", n, kept+1)
		}
	})

	t.Run("warn", func(t *testing.T) {
		ns := "drift-warn"
		setImage(ctx, t, admin, ns, "registry.example.com/web:hotfix")
		eventually(t, time.Minute, "the drift reported", func() error {
			d, err := driftOf(p, ns)
			if err != nil {
				return err
			}
			if len(d) != 1 || d[0].Object != "Deployment.apps/drift-warn/web" || d[0].Managers != "kubectl-set" || len(d[0].Fields) != 1 ||
				!strings.HasPrefix(d[0].Fields[0], "spec.template.spec.containers[name=app].image: registry.example.com/web:1.0 → registry.example.com/web:hotfix by kubectl-set (Update)") {
				return fmt.Errorf("drift %+v", d)
			}
			if v, _ := metricValue(p.metrics(), `tether_drifted_objects{kind="Deployment",sync="drift-warn"}`); v != 1 {
				return fmt.Errorf("tether_drifted_objects %v", v)
			}
			return nil
		})
		// Kept over more than one poll interval (5 s), reported all along.
		polls := counter(p, `tether_reconcile_duration_seconds_count{outcome="skipped",sync="drift-warn"}`)
		eventually(t, time.Minute, "two more polls", func() error {
			if n := counter(p, `tether_reconcile_duration_seconds_count{outcome="skipped",sync="drift-warn"}`); n < polls+2 {
				return fmt.Errorf("%v polls", n-polls)
			}
			return nil
		})
		if img, err := imageOf(ctx, admin, ns); err != nil || img != "registry.example.com/web:hotfix" {
			t.Errorf("image %q (%v): the policy warn must keep the change", img, err)
		}
		if d, _ := driftOf(p, ns); len(d) != 1 {
			t.Errorf("open drift %+v, want the Deployment still reported", d)
		}
		if v, _ := metricValue(p.metrics(), `tether_drift_info{kind="Deployment",manager="kubectl-set",name="web",namespace="drift-warn",sync="drift-warn"}`); v != 1 {
			t.Errorf("tether_drift_info for the kept drift: %v", v)
		}
		// A commit that leaves the Deployment alone keeps the hotfix; one
		// that changes it wins.
		commit(t, p, ns, "cm.yaml", `"v1"`, `"v2"`)
		if img, err := imageOf(ctx, admin, ns); err != nil || img != "registry.example.com/web:hotfix" {
			t.Errorf("image %q (%v) after a commit that left the Deployment alone, want the hotfix kept", img, err)
		}
		commit(t, p, ns, "deploy.yaml", "registry.example.com/web:1.0", "registry.example.com/web:2.0")
		if img, err := imageOf(ctx, admin, ns); err != nil || img != "registry.example.com/web:2.0" {
			t.Errorf("image %q (%v) after git changed the Deployment, want git's", img, err)
		}
		eventually(t, time.Minute, "the drift closed", func() error {
			if d, err := driftOf(p, ns); err != nil || len(d) != 0 {
				return fmt.Errorf("open drift %+v (%v)", d, err)
			}
			return nil
		})
	})

	t.Run("ignore and fresh health", func(t *testing.T) {
		ns := "drift-ignore"
		setImage(ctx, t, admin, ns, "registry.example.com/web:hotfix")
		// Break the Deployment by hand, with no commit: a quota forbids
		// new pods, a restart needs new ones, and the progress deadline
		// (10 s) passes.
		if _, err := admin.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-pods"}, Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		restart := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().Format(time.RFC3339))
		if _, err := admin.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(restart), metav1.PatchOptions{FieldManager: "kubectl-rollout"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "the sync Degraded in /status and metrics", func() error {
			s, err := p.syncStatus(ns)
			if err != nil {
				return err
			}
			if s.Health != health.Degraded {
				return fmt.Errorf("health %s, unhealthy %+v", s.Health, s.Unhealthy)
			}
			if v, _ := metricValue(p.metrics(), `tether_sync_health{status="Degraded",sync="drift-ignore"}`); v != 1 {
				return fmt.Errorf("tether_sync_health Degraded = %v", v)
			}
			return nil
		})
		if img, err := imageOf(ctx, admin, ns); err != nil || img != "registry.example.com/web:hotfix" {
			t.Errorf("image %q (%v): the policy ignore must leave the change alone", img, err)
		}
		if d, _ := driftOf(p, ns); len(d) != 0 {
			t.Errorf("open drift %+v under the policy ignore", d)
		}
		if n := counter(p, `tether_drift_events_total{action="detected",sync="drift-ignore"}`); n != 0 {
			t.Errorf("%v drift detections under the policy ignore", n)
		}
		// A commit that leaves the Deployment alone applies, and the
		// change made by hand stays.
		commit(t, p, ns, "cm.yaml", `"v1"`, `"v2"`)
		if img, err := imageOf(ctx, admin, ns); err != nil || img != "registry.example.com/web:hotfix" {
			t.Errorf("image %q (%v) after a commit that left the Deployment alone, want the change kept", img, err)
		}
	})

	// An agent that starts after the change was made by hand finds it in
	// its first plan (its watches never saw it happen): under warn it keeps
	// and reports it, with both values, until git changes the object.
	t.Run("warn across a restart", func(t *testing.T) {
		ns := "drift-warn"
		setImage(ctx, t, admin, ns, "registry.example.com/web:hotfix2")
		eventually(t, time.Minute, "the drift reported", func() error {
			d, err := driftOf(p, ns)
			if err != nil || len(d) != 1 {
				return fmt.Errorf("drift %+v (%v)", d, err)
			}
			return nil
		})
		p.signal(syscall.SIGKILL)
		<-p.done
		p2 := startAgent(t, sa.Kubeconfig, cfgPath, "--leader-elect=false")
		wantField := "spec.template.spec.containers[name=app].image: registry.example.com/web:2.0 → registry.example.com/web:hotfix2 by kubectl-set (Update)"
		eventually(t, 2*time.Minute, "the drift reported by the new agent", func() error {
			d, err := driftOf(p2, ns)
			if err != nil {
				return err
			}
			if len(d) != 1 || len(d[0].Fields) != 1 || !strings.HasPrefix(d[0].Fields[0], wantField) {
				return fmt.Errorf("drift %+v", d)
			}
			return nil
		})
		polls := counter(p2, `tether_reconcile_duration_seconds_count{outcome="skipped",sync="drift-warn"}`)
		eventually(t, time.Minute, "two more polls", func() error {
			if n := counter(p2, `tether_reconcile_duration_seconds_count{outcome="skipped",sync="drift-warn"}`); n < polls+2 {
				return fmt.Errorf("%v polls", n-polls)
			}
			return nil
		})
		if d, _ := driftOf(p2, ns); len(d) != 1 {
			t.Errorf("open drift %+v after two polls, want the Deployment still reported", d)
		}
		if img, err := imageOf(ctx, admin, ns); err != nil || img != "registry.example.com/web:hotfix2" {
			t.Errorf("image %q (%v): the policy warn must keep the change across a restart", img, err)
		}
		commit(t, p2, ns, "deploy.yaml", "registry.example.com/web:2.0", "registry.example.com/web:3.0")
		if img, err := imageOf(ctx, admin, ns); err != nil || img != "registry.example.com/web:3.0" {
			t.Errorf("image %q (%v) after git changed the Deployment, want git's", img, err)
		}
	})
}

// Drift kept under the policy warn raises TetherDriftOpen in a real
// Prometheus running the shipped rules (its 15-minute threshold shortened
// to 5 seconds), naming the sync; when the change is undone, the drift
// closes and the alert resolves.
func TestDriftAlertInPrometheus(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	ctx := context.Background()
	const ns = "drift-alert"
	cfgPath := filepath.Join(t.TempDir(), "tether.yaml")
	writeFileAtomically(t, cfgPath, agentConfig(fmt.Sprintf("  - name: %s\n    source:\n      localPath: %s\n      interval: 5s\n    namespace: %s\n    drift: warn\n    wait: false\n",
		ns, driftApp(t, ns, "registry.example.com/web:1.0", false), ns)))
	p := startAgent(t, sa.Kubeconfig, cfgPath, "--leader-elect=false")
	eventually(t, 2*time.Minute, "applied", func() error {
		s, err := p.syncStatus(ns)
		if err != nil || s.Applied == nil {
			return fmt.Errorf("applied %v (%v)", s.Applied, err)
		}
		return nil
	})
	prom := startPrometheus(t, p, func(r *prometheus.RuleFile) error { return r.ReplaceInExpr("TetherDriftOpen", "> 900", "> 5") })
	setImage(ctx, t, c.Client, ns, "registry.example.com/web:hotfix")
	firing := waitAlert(t, prom, "TetherDriftOpen", alertFiring)
	if len(firing) != 1 || string(firing[0].Labels["sync"]) != ns {
		t.Errorf("firing TetherDriftOpen: %v, want one for sync %s", firing, ns)
	}
	// Undo the hotfix by hand: the drift closes, the alert resolves.
	setImage(ctx, t, c.Client, ns, "registry.example.com/web:1.0")
	eventually(t, time.Minute, "the drift closed", func() error {
		if d, err := driftOf(p, ns); err != nil || len(d) != 0 {
			return fmt.Errorf("open drift %+v (%v)", d, err)
		}
		return nil
	})
	waitAlert(t, prom, "TetherDriftOpen", alertInactive)
}
