//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tether-gitops/tether/e2e/cluster"
	"github.com/tether-gitops/tether/e2e/gitserver"
)

// uiSecretValue is the Secret's value in TestWebPage; it must never reach
// the browser.
const uiSecretValue = "ui-e2e-secret-value-7f3a9c"

// uiShopFiles is the healthy app of TestWebPage: a Namespace, a ConfigMap
// with an annotation holding markup, a Secret and a Deployment (kwok runs
// its Pod, so the tree shows Deployment → ReplicaSet → Pod).
func uiShopFiles(value string) map[string]string {
	return map[string]string{
		"app/kustomization.yaml": kustomization + "- ns.yaml\n- config.yaml\n- secret.yaml\n- deploy.yaml\n",
		"app/ns.yaml":            nsYAML("ui-shop"),
		"app/config.yaml": fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: ui-shop
  annotations:
    note: "<script>window.__pwned = 'annotation'</script>"
data:
  value: %q
`, value),
		"app/secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: ui-shop
stringData:
  password: ` + uiSecretValue + `
`,
		"app/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: ui-shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example.com/web:1.0.0
`,
	}
}

// TestWebPage drives the agent's web page in a real browser (Debian's
// chromium through the DevTools protocol) against `tether run` on the
// control plane: the overview lists the syncs with their health; a push
// shows up without a reload; a failing sync shows its phase and error; the
// object page masks the Secret; hostile strings stay text; a user without
// RBAC on a sync does not see it; an invalid token gets 401; the page fits
// a phone and is keyboard navigable. Screenshots go to $E2E_ARTIFACTS (or a
// temporary folder, logged); UPDATE_SCREENSHOT=1 also writes
// docs/overview.png for the README.
func TestWebPage(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)

	srv, err := gitserver.Start(gitserver.Options{Username: "alice", Password: "ui-pass"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	shop, err := srv.CreateRepo("ui-shop")
	if err != nil {
		t.Fatal(err)
	}
	const hostileSubject = "<script>window.__pwned = 'commit'</script> shop 1.0"
	sha1, err := shop.Commit(hostileSubject, uiShopFiles("v1"))
	if err != nil {
		t.Fatal(err)
	}
	broken, err := srv.CreateRepo("ui-broken")
	if err != nil {
		t.Fatal(err)
	}
	bad := appFiles("ui-broken", "v1")
	bad["app/config.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings\n"
	if _, err := broken.Commit("broken on purpose", bad); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(password, []byte("ui-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "tether.yaml")
	writeFileAtomically(t, cfgPath, agentConfig(
		gitSync("ui-shop", shop.URL, password, "5s", "")+
			gitSync("ui-broken", broken.URL, password, "5s", "")))
	p := startAgent(t, sa.Kubeconfig, cfgPath, "--leader-elect=false")
	eventually(t, 2*time.Minute, "ui-shop applied and Healthy, ui-broken failing", func() error {
		s, err := p.syncStatus("ui-shop")
		if err != nil {
			return err
		}
		if s.Applied == nil || !strings.HasSuffix(s.Applied.Revision, sha1) || s.Health != "Healthy" {
			return fmt.Errorf("ui-shop: applied %+v health %q", s.Applied, s.Health)
		}
		b, err := p.syncStatus("ui-broken")
		if err != nil {
			return err
		}
		if b.LastAttempt == nil || b.LastAttempt.Outcome != "failure" {
			return fmt.Errorf("ui-broken: last attempt %+v", b.LastAttempt)
		}
		return nil
	})

	// Who is who: the admin (system:masters) reads everything; the viewer
	// may get the inventory ConfigMap of ui-shop only.
	adminToken := c.Config.BearerToken
	viewer := uiViewer(t, c, "tether-inventory-ui-shop")
	page := p.url + "/ui/"
	art := artifactDir(t)

	// The raw HTML as served, before any browser: no Secret value, hostile
	// strings escaped, 401 without or with a bad token.
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"not-a-token", 401}, {adminToken, 200}} {
		if code, _ := httpGet(t, page, tc.token); code != tc.want {
			t.Errorf("GET /ui/ with token %q: %d, want %d", redactToken(tc.token), code, tc.want)
		}
	}
	code, body := httpGet(t, page+"objects/Secret/ui-shop/creds", adminToken)
	if code != 200 {
		t.Fatalf("the Secret's page: %d\n%s", code, body)
	}
	assertNoSecret(t, "the Secret's page as served", body)

	b := newBrowser(t, art)

	// An invalid token: 401 and the sign-in form.
	bad401 := b.tab(t, "Bearer not-a-valid-token")
	resp, err := chromedp.RunResponse(bad401, chromedp.Navigate(page))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusUnauthorized {
		t.Errorf("an invalid token got %d, want 401", resp.Status)
	}
	if text := b.text(t, bad401, "main"); !strings.Contains(text, "did not accept the token") {
		t.Errorf("the 401 page says: %s", text)
	}

	// The admin signs in through the form, like a person with a token
	// from `kubectl create token`.
	admin := b.tab(t, "")
	resp, err = chromedp.RunResponse(admin, chromedp.Navigate(page))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusUnauthorized {
		t.Errorf("no token got %d, want 401", resp.Status)
	}
	b.do(t, admin,
		chromedp.SetValue(chromedp.CSS("#token"), adminToken),
		chromedp.Click(chromedp.CSS("form.login button")),
		chromedp.WaitVisible(chromedp.CSS("table.syncs")),
	)

	// The overview lists both syncs with their state and health.
	overview := b.text(t, admin, "#syncs")
	for _, want := range []string{"ui-shop", "ui-broken", "Healthy", "Failing", "build failed", sha1[:12], hostileSubject} {
		if !strings.Contains(overview, want) {
			t.Errorf("the overview lacks %q:\n%s", want, overview)
		}
	}
	b.assertNotPwned(t, admin)
	b.screenshot(t, admin, "overview.png")
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		shot, err := chromedp.Run(admin, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		docs := filepath.Join(repoRoot(t), "docs", "overview.png")
		if err := os.MkdirAll(filepath.Dir(docs), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(docs, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", docs)
	}

	// Keyboard: the first Tab reaches the skip link, and every link and
	// button can be reached.
	b.do(t, admin, chromedp.KeyEvent(kb.Tab))
	if focused := b.eval(t, admin, "document.activeElement.textContent.trim()"); focused != "Skip to content" {
		t.Errorf("the first Tab focuses %q, want the skip link", focused)
	}

	// A push shows on the page without a reload: a marker set in this
	// document survives, and the new revision appears.
	b.eval(t, admin, "(window.__marker = 'still here')")
	sha2, err := shop.Commit("shop 1.1: settings v2", uiShopFiles("v2"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the overview shows the pushed revision by itself", func() error {
		if text := b.text(t, admin, "#syncs"); !strings.Contains(text, sha2[:12]) || !strings.Contains(text, "shop 1.1: settings v2") {
			return fmt.Errorf("not yet:\n%s", text)
		}
		return nil
	})
	if marker := b.eval(t, admin, "window.__marker"); marker != "still here" {
		t.Errorf("the page was reloaded (marker %q): the refresh must swap content in place", marker)
	}
	b.screenshot(t, admin, "overview-after-push.png")

	// The failing sync's page: the phase and the error, naming the file.
	b.navigate(t, admin, page+"syncs/ui-broken", 200)
	text := b.text(t, admin, "main")
	if !strings.Contains(text, "build failed") || !strings.Contains(text, "config.yaml") {
		t.Errorf("the failing sync's page:\n%s", text)
	}
	b.screenshot(t, admin, "sync-failing.png")

	// The healthy sync's page: the tree down to the Pod, attempts with
	// phase timings.
	b.navigate(t, admin, page+"syncs/ui-shop", 200)
	text = b.text(t, admin, "main")
	for _, want := range []string{"Deployment", "ReplicaSet", "Pod", "web-", "app/deploy.yaml", "Recent attempts", "build", "apply", "health"} {
		if !strings.Contains(text, want) {
			t.Errorf("the sync page lacks %q:\n%s", want, text)
		}
	}
	b.screenshot(t, admin, "sync.png")

	// The Secret's page: masked, the value nowhere in the document.
	b.navigate(t, admin, page+"objects/Secret/ui-shop/creds", 200)
	html, err := chromedp.Run(admin, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "the Secret's page in the browser", html)
	if !strings.Contains(html, "(masked)") || !strings.Contains(html, "password") {
		t.Errorf("the Secret's page shows no masked key:\n%s", html)
	}
	b.screenshot(t, admin, "object-secret.png")

	// The ConfigMap's page: the annotation's markup is text.
	b.navigate(t, admin, page+"objects/ConfigMap/ui-shop/settings", 200)
	if text := b.text(t, admin, "main"); !strings.Contains(text, "<script>window.__pwned = 'annotation'</script>") || !strings.Contains(text, "app/config.yaml") {
		t.Errorf("the ConfigMap's page:\n%s", text)
	}
	b.assertNotPwned(t, admin)

	// A phone: the overview fits the width (tables scroll inside their
	// box, the page does not).
	b.do(t, admin, chromedp.EmulateViewport(390, 844))
	b.navigate(t, admin, page, 200)
	if overflow := b.eval(t, admin, "String(document.documentElement.scrollWidth > window.innerWidth)"); overflow != "false" {
		t.Errorf("the overview is wider than a phone's screen")
	}
	b.screenshot(t, admin, "overview-phone.png")

	// The viewer sees ui-shop and nothing of ui-broken.
	vt := b.tab(t, "Bearer "+viewer)
	b.navigate(t, vt, page, 200)
	text = b.text(t, vt, "main")
	if !strings.Contains(text, "ui-shop") || strings.Contains(text, "ui-broken") {
		t.Errorf("the viewer's overview:\n%s", text)
	}
	b.navigate(t, vt, page+"syncs/ui-broken", 404)
	b.navigate(t, vt, page+"syncs/ui-shop", 200)
	b.screenshot(t, vt, "viewer.png")

	b.assertNoCSPViolations(t)
}

// uiViewer mints a token for a ServiceAccount that may get one inventory
// ConfigMap and nothing else.
func uiViewer(t *testing.T, c *cluster.Cluster, inventoryName string) string {
	t.Helper()
	ctx := context.Background()
	sa, err := c.ServiceAccount(ctx, "tether-system", "ui-viewer", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "ui-viewer", Namespace: "tether-system"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}, ResourceNames: []string{inventoryName}}},
	}
	if _, err := c.Client.RbacV1().Roles("tether-system").Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "ui-viewer", Namespace: "tether-system"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "ui-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "ui-viewer", Namespace: "tether-system"}},
	}
	if _, err := c.Client.RbacV1().RoleBindings("tether-system").Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return sa.Token
}

func httpGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func redactToken(token string) string {
	if len(token) > 12 {
		return token[:4] + "…"
	}
	return token
}

func assertNoSecret(t *testing.T, where, html string) {
	t.Helper()
	for _, leak := range []string{uiSecretValue, base64.StdEncoding.EncodeToString([]byte(uiSecretValue))} {
		if strings.Contains(html, leak) {
			t.Errorf("%s holds the Secret's value (%q)", where, leak)
		}
	}
}

// artifactDir is where screenshots go: $E2E_ARTIFACTS/<test>, else a
// temporary folder that is kept (and logged) so they can be looked at.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("E2E_ARTIFACTS")
	var err error
	if dir != "" {
		dir = filepath.Join(dir, t.Name())
		err = os.MkdirAll(dir, 0o755)
	} else {
		dir, err = os.MkdirTemp("", "tether-e2e-"+t.Name()+"-")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// browser is a headless Chromium for one test.
type browser struct {
	ctx       context.Context
	artifacts string

	mu      gosync.Mutex
	console []string
}

// newBrowser starts Debian's chromium with the flags this machine needs
// (no sandbox as root, no network beyond loopback, a fresh profile).
func newBrowser(t *testing.T, artifacts string) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (make deps installs it): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return &browser{ctx: ctx, artifacts: artifacts}
}

// tab opens a tab in a browser context of its own (its own cookies),
// sending authorization, when not empty, as the Authorization header of
// every request, like a proxy that authenticates users would. It records
// what the pages write to the console.
func (b *browser) tab(t *testing.T, authorization string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": authorization}}); err != nil {
			t.Fatal(err)
		}
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, string(m.Type)+": "+m.Text)
			b.mu.Unlock()
		}
	}()
	return ctx
}

func (b *browser) do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// navigate loads url and checks the status code.
func (b *browser) navigate(t *testing.T, ctx context.Context, url string, want int64) {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(url))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != want {
		t.Errorf("%s: %d, want %d", url, resp.Status, want)
	}
}

// text is the visible text of the first element sel matches.
func (b *browser) text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	text, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// eval evaluates a JavaScript expression to a string ("" for undefined).
func (b *browser) eval(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string]("String("+expr+" ?? '')"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// assertNotPwned checks that no hostile script ran.
func (b *browser) assertNotPwned(t *testing.T, ctx context.Context) {
	t.Helper()
	if v := b.eval(t, ctx, "window.__pwned"); v != "" {
		t.Errorf("a hostile script ran: window.__pwned = %q", v)
	}
}

func (b *browser) screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(b.artifacts, name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

// assertNoCSPViolations fails on any console message about the page's
// Content-Security-Policy: everything the page needs must be allowed by it.
func (b *browser) assertNoCSPViolations(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.console {
		if strings.Contains(m, "Content Security Policy") || strings.Contains(m, "Content-Security-Policy") {
			t.Errorf("console: %s", m)
		}
	}
}
