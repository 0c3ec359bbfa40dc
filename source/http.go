package source

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
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
	var roots *x509.CertPool
	if len(caPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
		roots = pool
	}
	proxy := (&httpproxy.Config{
		HTTPProxy:  firstEnv(getenv, "HTTP_PROXY", "http_proxy"),
		HTTPSProxy: firstEnv(getenv, "HTTPS_PROXY", "https_proxy"),
		NoProxy:    firstEnv(getenv, "NO_PROXY", "no_proxy"),
	}).ProxyFunc()
	tr := &http.Transport{
		Proxy:                 func(r *http.Request) (*url.URL, error) { return proxy(r.URL) },
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if h.tr != nil {
		h.tr.CloseIdleConnections()
	}
	h.key, h.tr = key, tr
	h.client = &http.Client{Transport: limitRefListing{tr}}
	return h.client, nil
}

func firstEnv(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// limitRefListing refuses ref advertisements over maxRefAdvertisement
// bytes (pack transfers are capped where they are read), and records what
// the server answered in the request context's httpTrace, since go-git's
// errors do not unwrap to the status code.
type limitRefListing struct{ base http.RoundTripper }

func (l limitRefListing) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := l.base.RoundTrip(r)
	if err != nil {
		return res, err
	}
	if t, ok := r.Context().Value(httpTraceKey{}).(*httpTrace); ok {
		t.status = res.StatusCode
		t.contentType = res.Header.Get("Content-Type")
	}
	if strings.HasSuffix(r.URL.Path, "/info/refs") {
		res.Body = &cappedBody{rc: res.Body, left: maxRefAdvertisement}
	}
	return res, nil
}

// httpTrace is what the last HTTP response of a call looked like.
type httpTrace struct {
	status      int
	contentType string
}

type httpTraceKey struct{}

type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("%w: ref listing larger than %s", ErrTooLarge, formatBytes(maxRefAdvertisement))
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cappedBody) Close() error { return c.rc.Close() }

// httpSession is go-git's smart HTTP client, used per call (no global
// protocol registry).
type httpSession struct {
	s transport.UploadPackSession
}

func newHTTPSession(client *http.Client, ep endpoint, auth githttp.AuthMethod) (*httpSession, error) {
	tep, err := transport.NewEndpoint(ep.plain)
	if err != nil {
		return nil, fmt.Errorf("repository URL %s: %w", ep.display, err)
	}
	c := githttp.NewClientWithOptions(client, &githttp.ClientOptions{RedirectPolicy: githttp.FollowInitialRedirects})
	var a transport.AuthMethod
	if auth != nil {
		a = auth
	}
	s, err := c.NewUploadPackSession(tep, a)
	if err != nil {
		return nil, err
	}
	return &httpSession{s: s}, nil
}

func (h *httpSession) listRefs(ctx context.Context) (*packp.AdvRefs, error) {
	return h.s.AdvertisedReferencesContext(ctx)
}

func (h *httpSession) uploadPack(ctx context.Context, req *packp.UploadPackRequest) (io.ReadCloser, error) {
	return h.s.UploadPack(ctx, req)
}

func (h *httpSession) close() error { return h.s.Close() }
