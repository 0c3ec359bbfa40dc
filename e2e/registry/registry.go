// Package registry runs Debian's docker-registry (the distribution
// registry 2.8) for tests and the demo: on a free loopback port, plain HTTP
// or TLS with its own CA and htpasswd users, optionally sending push
// notifications, with its storage in a temporary folder. Images are pushed
// with go-containerregistry, as a CI job would.
//
// The registry is started with a parent-death signal from a thread that
// lives as long as the test binary, so a killed test leaves nothing behind.
package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/tether-gitops/tether/e2e/cluster"
)

// Binary is where Debian's docker-registry package installs the registry.
const Binary = "/usr/bin/docker-registry"

// Options configure a Registry.
type Options struct {
	// TLS serves HTTPS with a certificate from a CA of its own (CACertPEM).
	TLS bool
	// Users, when set, require basic auth (htpasswd) with these
	// user → password pairs.
	Users map[string]string
	// NotifyURL, when set, receives a notification envelope for every
	// push, with "Authorization: Bearer NotifyToken".
	NotifyURL, NotifyToken string
	// Port to listen on; 0 picks a free one.
	Port int
	// Root holds the storage; default a new temporary folder.
	Root string
}

// Registry is a running docker-registry.
type Registry struct {
	// Host is 127.0.0.1:PORT, as image references name it.
	Host string
	// Root is the storage folder.
	Root string

	opts    Options
	dir     string
	caPEM   []byte
	cmd     *exec.Cmd
	done    chan struct{}
	logs    *logBuffer
	stopped sync.Once
}

// Start writes a configuration (and certificates and htpasswd) into a
// temporary folder, starts the registry and waits until it answers.
func Start(opts Options) (_ *Registry, err error) {
	if _, err := os.Stat(Binary); err != nil {
		return nil, fmt.Errorf("docker-registry not found at %s (install it: `make deps`): %w", Binary, err)
	}
	dir, err := os.MkdirTemp("", "tether-registry-")
	if err != nil {
		return nil, err
	}
	r := &Registry{opts: opts, dir: dir, logs: &logBuffer{}, Root: opts.Root}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if r.Root == "" {
		r.Root = filepath.Join(dir, "storage")
	}
	port := opts.Port
	if port == 0 {
		if port, err = cluster.FreePort(); err != nil {
			return nil, err
		}
	}
	r.Host = "127.0.0.1:" + strconv.Itoa(port)
	cfg, err := r.config()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(Binary, "serve", path)
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cluster.Spawn(cmd); err != nil {
		return nil, fmt.Errorf("starting docker-registry: %w", err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(r.done) }()
	if err := r.waitReady(30 * time.Second); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Registry) config() (string, error) {
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	var b strings.Builder
	fmt.Fprintf(&b, "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n")
	fmt.Fprintf(&b, "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n", r.Root)
	fmt.Fprintf(&b, "http:\n  addr: %s\n  secret: %s\n", r.Host, hex.EncodeToString(secret))
	if r.opts.TLS {
		cert, key, err := r.certificates()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "  tls:\n    certificate: %s\n    key: %s\n", cert, key)
	}
	if len(r.opts.Users) > 0 {
		users := make([]string, 0, len(r.opts.Users))
		for u := range r.opts.Users {
			users = append(users, u)
		}
		sort.Strings(users)
		var lines []string
		for _, u := range users {
			hash, err := bcrypt.GenerateFromPassword([]byte(r.opts.Users[u]), bcrypt.MinCost)
			if err != nil {
				return "", err
			}
			lines = append(lines, u+":"+string(hash))
		}
		path := filepath.Join(r.dir, "htpasswd")
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: tether-test\n    path: %s\n", path)
	}
	if r.opts.NotifyURL != "" {
		fmt.Fprintf(&b, "notifications:\n  endpoints:\n    - name: tether\n      url: %s\n      headers:\n        Authorization: [\"Bearer %s\"]\n      timeout: 2s\n      threshold: 5\n      backoff: 1s\n",
			r.opts.NotifyURL, r.opts.NotifyToken)
	}
	return b.String(), nil
}

// certificates makes a CA and a serving certificate for 127.0.0.1.
func (r *Registry) certificates() (certFile, keyFile string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tether test registry CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	r.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certFile, keyFile = filepath.Join(r.dir, "cert.pem"), filepath.Join(r.dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// CACertPEM is the CA clients must trust when TLS is on.
func (r *Registry) CACertPEM() []byte { return r.caPEM }

// URL is the registry's base URL.
func (r *Registry) URL() string {
	if r.opts.TLS {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func (r *Registry) client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if r.caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(r.caPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func (r *Registry) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := r.client()
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return fmt.Errorf("docker-registry exited: %s", r.logs.String())
		default:
		}
		resp, err := c.Get(r.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("docker-registry did not answer within %s: %s", timeout, r.logs.String())
}

// Close stops the registry and removes its folder (and the storage, when
// it made it).
func (r *Registry) Close() {
	r.stopped.Do(func() {
		if r.cmd != nil && r.cmd.Process != nil {
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.done
		}
		_ = os.RemoveAll(r.dir)
	})
}

// Logs is what the registry wrote.
func (r *Registry) Logs() string { return r.logs.String() }

func (r *Registry) options(user string) []remote.Option {
	opts := []remote.Option{remote.WithTransport(r.client().Transport)}
	if user != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: user, Password: r.opts.Users[user]}))
	}
	return opts
}

// Push pushes a small random image as repo:tag (as user, when the
// registry has users) and returns its digest.
func (r *Registry) Push(ctx context.Context, user, repo, tag string) (string, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return "", err
	}
	return r.push(ctx, user, repo, tag, img)
}

func (r *Registry) push(ctx context.Context, user, repo, tag string, img v1.Image) (string, error) {
	ref, err := name.NewTag(r.Host+"/"+repo+":"+tag, r.nameOptions()...)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, append(r.options(user), remote.WithContext(ctx))...); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

func (r *Registry) nameOptions() []name.Option {
	if r.opts.TLS {
		return nil
	}
	return []name.Option{name.Insecure}
}

// TagDirectly adds tags to repo in the registry's storage, all pointing at
// the manifest digest (pushed before): the layout the filesystem driver
// reads tag lists from. It makes a repository with 100,000 tags in seconds
// where 100,000 pushes would take many minutes; what the registry then
// serves is the same.
func (r *Registry) TagDirectly(repo, digest string, tags []string) error {
	if !strings.HasPrefix(digest, "sha256:") {
		return errors.New("want a sha256 digest")
	}
	base := filepath.Join(r.Root, "docker", "registry", "v2", "repositories", filepath.FromSlash(repo), "_manifests", "tags")
	// A tag is a folder holding current/link; the per-tag index the
	// registry also keeps is only read when a tag is deleted.
	for _, t := range tags {
		cur := filepath.Join(base, t, "current")
		if err := os.MkdirAll(cur, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cur, "link"), []byte(digest), 0o644); err != nil {
			return err
		}
	}
	return nil
}

type logBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.b) < 1<<20 {
		l.b = append(l.b, p...)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
