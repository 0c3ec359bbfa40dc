package images

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeRegistry serves the part of the distribution API a scan uses:
// /v2/ and /v2/NAME/tags/list with n/last paging and a Link header.
type fakeRegistry struct {
	tags     []string
	user     string
	pass     string
	tooMany  atomic.Int32 // answer this many tag requests 429
	retry    string       // their Retry-After
	pad      int          // bytes of padding in each page
	requests atomic.Int64
	mu       sync.Mutex
	paths    []string
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path)
	f.mu.Unlock()
	if f.user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != f.user || p != f.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
	}
	if r.URL.Path == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/tags/list") {
		http.NotFound(w, r)
		return
	}
	if f.tooMany.Load() > 0 {
		f.tooMany.Add(-1)
		w.Header().Set("Retry-After", f.retry)
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	last := r.URL.Query().Get("last")
	start := 0
	if last != "" {
		start = slices.Index(f.tags, last) + 1
	}
	end := len(f.tags)
	if n > 0 && start+n < end {
		end = start + n
		w.Header().Set("Link", fmt.Sprintf(`<%s?n=%d&last=%s>; rel="next"`, r.URL.Path, n, f.tags[end-1]))
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"name": "app", "tags": f.tags[start:end], "pad": strings.Repeat("x", f.pad)})
}

func testPolicy(t *testing.T, image string) *Policy {
	t.Helper()
	p := &Policy{Name: "app", Image: image, Kind: Numerical, Order: Asc, Exclude: DefaultExclude()}
	if err := p.Compile(); err != nil {
		t.Fatal(err)
	}
	return p
}

func hostOf(u string) string { return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://") }

func TestScanPages(t *testing.T) {
	reg := &fakeRegistry{}
	for i := range 2500 {
		reg.tags = append(reg.tags, strconv.Itoa(i))
	}
	reg.tags = append(reg.tags, "sha256-1.sig")
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := hostOf(srv.URL)
	s := NewScanner(nil)
	sent := 0
	res, err := s.Scan(context.Background(), testPolicy(t, host+"/app"), Registry{Host: host, Insecure: true}, 3, func() { sent++ })
	if err != nil {
		t.Fatal(err)
	}
	if res.Tags != 2501 || res.Matched != 2500 || !slices.Equal(res.Best, []string{"2499", "2498", "2497"}) {
		t.Errorf("result %+v", res)
	}
	pages := 0
	for _, p := range reg.paths {
		if strings.HasSuffix(p, "/tags/list") {
			pages++
		}
	}
	if pages != 3 {
		t.Errorf("%d tag pages requested, want 3: %v", pages, reg.paths)
	}
	if int64(sent) != reg.requests.Load() || res.Requests != int64(sent) {
		t.Errorf("counted %d requests (result %d), the registry answered %d", sent, res.Requests, reg.requests.Load())
	}
}

func TestScanCredentials(t *testing.T) {
	const secret = "s3cret-Pa55word"
	reg := &fakeRegistry{tags: []string{"1", "2"}, user: "robot", pass: secret}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := hostOf(srv.URL)
	dir := t.TempDir()
	passFile := filepath.Join(dir, "password")
	write := func(path, data string) {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(passFile, secret+"\n")
	s := NewScanner(nil)
	p := testPolicy(t, host+"/app")
	r := Registry{Host: host, Insecure: true, Username: "robot", PasswordFile: passFile}
	if res, err := s.Scan(context.Background(), p, r, 1, nil); err != nil || res.Best[0] != "2" {
		t.Fatalf("basic auth: %+v %v", res, err)
	}
	// Rotated on disk: the next scan reads the new (wrong) password.
	write(passFile, "wrong-"+secret)
	_, err := s.Scan(context.Background(), p, r, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong password: %v", err)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte("robot:wrong-"+secret))) {
		t.Errorf("the error shows the credentials: %v", err)
	}
	// A docker config file, with the auth field.
	cfg := filepath.Join(dir, "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("robot:" + secret))
	write(cfg, `{"auths":{"http://`+host+`/v2/":{"auth":"`+auth+`"}}}`)
	if res, err := s.Scan(context.Background(), p, Registry{Host: host, Insecure: true, DockerConfigFile: cfg}, 1, nil); err != nil || res.Best[0] != "2" {
		t.Fatalf("docker config: %+v %v", res, err)
	}
	write(cfg, `{"auths":{"other.example.com":{"auth":"`+auth+`"}}}`)
	if _, err := s.Scan(context.Background(), p, Registry{Host: host, Insecure: true, DockerConfigFile: cfg}, 1, nil); err == nil || !strings.Contains(err.Error(), "no credentials for "+host) {
		t.Errorf("docker config without the host: %v", err)
	}
	if _, err := s.Scan(context.Background(), p, Registry{Host: host, Insecure: true, Username: "robot", PasswordFile: filepath.Join(dir, secret)}, 1, nil); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("a missing password file named by a secret-looking path: %v", err)
	}
	// A FIFO where the password file should be is refused at once; read
	// with os.ReadFile it would wait for a writer forever, and with it the
	// host's scans.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Scan(context.Background(), p, Registry{Host: host, Insecure: true, Username: "robot", PasswordFile: fifo}, 1, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("a FIFO as the password file: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a FIFO as the password file blocked the scan")
	}
}

func TestScanRateLimited(t *testing.T) {
	reg := &fakeRegistry{tags: []string{"1", "2"}, retry: "30"}
	reg.tooMany.Store(1000)
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := hostOf(srv.URL)
	s := NewScanner(nil)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	p := testPolicy(t, host+"/app")
	r := Registry{Host: host, Insecure: true}
	_, err := s.Scan(context.Background(), p, r, 1, nil)
	var rl *RateLimitedError
	if !errors.As(err, &rl) || !rl.Until.Equal(now.Add(30*time.Second)) {
		t.Fatalf("first scan: %v", err)
	}
	sent := reg.requests.Load()
	// A storm of scans inside the wait sends nothing.
	for range 50 {
		if _, err := s.Scan(context.Background(), p, r, 1, nil); !errors.As(err, &rl) {
			t.Fatalf("scan during the wait: %v", err)
		}
	}
	if got := reg.requests.Load(); got != sent {
		t.Errorf("%d requests during the wait", got-sent)
	}
	// After the wait: one more 429 without Retry-After backs off on its own.
	now = now.Add(31 * time.Second)
	reg.retry = ""
	if _, err := s.Scan(context.Background(), p, r, 1, nil); !errors.As(err, &rl) || rl.Until.Sub(now) < rateLimitBase {
		t.Fatalf("second 429: %v", err)
	}
	// A Retry-After of a day is capped.
	now = rl.Until.Add(time.Second)
	reg.retry = "86400"
	if _, err := s.Scan(context.Background(), p, r, 1, nil); !errors.As(err, &rl) || rl.Until.Sub(now) != RateLimitMax {
		t.Fatalf("capped wait: %v", err)
	}
	now = rl.Until.Add(time.Second)
	reg.tooMany.Store(0)
	if res, err := s.Scan(context.Background(), p, r, 1, nil); err != nil || res.Best[0] != "2" {
		t.Fatalf("after the storm: %+v %v", res, err)
	}
}

func TestScanCapsAnswers(t *testing.T) {
	reg := &fakeRegistry{tags: []string{"1"}, pad: MaxPageBytes}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := hostOf(srv.URL)
	_, err := NewScanner(nil).Scan(context.Background(), testPolicy(t, host+"/app"), Registry{Host: host, Insecure: true}, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized page: %v", err)
	}
}

// tlsRegistry serves tags 1 and 7 over TLS on loopback and returns its
// host and a CA file that trusts it.
func tlsRegistry(t *testing.T) (host, ca string) {
	t.Helper()
	srv := httptest.NewTLSServer(&fakeRegistry{tags: []string{"1", "7"}})
	t.Cleanup(srv.Close)
	ca = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return hostOf(srv.URL), ca
}

func TestScanTLSOnLoopback(t *testing.T) {
	host, ca := tlsRegistry(t)
	s := NewScanner(nil)
	p := testPolicy(t, host+"/app")
	if res, err := s.Scan(context.Background(), p, Registry{Host: host, CAFile: ca}, 1, nil); err != nil || res.Best[0] != "7" {
		t.Fatalf("TLS with the CA: %+v %v", res, err)
	}
	if _, err := s.Scan(context.Background(), p, Registry{Host: host}, 1, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("TLS without the CA: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30", 30 * time.Second, true},
		{" 0 ", 0, true},
		{now.Add(2 * time.Minute).Format(http.TimeFormat), 2 * time.Minute, true},
		{"", 0, false},
		{"-5", 0, false},
		{"soon", 0, false},
	} {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// Scans of one host with different CA files swap the host's transport;
// a scan must use the transport it was given, not read the shared one
// while another scan replaces it (run with -race).
func TestScanConcurrentCAChange(t *testing.T) {
	host, ca := tlsRegistry(t)
	s := NewScanner(nil)
	p := testPolicy(t, host+"/app")
	var wg sync.WaitGroup
	var okScans atomic.Int32
	for _, r := range []Registry{{Host: host, CAFile: ca}, {Host: host}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := s.Scan(context.Background(), p, r, 1, nil); err == nil {
					okScans.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if okScans.Load() == 0 {
		t.Error("no scan with the CA succeeded")
	}
}

// A next-page link (or any header) larger than MaxHeaderBytes fails the
// scan instead of being read and kept.
func TestScanCapsHeaders(t *testing.T) {
	huge := strings.Repeat("a", MaxHeaderBytes)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		if r.URL.Query().Get("last") == "" {
			w.Header().Set("Link", fmt.Sprintf(`<%s?last=%s>; rel="next"`, r.URL.Path, huge))
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"name": "app", "tags": []string{"1"}})
	}))
	defer srv.Close()
	host := hostOf(srv.URL)
	_, err := NewScanner(nil).Scan(context.Background(), testPolicy(t, host+"/app"), Registry{Host: host, Insecure: true}, 1, nil)
	if err == nil || !strings.Contains(err.Error(), "exceeded") {
		t.Errorf("a huge Link header: %v", err)
	}
}
