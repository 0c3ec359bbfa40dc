package agent

import (
	"context"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tether-gitops/tether/config"
	"github.com/tether-gitops/tether/images"
	"github.com/tether-gitops/tether/live"
)

// followAgent is a test agent whose dynamic client holds a Deployment
// web/app that completed its rollout to reg/web:1.1.0; reads of it wait
// until release is closed.
func followAgent(t *testing.T) (*imageAutomation, chan struct{}) {
	t.Helper()
	a, _ := testAgent(t, 0)
	obj := deployment(1)
	if err := unstructured.SetNestedSlice(obj.Object, []any{map[string]any{"name": "web", "image": "reg/web:1.1.0"}}, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), obj)
	release := make(chan struct{})
	dyn.PrependReactor("get", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		<-release
		return false, nil, nil
	})
	a.clients.Dynamic = dyn
	return a.images, release
}

func webRollout() images.Rollout {
	return images.Rollout{Workload: "Deployment.apps/app/web", Container: "web", Image: "reg/web:1.1.0", From: "1.0.0", Tag: "1.1.0",
		Revision: "main@sha1:2", Started: time.Now(), Outcome: images.RolloutProgressing}
}

// Two policies may follow one image: each records the rollout's outcome,
// none is left Progressing for ever.
func TestFollowEveryPolicyOfAnImage(t *testing.T) {
	ia, release := followAgent(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ia.mu.Lock()
	ia.ctx = ctx
	ia.mu.Unlock()
	s := config.Sync{Name: "web", ImageUpdates: config.ImageUpdates{RolloutTimeout: time.Minute}}
	ia.follow(ctx, s, "web-stable", webRollout())
	ia.follow(ctx, s, "web-all", webRollout())
	close(release)
	ia.wg.Wait()
	rec, err := images.NewStore(ia.a.clients.Typed.CoreV1(), ia.a.invNamespace).Load(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, policy := range []string{"web-stable", "web-all"} {
		pr := rec.Policies[policy]
		if pr == nil || len(pr.Rollouts) != 1 || pr.Rollouts[0].Outcome != images.RolloutSucceeded || pr.LastGood != "1.1.0" {
			t.Errorf("policy %s: records %+v, want one succeeded rollout to 1.1.0", policy, pr)
		}
	}
}

// A rollout handed over after the term of leadership ended (lead's stop
// already waits for the followers) is not followed by this process.
func TestFollowNotAfterTheTerm(t *testing.T) {
	ia, release := followAgent(t)
	close(release)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ia.follow(ctx, config.Sync{Name: "web"}, "web-stable", webRollout()) // ia.ctx is nil: not leading
	ia.mu.Lock()
	n := len(ia.follows)
	ia.mu.Unlock()
	ia.wg.Wait()
	if n != 0 {
		t.Errorf("%d rollouts followed while not leading", n)
	}
	if rec, err := images.NewStore(ia.a.clients.Typed.CoreV1(), ia.a.invNamespace).Load(ctx, "web"); err != nil || len(rec.Policies) != 0 {
		t.Errorf("records written while not leading: %+v %v", rec, err)
	}
}

// A registry notification triggers the policies that follow its
// repository, matched in canonical form (Docker Hub's official images are
// library/NAME however the policy writes them).
func TestNotifyMatchesCanonicalRepositories(t *testing.T) {
	ia := &imageAutomation{scans: map[string]*scanLoop{}}
	for policy, image := range map[string]string{
		"nginx":     "nginx",
		"nginx-hub": "docker.io/library/nginx",
		"app":       "ghcr.io/org/app",
		"app-other": "ghcr.io/org/app-other",
		"local":     "localhost:5000/team/web",
	} {
		ia.scans[policy] = &scanLoop{pol: config.ImagePolicy{Policy: &images.Policy{Name: policy, Image: image}}, trigger: make(chan struct{}, 1)}
	}
	for _, tc := range []struct {
		host, repo string
		want       []string
	}{
		{"index.docker.io", "library/nginx", []string{"nginx", "nginx-hub"}},
		{"index.docker.io", "nginx", []string{"nginx", "nginx-hub"}},
		{"ghcr.io", "org/app", []string{"app"}},
		{"ghcr.io", "org/ap", nil},
		{"localhost:5000", "team/web", []string{"local"}},
		{"localhost:5001", "team/web", nil},
	} {
		got := ia.notify(tc.host, tc.repo)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("notify(%s, %s) = %v, want %v", tc.host, tc.repo, got, tc.want)
		}
	}
}

// liveWorkload is a live-state cache holding one object, or unable to
// answer (ok false); only Get is used here.
type liveWorkload struct {
	liveState
	obj *unstructured.Unstructured
	ok  bool
}

func (l *liveWorkload) Get(_ string, ref live.Ref, name string) (*unstructured.Unstructured, bool) {
	if !l.ok || l.obj == nil || ref.GVR.Resource != "deployments" || ref.Namespace != l.obj.GetNamespace() || name != l.obj.GetName() {
		return nil, l.ok
	}
	return l.obj, true
}

// The running tag is the live workload's when the cache can read it (a
// person's kubectl set image shows), else what tether applied, said so.
func TestRunningTagIsLive(t *testing.T) {
	a, _ := testAgent(t, 0)
	ia := a.images
	web := &images.Policy{Name: "web", Image: "reg/web", Kind: images.SemVer, Range: ">=1.0.0"}
	if err := web.Compile(); err != nil {
		t.Fatal(err)
	}
	pol := config.ImagePolicy{Policy: web, Interval: time.Minute}
	s := config.Sync{Name: "web"}
	ia.cfg = &config.Config{ImagePolicies: []config.ImagePolicy{pol}, Syncs: []config.Sync{s}}
	ia.state("web").records = &images.Records{Workloads: map[string]map[string]string{
		"Deployment.apps/app/web": {"web": "reg/web:1.0.0", "sidecar": "other/proxy:2"},
	}}
	obj := deployment(1)
	if err := unstructured.SetNestedSlice(obj.Object, []any{
		map[string]any{"name": "web", "image": "reg/web:1.1.0"},
		map[string]any{"name": "sidecar", "image": "other/proxy:3"},
	}, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		live    *liveWorkload
		running string
		applied bool
	}{
		{"read from the cache", &liveWorkload{obj: obj, ok: true}, "1.1.0", false},
		{"the cache cannot answer", &liveWorkload{}, "1.0.0", true},
		{"the workload is gone", &liveWorkload{ok: true}, "1.0.0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.live = tc.live
			got, ok := ia.policySyncStatus(pol, s)
			if !ok || got.Running != tc.running || got.RunningApplied != tc.applied {
				t.Errorf("status %+v (used %v), want running %q applied %v", got, ok, tc.running, tc.applied)
			}
		})
	}
}
