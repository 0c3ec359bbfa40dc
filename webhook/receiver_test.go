package webhook

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"
)

// triggers records the syncs a Receiver triggered.
type triggers struct {
	mu    gosync.Mutex
	names []string
}

func (t *triggers) trigger(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.names = append(t.names, name)
}

func (t *triggers) take() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.names
	t.names = nil
	slices.Sort(out)
	return out
}

// Secrets long enough to be recognised if they leaked into a log.
const (
	secretApp   = "secret-app-0123456789"
	secretOther = "secret-other-0123456789"
	secretInfra = "secret-infra-0123456789"
	secretName  = "secret-byname-0123456789"
)

func testTargets() []Target {
	return []Target{
		{Sync: "webapp-dev", RepoURL: "https://github.com/org/app.git", Secret: []byte(secretApp)},
		{Sync: "webapp-prod", RepoURL: "git@github.com:org/app.git", Secret: []byte(secretApp)},
		{Sync: "other-team", RepoURL: "https://github.com/org/app", Secret: []byte(secretOther)},
		{Sync: "infra", RepoURL: "ssh://git@gitea.local:2222/platform/infra.git", Secret: []byte(secretInfra)},
		{Sync: "nosecret", RepoURL: "https://github.com/org/nosecret"},
		{Sync: "byname", Secret: []byte(secretName)},
	}
}

func pushBody(cloneURL, sshURL, htmlURL string) string {
	b, _ := json.Marshal(map[string]any{
		"ref":   "refs/heads/main",
		"after": "0123456789abcdef0123456789abcdef01234567",
		"repository": map[string]string{
			"clone_url": cloneURL, "ssh_url": sshURL, "html_url": htmlURL, "full_name": "org/app",
		},
	})
	return string(b)
}

var appPush = pushBody("https://github.com/org/app.git", "git@github.com:org/app.git", "https://github.com/org/app")

func TestReceiver(t *testing.T) {
	type request struct {
		method, path, body string
		// sign is the secret to sign with; "" leaves the signature out.
		sign    string
		headers map[string]string
		// chunked sends the body without a Content-Length.
		chunked bool
	}
	github := func(event, body, secret string) request {
		return request{method: "POST", path: GitHubPath, body: body, sign: secret,
			headers: map[string]string{GitHubEventHeader: event, GitHubDeliveryHeader: "d-1", "Content-Type": "application/json"}}
	}
	generic := func(body, secret string) request {
		return request{method: "POST", path: GenericPath, body: body, sign: secret}
	}
	tests := []struct {
		name          string
		req           request
		wantStatus    int
		wantTriggered []string
		wantBody      string
	}{
		{
			name:          "push triggers the syncs of the repository signed with their secret",
			req:           github("push", appPush, secretApp),
			wantStatus:    200,
			wantTriggered: []string{"webapp-dev", "webapp-prod"},
			wantBody:      `{"triggered":["webapp-dev","webapp-prod"]}`,
		},
		{
			name:          "push signed with another sync's secret triggers that sync only",
			req:           github("push", appPush, secretOther),
			wantStatus:    200,
			wantTriggered: []string{"other-team"},
			wantBody:      `{"triggered":["other-team"]}`,
		},
		{
			name: "push matched by ssh_url with a port",
			req: github("push", pushBody("https://gitea.local/platform/infra.git", "ssh://git@gitea.local:2222/platform/infra.git",
				"https://gitea.local/platform/infra"), secretInfra),
			wantStatus:    200,
			wantTriggered: []string{"infra"},
		},
		{
			name:          "push matched by html_url only",
			req:           github("push", pushBody("", "", "https://GitHub.com/Org/App/"), secretApp),
			wantStatus:    200,
			wantTriggered: []string{"webapp-dev", "webapp-prod"},
		},
		{
			name: "form-encoded push",
			req: request{method: "POST", path: GitHubPath, body: "payload=" + url.QueryEscape(appPush), sign: secretApp,
				headers: map[string]string{GitHubEventHeader: "push", "Content-Type": "application/x-www-form-urlencoded"}},
			wantStatus:    200,
			wantTriggered: []string{"webapp-dev", "webapp-prod"},
		},
		{
			name:       "wrong signature",
			req:        github("push", appPush, "not-the-secret"),
			wantStatus: 401,
			wantBody:   `{"error":"invalid signature"}`,
		},
		{
			name:       "missing signature",
			req:        github("push", appPush, ""),
			wantStatus: 401,
			wantBody:   `{"error":"missing signature (X-Hub-Signature-256)"}`,
		},
		{
			name: "malformed signature",
			req: request{method: "POST", path: GitHubPath, body: appPush,
				headers: map[string]string{GitHubEventHeader: "push", GitHubSignatureHeader: "sha1=0123"}},
			wantStatus: 401,
			wantBody:   `{"error":"malformed signature: want sha256=<hex> (X-Hub-Signature-256)"}`,
		},
		{
			name: "signature over another body",
			req: request{method: "POST", path: GitHubPath, body: appPush,
				headers: map[string]string{GitHubEventHeader: "push", GitHubSignatureHeader: Sign([]byte(secretApp), []byte(appPush+" "))}},
			wantStatus: 401,
		},
		{
			name:       "a sync without a secret is never triggered",
			req:        github("push", pushBody("https://github.com/org/nosecret", "", ""), ""),
			wantStatus: 401,
		},
		{
			name:       "a sync without a secret is never triggered, even with an empty key",
			req:        github("push", pushBody("https://github.com/org/nosecret", "", ""), "\x00"),
			wantStatus: 401,
		},
		{
			name:       "unknown repository",
			req:        github("push", pushBody("https://github.com/org/unknown.git", "", ""), secretApp),
			wantStatus: 202,
			wantBody:   `{"triggered":[]}`,
		},
		{
			name:       "no repository in the payload",
			req:        github("push", `{"ref":"refs/heads/main"}`, secretApp),
			wantStatus: 202,
			wantBody:   `{"triggered":[]}`,
		},
		{
			name:       "ping",
			req:        github("ping", appPush, secretApp),
			wantStatus: 200,
			wantBody:   `{"triggered":[]}`,
		},
		{
			name:       "ping with a wrong signature",
			req:        github("ping", appPush, "not-the-secret"),
			wantStatus: 401,
		},
		{
			name:       "ping from an organisation hook (no repository)",
			req:        github("ping", `{"zen":"Keep it logically awesome.","hook_id":1}`, secretApp),
			wantStatus: 200,
			wantBody:   `{"triggered":[]}`,
		},
		{
			name:       "ping signed with a secret nobody here has",
			req:        github("ping", `{"zen":"Keep it logically awesome.","hook_id":1}`, "any"),
			wantStatus: 401,
			wantBody:   `{"error":"invalid signature"}`,
		},
		{
			name:       "unknown repository signed with a secret nobody here has",
			req:        github("push", pushBody("https://github.com/org/unknown.git", "", ""), "not-a-secret-of-ours"),
			wantStatus: 401,
			wantBody:   `{"error":"invalid signature"}`,
		},
		{
			name:       "other events signed with a secret nobody here has",
			req:        github("issues", appPush, "not-a-secret-of-ours"),
			wantStatus: 401,
			wantBody:   `{"error":"invalid signature"}`,
		},
		{
			name:       "other events are accepted without effect",
			req:        github("issues", appPush, secretApp),
			wantStatus: 202,
			wantBody:   `{"triggered":[]}`,
		},
		{
			name:       "no event header",
			req:        github("", appPush, secretApp),
			wantStatus: 400,
		},
		{
			name:       "invalid JSON",
			req:        github("push", `{"repository":`, secretApp),
			wantStatus: 400,
			wantBody:   `{"error":"invalid JSON body"}`,
		},
		{
			name:       "GET",
			req:        request{method: "GET", path: GitHubPath},
			wantStatus: 405,
		},
		{
			name:       "PUT on the generic endpoint",
			req:        request{method: "PUT", path: GenericPath, body: `{"sync":"byname"}`, sign: secretName},
			wantStatus: 405,
		},
		{
			name:       "unknown path",
			req:        request{method: "POST", path: "/hooks/gitlab", body: appPush, sign: secretApp},
			wantStatus: 404,
		},
		{
			name:       "oversized body",
			req:        github("push", pushBody("https://github.com/org/app.git", "", strings.Repeat("x", 5000)), secretApp),
			wantStatus: 413,
		},
		{
			name: "oversized body without Content-Length",
			req: request{method: "POST", path: GitHubPath, body: strings.Repeat("x", 5000), sign: secretApp, chunked: true,
				headers: map[string]string{GitHubEventHeader: "push"}},
			wantStatus: 413,
		},
		{
			name:          "generic by repository",
			req:           generic(`{"repository":"ssh://git@github.com/org/app"}`, secretApp),
			wantStatus:    200,
			wantTriggered: []string{"webapp-dev", "webapp-prod"},
			wantBody:      `{"triggered":["webapp-dev","webapp-prod"]}`,
		},
		{
			name:          "generic by sync name",
			req:           generic(`{"sync":"byname"}`, secretName),
			wantStatus:    200,
			wantTriggered: []string{"byname"},
			wantBody:      `{"triggered":["byname"]}`,
		},
		{
			name:          "generic by the name of a sync that also has a repository",
			req:           generic(`{"sync":"infra"}`, secretInfra),
			wantStatus:    200,
			wantTriggered: []string{"infra"},
		},
		{
			// The sender holds one of our secrets, so it may learn that
			// nothing matched; it is told no more than for a name that
			// does not exist.
			name:       "generic by sync name with another sync's secret",
			req:        generic(`{"sync":"byname"}`, secretApp),
			wantStatus: 202,
			wantBody:   `{"triggered":[]}`,
		},
		{
			name:       "generic known sync with a secret nobody here has",
			req:        generic(`{"sync":"byname"}`, "not-a-secret-of-ours"),
			wantStatus: 401,
			wantBody:   `{"error":"invalid signature"}`,
		},
		{
			name:       "generic unknown sync with a secret nobody here has",
			req:        generic(`{"sync":"nope"}`, "not-a-secret-of-ours"),
			wantStatus: 401,
			wantBody:   `{"error":"invalid signature"}`,
		},
		{
			name:       "generic unknown sync",
			req:        generic(`{"sync":"nope"}`, secretApp),
			wantStatus: 202,
			wantBody:   `{"triggered":[]}`,
		},
		{
			name:       "generic unknown repository",
			req:        generic(`{"repository":"https://github.com/org/unknown"}`, secretApp),
			wantStatus: 202,
		},
		{
			name:       "generic with both fields",
			req:        generic(`{"sync":"byname","repository":"https://github.com/org/app"}`, secretName),
			wantStatus: 400,
		},
		{
			name:       "generic with neither field",
			req:        generic(`{}`, secretName),
			wantStatus: 400,
		},
		{
			name:       "generic with an unknown field",
			req:        generic(`{"repo":"https://github.com/org/app"}`, secretApp),
			wantStatus: 400,
		},
		{
			name: "generic signed in GitHub's header",
			req: request{method: "POST", path: GenericPath, body: `{"sync":"byname"}`,
				headers: map[string]string{GitHubSignatureHeader: Sign([]byte(secretName), []byte(`{"sync":"byname"}`))}},
			wantStatus: 401,
			wantBody:   `{"error":"missing signature (X-Tether-Signature)"}`,
		},
	}

	var logs bytes.Buffer
	var logMu gosync.Mutex
	var tr triggers
	r := New(Options{
		Trigger: tr.trigger,
		Logger:  slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)),
		MaxBody: 4096,
		// No rate limiting in this test: TestRefusalsNeverBlockSignedDeliveries covers it.
		RateLimit: 1e6, Burst: 1e6,
	})
	r.SetTargets(testTargets())
	srv := httptest.NewServer(r)
	defer srv.Close()

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.req.body)
			if tt.req.chunked {
				body = io.MultiReader(body) // hides the length
			}
			req, err := http.NewRequest(tt.req.method, srv.URL+tt.req.path, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.req.headers {
				if v != "" {
					req.Header.Set(k, v)
				}
			}
			if tt.req.sign != "" {
				header := SignatureHeader
				if tt.req.path == GitHubPath {
					header = GitHubSignatureHeader
				}
				key := tt.req.sign
				if key == "\x00" {
					key = ""
				}
				req.Header.Set(header, Sign([]byte(key), []byte(tt.req.body)))
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			got, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d; body %s", res.StatusCode, tt.wantStatus, got)
			}
			if tt.wantBody != "" && strings.TrimSpace(string(got)) != tt.wantBody {
				t.Errorf("body %s, want %s", got, tt.wantBody)
			}
			if ct := res.Header.Get("Content-Type"); res.StatusCode != 404 && ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if res.StatusCode == 405 && res.Header.Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
			if trig := tr.take(); !slices.Equal(trig, tt.wantTriggered) {
				t.Errorf("triggered %v, want %v", trig, tt.wantTriggered)
			}
		})
	}

	logMu.Lock()
	defer logMu.Unlock()
	out := logs.String()
	if !strings.Contains(out, `"syncs":["webapp-dev","webapp-prod"]`) || !strings.Contains(out, `"outcome":"invalid signature"`) {
		t.Errorf("the log does not name syncs and outcomes:\n%s", out)
	}
	for _, secret := range []string{secretApp, secretOther, secretInfra, secretName} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds the secret %q", secret)
		}
		sig := strings.TrimPrefix(Sign([]byte(secret), []byte(appPush)), "sha256=")
		if strings.Contains(out, sig) {
			t.Errorf("the log holds a signature")
		}
	}
	if strings.Contains(out, "refs/heads/main") || strings.Contains(out, "full_name") {
		t.Errorf("the log holds the body:\n%s", out)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *gosync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestRefusalsNeverBlockSignedDeliveries floods the receiver from one
// address with unsigned and badly signed requests: past the address's
// budget they are answered 429, and a correctly signed delivery from the
// same address is still accepted, every time.
func TestRefusalsNeverBlockSignedDeliveries(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var tr triggers
	r := New(Options{Trigger: tr.trigger, Now: func() time.Time { return now }})
	r.SetTargets(testTargets())
	body := `{"sync":"byname"}`
	send := func(addr, sig string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", GenericPath, strings.NewReader(body))
		req.RemoteAddr = addr
		if sig != "" {
			req.Header.Set(SignatureHeader, sig)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		return rec
	}
	const attacker = "192.0.2.7:40000"
	counts := map[int]int{}
	for i := 0; i < 1000; i++ {
		sig := ""
		if i%2 == 1 {
			sig = Sign([]byte("wrong"), []byte(body))
		}
		counts[send(attacker, sig).Code]++
	}
	if counts[401] != DefaultBurst || counts[429] != 1000-DefaultBurst {
		t.Errorf("answers to 1,000 refused requests: %v, want %d × 401 then 429", counts, DefaultBurst)
	}
	if rec := send(attacker, ""); rec.Header().Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	for i := 0; i < 3; i++ {
		rec := send("192.0.2.7:40001", Sign([]byte(secretName), []byte(body)))
		if rec.Code != 200 {
			t.Fatalf("signed delivery after the flood: status %d, body %s", rec.Code, rec.Body)
		}
	}
	if got := tr.take(); !slices.Equal(got, []string{"byname", "byname", "byname"}) {
		t.Errorf("triggered %v, want byname three times", got)
	}
	// Another address has its own budget.
	if rec := send("198.51.100.1:1", ""); rec.Code != 401 {
		t.Errorf("unsigned request from another address: status %d, want 401", rec.Code)
	}
	// The budget comes back with time.
	now = now.Add(5 * time.Second)
	if rec := send(attacker, ""); rec.Code != 401 {
		t.Errorf("unsigned request 5 s later: status %d, want 401", rec.Code)
	}
}

// TestRefusedRequestsAreNotLoggedOneByOne: past the budget, refusals are
// summarised at most once a minute instead of a line each.
func TestRefusedRequestsAreNotLoggedOneByOne(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	r := New(Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: func() time.Time { return now }})
	r.SetTargets(testTargets())
	for i := 0; i < 500; i++ {
		req := httptest.NewRequest("POST", GenericPath, strings.NewReader(`{"sync":"byname"}`))
		r.ServeHTTP(httptest.NewRecorder(), req)
	}
	lines := strings.Count(logs.String(), "\n")
	if lines > DefaultBurst+2 {
		t.Errorf("%d log lines for 500 refused requests, want at most %d", lines, DefaultBurst+2)
	}
	if !strings.Contains(logs.String(), `"suppressed"`) {
		t.Errorf("no summary of suppressed refusals:\n%s", logs.String())
	}
}

// One IPv6 host may own a whole /64: its addresses share one budget.
func TestSourceAddress(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:40000":            "192.0.2.7",
		"[2001:db8:1:2::7]:443":      "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:80":      "::ffff:192.0.2.7",
		"not an address":             "not an address",
	} {
		if got := sourceAddress(in); got != want {
			t.Errorf("sourceAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

// A malformed delivery from a sender that knows no secret gets 401, like
// any other: only a sender that signs with one of ours learns what is
// wrong with its body.
func TestMalformedDeliveriesNeedASignature(t *testing.T) {
	r := New(Options{})
	r.SetTargets(testTargets())
	for _, tc := range []struct {
		name, path, body, event, secret string
		want                            int
	}{
		{"bad JSON, unknown secret", GenericPath, `{`, "", "nope", 401},
		{"bad JSON, our secret", GenericPath, `{`, "", secretName, 400},
		{"no event header, unknown secret", GitHubPath, appPush, "", "nope", 401},
		{"no event header, our secret", GitHubPath, appPush, "", secretApp, 400},
	} {
		req := httptest.NewRequest("POST", tc.path, strings.NewReader(tc.body))
		header := SignatureHeader
		if tc.path == GitHubPath {
			header = GitHubSignatureHeader
		}
		req.Header.Set(header, Sign([]byte(tc.secret), []byte(tc.body)))
		if tc.event != "" {
			req.Header.Set(GitHubEventHeader, tc.event)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, rec.Code, tc.want)
		}
	}
}

func TestRefusalTableIsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newRefusals(1, 2, 3)
	for i := 0; i < 10; i++ {
		f.charge(fmt.Sprintf("10.0.0.%d", i), now.Add(time.Duration(i)*time.Millisecond))
		if len(f.addrs) > 3 {
			t.Fatalf("%d addresses tracked, want at most 3", len(f.addrs))
		}
	}
	// The newest address is kept with its charge.
	if f.hasBudget("10.0.0.9", now) && f.addrs["10.0.0.9"] == nil {
		t.Errorf("the newest address was forgotten")
	}
}

func TestBusyReceiverAnswers503(t *testing.T) {
	r := New(Options{MaxInFlight: 8})
	r.SetTargets(testTargets())
	body := `{"sync":"byname"}`
	send := func(addr string) int {
		req := httptest.NewRequest("POST", GenericPath, strings.NewReader(body))
		req.RemoteAddr = addr
		req.Header.Set(SignatureHeader, Sign([]byte(secretName), []byte(body)))
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		return rec.Code
	}
	// One address holds its share of the slots (a quarter: 2) with slow
	// bodies: its next delivery waits, another address's does not.
	r.inFlight.enter("192.0.2.1")
	r.inFlight.enter("192.0.2.1")
	if code := send("192.0.2.1:1"); code != 503 {
		t.Errorf("a third delivery from one address: %d, want 503", code)
	}
	if code := send("198.51.100.9:1"); code != 200 {
		t.Errorf("a delivery from another address: %d, want 200", code)
	}
	// Every slot taken: 503 for everyone.
	for i := 0; i < 6; i++ {
		r.inFlight.enter(fmt.Sprintf("203.0.113.%d", i))
	}
	if code := send("198.51.100.9:1"); code != 503 {
		t.Errorf("all slots taken: %d, want 503", code)
	}
	r.inFlight.leave("192.0.2.1")
	if code := send("192.0.2.1:1"); code != 200 {
		t.Errorf("a slot came back: %d, want 200", code)
	}
}

// TestBusyAnswersAreNotLoggedOneByOne: a sender that holds its share of
// the slots and keeps sending gets 503 each time, but its refusals are
// logged within its budget and then summarised, like any other refusal.
func TestBusyAnswersAreNotLoggedOneByOne(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	r := New(Options{MaxInFlight: 4, Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Now: func() time.Time { return now }})
	r.SetTargets(testTargets())
	r.inFlight.enter("192.0.2.1") // its whole share (a quarter of 4) is taken
	for i := 0; i < 500; i++ {
		req := httptest.NewRequest("POST", GenericPath, strings.NewReader(`{"sync":"byname"}`))
		req.RemoteAddr = "192.0.2.1:1"
		req.Header.Set(SignatureHeader, Sign([]byte("wrong"), []byte(`{"sync":"byname"}`)))
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != 503 {
			t.Fatalf("delivery %d while busy: status %d, want 503", i, rec.Code)
		}
	}
	lines := strings.Count(logs.String(), "\n")
	if lines > DefaultBurst+2 {
		t.Errorf("%d log lines for 500 busy answers, want at most %d", lines, DefaultBurst+2)
	}
	if !strings.Contains(logs.String(), `"suppressed"`) {
		t.Errorf("no summary of suppressed refusals:\n%s", logs.String())
	}
}

func TestMaxBodyDefault(t *testing.T) {
	r := New(Options{})
	r.SetTargets(testTargets())
	for _, tt := range []struct {
		size int
		want int
	}{
		{DefaultMaxBody, 202}, // read whole: a sync that does not exist
		{DefaultMaxBody + 1, 413},
	} {
		body := `{"sync":"` + strings.Repeat("x", tt.size-len(`{"sync":""}`)) + `"}`
		req := httptest.NewRequest("POST", GenericPath, strings.NewReader(body))
		req.Header.Set(SignatureHeader, Sign([]byte(secretName), []byte(body)))
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("body of %d bytes: status %d, want %d", len(body), rec.Code, tt.want)
		}
	}
}

// TestSetTargetsWhileServing replaces the targets while requests are served
// (run with -race): every answer matches one of the two target sets.
func TestSetTargetsWhileServing(t *testing.T) {
	var tr triggers
	r := New(Options{Trigger: tr.trigger, RateLimit: 1e9, Burst: 1 << 30})
	a := []Target{{Sync: "a", RepoURL: "https://github.com/org/app", Secret: []byte(secretApp)}}
	b := []Target{{Sync: "b", RepoURL: "git@github.com:org/app.git", Secret: []byte(secretApp)}}
	r.SetTargets(a)

	stop := make(chan struct{})
	var wg gosync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				r.SetTargets(b)
			} else {
				r.SetTargets(a)
			}
		}
	}()
	errs := make(chan error, 8)
	var clients gosync.WaitGroup
	for c := 0; c < 4; c++ {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for i := 0; i < 200; i++ {
				req := httptest.NewRequest("POST", GitHubPath, strings.NewReader(appPush))
				req.Header.Set(GitHubEventHeader, "push")
				req.Header.Set(GitHubSignatureHeader, Sign([]byte(secretApp), []byte(appPush)))
				rec := httptest.NewRecorder()
				r.ServeHTTP(rec, req)
				body := strings.TrimSpace(rec.Body.String())
				if rec.Code != 200 || (body != `{"triggered":["a"]}` && body != `{"triggered":["b"]}`) {
					errs <- fmt.Errorf("status %d body %s", rec.Code, body)
					return
				}
			}
		}()
	}
	clients.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, name := range tr.take() {
		if name != "a" && name != "b" {
			t.Errorf("triggered %q", name)
		}
	}
}

func TestSetTargetsCopiesSecrets(t *testing.T) {
	var tr triggers
	r := New(Options{Trigger: tr.trigger})
	secret := []byte(secretName)
	r.SetTargets([]Target{{Sync: "byname", Secret: secret}})
	copy(secret, "XXXXXX")
	body := `{"sync":"byname"}`
	req := httptest.NewRequest("POST", GenericPath, strings.NewReader(body))
	req.Header.Set(SignatureHeader, Sign([]byte(secretName), []byte(body)))
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("status %d: the receiver shares the caller's secret slice", rec.Code)
	}
}

func TestSign(t *testing.T) {
	// GitHub's documented example: secret "It's a Secret to Everybody",
	// payload "Hello, World!".
	got := Sign([]byte("It's a Secret to Everybody"), []byte("Hello, World!"))
	want := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

// A sender that trickles its body holds its in-flight slot only until the
// body timeout, and busy answers close the connection at once: a signed
// delivery from the same address is served as soon as the slow one's time
// is up, not after the server's read timeout.
func TestSlowBodiesLoseTheirSlots(t *testing.T) {
	var tr triggers
	r := New(Options{Trigger: tr.trigger, MaxInFlight: 4, BodyTimeout: 200 * time.Millisecond})
	r.SetTargets(testTargets())
	srv := httptest.NewServer(r)
	defer srv.Close()
	// Four slow senders from 127.0.0.1 (every test connection comes from
	// it): headers with a signature (a wrong one) and a few bytes of a
	// 1,000-byte body, then nothing.
	var conns []net.Conn
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\n%s: %s\r\nContent-Length: 1000\r\n\r\n{\"sy", GenericPath, SignatureHeader, Sign([]byte("wrong"), nil))
		conns = append(conns, c)
	}
	// One of them (whichever the server reached first) holds the
	// address's slot (a quarter of 4) and is answered 400 once its time is
	// up (its body never came); the others are busy answers (503) at
	// once. None waits for the server's read timeout.
	statuses := map[string]int{}
	for i, c := range conns {
		if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		status, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("slow sender %d: %v", i, err)
		}
		statuses[strings.Fields(status)[1]]++
	}
	if statuses["400"] != 1 || statuses["503"] != 3 {
		t.Fatalf("answers to the slow senders: %v, want one 400 and three 503", statuses)
	}
	body := `{"sync":"byname"}`
	req, err := http.NewRequest("POST", srv.URL+GenericPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(SignatureHeader, Sign([]byte(secretName), []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the signed delivery after the slow senders: %s, want 200", resp.Status)
	}
}

// A delivery without a well-formed signature header (a registry
// notification without a known secret) is refused before its body is
// read: however many such senders trickle their bodies, none
// holds an in-flight slot, and a signed delivery from the same address is
// served while they are still connected. (With the slots taken, the
// unsigned ones would wait for the hour-long body timeout and the signed
// one would be answered 503.)
func TestUnsignedDeliveriesHoldNoSlot(t *testing.T) {
	var tr triggers
	r := New(Options{Trigger: tr.trigger, MaxInFlight: 4, BodyTimeout: time.Hour})
	r.SetTargets(testTargets())
	r.SetRegistryTargets([]RegistryTarget{{Host: "reg.example.com", Secret: []byte("s3cret")}})
	srv := httptest.NewServer(r)
	defer srv.Close()
	for i := 0; i < 16; i++ {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		path, sig := GenericPath, ""
		switch i % 4 {
		case 1:
			sig = SignatureHeader + ": sha1=abc\r\n" // not a sha256 signature
		case 2:
			path = RegistryPath // no secret
		case 3:
			path, sig = RegistryPath+"?"+RegistryTokenParam+"=wrong", "Authorization: Bearer wrong\r\n"
		}
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: 1000\r\n\r\n{\"sy", path, sig)
		if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		status, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.Contains(status, " 401 ") {
			t.Fatalf("unsigned slow sender %d (%s) got %q (%v), want 401 at once", i, path, status, err)
		}
	}
	body := `{"sync":"byname"}`
	req, err := http.NewRequest("POST", srv.URL+GenericPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(SignatureHeader, Sign([]byte(secretName), []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the signed delivery beside the unsigned senders: %s, want 200", resp.Status)
	}
	if got := tr.take(); !slices.Equal(got, []string{"byname"}) {
		t.Errorf("triggered %v, want byname", got)
	}
}
