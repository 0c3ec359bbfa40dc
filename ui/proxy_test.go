package ui

import (
	"bufio"
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"k8s.io/apimachinery/pkg/util/proxy"
)

// servicePrefix is where `kubectl proxy` shows a Service through the API
// server.
const servicePrefix = "/api/v1/namespaces/tether-system/services/http:tether:http/proxy"

type proxyErrors struct{ t *testing.T }

func (p proxyErrors) Error(w http.ResponseWriter, _ *http.Request, err error) {
	p.t.Errorf("proxy: %v", err)
	http.Error(w, err.Error(), http.StatusBadGateway)
}

// apiServerProxy forwards like the API server's service proxy: its
// authentication filter has removed the caller's Authorization header, and
// the same proxy handler (with its HTML and Location rewriting) forwards
// the rest of the path to the Service.
func apiServerProxy(t *testing.T, backend string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, servicePrefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		r.Header.Del("Authorization")
		loc, _ := url.Parse(backend)
		loc.Path = rest
		proxy.NewUpgradeAwareHandler(loc, http.DefaultTransport, true, false, proxyErrors{t}).ServeHTTP(w, r)
	})
}

// The page works through `kubectl proxy`: the API server strips the
// Authorization header, so the sign-in form and its cookie carry the token;
// links stay under the proxy's prefix; the event stream passes through.
func TestThroughTheAPIServerProxy(t *testing.T) {
	s, _ := testServer(t, Options{EventInterval: 10 * time.Millisecond})
	backend := httptest.NewServer(s.Handler())
	defer backend.Close()
	front := httptest.NewServer(apiServerProxy(t, backend.URL))
	defer front.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	page := front.URL + servicePrefix + "/ui/"

	req, _ := http.NewRequest(http.MethodGet, page, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("with the header the proxy strips: %d, want 401 and the sign-in form", resp.StatusCode)
	}

	resp, err = client.PostForm(page+"login", url.Values{"token": {viewerToken}})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Request.URL.String() != page {
		t.Fatalf("after signing in: %d at %s, want 200 at %s", resp.StatusCode, resp.Request.URL, page)
	}

	// The cookie belongs to the page under the prefix, not to the rest of
	// what kubectl proxy serves from the same origin.
	inside, _ := url.Parse(page + "syncs/shop")
	outside, _ := url.Parse(front.URL + "/api/v1/namespaces")
	if len(jar.Cookies(inside)) != 1 || len(jar.Cookies(outside)) != 0 {
		t.Errorf("cookies: %v under the page, %v outside it", jar.Cookies(inside), jar.Cookies(outside))
	}

	// Every link of the overview leads to a page under the prefix.
	links := 0
	walk(doc, func(n *html.Node) {
		href := attr(n, "href")
		if n.Data != "a" || href == "" || strings.HasPrefix(href, "#") || strings.HasPrefix(href, "?") {
			return
		}
		u, err := resp.Request.URL.Parse(href)
		if err != nil {
			t.Errorf("%q: %v", href, err)
			return
		}
		links++
		r, err := client.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 || !strings.HasPrefix(u.Path, servicePrefix+"/ui/") {
			t.Errorf("link %q → %s: %d", href, u, r.StatusCode)
		}
	})
	if links < 2 {
		t.Errorf("%d links followed", links)
	}

	// The event stream passes through, flushed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, page+"events?since=stale", nil)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "event: change" {
			return
		}
	}
	t.Fatalf("no change event through the proxy (status %d): %v", resp.StatusCode, sc.Err())
}
