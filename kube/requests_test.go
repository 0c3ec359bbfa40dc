package kube

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		method, url string
		want        Request
	}{
		{"GET", "/api/v1/namespaces/a/configmaps/x", Request{Verb: VerbGet}},
		{"GET", "/api/v1/namespaces/a/configmaps", Request{Verb: VerbList}},
		{"GET", "/api/v1/namespaces/a/configmaps?watch=true", Request{Verb: VerbWatch}},
		{"GET", "/api/v1/namespaces/a", Request{Verb: VerbGet}},
		{"GET", "/api/v1/namespaces", Request{Verb: VerbList}},
		{"GET", "/apis/apps/v1/namespaces/a/deployments/web/scale", Request{Verb: VerbGet}},
		{"GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", Request{Verb: VerbList}},
		{"PATCH", "/apis/apps/v1/namespaces/a/deployments/web?fieldManager=tether", Request{Verb: VerbPatch}},
		{"PATCH", "/apis/apps/v1/namespaces/a/deployments/web?dryRun=All&fieldManager=tether", Request{Verb: VerbPatch, DryRun: true}},
		{"POST", "/api/v1/namespaces/a/configmaps", Request{Verb: VerbCreate}},
		{"PUT", "/api/v1/namespaces/a/configmaps/x", Request{Verb: VerbUpdate}},
		{"DELETE", "/api/v1/namespaces/a/configmaps/x", Request{Verb: VerbDelete}},
		{"GET", "/api", Request{Verb: VerbDiscovery}},
		{"GET", "/apis", Request{Verb: VerbDiscovery}},
		{"GET", "/apis/apps/v1", Request{Verb: VerbDiscovery}},
		{"GET", "/openapi/v3", Request{Verb: VerbDiscovery}},
		{"GET", "/version", Request{Verb: VerbDiscovery}},
	} {
		req := httptest.NewRequest(tc.method, tc.url, nil)
		if got := Classify(req); got != tc.want {
			t.Errorf("%s %s: %+v, want %+v", tc.method, tc.url, got, tc.want)
		}
	}
	if (Request{Verb: VerbPatch, DryRun: true}).Mutating() || !(Request{Verb: VerbDelete}).Mutating() || (Request{Verb: VerbGet}).Mutating() {
		t.Error("Mutating is wrong")
	}
}

func TestRequestCounter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	c := NewRequestCounter()
	var observed int
	var mu sync.Mutex
	c.Observe(func(Request) { mu.Lock(); observed++; mu.Unlock() })
	client := &http.Client{Transport: c.Wrap(http.DefaultTransport)}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			method, url := http.MethodGet, srv.URL+"/api/v1/namespaces/a/configmaps/x"
			if i%2 == 0 {
				method = http.MethodPatch
			}
			if i%4 == 0 {
				url += "?dryRun=All"
			}
			req, _ := http.NewRequest(method, url, nil)
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
		}(i)
	}
	wg.Wait()
	if c.Total() != 20 || observed != 20 {
		t.Errorf("total %d observed %d, want 20", c.Total(), observed)
	}
	if c.Mutating() != 5 {
		t.Errorf("mutating %d, want 5 (patches without dry run)", c.Mutating())
	}
	snap := c.Snapshot()
	if snap[Request{Verb: VerbGet}] != 10 || snap[Request{Verb: VerbPatch, DryRun: true}] != 5 {
		t.Errorf("snapshot %v", snap)
	}
	if s := c.String(); s != "get=10 patch(dry-run)=5 patch=5" {
		t.Errorf("String() = %q", s)
	}
}

// TestTally: requests sent with a tally's context are counted in that
// tally (and only there), besides the counter's totals, also when sent
// concurrently by different pieces of work.
func TestTally(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	counter := NewRequestCounter()
	client := &http.Client{Transport: counter.Wrap(http.DefaultTransport)}
	send := func(ctx context.Context, method, path string) {
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
		if err != nil {
			t.Error(err)
			return
		}
		res, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		res.Body.Close()
	}
	var a, b Tally
	ctxA := WithTally(context.Background(), &a)
	ctxB, cancel := context.WithCancel(WithTally(context.Background(), &b)) // derived contexts count too
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(3)
		go func() { defer wg.Done(); send(ctxA, "GET", "/api/v1/namespaces/x/configmaps") }()
		go func() { defer wg.Done(); send(ctxB, "PATCH", "/api/v1/namespaces/x/configmaps/c?dryRun=All") }()
		go func() { defer wg.Done(); send(ctxB, "DELETE", "/api/v1/namespaces/x/configmaps/c") }()
	}
	send(context.Background(), "POST", "/api/v1/namespaces/x/configmaps")
	wg.Wait()
	if a.Requests() != 10 || a.Writes() != 0 {
		t.Errorf("tally a: %d requests, %d writes; want 10, 0", a.Requests(), a.Writes())
	}
	if b.Requests() != 20 || b.Writes() != 10 {
		t.Errorf("tally b: %d requests, %d writes; want 20, 10", b.Requests(), b.Writes())
	}
	if counter.Total() != 31 || counter.Mutating() != 11 {
		t.Errorf("counter: %d requests, %d writes; want 31, 11", counter.Total(), counter.Mutating())
	}
}
