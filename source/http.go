package source

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"golang.org/x/net/http/httpproxy"
)

// httpClients keeps one http.Client per CA bundle content, so connections
// are reused between polls and a rotated CA file takes effect.
type httpClients struct {
	key    [32]byte
	client *http.Client
	tr     *http.Transport
}

// get returns the client for caPEM (nil: system roots only).
func (h *httpClients) get(caPEM []byte, caFile string, getenv func(string) string) (*http.Client, error) {
	key := sha256.Sum256(caPEM)
	if h.client != nil && key == h.key {
		return h.client, nil
	}
	proxy := (&httpproxy.Config{
		HTTPProxy:  firstEnv(getenv, "HTTP_PROXY", "http_proxy"),
		HTTPSProxy: firstEnv(getenv, "HTTPS_PROXY", "https_proxy"),
		NoProxy:    firstEnv(getenv, "NO_PROXY", "no_proxy"),
	}).ProxyFunc()
	tr, err := NewTransport(caPEM, func(r *http.Request) (*url.URL, error) { return proxy(r.URL) })
	if err != nil {
		return nil, fmt.Errorf("CA file %s: %w", caFile, err)
	}
	if h.tr != nil {
		h.tr.CloseIdleConnections()
	}
	h.key, h.tr = key, tr
	h.client = &http.Client{Transport: cappedTransport{tr}}
	return h.client, nil
}

// NewTransport returns the HTTP transport tether talks to servers it
// fetches from with (git hosts, registries): TLS 1.2 or later, trusting
// the system roots and caPEM (a PEM bundle; nil for the system roots
// only), with bounded dial and handshake timeouts and few idle
// connections (no header timeout: a git server may think long before it
// answers a fetch; callers that know better set one). proxy picks the proxy
// of a request (nil: none).
func NewTransport(caPEM []byte, proxy func(*http.Request) (*url.URL, error)) (*http.Transport, error) {
	var roots *x509.CertPool
	if len(caPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("it holds no PEM certificate")
		}
		roots = pool
	}
	return &http.Transport{
		Proxy:                 proxy,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}, nil
}

func firstEnv(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// cappedTransport caps every response body (go-git reads some of them
// whole: an error answer into its error message, a ref listing into
// maps), and records what the server answered in the request context's
// httpTrace, since go-git's errors do not unwrap to the status code:
//
//   - an error answer (not 2xx) is cut off after maxErrorBody bytes, silently:
//     its status is what matters;
//   - a ref listing fails with ErrTooLarge past maxRefAdvertisement;
//   - any other answer (the pack) fails with ErrTooLarge past the trace's
//     answerLimit (the transfer allowance plus room for framing).
type cappedTransport struct{ base http.RoundTripper }

func (l cappedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := l.base.RoundTrip(r)
	if err != nil {
		return res, err
	}
	t, _ := r.Context().Value(httpTraceKey{}).(*httpTrace)
	if t != nil {
		t.status = res.StatusCode
		t.contentType = res.Header.Get("Content-Type")
	}
	var over *overLimit
	answerLimit := int64(maxRefAdvertisement)
	if t != nil {
		over = t.over
		if t.answerLimit > 0 {
			answerLimit = t.answerLimit
		}
	}
	switch {
	case res.StatusCode < 200 || res.StatusCode > 299:
		res.Body = &cappedReader{r: res.Body, c: res.Body, left: maxErrorBody, truncate: true}
	case strings.HasSuffix(r.URL.Path, "/info/refs"):
		res.Body = &cappedReader{r: res.Body, c: res.Body, left: maxRefAdvertisement, over: over,
			tooLarge: fmt.Errorf("%w: the ref listing is larger than %s (the remote advertises too many refs)", ErrTooLarge, formatBytes(maxRefAdvertisement))}
	default:
		res.Body = &cappedReader{r: res.Body, c: res.Body, left: answerLimit, over: over,
			tooLarge: fmt.Errorf("%w: the server's answer passed %s (the transfer allowance plus room for framing)", ErrTooLarge, formatBytes(answerLimit))}
	}
	return res, nil
}

// httpTrace is what the last HTTP response of a call looked like, and
// what its answers may be.
type httpTrace struct {
	status      int
	contentType string
	// answerLimit caps a pack answer (0: maxRefAdvertisement).
	answerLimit int64
	// over records a cap that was hit.
	over *overLimit
}

type httpTraceKey struct{}

// overLimit remembers the first answer refused for its size, so that the
// error says so even when a decoder wrapped the read error beyond
// recognition. Safe for concurrent use; a nil *overLimit records nothing.
type overLimit struct {
	mu  sync.Mutex
	err error
}

func (o *overLimit) set(err error) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
	}
}

func (o *overLimit) get() error {
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// cappedReader passes at most left bytes of r. Past that it fails with
// tooLarge (recorded in over), or with truncate set it ends the stream.
type cappedReader struct {
	r        io.Reader
	c        io.Closer // closed by Close, if set
	left     int64
	truncate bool
	tooLarge error
	over     *overLimit
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		if c.truncate {
			return 0, io.EOF
		}
		// One byte more tells a stream that ends exactly at the cap
		// from one that goes on.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n == 0 {
			return 0, err
		}
		c.over.set(c.tooLarge)
		return 0, c.tooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cappedReader) Close() error {
	if c.c == nil {
		return nil
	}
	return c.c.Close()
}

// httpSession is go-git's smart HTTP client, used per call (no global
// protocol registry).
type httpSession struct {
	s transport.UploadPackSession
}

func newHTTPSession(client *http.Client, ep endpoint, auth githttp.AuthMethod) (*httpSession, error) {
	c, tep, a, err := httpTransport(client, ep, auth)
	if err != nil {
		return nil, err
	}
	s, err := c.NewUploadPackSession(tep, a)
	if err != nil {
		return nil, err
	}
	return &httpSession{s: s}, nil
}

// httpTransport is go-git's smart HTTP client over client, the endpoint
// and the auth method, for a fetch or a push (push.go) session.
func httpTransport(client *http.Client, ep endpoint, auth githttp.AuthMethod) (transport.Transport, *transport.Endpoint, transport.AuthMethod, error) {
	tep, err := transport.NewEndpoint(ep.plain)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("repository URL %s: %w", ep.display, err)
	}
	c := githttp.NewClientWithOptions(client, &githttp.ClientOptions{RedirectPolicy: githttp.FollowInitialRedirects})
	var a transport.AuthMethod
	if auth != nil {
		a = auth
	}
	return c, tep, a, nil
}

func (h *httpSession) listRefs(ctx context.Context) (*packp.AdvRefs, error) {
	return h.s.AdvertisedReferencesContext(ctx)
}

func (h *httpSession) uploadPack(ctx context.Context, req *packp.UploadPackRequest) (io.ReadCloser, error) {
	return h.s.UploadPack(ctx, req)
}

func (h *httpSession) close() error { return h.s.Close() }
