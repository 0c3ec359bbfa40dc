package ui

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"golang.org/x/net/html"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/object"

	"github.com/tether-gitops/tether/agent"
	"github.com/tether-gitops/tether/contract"
	"github.com/tether-gitops/tether/inventory"
)

func TestAuthentication(t *testing.T) {
	s, _ := testServer(t, Options{})
	h := s.Handler()
	for _, tc := range []struct {
		name     string
		header   string
		cookie   string
		want     int
		contains string
		clears   bool
	}{
		{name: "no token shows the login form", want: 401, contains: `name="token"`},
		{name: "unknown bearer token", header: "Bearer nope", want: 401, contains: "did not accept the token"},
		{name: "not a bearer token", header: "Basic YWxpY2U6cGFzcw==", want: 401, contains: "did not accept the token"},
		{name: "empty bearer token", header: "Bearer ", want: 401},
		{name: "unknown cookie is forgotten", cookie: "nope", want: 401, clears: true},
		{name: "API server down", header: "Bearer " + brokenToken, want: 503, contains: "could not check your token"},
		{name: "bearer token", header: "Bearer " + adminToken, want: 200, contains: "Signed in as"},
		{name: "bearer scheme in lower case", header: "bearer " + adminToken, want: 200},
		{name: "cookie", cookie: viewerToken, want: 200, contains: "Sign out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/ui/", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: cookieName, Value: tc.cookie})
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d:\n%s", rec.Code, tc.want, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tc.contains) {
				t.Errorf("body lacks %q:\n%s", tc.contains, rec.Body)
			}
			cleared := false
			for _, c := range rec.Result().Cookies() {
				cleared = cleared || (c.Name == cookieName && c.MaxAge < 0)
			}
			if cleared != tc.clears {
				t.Errorf("cookie cleared: %v, want %v", cleared, tc.clears)
			}
			if token := strings.TrimPrefix(tc.header, "Bearer "); token != "" && strings.Contains(rec.Body.String(), token) && tc.want != 200 {
				t.Error("the page repeats the token")
			}
		})
	}
}

// Each user sees the syncs, sync pages and object pages of the syncs they
// may read, and nothing of the others: not even whether they exist.
func TestVisibility(t *testing.T) {
	s, _ := testServer(t, Options{})
	h := s.Handler()
	for _, tc := range []struct {
		path, token string
		want        int
		has, hasNot []string
	}{
		{"/ui/", adminToken, 200, []string{">payments<", ">shop<", ">zeta<"}, nil},
		{"/ui/", viewerToken, 200, []string{">shop<", "1 of 1 syncs"}, []string{"payments", "zeta"}},
		{"/ui/syncs/shop", viewerToken, 200, []string{"overlays/prod"}, nil},
		{"/ui/syncs/payments", viewerToken, 404, nil, []string{"payments"}},
		{"/ui/syncs/does-not-exist", viewerToken, 404, nil, nil},
		{"/ui/syncs/payments", adminToken, 200, []string{">build failed<", "build failed: &lt;script&gt;"}, nil},
		{"/ui/objects/ConfigMap/shop/settings", viewerToken, 200, []string{"overlays/prod/configmap.yaml"}, nil},
		{"/ui/objects/Deployment.apps/pay/api", viewerToken, 404, nil, []string{"payments"}},
		{"/ui/objects/Deployment.apps/pay/api", adminToken, 200, []string{"payments"}, nil},
		{"/ui/objects/ConfigMap/shop/not-owned", adminToken, 404, nil, nil},
		{"/ui/objects/ConfigMap", adminToken, 404, nil, nil},
		{"/ui/nowhere", adminToken, 404, nil, nil},
	} {
		t.Run(tc.path+" as "+tc.token, func(t *testing.T) {
			resp, body := get(t, h, tc.path, tc.token)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d:\n%s", resp.StatusCode, tc.want, body)
			}
			for _, s := range tc.has {
				if !strings.Contains(body, s) {
					t.Errorf("the page lacks %q", s)
				}
			}
			for _, s := range tc.hasNot {
				if strings.Contains(body, s) {
					t.Errorf("the page shows %q", s)
				}
			}
		})
	}
}

// A user who may read no sync learns nothing about objects, not even that
// one cannot be read: the page does not ask the cluster for them.
func TestObjectPageWithoutVisibleSyncs(t *testing.T) {
	status := func() agent.Status {
		st := testStatus()
		st.Syncs = st.Syncs[:1] // payments, which the viewer may not read
		return st
	}
	src := failingSource{testSource()}
	s, _ := testServer(t, Options{Status: status, Source: src})
	resp, body := get(t, s.Handler(), "/ui/objects/Deployment.apps/pay/api", viewerToken)
	if resp.StatusCode != 404 || strings.Contains(body, "unhappy") {
		t.Errorf("status %d, want 404 without the read error:\n%s", resp.StatusCode, body)
	}
	if reads := src.objectReads(); len(reads) != 0 {
		t.Errorf("the page read %v for a user who may read no sync", reads)
	}
	resp, body = get(t, s.Handler(), "/ui/objects/Deployment.apps/pay/api", adminToken)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "unhappy") {
		t.Errorf("as admin: status %d, want 502 with the read error:\n%s", resp.StatusCode, body)
	}
}

// A user who may read sync shop cannot probe the objects of sync payments:
// an object payments owns and one nobody owns get the same 404, the same
// page, and the cluster is not asked about either (so no read error, which
// would name the object and tell that it exists, can show).
func TestObjectPageOfAnotherSync(t *testing.T) {
	src := failingSource{testSource()}
	s, _ := testServer(t, Options{Source: src})
	h := s.Handler()
	_, owned := get(t, h, "/ui/objects/Deployment.apps/pay/api", viewerToken)
	for _, path := range []string{"/ui/objects/Deployment.apps/pay/api", "/ui/objects/Deployment.apps/pay/nothing-here"} {
		resp, body := get(t, h, path, viewerToken)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", path, resp.StatusCode)
		}
		for _, leak := range []string{"unhappy", "pay/api", "payments", "could not be read"} {
			if strings.Contains(body, leak) {
				t.Errorf("%s: the page says %q:\n%s", path, leak, body)
			}
		}
		if body != owned {
			t.Errorf("%s: another page than for an object of another sync:\n%s\n---\n%s", path, body, owned)
		}
	}
	if reads := src.objectReads(); len(reads) != 0 {
		t.Errorf("the page read %v for objects of syncs the user may not read", reads)
	}
	// The user's own object is read, and its read error is theirs to see.
	resp, body := get(t, h, "/ui/objects/ConfigMap/shop/settings", viewerToken)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "reading ConfigMap/shop/settings: the server is unhappy") {
		t.Errorf("the user's own object: status %d, want 502 with the read error:\n%s", resp.StatusCode, body)
	}
}

// ownersFailing cannot read some or all inventories.
type ownersFailing struct {
	*fakeSource
	partial bool
}

func (o ownersFailing) Owners(ctx context.Context, ns string, id object.ObjMetadata) ([]inventory.Owner, error) {
	err := errors.New("decoding inventory ConfigMap/tether-system/tether-inventory-payments: corrupt")
	if !o.partial {
		return nil, err
	}
	owners, _ := o.fakeSource.Owners(ctx, ns, id)
	return owners, err
}

// When inventories cannot be read, the page says so without naming them
// (they may be other syncs'), the same way for every object.
func TestObjectPageWhenInventoriesFail(t *testing.T) {
	s, _ := testServer(t, Options{Source: ownersFailing{fakeSource: testSource()}})
	var first string
	for _, path := range []string{"/ui/objects/ConfigMap/shop/settings", "/ui/objects/Deployment.apps/pay/api"} {
		resp, body := get(t, s.Handler(), path, viewerToken)
		if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "payments") || !strings.Contains(body, "inventories could not be read") {
			t.Errorf("%s: status %d, want 503 naming no inventory:\n%s", path, resp.StatusCode, body)
		}
		if first == "" {
			first = body
		} else if body != first {
			t.Errorf("%s: the answer depends on the object", path)
		}
	}
	s, _ = testServer(t, Options{Source: ownersFailing{fakeSource: testSource(), partial: true}})
	resp, body := get(t, s.Handler(), "/ui/objects/ConfigMap/shop/settings", viewerToken)
	if resp.StatusCode != 200 || strings.Contains(body, "payments") || !strings.Contains(body, "Some inventories could not be read") {
		t.Errorf("some inventories unreadable: status %d, want 200 with a note naming none:\n%s", resp.StatusCode, body)
	}
	resp, _ = get(t, s.Handler(), "/ui/objects/Deployment.apps/pay/api", viewerToken)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("another sync's object with some inventories unreadable: status %d, want 404", resp.StatusCode)
	}
}

// Commit messages, annotations, messages and errors holding markup are
// shown as text: no element of theirs reaches the page.
func TestHostileStringsRenderAsText(t *testing.T) {
	s, _ := testServer(t, Options{})
	h := s.Handler()
	for _, path := range []string{"/ui/", "/ui/syncs/shop", "/ui/syncs/payments", "/ui/objects/ConfigMap/shop/settings"} {
		t.Run(path, func(t *testing.T) {
			resp, body := get(t, h, path, adminToken)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
				t.Fatalf("hostile markup reached the page unescaped:\n%s", body)
			}
			if !strings.Contains(body, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;") {
				t.Errorf("the hostile string is not shown as text:\n%s", body)
			}
			// The only elements are the page's own: one script, from
			// static/, and no inline event handlers or styles.
			doc, err := html.Parse(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			scripts := 0
			walk(doc, func(n *html.Node) {
				if n.Type != html.ElementNode {
					return
				}
				if n.Data == "script" {
					scripts++
					if attr(n, "src") == "" {
						t.Error("an inline script")
					}
				}
				if n.Data == "img" {
					t.Error("an img element")
				}
				for _, a := range n.Attr {
					if strings.HasPrefix(a.Key, "on") || a.Key == "style" {
						t.Errorf("attribute %s=%q on <%s>", a.Key, a.Val, n.Data)
					}
				}
			})
			if scripts != 1 {
				t.Errorf("%d script elements, want 1", scripts)
			}
		})
	}
}

func walk(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// Every link, form and asset is relative, so the page works under a
// proxy's path prefix (kubectl proxy, an ingress path), and resolves to a
// page under /ui/.
func TestLinksAreRelative(t *testing.T) {
	s, _ := testServer(t, Options{})
	h := s.Handler()
	for _, path := range []string{"/ui/", "/ui/syncs/shop", "/ui/objects/ConfigMap/shop/settings", "/ui/login", "/ui/syncs/nope"} {
		resp, body := get(t, h, path, adminToken)
		doc, err := html.Parse(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		base, _ := url.Parse("http://proxy.example/prefix" + path)
		walk(doc, func(n *html.Node) {
			for _, key := range []string{"href", "src", "action", "data-events"} {
				v := attr(n, key)
				if v == "" {
					continue
				}
				if strings.HasPrefix(v, "/") || strings.Contains(v, "://") {
					t.Errorf("%s (%d): %s=%q is not relative", path, resp.StatusCode, key, v)
					continue
				}
				u, err := base.Parse(v)
				if err != nil {
					t.Errorf("%s: %s=%q: %v", path, key, v, err)
					continue
				}
				if !strings.HasPrefix(u.Path, "/prefix/ui/") && u.Fragment == "" {
					t.Errorf("%s: %s=%q leaves the page: %s", path, key, v, u)
				}
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	s, _ := testServer(t, Options{})
	h := s.Handler()
	for _, tc := range []struct{ path, token string }{
		{"/ui/", adminToken}, {"/ui/", ""}, {"/ui/syncs/shop", adminToken}, {"/ui/objects/Secret/shop/creds", adminToken},
		{"/ui/static/style.css", ""}, {"/ui/static/refresh.js", ""}, {"/ui/login", ""}, {"/ui/missing", adminToken},
	} {
		resp, _ := get(t, h, tc.path, tc.token)
		for k, want := range map[string]string{
			"Content-Security-Policy": ContentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", tc.path, k, got, want)
			}
		}
		if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(tc.path, "/ui/static/") {
			if !strings.Contains(ct, "text/css") && !strings.Contains(ct, "javascript") {
				t.Errorf("%s: content type %q", tc.path, ct)
			}
		} else if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", tc.path, resp.Header.Get("Cache-Control"))
		}
	}
}

// No Secret value reaches the page, even from a source that forgot to
// mask: not in the YAML, not in the diff, not base64-encoded.
func TestSecretValuesNeverReachThePage(t *testing.T) {
	s, _ := testServer(t, Options{})
	resp, body := get(t, s.Handler(), "/ui/objects/Secret/shop/creds", adminToken)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d:\n%s", resp.StatusCode, body)
	}
	for _, leak := range []string{secretValue, base64.StdEncoding.EncodeToString([]byte(secretValue)), "aHVudGVy"} {
		if strings.Contains(body, leak) {
			t.Errorf("the page holds %q", leak)
		}
	}
	if n := strings.Count(body, Masked); n < 4 {
		t.Errorf("%d masked values, want data, stringData and the annotation on both sides", n)
	}
	if !strings.Contains(body, "password") {
		t.Error("the Secret's keys are not shown")
	}
}

func TestOverviewSortAndFilter(t *testing.T) {
	s, _ := testServer(t, Options{})
	h := s.Handler()
	names := regexp.MustCompile(`class="name" href="syncs/([a-z-]+)"`)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"payments", "shop", "zeta"}},
		{"?sort=name&dir=desc", []string{"zeta", "shop", "payments"}},
		{"?sort=state", []string{"payments", "shop", "zeta"}}, // Failing, Progressing, Suspended
		{"?sort=state&dir=desc", []string{"zeta", "shop", "payments"}},
		{"?sort=applied", []string{"zeta", "payments", "shop"}},
		{"?state=Failing", []string{"payments"}},
		{"?state=Suspended", []string{"zeta"}},
		{"?q=SHO", []string{"shop"}},
		{"?q=nothing", nil},
		{"?sort=bogus&state=bogus", []string{"payments", "shop", "zeta"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, body := get(t, h, "/ui/"+tc.query, adminToken)
			var got []string
			for _, m := range names.FindAllStringSubmatch(body, -1) {
				got = append(got, m[1])
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("syncs %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLoginAndLogout(t *testing.T) {
	s, rev := testServer(t, Options{})
	h := s.Handler()
	post := func(path string, form url.Values, site string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if site != "" {
			req.Header.Set("Sec-Fetch-Site", site)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, tc := range []struct {
		name     string
		form     url.Values
		site     string
		want     int
		location string
	}{
		{"valid token", url.Values{"token": {viewerToken}}, "same-origin", 303, "./"},
		{"pasted with its scheme", url.Values{"token": {"Bearer " + viewerToken}}, "", 303, "./"},
		{"back to the page asked for", url.Values{"token": {viewerToken}, "next": {"syncs/shop"}}, "same-origin", 303, "./syncs/shop"},
		{"no open redirect", url.Values{"token": {viewerToken}, "next": {"//evil.example/x"}}, "same-origin", 303, "./"},
		{"no climbing out", url.Values{"token": {viewerToken}, "next": {"syncs/../../x"}}, "same-origin", 303, "./"},
		{"invalid token", url.Values{"token": {"nope"}}, "same-origin", 401, ""},
		{"empty", url.Values{"token": {""}}, "same-origin", 400, ""},
		{"cross-site post", url.Values{"token": {viewerToken}}, "cross-site", 403, ""},
		{"too long for a cookie", url.Values{"token": {strings.Repeat("x", maxCookieToken+1)}}, "same-origin", 400, ""},
		{"not a cookie value", url.Values{"token": {"abc;def"}}, "same-origin", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := post("/ui/login", tc.form, tc.site)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d:\n%s", rec.Code, tc.want, rec.Body)
			}
			if rec.Header().Get("Location") != tc.location {
				t.Errorf("Location %q, want %q", rec.Header().Get("Location"), tc.location)
			}
			var c *http.Cookie
			for _, ck := range rec.Result().Cookies() {
				if ck.Name == cookieName {
					c = ck
				}
			}
			if tc.want != 303 {
				if c != nil {
					t.Errorf("a cookie was set: %v", c)
				}
				return
			}
			if c == nil || c.Value != viewerToken || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui" {
				t.Fatalf("cookie %+v: want the token, HttpOnly, SameSite=Strict, Path /ui", c)
			}
		})
	}
	authCalls, _ := rev.calls()
	if authCalls > 3 {
		t.Errorf("%d TokenReviews for two distinct tokens and one invalid one: decisions are not cached", authCalls)
	}
	rec := post("/ui/logout", nil, "same-origin")
	if rec.Code != 303 || rec.Header().Get("Location") != "login" {
		t.Fatalf("logout: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	if cs := rec.Result().Cookies(); len(cs) != 1 || cs[0].Name != cookieName || cs[0].MaxAge >= 0 || cs[0].Path != "/ui" {
		t.Errorf("logout cookies %v: want %s deleted", cs, cookieName)
	}
}

// Decisions are cached by a hash of the token: repeated requests ask the
// API server once per token and sync, and the token is no cache key.
func TestDecisionsAreCached(t *testing.T) {
	s, rev := testServer(t, Options{AuthTTL: time.Hour})
	h := s.Handler()
	for range 5 {
		if resp, _ := get(t, h, "/ui/", viewerToken); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if a, c := rev.calls(); a != 1 || c != 3 {
		t.Errorf("%d TokenReviews and %d SubjectAccessReviews, want 1 and 3 (one per sync)", a, c)
	}
	for _, k := range append(s.auth.users.Keys(), s.auth.reads.Keys()...) {
		if strings.Contains(k.(string), viewerToken) {
			t.Errorf("cache key %q holds the token", k)
		}
	}
}

// The event stream tells an open page when what it shows changed: at once
// when the page is already stale, then at each change; polls that found
// nothing new do not count.
func TestEventStream(t *testing.T) {
	var mu gosync.Mutex
	st := testStatus()
	status := func() agent.Status {
		mu.Lock()
		defer mu.Unlock()
		return st
	}
	s, _ := testServer(t, Options{Status: status, EventInterval: 10 * time.Millisecond})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	viewer := &viewer{status: status()}
	viewer.visible = []agent.SyncStatus{status().Syncs[1]}
	since := fingerprint(viewer.status, viewer.visible)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/ui/events?sync=shop&since="+since, nil)
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: ") {
				events <- strings.TrimPrefix(sc.Text(), "event: ")
			}
		}
		close(events)
	}()
	// update changes sync shop in a new copy of the status, as the agent
	// hands out snapshots.
	update := func(fn func(*agent.SyncStatus)) {
		mu.Lock()
		defer mu.Unlock()
		st.Syncs = append([]agent.SyncStatus(nil), st.Syncs...)
		fn(&st.Syncs[1])
	}
	// A poll that found nothing new changes nothing the page shows.
	update(func(s *agent.SyncStatus) {
		s.LastAttempt = &agent.Attempt{At: testNow, Outcome: "success", Writes: 2}
		s.NextAttempt = testNow.Add(time.Minute)
	})
	select {
	case e := <-events:
		t.Fatalf("event %q for a change the page does not show", e)
	case <-time.After(300 * time.Millisecond):
	}
	// A new revision applied: the page is stale.
	update(func(s *agent.SyncStatus) {
		s.Applied = &agent.RevisionStatus{Revision: "main@sha1:4444444444444444444444444444444444444444", At: testNow}
	})
	select {
	case e := <-events:
		if e != "change" {
			t.Fatalf("event %q, want change", e)
		}
	case <-ctx.Done():
		t.Fatal("no event after a new revision was applied")
	}
	// Close ends the stream.
	s.Close()
	for range events {
	}

	// A sync the user may not read has no stream; nor has a stranger.
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/ui/events?sync=payments", viewerToken, 404},
		{"/ui/events", "", 401},
		{"/ui/events", "nope", 401},
	} {
		resp, _ := get(t, s.Handler(), tc.path, tc.token)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
	}
}

// Event streams are bounded per user: past the bound a new one is refused
// (the page still works, without refreshing itself), another user's is
// not, and a closed stream gives its place back.
func TestEventStreamsPerUserAreBounded(t *testing.T) {
	s, _ := testServer(t, Options{EventInterval: time.Hour})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	open := func(ctx context.Context, token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/ui/events", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var first context.CancelFunc
	for i := range maxStreamsPerUser {
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		if i == 0 {
			first = scancel
		}
		resp := open(sctx, viewerToken)
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d: status %d, want 200", i+1, resp.StatusCode)
		}
	}
	resp := open(ctx, viewerToken)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("stream %d of one user: status %d, want 429", maxStreamsPerUser+1, resp.StatusCode)
	}
	resp = open(ctx, adminToken)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("another user's stream: status %d, want 200", resp.StatusCode)
	}
	first()
	for {
		resp := open(ctx, viewerToken)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("a closed stream did not give its place back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Sections other features fill appear when they have data, and only then;
// drift values of Secrets are masked whatever the producer sent.
func TestExtrasSections(t *testing.T) {
	s, _ := testServer(t, Options{})
	_, body := get(t, s.Handler(), "/ui/syncs/shop", adminToken)
	if strings.Contains(body, "Image updates") || strings.Contains(body, ">Drift<") {
		t.Error("drift or image sections without data")
	}
	_, body = get(t, s.Handler(), "/ui/", adminToken)
	if strings.Contains(body, ">Drift<") || strings.Contains(body, ">Images<") {
		t.Error("drift or image columns without data")
	}
	s, _ = testServer(t, Options{Extras: fixedExtras{Extras{
		Drift: []Drift{
			{Object: shopConfig, Path: "data.greeting", Git: "hello", Live: "hi", Manager: "kubectl-edit (Update)", Since: testNow},
			{Object: shopSecret, Path: "data.password", Git: secretValue, Live: secretValue + "-2", Manager: "kubectl-edit (Update)", Since: testNow},
		},
		Images: []ImageUpdate{
			{Image: "registry.example.com/shop", From: "1.0.0", To: "1.1.0", Policy: "semver", State: ImageCommitted, At: testNow},
			{Image: "registry.example.com/cart", From: "2.0.0", To: "2.0.0", Policy: "semver", State: ImageUpToDate},
		},
	}}})
	_, body = get(t, s.Handler(), "/ui/syncs/shop", adminToken)
	for _, want := range []string{"Image updates", "registry.example.com/shop", "1.1.0", ">committed<", ">up to date<",
		"<code>data.greeting</code>", "<code>hello</code> → <code>hi</code>", "drift: <code>data.greeting</code> <code>hello</code> → <code>hi</code> by kubectl-edit (Update)"} {
		if !strings.Contains(body, want) {
			t.Errorf("the sync page lacks %q", want)
		}
	}
	if strings.Contains(body, secretValue) {
		t.Error("the sync page shows a Secret's drift value")
	}
	_, body = get(t, s.Handler(), "/ui/", adminToken)
	for _, want := range []string{">Drift<", ">Images<", "2 objects drifted", "2 fields", ">1 committed<"} {
		if !strings.Contains(body, want) {
			t.Errorf("the overview lacks %q", want)
		}
	}
	_, body = get(t, s.Handler(), "/ui/objects/Secret/shop/creds", adminToken)
	if strings.Contains(body, secretValue) || !strings.Contains(body, "<code>data.password</code>") {
		t.Errorf("the Secret's page: its drift must show the field, masked:\n%s", body)
	}
}

// The overview tells drift that is not tracked from drift that is tracked
// and none: no column of zeros for syncs nobody checked.
func TestOverviewDriftKnownAndUnknown(t *testing.T) {
	s, _ := testServer(t, Options{Extras: extrasFunc(func(sync string) Extras {
		switch sync {
		case "shop":
			return Extras{Drift: []Drift{}}
		case "payments":
			return Extras{Drift: []Drift{{Object: payDeploy, Deleted: true, Since: testNow}}}
		}
		return Extras{}
	})})
	_, body := get(t, s.Handler(), "/ui/", adminToken)
	rows := map[string]string{}
	for _, tr := range strings.Split(body, "<tr>")[1:] {
		if m := regexp.MustCompile(`href="syncs/([a-z]+)"`).FindStringSubmatch(tr); m != nil {
			rows[m[1]] = tr
		}
	}
	for sync, want := range map[string]string{
		"shop":     `<td data-label="Drift">none</td>`,
		"payments": "1 object drifted",
		"zeta":     "not tracked yet",
	} {
		if !strings.Contains(rows[sync], want) {
			t.Errorf("%s: the drift cell lacks %q:\n%s", sync, want, rows[sync])
		}
	}
}

type extrasFunc func(sync string) Extras

func (f extrasFunc) Extras(_ context.Context, _ *agent.Status, sync string) Extras { return f(sync) }

// The overview shows each revision's commit age, fetched and applied.
func TestOverviewCommitAge(t *testing.T) {
	status := func() agent.Status {
		st := testStatus()
		st.Syncs[1].Applied.Commit.Time = testNow.Add(-3 * time.Hour)
		st.Syncs[1].Fetched = &agent.RevisionStatus{Revision: "main@sha1:5555555555555555555555555555555555555555", At: testNow,
			Commit: &agent.Commit{Hash: "5555555555555555555555555555555555555555", Author: "Ann <a@example.com>", Subject: "shop 1.2", Time: testNow.Add(-5 * time.Minute)}}
		return st
	}
	s, _ := testServer(t, Options{Status: status})
	_, body := get(t, s.Handler(), "/ui/", adminToken)
	for _, want := range []string{"committed 3h ago", "committed 5m ago", "applied 2m ago", "shop 1.2"} {
		if !strings.Contains(body, want) {
			t.Errorf("the overview lacks %q", want)
		}
	}
}

// The object page shows the object's open drift with git's value (which
// tether's fields no longer hold once another manager took the field),
// the other writers with their fields, and masks every annotation of a
// Secret but tether's provenance.
func TestObjectPageDriftAndWriters(t *testing.T) {
	src := testSource()
	cm := src.objects[shopConfig]
	live := cm.Live.DeepCopy()
	live.SetManagedFields([]metav1.ManagedFieldsEntry{
		{Manager: "tether", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1", FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:note":{}}}}`)}},
		{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", FieldsType: "FieldsV1", Time: &metav1.Time{Time: testNow.Add(-time.Minute)}, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:data":{"f:greeting":{}}}`)}},
	})
	cm.Live = live
	secret := src.objects[shopSecret]
	sl := secret.Live.DeepCopy()
	sl.SetAnnotations(map[string]string{contract.LastAppliedAnnotation: secretValue, "backup/key": secretValue, contract.SourceAnnotation: "overlays/prod/secret.yaml"})
	secret.Live = sl
	s, _ := testServer(t, Options{Source: src, Extras: fixedExtras{Extras{Drift: []Drift{
		{Object: shopConfig, Path: "data.greeting", Git: "hello from git", Live: "hi", Manager: "kubectl-edit (Update)", Since: testNow.Add(-time.Minute)},
	}}}})
	_, body := get(t, s.Handler(), "/ui/objects/ConfigMap/shop/settings", viewerToken)
	for _, want := range []string{"Drift from git", "<code>data.greeting</code>", "<code>hello from git</code> → <code>hi</code>", "kubectl-edit (Update)", "Also written by", "<td>kubectl-edit (Update)</td><td>1m ago</td><td><code>data.greeting</code></td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the object page lacks %q", want)
		}
	}
	_, body = get(t, s.Handler(), "/ui/objects/Secret/shop/creds", viewerToken)
	if strings.Contains(body, secretValue) {
		t.Errorf("the Secret's page shows an annotation's value")
	}
	if !strings.Contains(body, "overlays/prod/secret.yaml") || !strings.Contains(body, "backup/key: (masked)") {
		t.Errorf("the Secret's page: want tether's provenance shown and other annotations masked:\n%s", body)
	}
	s, _ = testServer(t, Options{})
	_, body = get(t, s.Handler(), "/ui/objects/ConfigMap/shop/settings", viewerToken)
	if !strings.Contains(body, "Unknown: the agent does not track drift") {
		t.Errorf("without drift data the page must say drift is unknown:\n%s", body)
	}
}

type fixedExtras struct{ e Extras }

func (f fixedExtras) Extras(context.Context, *agent.Status, string) Extras { return f.e }

// The sync page shows the tree, the recent attempts with phase timings and
// writes, and the failure of the last attempt.
func TestSyncPage(t *testing.T) {
	s, _ := testServer(t, Options{})
	_, body := get(t, s.Handler(), "/ui/syncs/shop", adminToken)
	for _, want := range []string{
		`href="../objects/ConfigMap/shop/settings"`, "overlays/prod/cm.yaml", "managers: tether, kubectl-edit",
		"Missing", ">build<", ">apply<", "300ms", "1.1s", "update 2", "unchanged 5",
		`data-events="../events?since=`, "&amp;sync=shop",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the sync page lacks %q", want)
		}
	}
}
