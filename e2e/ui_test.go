//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tether-gitops/tether/e2e/cluster"
	"github.com/tether-gitops/tether/e2e/gitserver"
	"github.com/tether-gitops/tether/ui"
)

// uiSecretValue is the Secret's value in TestWebPage; it must never reach
// the browser.
const uiSecretValue = "ui-e2e-secret-value-7f3a9c"

// uiShopFiles is the healthy app of TestWebPage: a Namespace, a ConfigMap
// with an annotation holding markup, a Secret and a Deployment (kwok runs
// its Pod, so the tree shows Deployment → ReplicaSet → Pod). motd, when
// set, is one more key of the ConfigMap.
func uiShopFiles(value, motd string) map[string]string {
	extra := ""
	if motd != "" {
		extra = fmt.Sprintf("  motd: %q\n", motd)
	}
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
%s`, value, extra),
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

// The commit subjects of TestWebPage after the first, hostile one: what a
// team would write, so the README's picture shows a page as people see it.
const (
	uiPushSubject    = "shop: greet customers in the checkout"
	uiBrokenSubject  = "payments: add the fraud-check settings"
	uiNoJSSubject    = "shop: message of the day"
	uiHostileSubject = "<script>window.__pwned = 'commit'</script> shop 1.0"
)

// TestWebPage drives the agent's web page in a real browser (Debian's
// chromium through the DevTools protocol) against `tether run` on the
// control plane: the overview lists the syncs with their health; a push
// shows up without a reload; drift shows with git's value; a failing sync
// shows its phase and error; the object page masks the Secret (values and
// annotations); hostile strings stay text and no script runs; a user
// without RBAC on a sync does not see it, an invalid token gets 401; every
// link and control of the overview takes the keyboard focus in order;
// every page fits a phone and a laptop without scrolling sideways; with
// JavaScript off the overview works and a reload shows a new revision; the
// page breaks no rule of its Content-Security-Policy. Screenshots go to
// $E2E_ARTIFACTS/TestWebPage, else e2e/artifacts/TestWebPage (git-ignored);
// UPDATE_SCREENSHOT=1 also writes docs/overview.png for the README.
func TestWebPage(t *testing.T) {
	c := sharedCluster(t)
	sa := tetherIdentity(t, c)
	ctx := context.Background()

	srv, err := gitserver.Start(gitserver.Options{Username: "alice", Password: "ui-pass"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	shop, err := srv.CreateRepo("ui-shop")
	if err != nil {
		t.Fatal(err)
	}
	sha1, err := shop.Commit(uiHostileSubject, uiShopFiles("v1", ""))
	if err != nil {
		t.Fatal(err)
	}
	payments, err := srv.CreateRepo("ui-payments")
	if err != nil {
		t.Fatal(err)
	}
	bad := appFiles("ui-payments", "v1")
	bad["app/config.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fraud-check\n"
	if _, err := payments.Commit(uiBrokenSubject, bad); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(password, []byte("ui-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "tether.yaml")
	// ui-shop keeps drift (policy warn), so the page can show it.
	writeFileAtomically(t, cfgPath, agentConfig(
		gitSync("ui-shop", shop.URL, password, "5s", "")+"    drift: warn\n"+
			gitSync("ui-payments", payments.URL, password, "5s", "")))
	p := startAgent(t, sa.Kubeconfig, cfgPath, "--leader-elect=false")
	eventually(t, 2*time.Minute, "ui-shop applied and Healthy, ui-payments failing", func() error {
		s, err := p.syncStatus("ui-shop")
		if err != nil {
			return err
		}
		if s.Applied == nil || !strings.HasSuffix(s.Applied.Revision, sha1) || s.Health != "Healthy" {
			return fmt.Errorf("ui-shop: applied %+v health %q", s.Applied, s.Health)
		}
		b, err := p.syncStatus("ui-payments")
		if err != nil {
			return err
		}
		if b.LastAttempt == nil || b.LastAttempt.Outcome != "failure" {
			return fmt.Errorf("ui-payments: last attempt %+v", b.LastAttempt)
		}
		return nil
	})

	// Who is who: the admin (system:masters) reads everything; the viewer
	// may get the inventory ConfigMap of ui-shop only.
	adminToken := c.Config.BearerToken
	viewer := uiViewer(t, c, "tether-inventory-ui-shop")
	pageURL := p.url + "/ui/"
	art := artifactDir(t)

	// The raw HTML as served, before any browser: no Secret value, hostile
	// strings escaped, 401 without or with a bad token.
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"not-a-token", 401}, {adminToken, 200}} {
		if code, _ := httpGet(t, pageURL, tc.token); code != tc.want {
			t.Errorf("GET /ui/ with token %q: %d, want %d", redactToken(tc.token), code, tc.want)
		}
	}
	code, body := httpGet(t, pageURL+"objects/Secret/ui-shop/creds", adminToken)
	if code != 200 {
		t.Fatalf("the Secret's page: %d\n%s", code, body)
	}
	assertNoSecret(t, "the Secret's page as served", body)

	b := newBrowser(t, art)

	// An invalid token: 401 and the sign-in form.
	bad401 := b.tab(t, "invalid-token", "Bearer not-a-valid-token")
	resp, err := chromedp.RunResponse(bad401, chromedp.Navigate(pageURL))
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
	admin := b.tab(t, "admin", "")
	resp, err = chromedp.RunResponse(admin, chromedp.Navigate(pageURL))
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

	// The overview lists both syncs with their state and health; the
	// hostile commit subject is text.
	overview := b.text(t, admin, "#syncs")
	for _, want := range []string{"ui-shop", "ui-payments", "Healthy", "Failing", "build failed", sha1[:12], uiHostileSubject, uiBrokenSubject, "committed"} {
		if !strings.Contains(overview, want) {
			t.Errorf("the overview lacks %q:\n%s", want, overview)
		}
	}
	b.assertNotPwned(t, admin)
	b.screenshot(t, admin, "overview.png")

	// Keyboard: Tab walks every link and control of the overview, in
	// order, starting with the skip link.
	b.assertTabOrder(t, admin, pageURL, "syncs")

	// A push shows on the page without a reload: a marker set in this
	// document survives, and the new revision appears.
	b.eval(t, admin, "(window.__marker = 'still here')")
	sha2, err := shop.Commit(uiPushSubject, uiShopFiles("v2", ""))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the overview shows the pushed revision by itself", func() error {
		if text := b.text(t, admin, "#syncs"); !strings.Contains(text, sha2[:12]) || !strings.Contains(text, uiPushSubject) {
			return fmt.Errorf("not yet:\n%s", text)
		}
		return nil
	})
	if marker := b.eval(t, admin, "window.__marker"); marker != "still here" {
		t.Errorf("the page was reloaded (marker %q): the refresh must swap content in place", marker)
	}
	b.screenshot(t, admin, "overview-after-push.png")

	// Someone edits the ConfigMap by hand: drift, kept under policy warn.
	// And someone puts a value into an annotation of the Secret (not
	// drift: tether does not own it) that the page must mask.
	if _, err := c.Client.CoreV1().ConfigMaps("ui-shop").Patch(ctx, "settings", types.MergePatchType, []byte(`{"data":{"value":"hot-fix"}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	secretAnnotation := fmt.Sprintf(`{"metadata":{"annotations":{"backup.example.com/key":%q}}}`, uiSecretValue)
	if _, err := c.Client.CoreV1().Secrets("ui-shop").Patch(ctx, "creds", types.MergePatchType, []byte(secretAnnotation), metav1.PatchOptions{FieldManager: "kubectl-annotate"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the overview shows the drift", func() error {
		b.navigate(t, admin, pageURL, 200)
		if text := b.text(t, admin, "#syncs"); !strings.Contains(text, "1 object drifted") {
			return fmt.Errorf("not yet:\n%s", text)
		}
		return nil
	})
	b.screenshot(t, admin, "overview-drift.png")
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		b.writeREADMEShot(t, admin, pageURL)
	}

	// The failing sync's page: the phase and the error, naming the file.
	b.navigate(t, admin, pageURL+"syncs/ui-payments", 200)
	text := b.text(t, admin, "main")
	if !strings.Contains(text, "build failed") || !strings.Contains(text, "config.yaml") {
		t.Errorf("the failing sync's page:\n%s", text)
	}
	b.screenshot(t, admin, "sync-failing.png")

	// The healthy sync's page: the tree down to the Pod, attempts with
	// phase timings, the drift with git's value.
	b.navigate(t, admin, pageURL+"syncs/ui-shop", 200)
	text = b.text(t, admin, "main")
	for _, want := range []string{"Deployment", "ReplicaSet", "Pod", "web-", "app/deploy.yaml", "Recent attempts", "build", "apply", "health", "data.value", "v2 → hot-fix"} {
		if !strings.Contains(text, want) {
			t.Errorf("the sync page lacks %q:\n%s", want, text)
		}
	}
	b.screenshot(t, admin, "sync.png")

	// The Secret's page: values and annotations masked, the value nowhere
	// in the document.
	b.navigate(t, admin, pageURL+"objects/Secret/ui-shop/creds", 200)
	html, err := chromedp.Run(admin, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "the Secret's page in the browser", html)
	if !strings.Contains(html, "(masked)") || !strings.Contains(html, "password") || !strings.Contains(html, "backup.example.com/key: (masked)") {
		t.Errorf("the Secret's page shows no masked key or annotation:\n%s", html)
	}
	b.screenshot(t, admin, "object-secret.png")

	// The ConfigMap's page: the annotation's markup is text; the drift
	// shows git's value, which tether's fields no longer hold, and who
	// else writes the object.
	b.navigate(t, admin, pageURL+"objects/ConfigMap/ui-shop/settings", 200)
	text = b.text(t, admin, "main")
	for _, want := range []string{"<script>window.__pwned = 'annotation'</script>", "app/config.yaml", "Drift from git", "data.value", "v2 → hot-fix", "kubectl-edit (Update)", "Also written by"} {
		if !strings.Contains(text, want) {
			t.Errorf("the ConfigMap's page lacks %q:\n%s", want, text)
		}
	}
	b.assertNotPwned(t, admin)
	b.screenshot(t, admin, "object-configmap.png")

	// A phone and a laptop: no page is wider than the screen (tables
	// scroll inside their box, the page does not).
	for _, path := range []string{"", "syncs/ui-shop", "syncs/ui-payments", "objects/Secret/ui-shop/creds", "objects/ConfigMap/ui-shop/settings", "objects/Deployment.apps/ui-shop/web"} {
		b.assertFits(t, admin, pageURL+path)
	}

	// JavaScript off: the overview shows the syncs, and a reload (the only
	// way then) shows a new revision. The tab never opens the event
	// stream, which only the script does: proof that no script ran.
	nojs := b.tab(t, "no-javascript", "Bearer "+adminToken)
	if _, err := chromedp.Call(nojs, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	b.navigate(t, nojs, pageURL, 200)
	if text := b.text(t, nojs, "#syncs"); !strings.Contains(text, "ui-shop") || !strings.Contains(text, "ui-payments") || !strings.Contains(text, sha2[:12]) {
		t.Errorf("the overview without JavaScript:\n%s", text)
	}
	sha3, err := shop.Commit(uiNoJSSubject, uiShopFiles("v2", "Welcome back"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "a reload without JavaScript shows the new revision", func() error {
		b.navigate(t, nojs, pageURL, 200)
		if text := b.text(t, nojs, "#syncs"); !strings.Contains(text, sha3[:12]) || !strings.Contains(text, uiNoJSSubject) {
			return fmt.Errorf("not yet:\n%s", text)
		}
		return nil
	})
	b.screenshot(t, nojs, "overview-no-javascript.png")
	if n := b.requests("no-javascript", "/ui/events"); n != 0 {
		t.Errorf("the tab without JavaScript opened the event stream %d times: scripts ran", n)
	}
	if n := b.requests("admin", "/ui/events"); n == 0 {
		t.Error("the tab with JavaScript never opened the event stream: the check above proves nothing")
	}

	// The viewer sees ui-shop and nothing of ui-payments.
	vt := b.tab(t, "viewer", "Bearer "+viewer)
	b.navigate(t, vt, pageURL, 200)
	text = b.text(t, vt, "main")
	if !strings.Contains(text, "ui-shop") || strings.Contains(text, "ui-payments") {
		t.Errorf("the viewer's overview:\n%s", text)
	}
	b.navigate(t, vt, pageURL+"syncs/ui-payments", 404)
	b.navigate(t, vt, pageURL+"syncs/ui-shop", 200)
	b.screenshot(t, vt, "viewer.png")

	b.assertNoCSPViolations(t)
}

// TestBrowserReportsCSPViolations shows that TestWebPage's check of the
// Content-Security-Policy can fail: a page sent with the web page's policy
// and an inline script and style is reported (the page's own
// securitypolicyviolation events, and the browser's log), and the script
// does not run; a page that follows the policy is not reported.
func TestBrowserReportsCSPViolations(t *testing.T) {
	mux := http.NewServeMux()
	serve := func(path, ctype, body string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Security-Policy", ui.ContentSecurityPolicy)
			w.Header().Set("Content-Type", ctype)
			io.WriteString(w, body)
		})
	}
	serve("/good", "text/html", `<!doctype html><html><head><script src="good.js"></script><link rel="stylesheet" href="good.css"></head><body><p>fine</p></body></html>`)
	serve("/good.js", "text/javascript", `window.__ran = "external";`)
	serve("/good.css", "text/css", `p { color: green; }`)
	serve("/inline", "text/html", `<!doctype html><html><head></head><body><p style="color: red">inline</p><script>window.__ran = "inline";</script></body></html>`)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := newBrowser(t, artifactDir(t))
	good := b.tab(t, "good", "")
	b.navigate(t, good, srv.URL+"/good", 200)
	if ran := b.eval(t, good, "window.__ran"); ran != "external" {
		t.Errorf("the page's own script did not run (window.__ran = %q)", ran)
	}
	inline := b.tab(t, "inline", "")
	b.navigate(t, inline, srv.URL+"/inline", 200)
	if ran := b.eval(t, inline, "window.__ran"); ran != "" {
		t.Errorf("the inline script ran (window.__ran = %q): the policy did not apply", ran)
	}
	eventually(t, 30*time.Second, "the inline script and style reported by the page and by the browser's log", func() error {
		events, logs := b.cspProblems("inline")
		var scripts, styles bool
		for _, e := range events {
			scripts = scripts || strings.HasPrefix(e, "script-src")
			styles = styles || strings.HasPrefix(e, "style-src")
		}
		if !scripts || !styles || len(logs) == 0 {
			return fmt.Errorf("violation events %q, log entries %q", events, logs)
		}
		return nil
	})
	events, logs := b.cspProblems("inline")
	t.Logf("reported for the inline page: events %q; log %q", events, logs)
	if events, logs := b.cspProblems("good"); len(events)+len(logs) > 0 {
		t.Errorf("a page that follows the policy was reported: %q %q", events, logs)
	}
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

// artifactDir is where screenshots go: $E2E_ARTIFACTS/<test>, else
// e2e/artifacts/<test> in the repository (git-ignored), kept after the
// test so they can be looked at. The path is logged.
func artifactDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("E2E_ARTIFACTS")
	if root == "" {
		root = filepath.Join(repoRoot(t), "e2e", "artifacts")
	}
	dir := filepath.Join(root, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// browser is a headless Chromium for one test.
type browser struct {
	ctx       context.Context
	artifacts string

	mu   gosync.Mutex
	tabs map[string]*tabLog
}

// tabLog is what one tab saw.
type tabLog struct {
	// console holds the console messages, including the browser's log
	// entries (chromedp.Console reads the Log domain).
	console []chromedp.ConsoleMessage
	// violations are the page's securitypolicyviolation events, as
	// "directive blocked-uri (source:line)".
	violations []string
	// requests are the URLs the tab requested.
	requests []string
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
	return &browser{ctx: ctx, artifacts: artifacts, tabs: map[string]*tabLog{}}
}

// cspBinding is the function through which a page reports its
// Content-Security-Policy violations to the test (Runtime.addBinding: a
// call becomes a Runtime.bindingCalled event).
const cspBinding = "__tetherReportCSPViolation"

// cspListener runs in every document before the page's own scripts
// (Page.addScriptToEvaluateOnNewDocument, which the page's policy does not
// govern) and reports each securitypolicyviolation event.
const cspListener = `window.addEventListener("securitypolicyviolation", function (e) {
  ` + cspBinding + `(e.violatedDirective + " " + (e.blockedURI || "?") + " (" + (e.sourceFile || e.documentURI) + ":" + e.lineNumber + ")");
}, true);`

// tab opens a tab called name in a browser context of its own (its own
// cookies), sending authorization, when not empty, as the Authorization
// header of every request, like a proxy that authenticates users would. It
// records the tab's console and log messages, its CSP violations and its
// requests.
func (b *browser) tab(t *testing.T, name, authorization string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	log := &tabLog{}
	b.mu.Lock()
	b.tabs[name] = log
	b.mu.Unlock()
	record := func(fn func()) {
		b.mu.Lock()
		defer b.mu.Unlock()
		fn()
	}
	messages := chromedp.Console(ctx)
	violations := chromedp.Events(ctx, runtime.BindingCalled)
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			record(func() { log.console = append(log.console, m) })
		}
	}()
	go func() {
		for ev, err := range violations {
			if err != nil {
				return
			}
			if ev.Name == cspBinding {
				record(func() { log.violations = append(log.violations, ev.Payload) })
			}
		}
	}()
	go func() {
		for ev, err := range requests {
			if err != nil {
				return
			}
			if ev.Request != nil {
				record(func() { log.requests = append(log.requests, ev.Request.URL) })
			}
		}
	}()
	if _, err := chromedp.Call(ctx, runtime.AddBinding, runtime.AddBindingParams{Name: cspBinding}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListener}); err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": authorization}}); err != nil {
			t.Fatal(err)
		}
	}
	return ctx
}

// requests counts the requests of tab name whose URL contains part.
func (b *browser) requests(name, part string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, u := range b.tabs[name].requests {
		if strings.Contains(u, part) {
			n++
		}
	}
	return n
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

// writeREADMEShot writes docs/overview.png: the overview at 1280×800, as
// the README shows it (UPDATE_SCREENSHOT=1).
func (b *browser) writeREADMEShot(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	b.do(t, ctx, chromedp.EmulateViewport(1280, 800))
	b.navigate(t, ctx, url, 200)
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
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

// focusables lists, in document order, what the keyboard can reach on the
// page: links, buttons and form controls that are shown and enabled, and
// anything with a non-negative tabindex. describe names an element the
// same way after the page swapped in fresh content.
const (
	focusables = `Array.from(document.querySelectorAll('a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])')).filter(function (e) { return e.getClientRects().length > 0; })`
	describe   = `function (e) { if (!e || e === document.body) return "(nothing)"; return e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.getAttribute("href") !== null ? "[href=" + e.getAttribute("href") + "]" : "") + (e.name ? "[name=" + e.name + "]" : "") + " " + (e.textContent || "").trim().replace(/\s+/g, " ").slice(0, 40); }`
)

// assertTabOrder loads url and presses Tab once per link and control: each
// must take the focus (document.activeElement), one after the other, in
// document order. live is the id of the region the page refreshes by
// itself; when it was swapped during the walk, the walk is repeated (at
// most three times), since the focused element may have been replaced.
func (b *browser) assertTabOrder(t *testing.T, ctx context.Context, url, live string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		b.navigate(t, ctx, url, 200)
		want, err := chromedp.Run(ctx, chromedp.Evaluate[[]string]("("+focusables+").map("+describe+")"))
		if err != nil {
			t.Fatal(err)
		}
		if len(want) < 8 || !strings.HasPrefix(want[0], "a[href=#main] Skip to content") {
			t.Fatalf("the overview's focusable elements: %q, want the skip link first and at least 8", want)
		}
		b.eval(t, ctx, fmt.Sprintf("(document.getElementById(%q).dataset.walk = 'yes')", live))
		var got []string
		for range want {
			b.do(t, ctx, chromedp.KeyEvent(kb.Tab))
			v, err := chromedp.Run(ctx, chromedp.Evaluate[string]("("+describe+")(document.activeElement)"))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		if b.eval(t, ctx, fmt.Sprintf("document.getElementById(%q).dataset.walk", live)) != "yes" && attempt < 3 {
			t.Logf("the page refreshed itself during the walk; walking again")
			continue
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("Tab %d focuses %q, want %q", i+1, got[i], want[i])
			}
		}
		t.Logf("Tab reached all %d links and controls of the overview in order", len(want))
		return
	}
}

// assertFits loads url on a phone (390×844) and a laptop (1280×800): the
// page must not be wider than the window, which would make people scroll
// sideways. It names the elements that stick out, and saves a screenshot
// of each.
func (b *browser) assertFits(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	defer b.do(t, ctx, chromedp.EmulateViewport(1280, 800))
	for _, size := range [][2]int64{{390, 844}, {1280, 800}} {
		b.do(t, ctx, chromedp.EmulateViewport(size[0], size[1]))
		b.navigate(t, ctx, url, 200)
		over, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(function () {
  var w = window.innerWidth;
  if (document.documentElement.scrollWidth <= w) return [];
  var out = ["scrollWidth " + document.documentElement.scrollWidth + " > innerWidth " + w];
  document.querySelectorAll("body *").forEach(function (e) {
    var r = e.getBoundingClientRect();
    if (r.right > w + 1 && out.length < 8) out.push((`+describe+`)(e) + " ends at " + Math.round(r.right));
  });
  return out;
})()`))
		if err != nil {
			t.Fatal(err)
		}
		if len(over) > 0 {
			t.Errorf("%s at %dx%d is wider than the window: %s", url, size[0], size[1], strings.Join(over, "; "))
		}
		name := strings.NewReplacer("/", "_", ":", "_").Replace(strings.TrimPrefix(url[strings.Index(url, "/ui/")+len("/ui/"):], "/"))
		if name == "" {
			name = "overview"
		}
		b.screenshot(t, ctx, fmt.Sprintf("fit-%s-%dx%d.png", name, size[0], size[1]))
	}
}

// cspProblems returns what tab name reported about its
// Content-Security-Policy: its securitypolicyviolation events, and the
// browser's log and console messages about the policy.
func (b *browser) cspProblems(name string) (events, logs []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	tl := b.tabs[name]
	if tl == nil {
		return nil, nil
	}
	events = append(events, tl.violations...)
	for _, m := range tl.console {
		if m.Source == "security" || strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy") {
			logs = append(logs, m.String())
		}
	}
	return events, logs
}

// assertNoCSPViolations fails on any violation of the page's
// Content-Security-Policy that a tab reported: everything the page needs
// must be allowed by it. TestBrowserReportsCSPViolations shows that a
// violation is reported.
func (b *browser) assertNoCSPViolations(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	var names []string
	for name := range b.tabs {
		names = append(names, name)
	}
	b.mu.Unlock()
	for _, name := range names {
		events, logs := b.cspProblems(name)
		for _, p := range append(events, logs...) {
			t.Errorf("tab %s: Content-Security-Policy violation: %s", name, p)
		}
	}
	data, _ := json.Marshal(names)
	t.Logf("no CSP violation in tabs %s", data)
}
