package ui

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	gosync "sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/health"
	"github.com/tether-gitops/tether/inventory"
)

// Tokens of the fake reviewer.
const (
	adminToken  = "token-admin"
	viewerToken = "token-viewer"
	brokenToken = "token-api-down"
)

// fakeReviewer knows two users: admin reads every sync, viewer only
// "shop". It counts its calls.
type fakeReviewer struct {
	mu           gosync.Mutex
	authCalls    int
	canReadCalls int
}

func (f *fakeReviewer) Authenticate(_ context.Context, token string) (User, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.authCalls++
	switch token {
	case adminToken:
		return User{Name: "admin", Groups: []string{"system:masters"}}, nil
	case viewerToken:
		return User{Name: "system:serviceaccount:team:viewer"}, nil
	case brokenToken:
		return User{}, errors.New("connection refused")
	}
	return User{}, ErrInvalidToken
}

func (f *fakeReviewer) CanRead(_ context.Context, u User, invNamespace, sync string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.canReadCalls++
	if invNamespace != "tether-system" {
		return false, errors.New("wrong inventory namespace " + invNamespace)
	}
	return u.Name == "admin" || sync == "shop", nil
}

func (f *fakeReviewer) calls() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.authCalls, f.canReadCalls
}

// fakeSource serves fixed details, and counts the objects it was asked to
// read.
type fakeSource struct {
	syncs   map[string]*SyncDetail
	objects map[object.ObjMetadata]*ObjectDetail

	mu    gosync.Mutex
	reads []object.ObjMetadata
}

func (f *fakeSource) Sync(_ context.Context, _, sync string) (*SyncDetail, error) {
	if d, ok := f.syncs[sync]; ok {
		return d, nil
	}
	return &SyncDetail{}, nil
}

func (f *fakeSource) Owners(_ context.Context, _ string, id object.ObjMetadata) ([]inventory.Owner, error) {
	if d, ok := f.objects[id]; ok {
		return d.Owners, nil
	}
	return nil, nil
}

func (f *fakeSource) Object(_ context.Context, id object.ObjMetadata) (*ObjectDetail, error) {
	f.mu.Lock()
	f.reads = append(f.reads, id)
	f.mu.Unlock()
	if d, ok := f.objects[id]; ok {
		c := *d
		c.Owners = nil // the page fills them from Owners
		return &c, nil
	}
	return &ObjectDetail{ID: id}, nil
}

// objectReads returns the objects Object was asked for.
func (f *fakeSource) objectReads() []object.ObjMetadata {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]object.ObjMetadata(nil), f.reads...)
}

// failingSource cannot read any object, and says which.
type failingSource struct{ *fakeSource }

func (f failingSource) Object(ctx context.Context, id object.ObjMetadata) (*ObjectDetail, error) {
	_, _ = f.fakeSource.Object(ctx, id) // counted
	return nil, errors.New("reading " + contract.ObjectRef(id) + ": the server is unhappy")
}

// hostile is what an attacker may put in a commit message, an annotation
// or an error text.
const hostile = `<script>alert("pwned")</script><img src=x onerror=alert(1)>`

var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func testStatus() agent.Status {
	at := testNow.Add(-2 * time.Minute)
	return agent.Status{
		Leader:             true,
		InventoryNamespace: "tether-system",
		Syncs: []agent.SyncStatus{
			{
				Name: "payments", Source: "https://git.example.com/pay.git", Ref: "branch main", Path: "deploy",
				Fetched:     &agent.RevisionStatus{Revision: "main@sha1:2222222222222222222222222222222222222222", At: at},
				Applied:     &agent.RevisionStatus{Revision: "main@sha1:1111111111111111111111111111111111111111", At: at.Add(-time.Hour)},
				LastAttempt: &agent.Attempt{At: at, Duration: "1.2s", Outcome: "failure", Phase: "build", Error: "build failed: " + hostile},
				Health:      health.Healthy, Objects: 3,
			},
			{
				Name: "shop", Source: "https://git.example.com/shop.git", Ref: "branch main", Path: "overlays/prod",
				Applied: &agent.RevisionStatus{Revision: "main@sha1:3333333333333333333333333333333333333333", At: at,
					Commit: &agent.Commit{Hash: "3333333333333333333333333333333333333333", Author: "Mallory <m@example.com>", Subject: hostile}},
				LastAttempt: &agent.Attempt{At: at, Duration: "2s", Outcome: "success", Writes: 2},
				History: []agent.Attempt{{At: at, Duration: "2s", Outcome: "success", Revision: "main@sha1:3333333333333333333333333333333333333333", Writes: 2,
					Counts: map[string]int{"update": 2, "unchanged": 5},
					Phases: []agent.PhaseTiming{{Phase: "build", Duration: "300ms"}, {Phase: "apply", Duration: "1.1s"}}}},
				Health: health.Progressing, Objects: 7,
			},
			{Name: "zeta", Suspended: true},
		},
	}
}

var (
	shopConfig = object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "ConfigMap"}, Namespace: "shop", Name: "settings"}
	shopSecret = object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "Secret"}, Namespace: "shop", Name: "creds"}
	payDeploy  = object.ObjMetadata{GroupKind: schema.GroupKind{Group: "apps", Kind: "Deployment"}, Namespace: "pay", Name: "api"}
)

// secretValue is a Secret's value in the tests; it must never reach a page.
const secretValue = "hunter2-very-secret"

func testSource() *fakeSource {
	inv := func(sync string) *inventory.Inventory { return inventory.New("tether-system", sync) }
	entry := func(id object.ObjMetadata) inventory.Entry {
		return inventory.Entry{ID: id, Revision: "main@sha1:3333333333333333333333333333333333333333", Source: "overlays/prod/" + strings.ToLower(id.GroupKind.Kind) + ".yaml"}
	}
	liveCM := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "settings", "namespace": "shop", "annotations": map[string]any{"note": hostile}},
		"data":     map[string]any{"greeting": "hello"},
	}}
	// The source is supposed to mask; this one does not, to prove the
	// page masks anyway.
	liveSecret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": "creds", "namespace": "shop", "annotations": map[string]any{contract.LastAppliedAnnotation: `{"stringData":{"password":"` + secretValue + `"}}`}},
		"data":       map[string]any{"password": "aHVudGVyMi12ZXJ5LXNlY3JldA=="},
		"stringData": map[string]any{"password": secretValue},
	}}
	return &fakeSource{
		syncs: map[string]*SyncDetail{
			"shop": {Exists: true, Revision: "main@sha1:3333333333333333333333333333333333333333", Roots: []Node{{
				ID: object.ObjMetadata{GroupKind: schema.GroupKind{Kind: "Namespace"}, Name: "shop"},
				Children: []Node{
					{ID: shopConfig, Entry: &inventory.Entry{ID: shopConfig, Source: "overlays/prod/cm.yaml", Revision: "main@sha1:3333333333333333333333333333333333333333"}, Found: true,
						Health: health.Result{Status: health.Healthy, Message: hostile}, Managers: []string{"tether", "kubectl-edit"}},
					{ID: shopSecret, Entry: &inventory.Entry{ID: shopSecret}, Found: false, Health: health.Result{Status: health.Failed, Message: "not found"}},
				},
			}}},
		},
		objects: map[object.ObjMetadata]*ObjectDetail{
			shopConfig: {ID: shopConfig, Owners: []inventory.Owner{{Inventory: inv("shop"), Entry: entry(shopConfig)}}, Live: liveCM,
				Applied:  map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "settings", "namespace": "shop"}, "data": map[string]any{"greeting": "hello"}},
				Health:   health.Result{Status: health.Healthy},
				Managers: []metav1.ManagedFieldsEntry{{Manager: "tether", Operation: metav1.ManagedFieldsOperationApply, Time: &metav1.Time{Time: testNow.Add(-time.Minute)}}}},
			shopSecret: {ID: shopSecret, Owners: []inventory.Owner{{Inventory: inv("shop"), Entry: entry(shopSecret)}}, Live: liveSecret,
				Applied: map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "creds"}, "stringData": map[string]any{"password": secretValue}},
				Health:  health.Result{Status: health.Healthy}},
			payDeploy: {ID: payDeploy, Owners: []inventory.Owner{{Inventory: inv("payments"), Entry: entry(payDeploy)}}},
		},
	}
}

// testServer is a Server over the fakes.
func testServer(t *testing.T, opts Options) (*Server, *fakeReviewer) {
	t.Helper()
	rev := &fakeReviewer{}
	if opts.Status == nil {
		opts.Status = testStatus
	}
	if opts.Source == nil {
		opts.Source = testSource()
	}
	opts.Reviewer = rev
	opts.Now = func() time.Time { return testNow }
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, rev
}

// get serves one GET with a bearer token ("" for none).
func get(t *testing.T, h http.Handler, path, token string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}
