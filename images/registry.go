package images

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/tether-gitops/tether/source"
)

// Registry says how to reach one registry host. Credentials are read from
// their files on every scan, so a rotated Secret takes effect without a
// restart; they never reach a log line, an error, the status or a metric.
type Registry struct {
	// Host is the registry's host[:port] as images name it.
	Host string
	// DockerConfigFile is a .dockerconfigjson file (a
	// kubernetes.io/dockerconfigjson Secret) holding the host's
	// credentials.
	DockerConfigFile string
	// Username and PasswordFile are basic credentials (the password is
	// read from the file).
	Username, PasswordFile string
	// CAFile is a PEM bundle trusted besides the system roots.
	CAFile string
	// Insecure talks plain HTTP (for tests and local registries).
	Insecure bool
}

// Scan limits. A tag page is decoded whole by go-containerregistry, so the
// transport caps each answer; the pages themselves are never kept.
const (
	// PageSize is the tags asked for per page (the n parameter).
	PageSize = 1000
	// MaxPageBytes caps one answer of the registry (a page of tags, a
	// token, an error). 100,000 tags of 128 bytes fit.
	MaxPageBytes = 16 << 20
	// MaxTags caps the tags one scan reads; a repository listing more
	// (or a registry whose pages never end) fails the scan.
	MaxTags = 1_000_000
	// DefaultScanTimeout bounds one scan.
	DefaultScanTimeout = 2 * time.Minute
	// DigestTimeout bounds reading the digest of one tag.
	DigestTimeout = 30 * time.Second
	// MaxHeaderBytes caps the headers of one answer of the registry.
	MaxHeaderBytes = 64 << 10
)

// ScanResult is what one scan of a repository found.
type ScanResult struct {
	// Tags is the number of tags the repository lists.
	Tags int
	// Matched is the number of tags the policy considers.
	Matched int
	// Best are the best candidates, best first (at most keep of them).
	Best []string
	// Requests is the number of HTTP requests the scan sent.
	Requests int64
}

// Scanner lists the tags of image repositories. It keeps one HTTP
// transport and one 429 gate per registry host, so a host that asks to
// wait is left alone by every policy that uses it.
type Scanner struct {
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	hosts map[string]*hostState
}

type hostState struct {
	gate  hostGate
	caKey [32]byte
	tr    *http.Transport
}

// NewScanner returns a Scanner; log may be nil.
func NewScanner(log *slog.Logger) *Scanner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scanner{log: log, now: time.Now, hosts: map[string]*hostState{}}
}

// Scan lists every tag of the policy's repository, page by page, feeding
// them to a Selector that keeps the keep best; it lists tags only (no
// manifest or config is fetched). reg configures the host (the zero
// value: anonymous HTTPS). onRequest, if set, is called for every request
// sent.
func (s *Scanner) Scan(ctx context.Context, p *Policy, reg Registry, keep int, onRequest func()) (*ScanResult, error) {
	repo, opts, counter, scrub, err := s.prepare(ctx, p.Image, reg, onRequest)
	if err != nil {
		res := &ScanResult{}
		if counter != nil {
			res.Requests = counter.Load()
		}
		return res, err
	}
	sel := NewSelector(p, keep)
	res := &ScanResult{}
	err = s.list(ctx, repo, opts, sel)
	res.Tags, res.Matched, res.Best, res.Requests = sel.Seen, sel.Matched, sel.Best(), counter.Load()
	if err != nil {
		return res, scrub(fmt.Errorf("listing the tags of %s: %w", p.Image, explain(err)))
	}
	return res, nil
}

func (s *Scanner) list(ctx context.Context, repo name.Repository, opts []remote.Option, sel *Selector) error {
	puller, err := remote.NewPuller(opts...)
	if err != nil {
		return err
	}
	lister, err := puller.Lister(ctx, repo)
	if err != nil {
		return err
	}
	// The next-page links seen, by hash: a registry names them, so their
	// text is not kept.
	seenNext := map[[sha256.Size]byte]bool{}
	for lister.HasNext() {
		page, err := lister.Next(ctx)
		if err != nil {
			return err
		}
		for _, t := range page.Tags {
			sel.Add(t)
		}
		if sel.Seen > MaxTags {
			return fmt.Errorf("the repository lists more than %d tags", MaxTags)
		}
		if page.Next != "" {
			key := sha256.Sum256([]byte(page.Next))
			if seenNext[key] {
				return errors.New("the registry's tag pages loop (a next page was listed twice)")
			}
			seenNext[key] = true
		}
	}
	return nil
}

// Digest reads the manifest digest of one tag (a HEAD request): only a
// marker on a digest field needs it. It takes at most DigestTimeout: a
// registry that answers slowly delays the write-back round, never stalls
// it.
func (s *Scanner) Digest(ctx context.Context, image string, reg Registry, tag string, onRequest func()) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, DigestTimeout)
	defer cancel()
	repo, opts, _, scrub, err := s.prepare(ctx, image, reg, onRequest)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(repo.Tag(tag), opts...)
	if err != nil {
		return "", scrub(fmt.Errorf("reading the digest of %s:%s: %w", image, tag, explain(err)))
	}
	return desc.Digest.String(), nil
}

// prepare parses the image, reads the credentials and builds the options
// of one scan. scrub removes the credentials from an error text.
func (s *Scanner) prepare(ctx context.Context, image string, reg Registry, onRequest func()) (name.Repository, []remote.Option, *atomic.Int64, func(error) error, error) {
	nameOpts := []name.Option{name.StrictValidation}
	if reg.Insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	repo, err := name.NewRepository(image, nameOpts...)
	if err != nil {
		return name.Repository{}, nil, nil, nil, fmt.Errorf("image %q: %w", image, err)
	}
	auth, secrets, err := readCredentials(reg, repo.RegistryStr())
	scrub := func(err error) error { return scrubError(err, secrets) }
	if err != nil {
		return name.Repository{}, nil, nil, nil, scrub(fmt.Errorf("registry %s: %w", repo.RegistryStr(), err))
	}
	gate, tr, err := s.host(repo.RegistryStr(), reg)
	if err != nil {
		return name.Repository{}, nil, nil, nil, err
	}
	counter := &atomic.Int64{}
	scheme := "https"
	if reg.Insecure {
		scheme = "http"
	}
	rt := &registryTransport{base: tr, gate: gate, host: repo.RegistryStr(), scheme: scheme, guessed: repo.Scheme(), now: s.now,
		count: func() {
			counter.Add(1)
			if onRequest != nil {
				onRequest()
			}
		}}
	// The handshake (ping, token exchange) is done here, through rt, and
	// go-containerregistry is handed the authenticated transport as a
	// transport.Wrapper, which it uses as it is: it adds no retries (429s
	// wait per host here; anything else fails the scan and the next scan
	// comes on the policy's schedule).
	authed, err := transport.NewWithContext(ctx, repo.Registry, auth, rt, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return name.Repository{}, nil, counter, scrub, scrub(fmt.Errorf("registry %s: %w", repo.RegistryStr(), explain(err)))
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(authed),
		remote.WithPageSize(PageSize),
	}
	return repo, opts, counter, scrub, nil
}

// host returns the gate and the transport of a registry host, rebuilding
// the transport when its CA file's content changed. The transport is
// returned rather than read from the hostState later: another scan of the
// host may replace it meanwhile.
func (s *Scanner) host(host string, reg Registry) (*hostGate, *http.Transport, error) {
	var caPEM []byte
	if reg.CAFile != "" {
		b, err := source.ReadRegularFile(reg.CAFile, source.MaxCredentialFile)
		if err != nil {
			return nil, nil, fmt.Errorf("registry %s: reading the CA file: %w", host, err)
		}
		caPEM = b
	}
	key := sha256.Sum256(caPEM)
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := s.hosts[host]
	if hs == nil {
		hs = &hostState{}
		s.hosts[host] = hs
	}
	if hs.tr != nil && hs.caKey == key {
		return &hs.gate, hs.tr, nil
	}
	tr, err := source.NewTransport(caPEM, http.ProxyFromEnvironment)
	if err != nil {
		return nil, nil, fmt.Errorf("registry %s: the CA file %s: %w", host, reg.CAFile, err)
	}
	tr.ResponseHeaderTimeout = 30 * time.Second
	// A registry's headers are small; go's default allows 10 MiB per
	// answer, and a next-page Link header of that size is hostile.
	tr.MaxResponseHeaderBytes = MaxHeaderBytes
	if hs.tr != nil {
		hs.tr.CloseIdleConnections()
	}
	hs.caKey, hs.tr = key, tr
	return &hs.gate, tr, nil
}

// registryTransport is the base of every request to a registry:
//
//   - it sends nothing to a host that asked to wait (429), and starts the
//     wait when one answers 429;
//   - it sets the scheme from the configuration (go-containerregistry
//     guesses plain HTTP for loopback and private addresses, which would
//     send a TLS registry on 127.0.0.1 plain requests);
//   - it caps every answer at MaxPageBytes (go-containerregistry decodes a
//     tag page whole);
//   - it counts requests.
type registryTransport struct {
	base   http.RoundTripper
	gate   *hostGate
	host   string
	scheme string
	// guessed is the scheme go-containerregistry expects for the host
	// (it checks the next-page links against it).
	guessed string
	now     func() time.Time
	count   func()
}

func (t *registryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	host := req.URL.Host
	if until, blocked := t.gate.blocked(t.now()); blocked && host == t.host {
		return nil, &RateLimitedError{Host: host, Until: until}
	}
	out := req
	if host == t.host && req.URL.Scheme != t.scheme {
		out = req.Clone(req.Context())
		out.URL.Scheme = t.scheme
	}
	t.count()
	res, err := t.base.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	// Links in the answer (the next page) resolve against the answer's
	// request, and go-containerregistry checks their scheme against the
	// one it guessed for the host.
	if host == t.host && req.URL.Scheme != t.guessed {
		shown := req.Clone(req.Context())
		shown.URL.Scheme = t.guessed
		res.Request = shown
	} else {
		res.Request = req
	}
	if host == t.host {
		if res.StatusCode == http.StatusTooManyRequests {
			until := t.gate.limited(t.now(), res.Header.Get("Retry-After"))
			_ = res.Body.Close()
			return nil, &RateLimitedError{Host: host, Until: until}
		}
		t.gate.passed()
	}
	res.Body = &cappedBody{r: res.Body, left: MaxPageBytes}
	return res, nil
}

// cappedBody fails past left bytes.
type cappedBody struct {
	r    io.ReadCloser
	left int64
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("the registry's answer is larger than %d bytes", MaxPageBytes)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cappedBody) Close() error { return c.r.Close() }

// explain turns registry errors into plain words.
func explain(err error) error {
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		return rl
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized:
			return fmt.Errorf("the registry refused the credentials (HTTP 401): %w", err)
		case http.StatusForbidden:
			return fmt.Errorf("access denied (HTTP 403): %w", err)
		case http.StatusNotFound:
			return fmt.Errorf("no such repository (HTTP 404): %w", err)
		}
	}
	return err
}

// readCredentials reads the host's credentials from their files (on every
// call, for rotation). secrets are the strings that must never appear in
// an error.
func readCredentials(reg Registry, host string) (authn.Authenticator, []string, error) {
	switch {
	case reg.PasswordFile != "":
		b, err := source.ReadRegularFile(reg.PasswordFile, source.MaxCredentialFile)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the password file: %w", source.WithoutPath(err))
		}
		pass := strings.TrimRight(string(b), "\r\n")
		if pass == "" {
			return nil, nil, errors.New("the password file is empty")
		}
		cfg := authn.AuthConfig{Username: reg.Username, Password: pass}
		return authn.FromConfig(cfg), secretsOf(cfg), nil
	case reg.DockerConfigFile != "":
		b, err := source.ReadRegularFile(reg.DockerConfigFile, source.MaxCredentialFile)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the docker config file: %w", source.WithoutPath(err))
		}
		cfg, err := dockerConfigAuth(b, host)
		if err != nil {
			return nil, nil, err
		}
		return authn.FromConfig(cfg), secretsOf(cfg), nil
	}
	return authn.Anonymous, nil, nil
}

// dockerConfigAuth finds host's entry in a .dockerconfigjson (or the older
// .dockercfg) document. Keys may carry a scheme and a path
// ("https://index.docker.io/v1/").
func dockerConfigAuth(data []byte, host string) (authn.AuthConfig, error) {
	type entry struct {
		Auth          string `json:"auth"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
		RegistryToken string `json:"registrytoken"`
	}
	var doc struct {
		Auths map[string]entry `json:"auths"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return authn.AuthConfig{}, errors.New("the docker config file is not valid JSON")
	}
	if doc.Auths == nil {
		var old map[string]entry
		if json.Unmarshal(data, &old) == nil {
			doc.Auths = old
		}
	}
	for key, e := range doc.Auths {
		k := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
		k, _, _ = strings.Cut(k, "/")
		if k != host {
			continue
		}
		cfg := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return authn.AuthConfig{}, fmt.Errorf("the docker config file's auth for %s is not base64", host)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return authn.AuthConfig{}, fmt.Errorf("the docker config file's auth for %s is not user:password", host)
			}
			cfg.Username, cfg.Password = user, pass
		}
		return cfg, nil
	}
	return authn.AuthConfig{}, fmt.Errorf("the docker config file has no credentials for %s", host)
}

func secretsOf(cfg authn.AuthConfig) []string {
	var out []string
	for _, s := range []string{cfg.Password, cfg.IdentityToken, cfg.RegistryToken} {
		if s != "" {
			out = append(out, s)
		}
	}
	if cfg.Password != "" {
		out = append(out, base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+cfg.Password)))
	}
	return out
}

// scrubError replaces every secret in err's text. The result no longer
// unwraps to a RateLimitedError; that one carries no secret and is kept.
func scrubError(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if len(s) >= 4 {
			clean = strings.ReplaceAll(clean, s, "***")
		}
	}
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		return &scrubbed{msg: clean, cause: rl}
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean}
}

type scrubbed struct {
	msg   string
	cause error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.cause }
